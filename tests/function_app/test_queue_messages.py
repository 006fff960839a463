"""Chunk-event queue messages: base64 EventGrid / CloudEvents JSON -> ChunkEvent, Ignored or Unusable."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chunk_contract.names import InvalidChunkName, validate_chunk_name
from function_app import queue_messages
from function_app.queue_messages import (
    BLOB_CREATED,
    MAX_DEPTH,
    MAX_MESSAGE_BYTES,
    ChunkEvent,
    Ignored,
    Unusable,
    decode_message,
    encode_message,
)
from localdev.events import blob_created_event

SAMPLES = Path("/work/shared/reference/eventgrid")
CONTAINER = "sensor-data"
NAME = "sensor-001/2026/11/22/080000.csv"
SUBJECT = f"/blobServices/default/containers/{CONTAINER}/blobs/{NAME}"
WHEN = datetime(2026, 11, 22, 8, 1, 2, 123456, tzinfo=UTC)

# No .hypothesis/ directory in the tree; no deadline (CI machines are slow and shared).
PROPERTY = settings(database=None, deadline=None, max_examples=200)


def make_event(**overrides: Any) -> dict[str, Any]:
    """A realistic EventGrid-schema BlobCreated event (localdev's builder), with overrides."""
    fields: dict[str, Any] = {
        "account_url": "http://127.0.0.1:10000/devstoreaccount1",
        "container": CONTAINER,
        "name": NAME,
        "etag": "0x8DD0B5A1C2D3E4F",
        "content_length": 211234,
        "sequencer": 7,
        "event_time": WHEN,
        "event_id": "evt-1",
    }
    fields.update(overrides)
    return blob_created_event(**fields)


def sample(schema: str) -> dict[str, Any]:
    loaded = json.loads((SAMPLES / f"blobcreated.{schema}.json").read_text())
    # A webhook delivery is an array; a queue message holds one event: take the element.
    if isinstance(loaded, list):
        assert len(loaded) == 1
        loaded = loaded[0]
    assert isinstance(loaded, dict)
    return loaded


def b64(text: str | bytes) -> str:
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return base64.b64encode(raw).decode("ascii")


def decode(event: dict[str, Any], **kwargs: Any) -> ChunkEvent | Unusable | Ignored:
    return decode_message(encode_message(event), container=CONTAINER, **kwargs)


def unusable(outcome: object) -> str:
    assert isinstance(outcome, Unusable), outcome
    return outcome.reason


# --------------------------------------------------------------------------- the two samples and the round trip


def test_eventgrid_sample_decodes() -> None:
    assert decode(sample("eventgrid")) == ChunkEvent(
        container=CONTAINER,
        name=NAME,
        etag="0x8DD0B5A1C2D3E4F",
        event_time=WHEN,  # 7 fractional digits, kept to the microsecond
        event_id="7d3c6a2e-401e-0051-1a6f-3c8f1e06a1b2",
        api="PutBlob",
        schema="eventgrid",
    )


def test_cloudevents_sample_decodes_to_the_same_event() -> None:
    cloud = decode(sample("cloudevent"))
    grid = decode(sample("eventgrid"))
    assert isinstance(cloud, ChunkEvent) and isinstance(grid, ChunkEvent)
    assert cloud.schema == "cloudevents"
    assert cloud == ChunkEvent(**{**grid.__dict__, "schema": "cloudevents"})


@pytest.mark.parametrize("api", ["PutBlob", "PutBlockList", "FlushWithClose", "CopyBlob"])
def test_localdev_event_round_trips(api: str) -> None:
    assert decode(make_event(api=api)) == ChunkEvent(
        CONTAINER, NAME, "0x8DD0B5A1C2D3E4F", WHEN, "evt-1", api, "eventgrid"
    )


def test_encode_message_is_compact_utf8_json_in_standard_base64() -> None:
    event = {"subject": "é/+?", "data": {"n": 1}}
    message = encode_message(event)
    raw = base64.b64decode(message, validate=True)
    assert raw == '{"subject":"é/+?","data":{"n":1}}'.encode()
    assert message == base64.standard_b64encode(raw).decode("ascii")


def test_encode_message_refuses_nan() -> None:
    with pytest.raises(ValueError):
        encode_message({"x": float("nan")})


# --------------------------------------------------------------------------- content: size, base64, UTF-8, JSON


@pytest.mark.parametrize(
    "content",
    [
        json.dumps(make_event()),  # plain JSON text, as Storage Explorer / `az storage message put` enqueue it
        "\n  " + json.dumps(make_event()) + "\r\n",
        json.dumps(make_event()).encode(),  # bytes already decoded by BinaryBase64DecodePolicy
        encode_message(make_event()).encode("ascii"),  # base64 as bytes
        encode_message(make_event()) + "\n",  # surrounding whitespace is stripped
    ],
    ids=["plain-text", "plain-text-padded", "plain-bytes", "base64-bytes", "base64-newline"],
)
def test_accepted_content_forms(content: str | bytes) -> None:
    assert decode_message(content, container=CONTAINER) == decode(make_event())


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("", "empty"),
        (" \n", "empty"),
        ("abc", "not base64"),  # bad padding
        ("eyJh!!==", "not base64"),  # character outside the alphabet
        ("eyJh Ig==", "not base64"),  # whitespace inside is not skipped
        ("eyJh-_==", "not base64"),  # URL-safe alphabet
        ("ü", "not base64"),
        (b"\xff\xfe", "not base64"),
        (b64(b"\xff{}"), "not UTF-8"),
        (b"{\xff}", "not UTF-8"),
        (b64("not json"), "not JSON"),
        ("{not json", "not JSON"),
        (b64('{"a": 1'), "not JSON"),
    ],
)
def test_undecodable_content_is_unusable_and_names_the_step(content: str | bytes, fragment: str) -> None:
    reason = unusable(decode_message(content, container=CONTAINER))
    assert reason.startswith("content: ")
    assert fragment in reason


