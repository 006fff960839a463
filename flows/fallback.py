"""Which chunks a fallback run (``chunks=[]``) takes: a pure decision over two container listings.

The cron run lists the chunk container and the results container (whole, or only the window's
prefixes: ``sweep.fallback_sweep``), then :func:`plan_fallback` decides. A chunk is taken when

- its name passes the allow-list (``chunk_contract.names``); names that do not are set aside
  with an error record instead of being processed, so one stray blob cannot fail the hourly run;
- it has no up-to-date record: neither a result nor an error record carrying its current ETag
  (an error record stops retries until the chunk changes, a result marks it done);
- it was last modified more than the grace period ago, so a chunk whose event-triggered run is
  probably still going is left to that run;
- it is among the oldest such chunks that fit the flood guard: at most ``limit`` chunks and at most
  ``max_bytes`` bytes in all (but always at least one, so a chunk larger than the byte budget is
  still taken, alone); the rest wait for the next run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from chunk_contract.names import InvalidChunkName, validate_chunk_name
from chunk_contract.records import chunk_of_record, is_up_to_date

__all__ = ["ChunkListing", "FallbackPlan", "ListingStats", "RecordIndex", "index_records", "plan_fallback"]


@dataclass(frozen=True)
class ChunkListing:
    """One blob of the chunk container, as listed (``size``: its length in bytes, 0 if unknown)."""

    name: str
    etag: str
    last_modified: datetime
    size: int = 0


@dataclass(frozen=True)
class ListingStats:
    """What a fallback sweep listed to reach its plan (``sweep.fallback_sweep``), for the log.

    Attributes
    ----------
    mode : {"layout", "full"}
        ``layout``: only the window's prefixes (``SENSOR_CHUNK_LAYOUT``); ``full``: both containers whole.
    window_start, window_end : str or None
        The window (ISO 8601, UTC) in layout mode.
    sensors : int
        Sensors found by discovery (0 when the layout needs none, or in full mode).
    prefixes : int
        Prefixes listed in the chunk container (1 in full mode: the whole container).
    chunks_listed, records_listed : int
        Blobs seen in the chunk container and records seen in the results container.
    list_requests : int
        Listing pages fetched, one request each (discovery included; SDK retries not counted).
    seconds : float
        Wall time of the listings.
    discovery_seconds : float
        Of which the sensor discovery (layout mode; 0 otherwise).
    warning : str or None
        The warning printed, if any (a full listing above ``SENSOR_FALLBACK_LIST_WARN`` blobs).
    """

    mode: Literal["layout", "full"]
    window_start: str | None = None
    window_end: str | None = None
    sensors: int = 0
    prefixes: int = 0
    chunks_listed: int = 0
    records_listed: int = 0
    list_requests: int = 0
    seconds: float = 0.0
    discovery_seconds: float = 0.0
    warning: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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
        Chunks to process now, oldest first, within the flood guard (count and bytes).
    deferred : tuple of ChunkListing
        Chunks missing a result that exceed the flood guard (taken by a later run).
    deferred_by_bytes : int
        How many of ``deferred`` wait because the byte budget filled before the count limit did
        (``len(deferred)`` or 0).
    taken_bytes : int
        Total size of ``take`` (from the listing).
    in_grace : tuple of ChunkListing
        Chunks without a result modified within the grace period (left to their event run).
    invalid : tuple of (ChunkListing, str)
        Blobs whose names fail the allow-list and have no up-to-date error record yet, with the reason.
    done, failed : int
        Chunks with an up-to-date result / error record (skipped).
    listing : ListingStats or None
        What the sweep listed (set by ``sweep.fallback_sweep``; ``None`` from :func:`plan_fallback`).
    """

    take: tuple[ChunkListing, ...] = ()
    deferred: tuple[ChunkListing, ...] = ()
    in_grace: tuple[ChunkListing, ...] = ()
    invalid: tuple[tuple[ChunkListing, str], ...] = field(default=())
    done: int = 0
    failed: int = 0
    deferred_by_bytes: int = 0
    taken_bytes: int = 0
    listing: ListingStats | None = None

    @property
    def missing(self) -> int:
        """Chunks found without an up-to-date record and past the grace period (taken + deferred)."""
        return len(self.take) + len(self.deferred)

    def summary(self) -> dict[str, int]:
        """Counts for the log and the ``fallback_summary`` artifact.

        ``deferred_by_flood_guard`` counts every deferred chunk (the guard has a count and a byte
        limit); ``deferred_by_byte_guard`` how many of them the byte limit deferred.
        """
        return {
            "missing": self.missing,
            "taken": len(self.take),
            "deferred_by_flood_guard": len(self.deferred),
            "deferred_by_byte_guard": self.deferred_by_bytes,
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
    max_bytes: int | None = None,
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
    max_bytes : int or None
        Flood guard by size: the oldest chunks are taken while their total stays within
        ``max_bytes`` (>= 1), but always at least one, so a chunk larger than the budget is taken
        alone rather than never. ``None``: no byte limit.
    """
    if limit < 1:
        raise ValueError(f"limit (the flood guard) must be >= 1, got {limit}")
    if max_bytes is not None and max_bytes < 1:
        raise ValueError(f"max_bytes (the byte flood guard) must be >= 1, got {max_bytes}")
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
    # Oldest first, and stop at the first chunk that does not fit: skipping it for a smaller,
    # newer one would let a big chunk wait for ever behind a stream of small ones.
    taken = taken_bytes = 0
    by_bytes = False
    for chunk in ripe:
        if taken >= limit:
            break
        if max_bytes is not None and taken and taken_bytes + chunk.size > max_bytes:
            by_bytes = True
            break
        taken += 1
        taken_bytes += chunk.size
    return FallbackPlan(
        take=tuple(ripe[:taken]),
        deferred=tuple(ripe[taken:]),
        in_grace=tuple(sorted(in_grace, key=lambda c: (c.last_modified, c.name))),
        invalid=tuple(invalid),
        done=done,
        failed=failed,
        deferred_by_bytes=len(ripe) - taken if by_bytes else 0,
        taken_bytes=taken_bytes,
    )
