"""The chunk-name allow-list shared by the flow and the function app."""

import pytest

from processing.chunk_names import MAX_CHUNK_NAME_LENGTH, InvalidChunkName, sensor_id, validate_chunk_name


@pytest.mark.parametrize(
    "name",
    [
        "sensor-1/2026/11/22/chunk-000.csv",
        "s1/a.npy",
        "plain.csv",
        "dt=2026-11-22/sensor_2/x.v2.csv",
        "a" * MAX_CHUNK_NAME_LENGTH,
    ],
)
def test_valid_names_pass_unchanged(name: str) -> None:
    assert validate_chunk_name(name) == name


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("raw/$HOME/x.csv", "'$'"),
        ("raw/`id`.csv", "'`'"),
        ("raw/a b.csv", "' '"),
        ("raw/a;rm.csv", "';'"),
        ("raw/ü.csv", "'ü'"),
        ("raw/a\nb.csv", "'\\n'"),
        ("../etc/passwd", "'..'"),
        ("raw/../x.csv", "'..'"),
        ("raw/x..csv", "'..'"),
        ("/raw/x.csv", "leading '/'"),
        ("raw//x.csv", "empty path segment"),
        ("raw/", "empty path segment"),
        ("", "must not be empty"),
        ("a" * (MAX_CHUNK_NAME_LENGTH + 1), "the limit is 1024"),
        (42, "must be a string"),
        (None, "must be a string"),
    ],
)
def test_invalid_names_are_rejected_with_the_rule(name: object, fragment: str) -> None:
    with pytest.raises(InvalidChunkName) as info:
        validate_chunk_name(name)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)
    assert info.value.name == name


def test_long_names_are_shortened_in_the_message() -> None:
    with pytest.raises(InvalidChunkName) as info:
        validate_chunk_name("$" * 5000)
    assert len(str(info.value)) < 400


def test_sensor_id_is_the_first_segment() -> None:
    assert sensor_id("sensor-7/2026/11/22/chunk.csv") == "sensor-7"
    assert sensor_id("chunk.csv") == "chunk.csv"
    with pytest.raises(InvalidChunkName):
        sensor_id("/x.csv")