def test_content_that_is_neither_str_nor_bytes_is_unusable() -> None:
    assert "must be str or bytes" in unusable(decode_message(42, container=CONTAINER))  # type: ignore[arg-type]


def test_size_limit_is_inclusive_and_defaults_to_64_kib() -> None:
    message = encode_message(make_event())
    assert isinstance(decode_message(message, container=CONTAINER, max_bytes=len(message)), ChunkEvent)
    assert "limit" in unusable(decode_message(message, container=CONTAINER, max_bytes=len(message) - 1))
    assert MAX_MESSAGE_BYTES == 65536
    padded = make_event()
    padded["data"]["padding"] = "x" * MAX_MESSAGE_BYTES
    assert "65536-byte limit" in unusable(decode(padded))


def test_size_of_text_is_counted_in_utf8_bytes() -> None:
    event = make_event()
    event["data"]["note"] = "é" * 100  # 100 characters, 200 bytes
    text = json.dumps(event, ensure_ascii=False)
    limit = len(text) + 50  # enough characters, not enough bytes
    assert "limit" in unusable(decode_message(text, container=CONTAINER, max_bytes=limit))


def _nested(depth: int) -> dict[str, Any]:
    """``make_event()`` whose total nesting (the event itself is level 1) is ``depth``."""
    event = make_event()
    inner: Any = []
    for _ in range(depth - 3):  # event -> data -> extra -> ...
        inner = [inner]
    event["data"]["extra"] = inner
    return event


def test_nesting_up_to_the_limit_is_accepted_and_one_more_is_unusable() -> None:
    assert isinstance(decode(_nested(MAX_DEPTH)), ChunkEvent)
    assert f"deeper than {MAX_DEPTH}" in unusable(decode(_nested(MAX_DEPTH + 1)))


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    event = make_event()
    event["data"]["note"] = '[{"\\' * 100  # quotes and backslashes too: the scan must skip escapes
    assert isinstance(decode(event), ChunkEvent)


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_100000_levels_of_nesting_are_unusable_not_a_recursion_error(opener: str) -> None:
    text = opener * 100_000
    reason = unusable(decode_message(text, container=CONTAINER, max_bytes=10**7))
    assert "nested deeper" in reason
    # At the default limit the base64 form is refused for its size first: still Unusable.
    assert "limit" in unusable(decode_message(b64(text), container=CONTAINER))


