"""The chunk-name allow-list shared by the flow and the function app."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chunk_contract.names import MAX_CHUNK_NAME_LENGTH, InvalidChunkName, sensor_id, validate_chunk_name


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
        ("a" * (MAX_CHUNK_NAME_LENGTH + 1), "the limit is 1010"),
        ("./sensor-1/2026/11/22/0800.csv", "'.' path segment"),
        ("sensor-1/./2026/11/22/0800.csv", "'.' path segment"),
        ("sensor-1/2026/11/22/0800.csv/.", "'.' path segment"),
        ("a" * 1011, "the limit is 1010"),
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


def test_every_valid_name_leaves_room_for_its_records() -> None:
    from chunk_contract.records import ERROR_SUFFIX, MAX_BLOB_NAME_LENGTH, RESULT_SUFFIX

    longest = "a" * MAX_CHUNK_NAME_LENGTH
    assert validate_chunk_name(longest) == longest
    assert len(longest + RESULT_SUFFIX) <= MAX_BLOB_NAME_LENGTH
    assert len(longest + ERROR_SUFFIX) <= MAX_BLOB_NAME_LENGTH


_ALPHABET = "abcXYZ019/._=-"


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=_ALPHABET, min_size=1, max_size=40))
def test_app_and_flow_accept_exactly_the_same_names(name: str) -> None:
    """The app's request check and the flow's parameter check can never diverge: one rule."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "flows"))
    from flow_parameters import InvalidParameter, validate_parameters

    from function_app.submission import Rejection, check_chunks

    app_ok = not isinstance(check_chunks([name], 1), Rejection)
    try:
        validate_parameters([name], "sensor-data", "sensor-features")
        flow_ok = True
    except InvalidParameter:
        flow_ok = False
    assert app_ok == flow_ok, name
    if app_ok:
        segments = name.split("/")
        assert "." not in segments and ".." not in name and "" not in segments and not name.startswith("/")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=_ALPHABET, min_size=1, max_size=30))
def test_a_valid_name_is_its_own_normal_form(name: str) -> None:
    """What the HTTP layer would normalise (dot segments, doubled slashes) never passes: no aliases."""
    import posixpath

    try:
        validate_chunk_name(name)
    except InvalidChunkName:
        return
    assert posixpath.normpath(name) == name
