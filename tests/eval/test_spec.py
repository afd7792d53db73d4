"""--w and --severity parsing: exact grids, float edge cases, canonical labels, one-line errors with an example."""

from __future__ import annotations

import numpy as np
import pytest

from cfbench.errors import BadInputError
from cfbench.eval.spec import MAX_W_VALUES, parse_severity_spec, parse_w_spec


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0:1:0.1", (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)),
        ("0:0.3:0.1", (0.0, 0.1, 0.2, 0.3)),  # 0.1 * 3 = 0.30000000000000004 in floats
        ("0.1:0.7:0.3", (0.1, 0.4, 0.7)),  # 0.1 + 2 * 0.3 = 0.7000000000000001 in floats
        ("0:1:0.25", (0.0, 0.25, 0.5, 0.75, 1.0)),
        ("0:1:0.3", (0.0, 0.3, 0.6, 0.9)),  # stop off the grid: the largest grid value <= stop
        ("0.2:0.2:0.1", (0.2,)),
        ("0:1:2", (0.0,)),
        (" 0 : 1 : 0.5 ", (0.0, 0.5, 1.0)),
        ("1e-1:3e-1:1e-1", (0.1, 0.2, 0.3)),
        ("0,0.5,1", (0.0, 0.5, 1.0)),
        ("1, 0, 0.5", (0.0, 0.5, 1.0)),  # sorted
        ("0.7", (0.7,)),
        (".5", (0.5,)),
        ("-0", (0.0,)),
        (0.5, (0.5,)),  # YAML numbers and lists
        (1, (1.0,)),
        ([0, 0.5, 1], (0.0, 0.5, 1.0)),
        ("0:1:0.01", tuple(i / 100 for i in range(101))),
    ],
)
def test_w_spec_values(text, expected):
    got = parse_w_spec(text)
    assert got == expected  # exact float equality: clean decimals, no accumulated error
    assert all(isinstance(v, float) for v in got)


def test_w_spec_grid_equals_the_decimal_literals():
    got = parse_w_spec("0:1:0.1")
    assert len(got) == 11 and got[-1] == 1.0
    assert [repr(v) for v in got] == ["0.0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1.0"]
    # np.arange gets this wrong in both directions, which is why the parser does not use it
    assert len(np.arange(0, 1 + 0.1, 0.1)) == 11 and np.arange(0, 1.1, 0.1)[3] != 0.3


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "empty"),
        ("0:1", "three fields"),
        ("0:1:0.1:2", "three fields"),
        ("1:0:0.1", "after stop"),
        ("0:1:0", "step must be > 0"),
        ("0:1:-0.1", "step must be > 0"),
        ("0:1.5:0.5", "outside [0, 1]"),
        ("-0.1", "outside [0, 1]"),
        ("1.01", "outside [0, 1]"),
        ("0,0.5,0.50", "given twice"),
        ("0,,1", "not a number"),
        ("abc", "not a number"),
        ("nan", "not a number"),
        ("inf", "not a number"),
        ("0:1:a", "not a number"),
        ("0:1:0.0001", "more than"),
        (True, "text or numbers"),
        ([], "empty list"),
    ],
)
def test_w_spec_errors(text, fragment):
    with pytest.raises(BadInputError) as info:
        parse_w_spec(text)
    msg = str(info.value)
    assert fragment in msg and "\n" not in msg
    if fragment != "more than":
        assert "0:1:0.1" in msg  # the message shows the right syntax


def test_w_spec_limit():
    assert len(parse_w_spec("0:1:0.001")) == MAX_W_VALUES


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0,2", ("0", "2")),
        ("none", ("none",)),
        ("NONE", ("none",)),
        ("0.5", ("0.5",)),
        ("1.0", ("1.0",)),  # a fraction (interpolated to the hardest level), not level 1
        ("1.0,1", ("1.0", "1")),
        ("celeba-test", ("celeba-test",)),
        ("0:4", ("0", "1", "2", "3", "4")),
        ("none, 1:2, 0.25", ("none", "1", "2", "0.25")),  # order kept
        ("2,0", ("2", "0")),
        ([0, 2], ("0", "2")),
        (0.5, ("0.5",)),
        (3, ("3",)),
    ],
)
def test_severity_spec_values(text, expected):
    assert parse_severity_spec(text) == expected


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "empty"),
        ("5", "not a level"),
        ("1.5", "not a level"),
        ("0:5", "not a level"),
        ("3:1", "runs backwards"),
        ("0:1:2", "a range is two levels"),
        ("0,,2", "empty entry"),
        ("0,0", "given twice"),
        ("1:2,2", "given twice"),
        ("severity-scale", "not a level"),  # needs a level: not a severity by itself
        ("hard", "not a level"),
    ],
)
def test_severity_spec_errors(text, fragment):
    with pytest.raises(BadInputError) as info:
        parse_severity_spec(text)
    msg = str(info.value)
    assert fragment in msg and "\n" not in msg and "--severity 0,2" in msg
