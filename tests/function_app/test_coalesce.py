"""Coalescing, the pure part: the receive budget, sorting received messages, cutting batches (no I/O)."""

from __future__ import annotations

import base64
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chunk_contract.naming import chunks_param_bytes
from function_app.coalesce import Candidate, group_batches, receive_budget, sort_messages
from function_app.event_queue import ReceivedMessage
from function_app.queue_messages import BLOB_CREATED, ChunkEvent, blob_created_message, encode_message

CONTAINER = "sensor-data"
T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
_ids = itertools.count()


def message(content: str, *, dequeue_count: int = 1, inserted_on: datetime | None = None) -> ReceivedMessage:
    n = next(_ids)
    return ReceivedMessage(
        id=f"m{n}", content=content, dequeue_count=dequeue_count, inserted_on=inserted_on, pop_receipt=f"r{n}"
    )


def chunk_message(
    name: str,
    etag: str = "0x8DC1",
    *,
    event_time: datetime = T0,
    container: str = CONTAINER,
    dequeue_count: int = 1,
) -> ReceivedMessage:
    content = blob_created_message(container=container, name=name, etag=etag, event_time=event_time)
    return message(content, dequeue_count=dequeue_count)


def event(subject_name: str, *, container: str = CONTAINER, **changes: Any) -> str:
    """A base64 EventGrid BlobCreated event; ``changes`` replaces top-level fields, ``data`` is merged."""
    body: dict[str, Any] = {
        "id": "e1",
        "eventType": BLOB_CREATED,
        "subject": f"/blobServices/default/containers/{container}/blobs/{subject_name}",
        "eventTime": "2026-11-22T08:00:00.0000000Z",
        "data": {"api": "PutBlob", "eTag": "0x8DC1", "blobType": "BlockBlob"},
    }
    data = changes.pop("data", None)
    body.update(changes)
    if data is not None:
        body["data"] = {**body["data"], **data}
    return encode_message(body)


def candidate(name: str, etag: str | None = "0x1", *, at: float | None = 0.0) -> Candidate:
    return Candidate(CONTAINER, name, etag, [], None if at is None else T0 + timedelta(seconds=at))


# --------------------------------------------------------------------------- receive_budget


@pytest.mark.parametrize(
    ("in_flight", "k", "n", "expected"),
    [
        (0, 20, 200, 4000),
        (1, 20, 200, 3800),
        (19, 20, 200, 200),
        (20, 20, 200, 0),
        (21, 20, 200, 0),  # count_in_flight asks for K + 1: above the cap is still 0, never negative
        (0, 1, 1, 1),
        (1, 1, 1, 0),
        (2, 3, 4, 4),
    ],
)
def test_receive_budget(in_flight: int, k: int, n: int, expected: int) -> None:
    assert receive_budget(in_flight, k, n) == expected


