"""The flow's parameter checks: clear errors naming the parameter and the rule."""

from __future__ import annotations

import pytest
from flow_parameters import InvalidParameter, validate_parameters


def test_valid_chunks_are_returned_in_order_without_duplicates() -> None:
    got = validate_parameters(["s1/b.csv", "s1/a.csv", "s1/b.csv"], "sensor-data", "sensor-features")
    assert got == ["s1/b.csv", "s1/a.csv"]
    assert validate_parameters([], "sensor-data", "sensor-features") == []


@pytest.mark.parametrize(
    ("chunks", "message"),
    [
        (
            ["ok.csv", "raw/$HOME/x.csv"],
            r"parameter 'chunks', item 1: invalid chunk name 'raw/\$HOME/x.csv': character '\$'",
        ),
        (["a/`id`.csv"], "character '`'"),
        (["../x.csv"], "must not contain '..'"),
        (["/x.csv"], "must not start with '/'"),
        ([3], "must be a string"),
        ('["a.csv"]', "must be a JSON list of blob names, got str"),
        ({"a": 1}, "must be a JSON list of blob names, got dict"),
    ],
)
def test_bad_chunks_name_the_parameter_and_the_rule(chunks: object, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        validate_parameters(chunks, "sensor-data", "sensor-features")


@pytest.mark.parametrize("container", ["Sensor", "a", "a--b", "-ab", "ab-", "x$HOME", 5])
def test_bad_container_is_refused(container: object) -> None:
    with pytest.raises(InvalidParameter, match="parameter 'container': invalid container name"):
        validate_parameters([], container, "sensor-features")


def test_container_must_differ_from_the_results_container() -> None:
    with pytest.raises(InvalidParameter, match="different containers"):
        validate_parameters([], "sensor-features", "sensor-features")
