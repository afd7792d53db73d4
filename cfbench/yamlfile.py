"""Reading a YAML file that the user named: an unreadable or malformed file is bad input, in one message form."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from cfbench.errors import BadInputError


def read_yaml(path: str | os.PathLike, what: str) -> Any:
    """The parsed contents of the YAML file `path`; `what` names the file in the error ("train config")."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise BadInputError(f"{what} {path} is unreadable: {err.strerror or err}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise BadInputError(f"{what} {path} is not valid YAML: {str(err).splitlines()[0]}") from None
