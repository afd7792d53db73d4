"""The sweep axes of `cfbench eval`: the fidelity weights (`--w`) and the degradation severities (`--severity`).

`parse_w_spec` reads ``start:stop:step`` (stop included), a list ``0,0.5,1`` or one number. Ranges are computed in
decimal arithmetic from the text, so ``0:1:0.1`` gives exactly the 11 floats 0.0, 0.1, ..., 1.0 that the literals
``0.1``, ``0.2``, ... denote (``0.1 * 3`` would give 0.30000000000000004; ``numpy.arange`` may add or drop the
stop). `parse_severity_spec` reads comma-separated levels (``0,2``), level ranges (``0:4``), fractions (``0.5``),
``none`` and the names of the degradation presets that have no levels (``celeba-test``), and returns the canonical
labels that the degradations package uses in seeds and records (`degradations.severity_label`).

Both accept what a YAML config holds as well: a number, or a list of numbers or strings.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from cfbench.errors import BadInputError

W_EXAMPLE = "e.g. --w 0:1:0.1 (start:stop:step, stop included), --w 0,0.5,1 or --w 0.5"
SEVERITY_EXAMPLE = "e.g. --severity 0,2 (levels), 0:4 (levels 0 to 4), 0.5 (a fraction), none or celeba-test"
MAX_W_VALUES = 1001  # a typo such as 0:1:0.0001 should fail fast instead of running for days

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_LEVEL_RANGE = re.compile(r"^(\d+):(\d+)$")


def _as_text(value: Any, flag: str, example: str) -> str:
    """The spec as text: YAML numbers and lists are joined the way they would be typed."""
    if isinstance(value, bool):
        raise BadInputError(f"{flag} must be text or numbers, got {value!r}; {example}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        if not value:
            raise BadInputError(f"{flag} is an empty list; {example}")
        return ",".join(_as_text(v, flag, example) for v in value)
    if isinstance(value, str):
        return value.strip()
    raise BadInputError(f"{flag} must be text or numbers, got {type(value).__name__}; {example}")


def _decimal(token: str, role: str, text: str) -> Decimal:
    token = token.strip()
    if not _NUMBER.match(token):
        what = f"{role} {token!r}" if token else f"an empty {role}"
        raise BadInputError(f"bad --w {text!r}: {what} is not a number; {W_EXAMPLE}")
    return Decimal(token)


def _w_range(text: str) -> list[Decimal]:
    fields = text.split(":")
    if len(fields) != 3:
        raise BadInputError(f"bad --w {text!r}: a range has three fields start:stop:step; {W_EXAMPLE}")
    start, stop, step = (_decimal(t, r, text) for t, r in zip(fields, ("start", "stop", "step"), strict=True))
    if step <= 0:
        raise BadInputError(f"bad --w {text!r}: the step must be > 0; {W_EXAMPLE}")
    if start > stop:
        raise BadInputError(f"bad --w {text!r}: start {start} is after stop {stop}; {W_EXAMPLE}")
    if (stop - start) / step >= MAX_W_VALUES:
        raise BadInputError(f"bad --w {text!r}: more than {MAX_W_VALUES} values; use a larger step")
    count = int((stop - start) // step) + 1  # exact: Decimal arithmetic on the typed digits
    return [start + i * step for i in range(count)]


def parse_w_spec(text: str | float | list[Any] | tuple[Any, ...]) -> tuple[float, ...]:
    """Fidelity weights from ``start:stop:step`` (stop included when on the grid; otherwise the last value is the
    largest grid value <= stop), ``a,b,c`` or one number: sorted, each in [0, 1], distinct as typed and as float64."""
    text = _as_text(text, "--w", W_EXAMPLE)
    if not text:
        raise BadInputError(f"--w is empty; {W_EXAMPLE}")
    if ":" in text:
        values = _w_range(text)
    else:
        values = [_decimal(tok, "value", text) for tok in text.split(",")]
    seen: set[Decimal] = set()
    for v in values:
        if not Decimal(0) <= v <= Decimal(1):
            raise BadInputError(f"bad --w {text!r}: w = {v} is outside [0, 1]; {W_EXAMPLE}")
        if v in seen:  # Decimal equality: 0.5 and 0.50 are the same value
            raise BadInputError(f"bad --w {text!r}: w = {v} is given twice; {W_EXAMPLE}")
        seen.add(v)
    # float(Decimal("0.3")) is the float nearest 0.3, i.e. the same float as the literal 0.3; `+ 0.0` turns -0.0 to 0.0
    # (the store keys rows by this float, `cfbench.eval.store.parts.w_key`, so two w must differ as floats)
    floats: dict[float, Decimal] = {}
    for v in values:
        f = float(v) + 0.0
        if f in floats:
            raise BadInputError(
                f"bad --w {text!r}: w = {floats[f]} and w = {v} are the same float64 ({f!r}); give distinct values"
            )
        floats[f] = v
    return tuple(sorted(floats))


def _levelless_presets() -> list[str]:
    from degradations import list_presets, preset_config

    return [name for name in list_presets() if not preset_config(name).levels]


def _one_severity(token: str, text: str) -> str:
    from degradations import parse_severity, severity_label

    try:
        parsed = parse_severity(token)
    except ValueError as err:
        presets = ", ".join(_levelless_presets())
        raise BadInputError(
            f"bad --severity {text!r}: {token!r} is not a level 0..4, a fraction in [0, 1], 'none' or a preset "
            f"without levels ({presets}); {SEVERITY_EXAMPLE}"
        ) from err
    return severity_label(parsed[0])


def parse_severity_spec(text: str | float | list[Any] | tuple[Any, ...]) -> tuple[str, ...]:
    """Severities as canonical labels, in the order given: levels ``'0'``..``'4'`` (also ranges ``a:b``), fractions
    (``'0.5'``; ``'1.0'`` is a fraction, not level 1), ``'none'`` (the dataset's own LQ images) and preset names
    without levels (``'celeba-test'``). Duplicates are an error."""
    text = _as_text(text, "--severity", SEVERITY_EXAMPLE)
    if not text:
        raise BadInputError(f"--severity is empty; {SEVERITY_EXAMPLE}")
    labels: list[str] = []
    for raw in text.split(","):
        token = raw.strip().lower()
        if not token:
            raise BadInputError(f"bad --severity {text!r}: an empty entry between commas; {SEVERITY_EXAMPLE}")
        match = _LEVEL_RANGE.match(token)
        if match:
            lo, hi = int(match.group(1)), int(match.group(2))
            if lo > hi:
                raise BadInputError(f"bad --severity {text!r}: range {token!r} runs backwards; {SEVERITY_EXAMPLE}")
            labels.extend(_one_severity(str(level), text) for level in range(lo, hi + 1))
        elif ":" in token:
            raise BadInputError(f"bad --severity {text!r}: a range is two levels a:b; {SEVERITY_EXAMPLE}")
        elif token in _levelless_presets():
            labels.append(token)
        else:
            labels.append(_one_severity(token, text))
    for i, label in enumerate(labels):
        if label in labels[:i]:
            raise BadInputError(f"bad --severity {text!r}: {label!r} is given twice; {SEVERITY_EXAMPLE}")
    return tuple(labels)
