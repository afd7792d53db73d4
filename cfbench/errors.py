"""Exceptions that the CLI turns into a one-line message and an exit code (0 ok, 1 failed check, 2 bad input).

Only these (and `degradations.DegradationsError`) are the user's to fix; any other exception reaching the CLI is
an internal error: exit 3, its traceback logged under `$CFBENCH_HOME/logs/`.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED_CHECK = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it


class CfbenchError(Exception):
    """Base class; `exit_code` is what the CLI exits with."""

    exit_code = EXIT_BAD_INPUT


class BadInputError(CfbenchError, ValueError):
    """The user gave something unusable (a wrong image, size, range, name...); the message says how to fix it."""


class CheckpointError(BadInputError):
    """A file is not a checkpoint, or its keys or shapes do not fit the model."""


class MissingRequirementsError(BadInputError):
    """Requested checkpoints or metrics cannot run here; the message lists every missing file and its fix."""


class MissingWeightsError(CfbenchError, FileNotFoundError):
    """A registered weights file is not in the cache; the message names the file, its URL and where to put it."""


class HashMismatchError(CfbenchError):
    """A file's sha256 differs from the pinned one."""
