"""The errors of the degradations package: something given to it (a config, a params record, an image, a folder, an
option or a registry name) is unusable, and the message says how to fix it.

The package imports nothing from cfbench; cfbench's command line maps `DegradationsError` to its bad-input exit code.
"""

from __future__ import annotations


class DegradationsError(ValueError):
    """Base class: an input to the degradations package is unusable."""


class MissingFileError(DegradationsError, FileNotFoundError):
    """A named file or folder does not exist (or is empty where images are needed)."""
