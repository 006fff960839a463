"""The fallback decision (pure): which chunks a cron run takes, in which order, and what it skips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fallback import ChunkListing, RecordIndex, index_records, plan_fallback

from chunk_contract.records import META_CHUNK_ETAG, error_blob_name, result_blob_name

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
GRACE = timedelta(minutes=10)


def chunk(name: str, minutes_ago: float, etag: str = "0x1") -> ChunkListing:
    return ChunkListing(name=name, etag=f'"{etag}"', last_modified=NOW - timedelta(minutes=minutes_ago))


def test_takes_missing_chunks_oldest_first_and_skips_done_failed_and_recent() -> None:
    chunks = [
        chunk("s1/new.csv", 5),  # inside the grace period
        chunk("s1/b.csv", 30),
        chunk("s1/a.csv", 60),
        chunk("s1/done.csv", 90),
        chunk("s1/failed.csv", 90),
        chunk("s1/overwritten.csv", 20, etag="0x2"),
        chunk("s1/retry-after-change.csv", 25, etag="0x9"),
    ]
    records = index_records(
        [
            (result_blob_name("s1/done.csv"), {META_CHUNK_ETAG: "0x1"}),
            (error_blob_name("s1/failed.csv"), {META_CHUNK_ETAG: "0x1"}),
            (result_blob_name("s1/overwritten.csv"), {META_CHUNK_ETAG: "0x1"}),  # stale
            (error_blob_name("s1/retry-after-change.csv"), {META_CHUNK_ETAG: "0x8"}),  # stale error
            ("unrelated.txt", {}),
        ]
    )
    plan = plan_fallback(chunks, records, now=NOW, grace=GRACE, limit=10)
    assert [c.name for c in plan.take] == ["s1/a.csv", "s1/b.csv", "s1/retry-after-change.csv", "s1/overwritten.csv"]
    assert [c.name for c in plan.in_grace] == ["s1/new.csv"]
    assert plan.done == 1 and plan.failed == 1
    assert plan.missing == 4 and plan.deferred == ()


def test_flood_guard_takes_the_oldest_and_defers_the_rest() -> None:
    chunks = [chunk(f"s/{i:02d}.csv", 100 - i) for i in range(7)]
    plan = plan_fallback(chunks, {}, now=NOW, grace=GRACE, limit=3)
    assert [c.name for c in plan.take] == ["s/00.csv", "s/01.csv", "s/02.csv"]
    assert [c.name for c in plan.deferred] == ["s/03.csv", "s/04.csv", "s/05.csv", "s/06.csv"]
    assert plan.missing == 7
    assert plan.summary()["deferred_by_flood_guard"] == 4


def test_same_time_is_ordered_by_name_and_grace_boundary_is_exclusive() -> None:
    chunks = [chunk("s/b.csv", 10), chunk("s/a.csv", 10), chunk("s/c.csv", 9.99)]
    plan = plan_fallback(chunks, {}, now=NOW, grace=GRACE, limit=5)
    # Modified exactly `grace` ago: ripe. A hair later: still in grace.
    assert [c.name for c in plan.take] == ["s/a.csv", "s/b.csv"]
    assert [c.name for c in plan.in_grace] == ["s/c.csv"]


def test_invalid_names_are_set_aside_once() -> None:
    bad = chunk("s/$HOME.csv", 60)
    plan = plan_fallback([bad, chunk("s/ok.csv", 60)], {}, now=NOW, grace=GRACE, limit=5)
    assert [c.name for c in plan.take] == ["s/ok.csv"]
    assert [(c.name, "'$'" in reason) for c, reason in plan.invalid] == [("s/$HOME.csv", True)]
    # Once its error record carries the current ETag it is not reported again.
    recorded = index_records([(error_blob_name(bad.name), {META_CHUNK_ETAG: "0x1"})])
    again = plan_fallback([bad], recorded, now=NOW, grace=GRACE, limit=5)
    assert again.invalid == () and again.failed == 1


def test_a_result_wins_over_an_error_record() -> None:
    records = {"s/x.csv": RecordIndex(result={META_CHUNK_ETAG: "0x1"}, error={META_CHUNK_ETAG: "0x1"})}
    plan = plan_fallback([chunk("s/x.csv", 60)], records, now=NOW, grace=GRACE, limit=5)
    assert plan.done == 1 and plan.failed == 0 and plan.take == ()


def test_flood_guard_must_be_positive() -> None:
    with pytest.raises(ValueError, match="flood guard"):
        plan_fallback([], {}, now=NOW, grace=GRACE, limit=0)


def sized(name: str, minutes_ago: float, size: int) -> ChunkListing:
    return ChunkListing(name=name, etag='"0x1"', last_modified=NOW - timedelta(minutes=minutes_ago), size=size)


def test_byte_guard_takes_the_oldest_while_the_total_fits() -> None:
    chunks = [sized("s/a.csv", 90, 600), sized("s/b.csv", 80, 400), sized("s/c.csv", 70, 1), sized("s/d.csv", 60, 5)]
    plan = plan_fallback(chunks, {}, now=NOW, grace=GRACE, limit=10, max_bytes=1000)
    # a + b fill the budget exactly; c would fit after a skip, but the order stays oldest first.
    assert [c.name for c in plan.take] == ["s/a.csv", "s/b.csv"] and plan.taken_bytes == 1000
    assert [c.name for c in plan.deferred] == ["s/c.csv", "s/d.csv"]
    assert plan.summary()["deferred_by_flood_guard"] == 2 and plan.summary()["deferred_by_byte_guard"] == 2


def test_a_chunk_larger_than_the_byte_budget_is_taken_alone() -> None:
    plan = plan_fallback(
        [sized("s/big.csv", 90, 10**12), sized("s/x.csv", 80, 1)], {}, now=NOW, grace=GRACE, limit=5, max_bytes=10
    )
    assert [c.name for c in plan.take] == ["s/big.csv"] and plan.summary()["deferred_by_byte_guard"] == 1


def test_count_limit_first_defers_nothing_by_bytes_and_no_budget_means_no_byte_limit() -> None:
    chunks = [sized(f"s/{i}.csv", 90 - i, 100) for i in range(4)]
    plan = plan_fallback(chunks, {}, now=NOW, grace=GRACE, limit=2, max_bytes=10_000)
    assert len(plan.take) == 2 and plan.summary()["deferred_by_byte_guard"] == 0
    unlimited = plan_fallback(chunks, {}, now=NOW, grace=GRACE, limit=10)
    assert len(unlimited.take) == 4 and unlimited.taken_bytes == 400
    with pytest.raises(ValueError, match="byte flood guard"):
        plan_fallback(chunks, {}, now=NOW, grace=GRACE, limit=10, max_bytes=0)
