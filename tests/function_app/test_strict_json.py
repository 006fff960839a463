"""function_app.strict_json: one reading of a document, or an error naming the rule it broke."""

from __future__ import annotations

import json
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from function_app import queue_messages
from function_app.strict_json import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_DEPTH,
    RULES,
    StrictJSONError,
    loads_strict,
    max_depth,
)


def refused(data: bytes, **limits: int) -> StrictJSONError:
    with pytest.raises(StrictJSONError) as info:
        loads_strict(data, **limits)
    assert isinstance(info.value, ValueError)  # callers that catch ValueError keep working
    assert info.value.rule in RULES and str(info.value) == info.value.reason
    return info.value


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_a_plain_document_is_read() -> None:
    assert loads_strict(b' {"chunks": ["s/a.csv"], "force": false, "n": 1.5, "u": "\\u00e9"}\n') == {
        "chunks": ["s/a.csv"],
        "force": False,
        "n": 1.5,
        "u": "é",
    }
    assert loads_strict(bytearray(b"[]")) == [] and loads_strict(memoryview(b"null")) is None


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "a": 1}',  # even with the same value: a reader must not have to guess
        '{"a": 1, "b": {"c": 1, "c": 2}}',
        '[{"x": 0}, {"y": 1, "y": 2}]',
        '{"a": 1, "\\u0061": 2}',  # the same key, spelt with an escape
    ],
)
def test_duplicate_keys_are_refused_at_any_depth(text: str) -> None:
    error = refused(text.encode())
    assert error.rule == "duplicate-key" and "duplicate key" in error.reason and "ambiguous" in error.reason


@pytest.mark.parametrize("opener", [b"[", b'{"a":', b'{"a":['])
def test_100000_levels_are_refused_without_recursion_error(opener: bytes) -> None:
    error = refused(opener * 100_000)
    assert error.rule == "depth" and f"deeper than {DEFAULT_MAX_DEPTH}" in error.reason


def test_the_depth_limit_is_exact() -> None:
    assert loads_strict(nested(DEFAULT_MAX_DEPTH)) is not None
    assert refused(nested(DEFAULT_MAX_DEPTH + 1)).rule == "depth"
    assert loads_strict(nested(5), max_depth=5) == [[[[[]]]]]
    assert refused(nested(6), max_depth=5).rule == "depth"


def test_brackets_inside_strings_are_not_nesting() -> None:
    assert loads_strict(json.dumps({"s": '[{"\\' * 1000}).encode()) == {"s": '[{"\\' * 1000}


def test_recursion_error_from_the_parser_is_still_a_depth_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import function_app.strict_json as strict_json

    monkeypatch.setattr(strict_json, "_max_depth", lambda text, limit: 0)  # as if the scan missed it
    depth = sys.getrecursionlimit() * 2
    assert refused(nested(depth), max_bytes=10**7).rule == "depth"


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused(constant: str) -> None:
    error = refused(f'{{"x": [1, {constant}]}}'.encode())
    assert error.rule == "constant" and f"{constant} is not JSON" in error.reason


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1.0e309"])
def test_a_float_overflowing_to_infinity_is_refused(number: str) -> None:
    assert refused(f"[{number}]".encode()).rule == "number"


def test_big_integers_beyond_the_digit_limit_are_a_syntax_error() -> None:
    assert refused(b"[" + b"1" * 5000 + b"]").rule == "syntax"


def test_size_is_checked_before_anything_else() -> None:
    limit = DEFAULT_MAX_BYTES
    body = b'{"a": 1}'
    assert loads_strict(body + b" " * (limit - len(body))) == {"a": 1}
    error = refused(body + b" " * (limit - len(body) + 1))
    assert error.rule == "size" and str(limit) in error.reason
    assert refused(b"[" * 100, max_bytes=10).rule == "size"  # not "depth": the document was not read


@pytest.mark.parametrize(
    "data",
    [b'["\xff"]', b'["\xc3"]', b'["\xed\xa0\x80"]', "[1]".encode("utf-16"), "[1]".encode("utf-32")],
    ids=["invalid-byte", "truncated", "encoded-surrogate", "utf-16", "utf-32"],
)
def test_anything_but_utf8_is_refused(data: bytes) -> None:
    assert refused(data).rule == "utf-8"  # json.loads(bytes) would sniff and accept UTF-16/32


def test_a_utf8_bom_is_a_syntax_error() -> None:
    assert refused(b"\xef\xbb\xbf[1]").rule == "syntax"


@pytest.mark.parametrize(
    "text",
    ['["\\ud800"]', '["\\udfff x"]', '{"\\ud83d": 1}', '{"a": ["ok", {"b": "\\ud83dx"}]}'],
)
def test_unpaired_surrogate_escapes_are_refused(text: str) -> None:
    assert refused(text.encode()).rule == "surrogate"


def test_a_paired_surrogate_escape_is_a_character() -> None:
    assert loads_strict(b'["\\ud83d\\ude00"]') == ["\U0001f600"]


@pytest.mark.parametrize("data", [b"", b"   ", b"{", b"[1,]", b"{'a': 1}", b'{"a" 1}', b"[1] [2]", b"\x00"])
def test_not_json_is_a_syntax_error(data: bytes) -> None:
    error = refused(data)
    assert error.rule == "syntax" and "not valid JSON" in error.reason


def test_a_long_duplicate_key_is_shown_capped_and_escaped() -> None:
    key = "k\n" + "x" * 10_000
    error = refused(json.dumps({key: 1, "b": 2}).replace('"b"', json.dumps(key)).encode())
    assert len(error.reason) < 300 and "\n" not in error.reason and "xxx" in error.reason


def test_not_bytes_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        loads_strict("[]")  # type: ignore[arg-type]


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
        max_leaves=20,
    )
)
def test_every_document_json_dumps_writes_is_read_back(value: object) -> None:
    data = json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return  # hypothesis drew a lone surrogate: refused, tested above
    if max_depth(data.decode()) > DEFAULT_MAX_DEPTH:
        return
    assert loads_strict(data) == value


def test_queue_messages_shares_the_depth_scan_and_hooks() -> None:
    # The queue reader's own rules (and messages) are unchanged; the pieces are these.
    assert queue_messages._max_depth(nested(40).decode()) == max_depth(nested(40).decode(), queue_messages.MAX_DEPTH)
