"""The fallback sweep on Azurite: what it lists (window prefixes only), what it reads, what it plans."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient
from chunk_layout import ChunkLayout, parse_layout
from sweep import CLOCK_SKEW, fallback_sweep

from chunk_contract.records import META_CHUNK_ETAG, error_blob_name, normalize_etag, result_blob_name
from localdev.azurite import Azurite

SENSOR_FIRST = "{sensor}/{yyyy}/{mm}/{dd}/"
TIME_FIRST = "{yyyy}/{mm}/{dd}/{sensor}/"
LOOKBACK = timedelta(hours=48)


# The next midday (UTC): the window [NOW - 48 h, NOW + 1 h] then spans exactly three days, and every
# chunk uploaded by a test was modified before NOW (so with no grace period, all missing ones are ripe).
def _next_midday() -> datetime:
    now = datetime.now(UTC)
    midday = now.replace(hour=12, minute=0, second=0, microsecond=0)
    return midday if midday > now + timedelta(minutes=5) else midday + timedelta(days=1)


NOW = _next_midday()


@dataclass
class Listings:
    """Every List Blobs request the client sends: (container, prefix, delimiter, include)."""

    calls: list[tuple[str, str | None, str | None, str | None]] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: Any) -> None:
        url = urlsplit(request.http_request.url)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        container = unquote(url.path).split("/")[2]  # /devstoreaccount1/<container>
        with self.lock:
            if query.get("comp") == "list" and query.get("restype") == "container":
                self.calls.append((container, query.get("prefix"), query.get("delimiter"), query.get("include")))
            else:
                self.other.append(f"{request.http_request.method} {url.path}?{url.query}")

    def to(self, container: str) -> list[tuple[str | None, str | None, str | None]]:
        return [(p, d, i) for c, p, d, i in self.calls if c == container]


@dataclass
class World:
    service: BlobServiceClient
    listings: Listings
    chunks: ContainerClient
    results: ContainerClient

    def put_chunk(self, name: str, body: bytes = b"timestamp,value\n1,2\n") -> str:
        return normalize_etag(self.chunks.get_blob_client(name).upload_blob(body, overwrite=True)["etag"])

    def put_record(self, chunk: str, etag: str, kind: str = "result") -> None:
        name = result_blob_name(chunk) if kind == "result" else error_blob_name(chunk)
        self.results.get_blob_client(name).upload_blob(b"{}", overwrite=True, metadata={META_CHUNK_ETAG: etag})

    def sweep(self, layout: ChunkLayout | str | None, **kwargs: Any) -> Any:
        options: dict[str, Any] = {
            "chunk_container": self.chunks.container_name,
            "results_container": self.results.container_name,
            "layout": layout,
            "lookback": LOOKBACK,
            "now": NOW,
            # Uploaded a moment ago, named by NOW: a zero grace makes every missing chunk ripe.
            "grace": timedelta(0),
            "limit": 100,
            "max_bytes": None,
        }
        options.update(kwargs)
        self.listings.calls.clear()
        self.listings.other.clear()
        return fallback_sweep(self.service, **options)


@pytest.fixture
def world(azurite: Azurite) -> Iterator[World]:
    listings = Listings()
    service = BlobServiceClient.from_connection_string(azurite.connection_string, raw_request_hook=listings)
    suffix = uuid.uuid4().hex[:12]
    chunks = service.create_container(f"sweep-chunks-{suffix}")
    results = service.create_container(f"sweep-results-{suffix}")
    made = World(service, listings, chunks, results)
    yield made
    for container in (made.chunks, made.results):
        try:
            container.delete_container()
        except ResourceNotFoundError:
            pass


def day(hours_ago: float) -> str:
    return (NOW - timedelta(hours=hours_ago)).strftime("%Y/%m/%d")


def test_layout_sweep_takes_exactly_the_windows_missing_chunks_and_reads_only_its_records(world: World) -> None:
    inside_missing = [f"sensor-1/{day(1)}/100000.csv", f"sensor-2/{day(30)}/060000.csv", f"sensor-3/{day(47)}/x.csv"]
    inside_done = f"sensor-1/{day(2)}/090000.csv"
    inside_failed = f"sensor-2/{day(3)}/080000.csv"
    inside_stale = f"sensor-3/{day(4)}/070000.csv"
    outside = [f"sensor-1/{day(24 * 5)}/a.csv", f"sensor-2/{day(24 * 9)}/b.csv", f"sensor-4/{day(24 * 20)}/c.csv"]
    for name in inside_missing + outside:
        world.put_chunk(name)
    world.put_record(inside_done, world.put_chunk(inside_done))
    world.put_record(inside_failed, world.put_chunk(inside_failed), kind="error")
    world.put_record(inside_stale, "0xSTALE")
    world.put_chunk(inside_stale)
    # Decoys outside the window: a record of an old chunk, and a record whose chunk is gone.
    world.put_record(outside[0], "0xOLD", kind="error")
    world.put_record(f"sensor-9/{day(24 * 30)}/gone.csv", "0x1")
    world.chunks.upload_blob("README.txt", b"a stray blob at the root: not under the layout")

    plan = world.sweep(SENSOR_FIRST)

    assert sorted(c.name for c in plan.take) == sorted([*inside_missing, inside_stale])
    assert plan.done == 1 and plan.failed == 1 and plan.deferred == () and plan.invalid == ()
    stats = plan.listing
    assert stats.mode == "layout" and stats.sensors == 4  # sensor-4 has only old chunks: found, listed, empty
    assert stats.chunks_listed == 6 and stats.records_listed == 3
    assert stats.window_start == (NOW - LOOKBACK).isoformat() and stats.window_end == (NOW + CLOCK_SKEW).isoformat()

    window_days = {day(0), day(24), day(48)}
    chunk_calls = world.listings.to(world.chunks.container_name)
    # One delimiter listing at the root finds the sensors; then one listing per sensor and day.
    assert chunk_calls[0] == (None, "/", None)
    listed = {p for p, _, _ in chunk_calls[1:]}
    assert listed == {f"sensor-{s}/{d}/" for s in (1, 2, 3, 4) for d in window_days}
    assert all(d is None for _, d, _ in chunk_calls[1:])
    # The results container: only the same prefixes, only those that held a chunk, with metadata.
    result_calls = world.listings.to(world.results.container_name)
    assert all(p is not None and p in listed and i == "metadata" for p, _, i in result_calls)
    assert {p for p, _, _ in result_calls} == {
        f"sensor-{s}/{d}/" for s, d in [(1, day(1)), (1, day(2)), (2, day(30)), (2, day(3)), (3, day(47)), (3, day(4))]
    }
    assert stats.list_requests == len(chunk_calls) + len(result_calls)
    assert world.listings.other == []  # no HEAD, no GET of a blob: listings only


def test_full_listing_sees_history_and_warns_above_the_threshold(world: World) -> None:
    names = [f"sensor-1/{day(1)}/a.csv", f"sensor-1/{day(24 * 7)}/b.csv", f"sensor-2/{day(24 * 60)}/c.csv"]
    for name in names:
        world.put_chunk(name)
    lines: list[str] = []

    plan = world.sweep(None, list_warn=2, log=lines.append)

    assert sorted(c.name for c in plan.take) == sorted(names)  # old history too: the whole container
    assert plan.listing.mode == "full" and plan.listing.chunks_listed == 3
    assert len(lines) == 1 and plan.listing.warning == lines[0]
    assert "listed 3 chunks" in lines[0] and "SENSOR_FALLBACK_LIST_WARN=2" in lines[0]
    assert "Set SENSOR_CHUNK_LAYOUT" in lines[0]
    assert world.listings.to(world.chunks.container_name) == [(None, None, None)]
    assert world.listings.to(world.results.container_name) == [(None, None, "metadata")]

    quiet: list[str] = []
    assert world.sweep("", list_warn=3, log=quiet.append).listing.warning is None  # "" = no layout
    assert quiet == []


def test_time_first_layout_needs_no_discovery(world: World) -> None:
    missing = [f"{day(5)}/sensor-1/a.csv", f"{day(29)}/sensor-2/b.csv"]
    for name in [*missing, f"{day(24 * 4)}/sensor-1/old.csv"]:
        world.put_chunk(name)

    plan = world.sweep(TIME_FIRST)

    assert sorted(c.name for c in plan.take) == sorted(missing)
    chunk_calls = world.listings.to(world.chunks.container_name)
    assert sorted(chunk_calls) == sorted((f"{d}/", None, None) for d in {day(0), day(24), day(48)})
    assert plan.listing.sensors == 0 and plan.listing.prefixes == 3


def test_byte_guard_takes_the_oldest_within_the_budget_but_always_one(world: World) -> None:
    # Uploaded in this order, and in name order too (listings give last-modified to the second,
    # ties go by name): oldest first is the order of the list.
    names = [f"sensor-1/{day(h)}/{i}.csv" for i, h in enumerate((40, 30, 20, 10))]
    for name, size in zip(names, (400, 300, 500, 100), strict=True):
        world.put_chunk(name, b"x" * size)
    plan = world.sweep(SENSOR_FIRST, max_bytes=800)
    taken = [c.name for c in plan.take]
    assert taken == names[:2] and [c.size for c in plan.take] == [400, 300]
    assert plan.taken_bytes == 700
    summary = plan.summary()
    assert summary["deferred_by_flood_guard"] == 2 and summary["deferred_by_byte_guard"] == 2
    # A budget smaller than the oldest chunk still takes it, alone.
    alone = world.sweep(SENSOR_FIRST, max_bytes=10)
    assert [c.name for c in alone.take] == names[:1] and alone.summary()["deferred_by_byte_guard"] == 3
    # The count limit reached first: nothing is deferred by bytes.
    counted = world.sweep(SENSOR_FIRST, max_bytes=10_000, limit=1)
    assert counted.summary()["deferred_by_flood_guard"] == 3 and counted.summary()["deferred_by_byte_guard"] == 0


def test_a_missing_results_container_means_no_records(world: World) -> None:
    name = f"sensor-1/{day(1)}/a.csv"
    world.put_chunk(name)
    world.results.delete_container()
    world.results = world.service.get_container_client(f"never-created-{uuid.uuid4().hex[:12]}")
    plan = world.sweep(SENSOR_FIRST)
    assert [c.name for c in plan.take] == [name] and plan.listing.records_listed == 0


def test_an_empty_chunk_container_costs_one_request(world: World) -> None:
    plan = world.sweep(SENSOR_FIRST)
    assert plan.take == () and plan.listing.sensors == 0 and plan.listing.list_requests == 1


def test_bad_arguments(world: World) -> None:
    with pytest.raises(ValueError, match="lookback must be a positive duration"):
        world.sweep(SENSOR_FIRST, lookback=timedelta(0))
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        world.sweep(SENSOR_FIRST, now=NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match=r"SENSOR_CHUNK_LAYOUT='\{sensor\}/': must contain \{yyyy\}"):
        world.sweep("{sensor}/")
    with pytest.raises(ValueError, match="byte flood guard"):
        world.sweep(parse_layout(SENSOR_FIRST), max_bytes=0)
