"""A small registry of named things (degradation ops, presets; cfbench reuses it for metrics, models, weights).

It lives in the standalone `degradations` package because cfbench depends on degradations and not the other way
round; `cfbench.registry` re-exports it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from degradations.errors import DegradationsError

T = TypeVar("T")

_VALID_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+:\-\[\]]*$")


class UnknownNameError(DegradationsError, KeyError):
    """An unknown registry name; the message suggests the close matches."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0])


class Registry(Generic[T]):
    """Maps strict names (no spaces or slashes, no duplicates) to objects.

    `kind` names what is registered ("degradation op", "metric") and appears in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        if not isinstance(name, str) or not _VALID_NAME.match(name):
            raise ValueError(
                f"invalid {self.kind} name {name!r}: use letters, digits, '_', '-', '.', '+', ':', '[', ']' "
                "and no spaces or slashes"
            )
        if name in self._items:
            raise ValueError(f"duplicate {self.kind} name {name!r}: it is already registered")
        self._items[name] = item
        return item

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of `add`."""

        def decorate(item: T) -> T:
            return self.add(name, item)

        return decorate

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(str(name), list(self._items), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            known = ", ".join(sorted(self._items)) or "none"
            raise UnknownNameError(f"unknown {self.kind} {name!r}{hint} (known: {known})") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
