"""Chunk versions and ETag normalisation (pure: no storage)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chunk_contract.names import InvalidChunkName
from chunk_contract.versions import ChunkVersion, InvalidETag, normalize_etag

# ---------------------------------------------------------------------------- normalize_etag


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('"0x8DC1234ABCD"', "0x8DC1234ABCD"),  # the blob SDK's spelling
        ("0x8DC1234ABCD", "0x8DC1234ABCD"),  # Event Grid's data.eTag, blob metadata
        ('W/"0x8DC1234ABCD"', "0x8DC1234ABCD"),  # a weak validator from an HTTP cache
        ("W/0x8DC1234ABCD", "0x8DC1234ABCD"),
        ('  "0x8DC1234ABCD"  ', "0x8DC1234ABCD"),
        (' \tW/"0x8DC1234ABCD"\n', "0x8DC1234ABCD"),
        ("  0x8DC1234ABCD ", "0x8DC1234ABCD"),
        ("x", "x"),
        ('"' + "a" * 256 + '"', "a" * 256),  # the limit is on the value, not its quotes
    ],
)
def test_normalize_etag_accepts_every_spelling(raw: str, expected: str) -> None:
    assert normalize_etag(raw) == expected


def test_normalize_etag_is_idempotent() -> None:
    once = normalize_etag('W/"0x8DC"')
    assert normalize_etag(once) == once
    assert normalize_etag(f'"{once}"') == once


@pytest.mark.parametrize(
    "raw",
    [
        None,
        0x8DC,
        b'"0x8DC"',
        ["0x8DC"],
    ],
)
def test_non_string_etags_are_rejected(raw: object) -> None:
    with pytest.raises(InvalidETag, match="must be a string"):
        normalize_etag(raw)


@pytest.mark.parametrize("raw", ["", '""', 'W/""', "W/", "   ", ' "" ', '""""'])
def test_empty_etags_are_rejected(raw: str) -> None:
    with pytest.raises(InvalidETag, match="empty ETag"):
        normalize_etag(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "0x8 DC",
        '"0x8 DC"',
        "0x8\tDC",
        'W/"0x8DC" "0x9DC"',
        '0x8"DC',
        '"0x8"DC"',
        "0x8\x00DC",
        "0x8\x1bDC",
        "0x8\x7fDC",
        "0x8\u2028DC",  # a Unicode line separator counts as whitespace
        "a" * 257,
        '"' + "a" * 257 + '"',
        "a" * 10_000,
    ],
)
def test_malformed_etags_are_rejected(raw: str) -> None:
    with pytest.raises(InvalidETag, match="malformed ETag"):
        normalize_etag(raw)


def test_invalid_etag_is_a_value_error_and_its_message_is_bounded() -> None:
    with pytest.raises(ValueError) as info:
        normalize_etag("a b" * 5000)
    assert isinstance(info.value, InvalidETag)
    assert len(str(info.value)) < 200


@pytest.mark.parametrize(
    "character",
    [
        "\x80",  # C1 control characters (Unicode Cc), not caught by isspace() except U+0085
        "\x9b",
        "\x9f",
        "\x85",
        "\xa0",  # no-break space
        "\u00e9",  # é: RFC 7232's obs-text, refused here (Azure's ETags are ASCII)
        "\u2028",
        "\ufeff",
        "\U0001f600",
    ],
)
def test_anything_but_printable_ascii_inside_is_rejected(character: str) -> None:
    with pytest.raises(InvalidETag, match="malformed ETag"):
        normalize_etag(f"0x8{character}DC")


@pytest.mark.parametrize("raw", ["0x8DC-1_2.3~4", "a:b+c=d", "!#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", "v1/2"])
def test_printable_ascii_punctuation_is_kept(raw: str) -> None:
    assert normalize_etag(raw) == raw
    assert normalize_etag(f'W/"{raw}"') == raw


# An ETag-like token: what Azure's ETags (0x8DC...) and other servers' opaque tags are made of.
etag_tokens = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789x", min_size=1, max_size=256
)


@given(etag_tokens)
def test_every_spelling_of_a_token_normalises_to_the_token(token: str) -> None:
    assert normalize_etag(token) == normalize_etag(f'"{token}"') == normalize_etag(f'W/"{token}"') == token


@given(etag_tokens, st.sampled_from(["", " ", "\t", "\n ", "  \r\n"]))
def test_surrounding_whitespace_never_changes_the_token(token: str, pad: str) -> None:
    assert normalize_etag(f'{pad}"{token}"{pad}') == token


# ---------------------------------------------------------------------------- ChunkVersion


def test_of_normalises_the_etag_and_keeps_the_name() -> None:
    version = ChunkVersion.of("chunks", "sensor-7/2026/11/22/chunk-0001.csv", '"0x8DC1234ABCD"')
    assert version == ChunkVersion("chunks", "sensor-7/2026/11/22/chunk-0001.csv", "0x8DC1234ABCD")
    assert version.etag == "0x8DC1234ABCD"


def test_event_grid_and_sdk_etags_give_one_version() -> None:
    from_event_grid = ChunkVersion.of("chunks", "sensor-7/a.csv", "0x8DC1234ABCD")
    from_sdk = ChunkVersion.of("chunks", "sensor-7/a.csv", '"0x8DC1234ABCD"')
    from_cache = ChunkVersion.of("chunks", "sensor-7/a.csv", 'W/"0x8DC1234ABCD"')
    assert from_event_grid == from_sdk == from_cache
    assert hash(from_event_grid) == hash(from_sdk)
    assert len({from_event_grid, from_sdk, from_cache}) == 1


def test_versions_differ_by_content_name_and_container() -> None:
    base = ChunkVersion.of("chunks", "sensor-7/a.csv", "0x1")
    assert base != ChunkVersion.of("chunks", "sensor-7/a.csv", "0x2")
    assert base != ChunkVersion.of("chunks", "sensor-7/b.csv", "0x1")
    assert base != ChunkVersion.of("other", "sensor-7/a.csv", "0x1")


def test_versions_are_ordered_and_frozen() -> None:
    a = ChunkVersion.of("chunks", "s/a.csv", "0x2")
    b = ChunkVersion.of("chunks", "s/b.csv", "0x1")
    assert sorted([b, a]) == [a, b]
    with pytest.raises(AttributeError):
        a.etag = "0x3"  # type: ignore[misc]


@pytest.mark.parametrize(
    "name",
    ["raw/$HOME/x.csv", "raw/a b.csv", "../x.csv", "/raw/x.csv", "raw//x.csv", "raw/x#1.csv", "raw/x?.csv", "", None],
)
def test_of_rejects_invalid_names(name: object) -> None:
    with pytest.raises(InvalidChunkName):
        ChunkVersion.of("chunks", name, "0x1")  # type: ignore[arg-type]


@pytest.mark.parametrize("etag", [None, "", '""', "0x 1"])
def test_of_rejects_invalid_etags(etag: object) -> None:
    with pytest.raises(InvalidETag):
        ChunkVersion.of("chunks", "sensor-7/a.csv", etag)


def test_the_name_is_checked_before_the_etag() -> None:
    with pytest.raises(InvalidChunkName):
        ChunkVersion.of("chunks", "raw/$x", None)


def test_sensor_is_the_first_segment_of_the_name() -> None:
    assert ChunkVersion.of("chunks", "sensor-7/2026/11/22/chunk.csv", "0x1").sensor == "sensor-7"
    assert ChunkVersion.of("chunks", "chunk.csv", "0x1").sensor == "chunk.csv"
