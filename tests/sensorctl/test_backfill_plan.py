"""Backfill decisions (pure): prefix listing filtered by time, records, in-flight workflows, batches."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from chunk_contract.records import META_CHUNK_ETAG
from function_app.submission import SubmitUnavailable
from sensorctl.backfill import Candidate, batched, in_flight, index_records, plan_backfill, run_backfill

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def _c(name: str, minutes: int, etag: str = '"0x1"') -> Candidate:
    return Candidate(name, etag, T0 + timedelta(minutes=minutes))


LISTING = [
    _c("s1/d.csv", 30),
    _c("s1/a.csv", 0),
    _c("s1/b.csv", 10),
    _c("s1/c.csv", 20),
    _c("s1/bad$name.csv", 5),
    _c("s1/e.csv", 40),
]


def test_time_range_is_half_open_and_invalid_names_are_reported_not_submitted() -> None:
    plan = plan_backfill(
        LISTING, {}, since=T0 + timedelta(minutes=5), until=T0 + timedelta(minutes=30), force=False, batch_size=10
    )
    assert [c.name for c in plan.batches[0]] == ["s1/b.csv", "s1/c.csv"]  # oldest first
    assert plan.out_of_range == 3  # a (before), d (== until), e (after)
    assert plan.invalid == (("s1/bad$name.csv", "character '$' is not allowed"),)


def test_up_to_date_records_and_in_flight_workflows_are_skipped_unless_forced() -> None:
    records = {
        "s1/a.csv": ({META_CHUNK_ETAG: "0x1"}, None),  # processed, current
        "s1/b.csv": (None, {META_CHUNK_ETAG: "0x1"}),  # failed, current
        "s1/c.csv": ({META_CHUNK_ETAG: "0x0"}, None),  # stale: chunk changed since
    }
    running = {"s1/d.csv": {"status": {"phase": "Running"}}, "s1/e.csv": {"status": {"phase": "Failed"}}}
    plan = plan_backfill(
        LISTING, records, since=None, until=None, force=False, batch_size=2, workflow_of=lambda c: running.get(c.name)
    )
    assert [[c.name for c in b] for b in plan.batches] == [["s1/c.csv", "s1/e.csv"]]
    assert plan.up_to_date == 2 and plan.in_flight == ("s1/d.csv",)
    forced = plan_backfill(LISTING, records, since=None, until=None, force=True, batch_size=2)
    assert [[c.name for c in b] for b in forced.batches] == [
        ["s1/a.csv", "s1/b.csv"],
        ["s1/c.csv", "s1/d.csv"],
        ["s1/e.csv"],
    ]


def test_since_after_until_is_refused_naming_both() -> None:
    with pytest.raises(ValueError, match=r"--since .* must be before --until"):
        plan_backfill([], {}, since=T0, until=T0, force=False, batch_size=1)


def test_in_flight_phases() -> None:
    assert not in_flight(None)
    assert in_flight({"status": {}}) and in_flight({"status": {"phase": "Pending"}})
    assert not in_flight({"status": {"phase": "Succeeded"}}) and not in_flight({"status": {"phase": "Error"}})


def test_batched_and_its_rule() -> None:
    assert [len(b) for b in batched(LISTING, 4)] == [4, 2]
    with pytest.raises(ValueError, match="batch size must be at least 1"):
        batched(LISTING, 0)


def test_index_records_groups_results_and_errors() -> None:
    got = index_records([("s/a.csv.features.json", {"k": "1"}), ("s/a.csv.error.json", None), ("other.txt", {})])
    assert got == {"s/a.csv": ({"k": "1"}, {})}


def test_run_backfill_counts_submissions_duplicates_and_failed_batches() -> None:
    plan = plan_backfill(LISTING[:4], {}, since=None, until=None, force=False, batch_size=1)
    outcomes = iter(["new", "dup", "fail", "new"])
    seen: list[list[str]] = []

    def submit(names: Sequence[str], etags: Sequence[str]) -> SimpleNamespace:
        seen.append(list(names))
        kind = next(outcomes)
        if kind == "fail":
            raise SubmitUnavailable("argo down", url="https://argo", attempts=6)
        return SimpleNamespace(duplicate=kind == "dup", run_id=f"argo-{names[0]}")

    progress: list[int] = []
    summary = run_backfill(plan, submit, on_batch=progress.append)
    assert len(seen) == 4 and progress == [1, 1, 1, 1]  # a failed batch does not stop the rest
    assert (summary.workflows_submitted, summary.duplicates, summary.failed_batches) == (2, 1, 1)
    assert summary.chunks_submitted == 2 and "SubmitUnavailable: argo down" in summary.errors[0]
