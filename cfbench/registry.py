"""The registry class shared by every named thing in cfbench (see `degradations.registry` for why it lives there)."""

from degradations.registry import Registry, UnknownNameError

__all__ = ["Registry", "UnknownNameError"]
