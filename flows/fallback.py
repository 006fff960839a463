"""Which chunks a fallback run (``chunks=[]``) takes: a pure decision over two container listings.

The cron run lists the chunk container and the results container once each, then
:func:`plan_fallback` decides. A chunk is taken when

- its name passes the allow-list (``chunk_contract.names``); names that do not are set aside
  with an error record instead of being processed, so one stray blob cannot fail the hourly run;
- it has no up-to-date record: neither a result nor an error record carrying its current ETag
  (an error record stops retries until the chunk changes, a result marks it done);
- it was last modified more than the grace period ago, so a chunk whose event-triggered run is
  probably still going is left to that run;
- it is among the ``limit`` oldest such chunks (flood guard); the rest wait for the next run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from chunk_contract.names import InvalidChunkName, validate_chunk_name
from chunk_contract.records import chunk_of_record, is_up_to_date

__all__ = ["ChunkListing", "FallbackPlan", "RecordIndex", "index_records", "plan_fallback"]


@dataclass(frozen=True)
class ChunkListing:
    """One blob of the chunk container, as listed."""

    name: str
    etag: str
    last_modified: datetime


@dataclass
class RecordIndex:
    """Metadata of a chunk's records in the results container (``None`` when absent)."""

    result: dict[str, str] | None = None
    error: dict[str, str] | None = None


def index_records(records: Iterable[tuple[str, Mapping[str, str] | None]]) -> dict[str, RecordIndex]:
    """Group a results-container listing ``(blob name, metadata)`` by chunk name.

    Blobs that are neither ``*.features.json`` nor ``*.error.json`` are ignored.
    """
    index: dict[str, RecordIndex] = {}
    for name, metadata in records:
        parsed = chunk_of_record(name)
        if parsed is None:
            continue
        chunk, kind = parsed
        entry = index.setdefault(chunk, RecordIndex())
        setattr(entry, kind, dict(metadata or {}))
    return index


@dataclass(frozen=True)
class FallbackPlan:
    """The decision of one fallback run.

    Attributes
    ----------
    take : tuple of ChunkListing
        Chunks to process now, oldest first, at most the flood guard.
    deferred : tuple of ChunkListing
        Chunks missing a result that exceed the flood guard (taken by a later run).
    in_grace : tuple of ChunkListing
        Chunks without a result modified within the grace period (left to their event run).
    invalid : tuple of (ChunkListing, str)
        Blobs whose names fail the allow-list and have no up-to-date error record yet, with the reason.
    done, failed : int
        Chunks with an up-to-date result / error record (skipped).
    """

    take: tuple[ChunkListing, ...] = ()
    deferred: tuple[ChunkListing, ...] = ()
    in_grace: tuple[ChunkListing, ...] = ()
    invalid: tuple[tuple[ChunkListing, str], ...] = field(default=())
    done: int = 0
    failed: int = 0

    @property
    def missing(self) -> int:
        """Chunks found without an up-to-date record and past the grace period (taken + deferred)."""
        return len(self.take) + len(self.deferred)

    def summary(self) -> dict[str, int]:
        return {
            "missing": self.missing,
            "taken": len(self.take),
            "deferred_by_flood_guard": len(self.deferred),
            "in_grace_period": len(self.in_grace),
            "invalid_names": len(self.invalid),
            "already_processed": self.done,
            "already_failed": self.failed,
        }


def plan_fallback(
    chunks: Iterable[ChunkListing],
    records: Mapping[str, RecordIndex],
    *,
    now: datetime,
    grace: timedelta,
    limit: int,
) -> FallbackPlan:
    """Decide which chunks a fallback run processes (pure: no I/O, no clock).

    Parameters
    ----------
    chunks : iterable of ChunkListing
        The chunk container's listing.
    records : mapping of chunk name to RecordIndex
        The results container's listing, grouped by :func:`index_records`.
    now : datetime
        The current time (timezone-aware, like the listing's ``last_modified``).
    grace : timedelta
        Chunks modified after ``now - grace`` are left alone.
    limit : int
        Flood guard: the most chunks taken (>= 1).
    """
    if limit < 1:
        raise ValueError(f"limit (the flood guard) must be >= 1, got {limit}")
    cutoff = now - grace
    ripe: list[ChunkListing] = []
    in_grace: list[ChunkListing] = []
    invalid: list[tuple[ChunkListing, str]] = []
    done = failed = 0
    for chunk in chunks:
        entry = records.get(chunk.name, RecordIndex())
        if is_up_to_date(entry.result, chunk.etag):
            done += 1
            continue
        if is_up_to_date(entry.error, chunk.etag):
            failed += 1
            continue
        try:
            validate_chunk_name(chunk.name)
        except InvalidChunkName as exc:
            invalid.append((chunk, exc.reason))
            continue
        if chunk.last_modified > cutoff:
            in_grace.append(chunk)
        else:
            ripe.append(chunk)
    ripe.sort(key=lambda c: (c.last_modified, c.name))
    return FallbackPlan(
        take=tuple(ripe[:limit]),
        deferred=tuple(ripe[limit:]),
        in_grace=tuple(sorted(in_grace, key=lambda c: (c.last_modified, c.name))),
        invalid=tuple(invalid),
        done=done,
        failed=failed,
    )