def test_recursion_error_from_the_parser_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queue_messages, "_max_depth", lambda text: 0)  # as if the depth scan missed it
    text = "[" * 100_000 + "]" * 100_000
    assert "nested deeper" in unusable(decode_message(text, container=CONTAINER, max_bytes=10**7))


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('{"eventType": "x", "eventType": "y"}', "eventType"),
        (json.dumps(make_event())[:-1] + ',"data":{}}', "data"),
        (json.dumps(make_event()).replace('"eTag"', '"eTag":"0x1","eTag"'), "eTag"),  # nested in data
    ],
)
def test_duplicate_keys_are_unusable(text: str, key: str) -> None:
    assert f"duplicate key {key!r}" in unusable(decode_message(b64(text), container=CONTAINER))


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_unusable(constant: str) -> None:
    text = json.dumps(make_event()).replace('"contentLength": 211234', f'"contentLength": {constant}')
    assert constant in text
    assert f"{constant} is not JSON" in unusable(decode_message(b64(text), container=CONTAINER))


def test_integer_beyond_pythons_digit_limit_is_unusable() -> None:
    text = json.dumps(make_event()).replace("211234", "1" * 5000)
    assert "not JSON" in unusable(decode_message(b64(text), container=CONTAINER))


@pytest.mark.parametrize(
    "content",
    [b64(json.dumps([make_event()])), json.dumps([make_event()]), b64("42")],
    ids=["base64-array", "plain-array", "number"],
)
def test_top_level_must_be_one_event_object(content: str) -> None:
    assert "must be one event object; Event Grid puts one event per queue message" in unusable(
        decode_message(content, container=CONTAINER)
    )


# --------------------------------------------------------------------------- schema and event type


def test_wrong_event_type_is_unusable_with_the_exact_reason() -> None:
    event = make_event()
    event["eventType"] = "Microsoft.Storage.BlobDeleted"
    assert unusable(decode(event)) == (
        "eventType: must be 'Microsoft.Storage.BlobCreated', got 'Microsoft.Storage.BlobDeleted'"
    )


def test_cloudevents_type_field_is_checked() -> None:
    event = sample("cloudevent")
    event["type"] = "Microsoft.Storage.BlobDeleted"
    assert unusable(decode(event)).startswith("type: must be 'Microsoft.Storage.BlobCreated'")


@pytest.mark.parametrize("version", ["0.3", 1.0, None])
def test_cloudevents_specversion_must_be_1_0(version: object) -> None:
    event = sample("cloudevent")
    event["specversion"] = version
    assert unusable(decode(event)).startswith("specversion: must be '1.0'")


@pytest.mark.parametrize(
    ("schema", "field"),
    [
        ("eventgrid", "eventType"),
        ("eventgrid", "subject"),
        ("eventgrid", "data"),
        ("cloudevent", "type"),
        ("cloudevent", "subject"),
        ("cloudevent", "data"),
    ],
)
def test_missing_required_field_is_unusable(schema: str, field: str) -> None:
    event = sample(schema)
    del event[field]
    assert unusable(decode(event)).startswith(f"{field}: missing")


# --------------------------------------------------------------------------- subject: container and name


@pytest.mark.parametrize(
    "subject",
    [
        42,
        "/blobs/x.csv",
        f"/blobServices/default/containers/{CONTAINER}",
        f"/blobServices/default/containers/{CONTAINER}/x.csv",
    ],
)
def test_subject_that_is_not_a_blob_subject_is_unusable(subject: object) -> None:
    event = make_event()
    event["subject"] = subject
    assert unusable(decode(event)).startswith("subject: must look like")


def test_event_for_another_container_is_unusable_not_ignored() -> None:
    assert unusable(decode(make_event(container="other-data"))) == (
        "subject: event for container 'other-data'; this app processes 'sensor-data'"
    )


@pytest.mark.parametrize(
    "name",
    [
        "a/../b",
        "$(x)",
        "sensor-001/a b.csv",
        "/leading.csv",
        "a//b.csv",
        "",
        "a%20b.csv",  # the subject is not URL-unquoted: a percent-encoded name fails the allow-list
        "a\x1b[31mb.csv",
    ],
)
def test_name_outside_the_allow_list_is_unusable_with_the_allow_list_reason(name: str) -> None:
    with pytest.raises(InvalidChunkName) as info:
        validate_chunk_name(name)
    reason = unusable(decode(make_event(name=name)))
    assert reason.startswith("subject: blob name ")
    assert reason.endswith(info.value.reason)
    assert reason.isprintable()


