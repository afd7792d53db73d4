"""The shared Registry: strict names, no duplicates, helpful unknown-name errors."""

import pytest

from cfbench.registry import Registry, UnknownNameError


def test_register_and_get():
    reg = Registry("thing")
    reg.register("a-b_c.1")(42)
    assert reg.get("a-b_c.1") == 42 and "a-b_c.1" in reg and reg.names() == ["a-b_c.1"]


@pytest.mark.parametrize("name", ["has space", "a/b", "", "-lead"])
def test_invalid_names(name):
    with pytest.raises(ValueError, match="invalid thing name"):
        Registry("thing").add(name, 1)


def test_duplicates_are_refused():
    reg = Registry("thing")
    reg.add("x", 1)
    with pytest.raises(ValueError, match="duplicate thing name 'x'"):
        reg.add("x", 2)


def test_unknown_name_suggests():
    reg = Registry("metric")
    reg.add("lpips", 1)
    reg.add("niqe", 2)
    with pytest.raises(UnknownNameError, match="unknown metric 'lpip'; did you mean 'lpips'") as err:
        reg.get("lpip")
    assert isinstance(err.value, KeyError) and isinstance(err.value, ValueError)