@pytest.mark.parametrize(
    ("in_flight", "k", "n", "words"),
    [(0, 0, 10, "K=0"), (0, 10, 0, "N=0"), (0, -1, 10, "K=-1"), (-1, 10, 10, "in_flight")],
)
def test_receive_budget_refuses_nonsense(in_flight: int, k: int, n: int, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        receive_budget(in_flight, k, n)


# --------------------------------------------------------------------------- sort_messages


@pytest.mark.parametrize(
    ("content", "reason_start"),
    [
        (base64.b64encode(b"this is not json").decode(), "content: not JSON"),
        ("not base64 at all!", "content: not base64"),
        ("", "content: empty message"),
        (event("sensor-1/a.csv", eventType="Microsoft.Storage.BlobDeleted"), "eventType: must be"),
        (event("sensor-1/a.csv", container="other-container"), "subject: event for container 'other-container'"),
        (event("sensor-1/../etc/passwd"), "subject: blob name"),
        (event("sensor-1/$(reboot).csv"), "subject: blob name"),
        (event("sensor-1/a.csv", data={"eTag": ""}), "data.eTag:"),
    ],
    ids=["garbage", "not-base64", "empty", "not-blob-created", "other-container", "dotdot", "dollar", "bad-etag"],
)
def test_unusable_messages_are_poison_with_the_field_named(content: str, reason_start: str) -> None:
    m = message(content)
    out = sort_messages([m], container=CONTAINER, max_dequeue=5)
    assert out.candidates == [] and out.ignored == [] and out.over_dequeued == []
    ((poisoned, reason),) = out.poison
    assert poisoned is m
    assert reason.startswith(reason_start), reason


def test_garbage_is_poison_whatever_its_dequeue_count_and_ignored_stays_ignored() -> None:
    garbage = message("%%%", dequeue_count=99)
    incomplete = message(event("sensor-1/a.csv", data={"api": "CreateFile"}), dequeue_count=99)
    out = sort_messages([garbage, incomplete], container=CONTAINER, max_dequeue=5)
    assert [m for m, _ in out.poison] == [garbage]
    ((ignored, reason),) = out.ignored
    assert ignored is incomplete and "data.api 'CreateFile'" in reason
    assert out.over_dequeued == [] and out.candidates == []


def test_an_incomplete_upload_is_ignored_not_poisoned() -> None:
    m = message(event("sensor-1/a.csv", data={"api": "CreateFile"}))
    out = sort_messages([m], container=CONTAINER, max_dequeue=5)
    assert out.poison == [] and out.candidates == []
    assert [x for x, _ in out.ignored] == [m]


def test_over_dequeued_events_are_kept_apart_with_their_event() -> None:
    at_limit = chunk_message("sensor-1/a.csv", dequeue_count=5)
    over = chunk_message("sensor-1/b.csv", "0x2", dequeue_count=6)
    out = sort_messages([at_limit, over], container=CONTAINER, max_dequeue=5)
    assert [c.name for c in out.candidates] == ["sensor-1/a.csv"]
    ((m, ev),) = out.over_dequeued
    assert m is over
    assert isinstance(ev, ChunkEvent) and (ev.name, ev.etag) == ("sensor-1/b.csv", "0x2")
    assert out.poison == []


def test_duplicates_in_one_receive_are_one_candidate_with_every_message() -> None:
    later = chunk_message("sensor-1/a.csv", '"0x8DC1"', event_time=T0 + timedelta(seconds=30))
    other = chunk_message("sensor-2/b.csv")
    earlier = chunk_message("sensor-1/a.csv", "0x8DC1", event_time=T0)  # same version, bare ETag spelling
    new_version = chunk_message("sensor-1/a.csv", "0x8DC2", event_time=T0 - timedelta(seconds=5))
    out = sort_messages([later, other, earlier, new_version], container=CONTAINER, max_dequeue=5)
    assert [(c.name, c.etag) for c in out.candidates] == [
        ("sensor-1/a.csv", "0x8DC1"),
        ("sensor-2/b.csv", "0x8DC1"),
        ("sensor-1/a.csv", "0x8DC2"),
    ]
    merged = out.candidates[0]
    assert merged.messages == [later, earlier]
    assert merged.event_time == T0  # the earliest of its events
    assert merged.container == CONTAINER
    assert merged.version().etag == "0x8DC1"


def test_an_event_without_etag_is_a_candidate_of_its_own() -> None:
    body = event("sensor-1/a.csv")
    no_etag = encode_message(
        {
            "eventType": BLOB_CREATED,
            "subject": f"/blobServices/default/containers/{CONTAINER}/blobs/sensor-1/a.csv",
            "data": {"api": "PutBlob"},
        }
    )
    out = sort_messages([message(no_etag), message(no_etag), message(body)], container=CONTAINER, max_dequeue=5)
    assert [(c.name, c.etag, len(c.messages)) for c in out.candidates] == [
        ("sensor-1/a.csv", None, 2),
        ("sensor-1/a.csv", "0x8DC1", 1),
    ]
    with pytest.raises(AssertionError):
        out.candidates[0].version()  # the drainer must resolve the ETag first


def test_sort_messages_honours_max_bytes() -> None:
    m = chunk_message("sensor-1/a.csv")
    out = sort_messages([m], container=CONTAINER, max_dequeue=5, max_bytes=len(m.content) - 1)
    ((_, reason),) = out.poison
    assert reason.startswith("content:") and "limit" in reason


def test_first_seen_is_the_event_time_else_the_earliest_enqueue_time() -> None:
    # The event time wins when known: the queue's inserted_on is truncated to whole seconds.
    c = Candidate(CONTAINER, "sensor-1/a.csv", "0x1", [], T0)
    assert c.first_seen == T0
    c.messages.append(message("x", inserted_on=T0 - timedelta(seconds=3)))
    assert c.first_seen == T0
    c.event_time = None
    c.messages.append(message("y", inserted_on=T0 - timedelta(seconds=5)))
    assert c.first_seen == T0 - timedelta(seconds=5)
    assert Candidate(CONTAINER, "sensor-1/a.csv", "0x1").first_seen == datetime(1970, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- group_batches


def names_of(batch: list[Candidate]) -> list[str]:
    return [c.name for c in batch]


def test_group_batches_respects_the_count_bound() -> None:
    cands = [candidate(f"sensor-1/c{i:02d}.csv", at=i) for i in range(10)]
    batches = group_batches(cands, max_chunks=4, max_bytes=65536)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert [c for b in batches for c in b] == cands


def test_group_batches_bytes_bound_is_exact() -> None:
    names = [f"s/{i:02d}" + "x" * 90 for i in range(7)]  # 94 characters each: 100 bytes of the parameter
    assert all(len(n) == 94 for n in names)
    cands = [candidate(n, at=i) for i, n in enumerate(names)]
    exact = 2 + 3 * 100
    batches = group_batches(cands, max_chunks=100, max_bytes=exact)
    assert [len(b) for b in batches] == [3, 3, 1]
    for i, batch in enumerate(batches):
        assert chunks_param_bytes(names_of(batch)) <= exact
        if i + 1 < len(batches):
            assert chunks_param_bytes([*names_of(batch), batches[i + 1][0].name]) > exact
    assert chunks_param_bytes(names_of(batches[0])) == exact  # the bound itself is allowed
    # One byte less and only two fit.
    assert [len(b) for b in group_batches(cands, max_chunks=100, max_bytes=exact - 1)] == [2, 2, 2, 1]


def test_group_batches_is_oldest_first_whatever_the_input_order() -> None:
    a = candidate("sensor-1/a.csv", at=30)
    b = candidate("sensor-1/b.csv", at=10)
    c = candidate("sensor-1/c.csv", at=20)
    d = candidate("sensor-1/d.csv", at=10)  # same time as b: the name breaks the tie
    no_time = candidate("sensor-1/z.csv", at=None)  # no event time nor enqueue time: the epoch, first
    batches = group_batches([a, b, c, d, no_time], max_chunks=2, max_bytes=65536)
    assert [names_of(x) for x in batches] == [
        ["sensor-1/z.csv", "sensor-1/b.csv"],
        ["sensor-1/d.csv", "sensor-1/c.csv"],
        ["sensor-1/a.csv"],
    ]


def test_two_versions_of_one_blob_never_share_a_batch() -> None:
    v1 = candidate("sensor-1/a.csv", "0x1", at=0)
    v2 = candidate("sensor-1/a.csv", "0x2", at=1)
    other = candidate("sensor-1/b.csv", at=2)
    v3 = candidate("sensor-1/a.csv", "0x3", at=3)
    batches = group_batches([v3, other, v2, v1], max_chunks=10, max_bytes=65536)
    assert [[(c.name, c.etag) for c in b] for b in batches] == [
        [("sensor-1/a.csv", "0x1")],
        [("sensor-1/a.csv", "0x2"), ("sensor-1/b.csv", "0x1")],
        [("sensor-1/a.csv", "0x3")],
    ]


def test_group_batches_edge_cases() -> None:
    assert group_batches([], max_chunks=1, max_bytes=1024) == []
    one = candidate("sensor-1/a.csv")
    assert group_batches([one], max_chunks=1, max_bytes=1024) == [[one]]
    with pytest.raises(ValueError, match="max_chunks"):
        group_batches([one], max_chunks=0, max_bytes=1024)


_SEGMENT = st.from_regex(r"[a-z0-9][a-z0-9_=-]{0,40}", fullmatch=True)
_NAMES = st.lists(_SEGMENT, min_size=1, max_size=4).map("/".join)
_TIMES = st.none() | st.integers(min_value=0, max_value=20).map(lambda s: T0 + timedelta(seconds=s))


@st.composite
def _candidates(draw: st.DrawFn) -> list[Candidate]:
    pool = draw(st.lists(_NAMES, min_size=1, max_size=8, unique=True))
    keys = draw(
        st.lists(st.tuples(st.sampled_from(pool), st.sampled_from(["0x1", "0x2", "0x3"])), unique=True, max_size=30)
    )
    return [Candidate(CONTAINER, name, etag, [], draw(_TIMES)) for name, etag in keys]


@settings(max_examples=150, deadline=None)
@given(cands=_candidates(), max_chunks=st.integers(min_value=1, max_value=8), data=st.data())
def test_group_batches_property(cands: list[Candidate], max_chunks: int, data: st.DataObject) -> None:
    # Precondition of group_batches: any one name fits alone (test_drain checks that settings guarantee it).
    widest = max((len(c.name) + 6 for c in cands), default=0)
    max_bytes = data.draw(st.integers(min_value=2 + widest, max_value=2 + widest + 400), label="max_bytes")
    batches = group_batches(cands, max_chunks=max_chunks, max_bytes=max_bytes)

    placed = [id(c) for b in batches for c in b]
    assert sorted(placed) == sorted(id(c) for c in cands)  # every candidate in exactly one batch
    assert all(batches), "no empty batch"
    for i, batch in enumerate(batches):
        names = names_of(batch)
        assert len(batch) <= max_chunks
        assert chunks_param_bytes(names) <= max_bytes
        assert len(set(names)) == len(names)  # two versions of one blob never together
        if i + 1 < len(batches):  # greedy: the next candidate did not fit here
            nxt = batches[i + 1][0]
            assert len(batch) == max_chunks or chunks_param_bytes([*names, nxt.name]) > max_bytes or nxt.name in names
    order = [c.first_seen for b in batches for c in b]
    assert order == sorted(order)  # oldest first
