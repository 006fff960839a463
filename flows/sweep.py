"""The fallback sweep: list what one fallback run (``chunks=[]``) must see, then plan (thin I/O).

With ``SENSOR_CHUNK_LAYOUT`` set, a sweep costs what the window holds, not what history holds:

1. **discover** the sensors, when ``{sensor}`` comes before a time field: one paged delimiter
   listing (``walk_blobs(name_starts_with=..., delimiter="/")``) at the sensor level, answered with
   one virtual folder per sensor;
2. **list the window's prefixes** in the chunk container (:mod:`chunk_layout`: one per sensor and
   day, or hour with ``{hh}``, of ``[now - lookback, now + 1 h]``) on 8 threads (the SDK pools 10 connections);
3. **list the same prefixes in the results container** with metadata: a chunk's records are
   ``<chunk>.features.json`` / ``<chunk>.error.json``, so they start with the chunk's prefix. Only
   prefixes that held a chunk are listed; the rest of the results container is never read.

Requests: about ``1 + 2 × sensors × days in the window`` pages (Azure answers at most 5000 blobs
per page), whatever the containers hold beyond the window. The hour ahead allows for sensor
clocks running fast. **Chunks whose names lie before the window are not seen**: a sensor that
uploads days late, or history never processed, is ``sensorctl backfill``'s job. Blobs that do not
fit the layout (a stray file at the root) are not seen either.

Without a layout, both containers are listed whole (cost linear in every blob ever stored,
~0.45 ms a blob on Azurite), and a listing of more than ``list_warn`` chunks prints a warning
that names ``SENSOR_CHUNK_LAYOUT``.

Either way :func:`fallback.plan_fallback` makes the decision, with the flood guard by count and by
bytes, and the plan carries what was listed (:class:`fallback.ListingStats`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobPrefix, BlobServiceClient, ContainerClient
from chunk_layout import ChunkLayout, list_prefixes, parse_layout
from chunk_store import chunk_listing
from fallback import ChunkListing, FallbackPlan, ListingStats, index_records, plan_fallback

from chunk_contract.records import chunk_of_record

__all__ = ["CLOCK_SKEW", "DEFAULT_LIST_WARN", "fallback_sweep"]

CLOCK_SKEW = timedelta(hours=1)  # chunks named up to this far in the future are still listed
DEFAULT_LIST_WARN = 100_000


def fallback_sweep(
    service: BlobServiceClient,
    *,
    chunk_container: str,
    results_container: str,
    layout: ChunkLayout | str | None,
    lookback: timedelta,
    now: datetime,
    grace: timedelta,
    limit: int,
    max_bytes: int | None = None,
    list_warn: int = DEFAULT_LIST_WARN,
    workers: int = 8,
    log: Callable[[str], None] = print,
) -> FallbackPlan:
    """List what a fallback run must see and decide what it takes (see the module docstring).

    Parameters
    ----------
    service : BlobServiceClient
        The storage account.
    chunk_container, results_container : str
        Where chunks and their records live.
    layout : ChunkLayout, str or None
        ``SENSOR_CHUNK_LAYOUT`` (parsed here if a string); ``None`` or ``""``: list both containers whole.
    lookback : timedelta
        With a layout, the window is ``[now - lookback, now + CLOCK_SKEW]``, by the time in the
        chunk's name (> 0). Older chunks are not seen: ``sensorctl backfill`` is the tool for them.
    now : datetime
        The current time, timezone-aware.
    grace, limit, max_bytes
        As :func:`fallback.plan_fallback`: the grace period and the flood guard (count, bytes).
    list_warn : int
        Without a layout, warn when the chunk listing holds more blobs than this.
    workers : int
        Threads listing prefixes at once (>= 1). Default 8: the SDK's ``requests`` transport pools
        10 connections per host, and more threads than that open and drop a connection (a TLS
        handshake on Azure) for every request above the pool (urllib3 logs "Connection pool is full").
    log : callable
        Where the warning line goes (default ``print``: the flow's log).

    Returns
    -------
    FallbackPlan
        The same plan :func:`fallback.plan_fallback` returns, with ``listing`` set.

    Raises
    ------
    ValueError
        If ``lookback`` is not positive, ``now`` is naive, ``workers < 1``, or a guard is invalid;
        :class:`chunk_layout.LayoutError` (a ``ValueError``) for a bad layout string.
    azure.core.exceptions.ResourceNotFoundError
        If the chunk container does not exist (a missing results container means no records).
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got naive {now.isoformat()}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if lookback <= timedelta(0):
        raise ValueError(f"lookback must be a positive duration, got {lookback}")
    # The guards are checked again by plan_fallback; checking them first spares a listing.
    if limit < 1:
        raise ValueError(f"limit (the flood guard) must be >= 1, got {limit}")
    if max_bytes is not None and max_bytes < 1:
        raise ValueError(f"max_bytes (the byte flood guard) must be >= 1, got {max_bytes}")
    if isinstance(layout, str):
        layout = parse_layout(layout) if layout.strip() else None
    chunks_client = service.get_container_client(chunk_container)
    results_client = service.get_container_client(results_container)
    started = time.perf_counter()
    if layout is None:
        chunks, records, stats = _full_listing(chunks_client, results_client, list_warn, log)
    else:
        chunks, records, stats = _layout_listing(
            chunks_client, results_client, layout, now - lookback, now + CLOCK_SKEW, workers
        )
    stats = dataclasses.replace(stats, seconds=round(time.perf_counter() - started, 4))
    plan = plan_fallback(chunks, index_records(records), now=now, grace=grace, limit=limit, max_bytes=max_bytes)
    return dataclasses.replace(plan, listing=stats)


Record = tuple[str, dict[str, str] | None]


def _full_listing(
    chunks_client: ContainerClient, results_client: ContainerClient, list_warn: int, log: Callable[[str], None]
) -> tuple[list[ChunkListing], list[Record], ListingStats]:
    chunks, pages = _list_chunks(chunks_client, None)
    records, record_pages = _list_records(results_client, None)
    warning = None
    if len(chunks) > list_warn:
        warning = (
            f"warning: the fallback listed {len(chunks)} chunks in {chunks_client.container_name!r} "
            f"(more than SENSOR_FALLBACK_LIST_WARN={list_warn}); every run lists the whole container, "
            "so its cost grows with all history. Set SENSOR_CHUNK_LAYOUT (e.g. '{sensor}/{yyyy}/{mm}/{dd}/') "
            "so it lists only the lookback window (docs/flow.md)."
        )
        log(warning)
    stats = ListingStats(
        mode="full",
        prefixes=1,
        chunks_listed=len(chunks),
        records_listed=len(records),
        list_requests=pages + record_pages,
        warning=warning,
    )
    return chunks, records, stats


def _layout_listing(
    chunks_client: ContainerClient,
    results_client: ContainerClient,
    layout: ChunkLayout,
    start: datetime,
    end: datetime,
    workers: int,
) -> tuple[list[ChunkListing], list[Record], ListingStats]:
    templates = layout.prefix_templates(start, end)
    discover = layout.discovery_prefixes(start, end)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sweep") as pool:
        started = time.perf_counter()
        found = list(pool.map(lambda d: _discover(chunks_client, layout, d), discover))
        discovery_seconds = time.perf_counter() - started
        sensors = {d: names for d, (names, _) in zip(discover, found, strict=True)}
        prefixes = list_prefixes(templates, sensors)
        listed = list(pool.map(lambda p: _list_prefix(chunks_client, results_client, p), prefixes))
    chunks = [c for cs, _, _ in listed for c in cs]
    # Only the candidates' records: a record under a listed prefix whose chunk is gone is dropped.
    names = {c.name for c in chunks}
    records = [r for _, rs, _ in listed for r in rs if _chunk_of(r[0]) in names]
    stats = ListingStats(
        mode="layout",
        window_start=start.astimezone(UTC).isoformat(),
        window_end=end.astimezone(UTC).isoformat(),
        sensors=len({s for names_ in sensors.values() for s in names_}),
        prefixes=len(prefixes),
        chunks_listed=len(chunks),
        records_listed=len(records),
        list_requests=sum(pages for _, pages in found) + sum(pages for _, _, pages in listed),
        discovery_seconds=round(discovery_seconds, 4),
    )
    return chunks, records, stats


def _discover(client: ContainerClient, layout: ChunkLayout, prefix: str) -> tuple[list[str], int]:
    """Sensors under ``prefix``: one delimiter listing, one ``BlobPrefix`` per sensor folder."""
    sensors: list[str] = []
    pages = 0
    # Azure may answer a delimiter listing with short (even empty) pages and a continuation
    # token; by_page() follows every token, so each page is one request. Azurite 3.35 reads every
    # blob under the prefix to build it (once per 5000), so there discovery grows with history.
    for page in client.walk_blobs(name_starts_with=prefix or None, delimiter="/").by_page():
        pages += 1
        for item in page:
            if isinstance(item, BlobPrefix):  # a blob right at this level is no sensor: ignored
                sensor = layout.sensor_of(prefix, item.name)
                if sensor is not None:
                    sensors.append(sensor)
    return sensors, pages


def _list_prefix(
    chunks_client: ContainerClient, results_client: ContainerClient, prefix: str
) -> tuple[list[ChunkListing], list[Record], int]:
    """The chunks under ``prefix`` and, if there are any, the records under the same prefix."""
    chunks, pages = _list_chunks(chunks_client, prefix)
    if not chunks:
        return [], [], pages
    records, record_pages = _list_records(results_client, prefix)
    return chunks, records, pages + record_pages


def _list_chunks(client: ContainerClient, prefix: str | None) -> tuple[list[ChunkListing], int]:
    chunks: list[ChunkListing] = []
    pages = 0
    for page in client.list_blobs(name_starts_with=prefix).by_page():
        pages += 1
        chunks.extend(chunk_listing(b) for b in page)
    return chunks, pages


def _list_records(client: ContainerClient, prefix: str | None) -> tuple[list[Record], int]:
    records: list[Record] = []
    pages = 0
    try:
        for page in client.list_blobs(name_starts_with=prefix, include=["metadata"]).by_page():
            pages += 1
            records.extend((b.name, b.metadata) for b in page)
    except ResourceNotFoundError:
        # No results container yet (nothing was ever recorded): no records. Cheaper than an
        # exists() call before every listing.
        return [], pages + 1
    return records, pages


def _chunk_of(record_name: str) -> str | None:
    parsed = chunk_of_record(record_name)
    return None if parsed is None else parsed[0]