def test_name_is_everything_after_the_first_blobs_segment() -> None:
    decoded = decode(make_event(name="site/blobs/x.csv"))
    assert isinstance(decoded, ChunkEvent)
    assert decoded.name == "site/blobs/x.csv"


# --------------------------------------------------------------------------- data: api and eTag


@pytest.mark.parametrize("data", [None, [], "PutBlob", 3])
def test_data_must_be_an_object(data: object) -> None:
    event = make_event()
    event["data"] = data
    assert unusable(decode(event)).startswith("data: must be an object")


def test_data_api_must_be_a_string() -> None:
    event = make_event()
    event["data"]["api"] = ["PutBlob"]
    assert unusable(decode(event)).startswith("data.api: must be a string")


def test_incomplete_upload_api_is_ignored() -> None:
    outcome = decode(make_event(api="CreateFile"))
    assert isinstance(outcome, Ignored)
    assert outcome.reason.startswith("data.api 'CreateFile' is not a completed upload")


def test_ignored_only_when_everything_else_is_valid() -> None:
    event = make_event(api="CreateFile")
    event["data"]["eTag"] = ""
    assert unusable(decode(event)).startswith("data.eTag")


def test_missing_api_is_processed() -> None:
    event = make_event()
    del event["data"]["api"]
    decoded = decode(event)
    assert isinstance(decoded, ChunkEvent) and decoded.api is None


def test_missing_etag_gives_none() -> None:
    event = make_event()
    del event["data"]["eTag"]
    decoded = decode(event)
    assert isinstance(decoded, ChunkEvent) and decoded.etag is None


@pytest.mark.parametrize("etag", ['"0x8DC1"', 'W/"0x8DC1"', " 0x8DC1 "])
def test_etag_is_normalised(etag: str) -> None:
    decoded = decode(make_event(etag=etag))
    assert isinstance(decoded, ChunkEvent) and decoded.etag == "0x8DC1"


@pytest.mark.parametrize("etag", ["", '""', "0x8D C1", 42, None, "x" * 300, " " * 5000 + '""'])
def test_invalid_etag_is_unusable(etag: object) -> None:
    reason = unusable(decode(make_event(etag=etag)))
    assert reason.startswith("data.eTag: ")
    assert len(reason) < 300


# --------------------------------------------------------------------------- time and id


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2017-06-26T18:41:00.9584103Z", datetime(2017, 6, 26, 18, 41, 0, 958410, tzinfo=UTC)),
        ("2017-06-26T18:41:00Z", datetime(2017, 6, 26, 18, 41, tzinfo=UTC)),
        ("2017-06-26T20:41:00.5+02:00", datetime(2017, 6, 26, 20, 41, 0, 500000, tzinfo=timezone(timedelta(hours=2)))),
    ],
)
def test_event_time_is_parsed_timezone_aware(value: str, expected: datetime) -> None:
    event = make_event()
    event["eventTime"] = value
    decoded = decode(event)
    assert isinstance(decoded, ChunkEvent)
    assert decoded.event_time == expected
    assert decoded.event_time is not None and decoded.event_time.utcoffset() == expected.utcoffset()


def test_absent_time_gives_none() -> None:
    event = make_event()
    del event["eventTime"]
    decoded = decode(event)
    assert isinstance(decoded, ChunkEvent) and decoded.event_time is None


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "2017-06-26",  # date only
        "2017-06-26T18:41:00",  # naive: no zone
        "2017-13-26T18:41:00Z",  # month 13
        "2017-06-26T18:41:00+24:00",
        "２０１７-06-26T18:41:00Z",  # non-ASCII digits
        1498502460,
        None,
    ],
)
def test_unparsable_time_is_unusable(value: object) -> None:
    event = make_event()
    event["eventTime"] = value
    assert unusable(decode(event)).startswith("eventTime: ")


