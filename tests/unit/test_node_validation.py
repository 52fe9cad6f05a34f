"""Validation of node fields (app/validation.py): what the config API and the Nodes page accept."""
import pytest

from app.validation import (ValidationError, validate_node_fields, validate_node_name, validate_num_parallel,
                            validate_vram_gb, validate_weight)


@pytest.mark.parametrize("value,expected", [(24, 24.0), ("24.5", 24.5), (4096, 4096.0), (None, None), ("", None),
                                            (0.5, 0.5)])
def test_vram_gb_accepts_positive_sizes_or_unknown(value, expected):
    assert validate_vram_gb(value) == expected


@pytest.mark.parametrize("value", [0, -1, 4096.5, "lots", True, "nan", "inf", float("nan")])
def test_vram_gb_refuses_nonsense(value):
    with pytest.raises(ValidationError) as err:
        validate_vram_gb(value)
    assert err.value.field == "vram_gb"


@pytest.mark.parametrize("value,expected", [(1, 1), ("4", 4), (256, 256), (2.0, 2)])
def test_num_parallel_accepts_1_to_256(value, expected):
    assert validate_num_parallel(value) == expected


@pytest.mark.parametrize("value", [0, 257, 2.5, "2.5", "two", None, False, "²"])
def test_num_parallel_refuses_the_rest(value):
    with pytest.raises(ValidationError):
        validate_num_parallel(value)


@pytest.mark.parametrize("value,ok", [(1, True), ("0.25", True), (1000, True), (0, False), (1000.1, False),
                                      (-2, False), (None, False), (True, False)])
def test_weight_range(value, ok):
    if ok:
        assert validate_weight(value) == float(value)
    else:
        with pytest.raises(ValidationError):
            validate_weight(value)


@pytest.mark.parametrize("name,ok", [("gpu-a", True), ("10.0.0.7:11434", True), ("box_1.lan", True),
                                     ("x" * 64, True), ("", False), ("x" * 65, False), ("a b", False),
                                     ("<b>", False), ("ä", False), (7, False)])
def test_node_names(name, ok):
    if ok:
        assert validate_node_name(name) == name
    else:
        with pytest.raises(ValidationError):
            validate_node_name(name)


def test_a_new_node_needs_host_and_port_and_gets_its_fields_validated():
    fields = validate_node_fields({"host": "gpu-a", "port": "11434", "vram_gb": "24", "num_parallel": 2,
                                   "enabled": "on"})
    assert fields == {"host": "gpu-a", "port": 11434, "vram_gb": 24.0, "num_parallel": 2, "enabled": True}
    with pytest.raises(ValidationError) as err:
        validate_node_fields({"host": "gpu-a"})
    assert err.value.field == "port"


def test_a_partial_update_takes_any_subset_but_not_nothing_or_unknown_fields():
    assert validate_node_fields({"weight": 3}, partial=True) == {"weight": 3.0}
    for body, field in (({}, "body"), ({"slot": 3}, "slot"), ({"vram": 3}, "vram"), ({"port": 0}, "port")):
        with pytest.raises(ValidationError) as err:
            validate_node_fields(body, partial=True)
        assert err.value.field == field