def test_cloudevents_time_field_is_named_time() -> None:
    event = sample("cloudevent")
    event["time"] = "soon"
    assert unusable(decode(event)).startswith("time: ")


def test_event_id_must_be_a_string_and_may_be_absent() -> None:
    event = make_event()
    event["id"] = 7
    assert unusable(decode(event)).startswith("id: must be a string")
    del event["id"]
    decoded = decode(event)
    assert isinstance(decoded, ChunkEvent) and decoded.event_id is None


# --------------------------------------------------------------------------- what reasons may echo


def test_reasons_truncate_long_input() -> None:
    event = make_event()
    event["eventType"] = "A" * 10_000
    reason = unusable(decode(event))
    assert "A" * 120 in reason and "A" * 121 not in reason
    assert len(reason) < 250


def test_reasons_escape_control_characters() -> None:
    event = make_event()
    event["eventType"] = "Blob\x00Created\x1b[2J\n"
    reason = unusable(decode(event))
    assert reason.isprintable()
    assert "\\x00" in reason and "\\x1b" in reason


def test_last_guard_escapes_and_bounds_any_reason() -> None:
    # Every reason passes through _clean; reached only if a rule above ever echoed raw input.
    cleaned = queue_messages._clean("x\n\x00" + "y" * 1000)
    assert cleaned.isprintable()
    assert cleaned.startswith("x\\n\\x00")
    assert len(cleaned) <= 403


# --------------------------------------------------------------------------- properties

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
# Objects shaped like events, with every field sometimes right and sometimes anything at all.
event_like = st.fixed_dictionaries(
    {
        "subject": st.just(SUBJECT)
        | st.text(max_size=40).map(f"/blobServices/default/containers/{CONTAINER}/blobs/".__add__)
        | json_values,
        "data": st.dictionaries(
            st.sampled_from(["api", "eTag", "url"]), json_values | st.sampled_from(["PutBlob", "0x1"])
        )
        | json_values,
    },
    optional={
        "eventType": st.just(BLOB_CREATED) | json_values,
        "type": st.just(BLOB_CREATED) | json_values,
        "specversion": st.just("1.0") | json_values,
        "eventTime": st.just("2017-06-26T18:41:00Z") | json_values,
        "time": st.text(max_size=30) | json_values,
        "id": json_values,
    },
)


def check_outcome(outcome: object) -> None:
    assert isinstance(outcome, ChunkEvent | Unusable | Ignored)
    if isinstance(outcome, Unusable | Ignored):
        assert outcome.reason.isprintable()
        assert len(outcome.reason) <= 403


@PROPERTY
@given(st.text())
def test_any_text_never_raises(content: str) -> None:
    check_outcome(decode_message(content, container=CONTAINER))


@PROPERTY
@given(st.binary())
def test_any_bytes_never_raise(content: bytes) -> None:
    check_outcome(decode_message(content, container=CONTAINER))
    check_outcome(decode_message(b64(content), container=CONTAINER))


@PROPERTY
@given(st.dictionaries(st.text(max_size=12), json_values, max_size=8) | event_like)
def test_any_json_object_never_raises(event: dict[str, Any]) -> None:
    check_outcome(decode(event))
    check_outcome(decode_message(json.dumps(event), container=CONTAINER))


segment = st.from_regex(r"[A-Za-z0-9_=-][A-Za-z0-9._=-]{0,11}", fullmatch=True)
chunk_names = st.lists(segment, min_size=1, max_size=5).map("/".join).filter(lambda n: ".." not in n)


@PROPERTY
@given(
    name=chunk_names,
    etag=st.from_regex(r"0x[0-9A-F]{15}", fullmatch=True),
    when=st.datetimes(timezones=st.just(UTC)),
    api=st.sampled_from(["PutBlob", "PutBlockList", "FlushWithClose", "CopyBlob"]),
)
def test_round_trip_for_valid_names(name: str, etag: str, when: datetime, api: str) -> None:
    assert validate_chunk_name(name) == name
    decoded = decode(make_event(name=name, etag=f'"{etag}"', event_time=when, api=api))
    assert decoded == ChunkEvent(CONTAINER, name, etag, when, "evt-1", api, "eventgrid")
