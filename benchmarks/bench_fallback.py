"""What one fallback sweep costs as history grows: the layout sweep against the full listing, on Azurite.

``python -m benchmarks.bench_fallback`` (``make bench-fallback``), on a fresh Azurite:

1. ``--in-window`` chunks (default 100) spread over ``--sensors`` (20) and the last 47 hours, with
   no records: what the sweep must find;
2. history OUTSIDE the window, grown to each of ``--sizes`` (default 2,000, 20,000, 100,000
   chunks) in turn: hourly chunks per sensor going back day by day from the day before the window,
   each with an up-to-date result record (history has been processed), so both modes must plan
   exactly the in-window chunks;
3. at each size, on a client whose connection is warmed up: ``--repeat`` layout sweeps
   (:func:`sweep.fallback_sweep` with ``--layout``, default the demo's ``{sensor}/{yyyy}/{mm}/{dd}/``)
   and one full-listing sweep (no layout; ``--no-full`` skips it); for each, wall time, HTTP
   requests (counted at the client: retries included), listing pages, what was listed, and the
   CPU seconds of this process (the sweep's own work) and of Azurite's process. Also Azurite's per-request floor: the median time of a
   listing of a prefix that matches nothing.

**How history gets there.** Azurite 3.35's Put Blob looks the blob up with a LokiJS query whose
first clause (the account) matches every blob stored, so each upload costs O(blobs stored):
uploading 100,000 blobs through the API took more than 15 minutes here, almost all in Azurite.
The benchmark uploads one template chunk and one template record through the API, then clones
them into Azurite's metadata database with LokiJS itself (``node``, the ``lokijs`` that Azurite
ships with) while Azurite is stopped, and starts it again: the same documents the API would have
written, with their own names, ETags, last-modified times and record metadata, sharing the
template's one-byte body. The in-window chunks are real uploads.

**Azurite is not Azure.** Azurite answers every List Blobs request with a LokiJS regex scan over
every blob it stores (``LokiBlobMetadataStore.listBlobs``: ``$regex`` on the name is not indexed),
then sorts the matches; a delimiter listing re-runs that query once per 5000 blobs under its
prefix (``PageWithDelimiter.fill``). So on Azurite even a constant number of requests costs more
as history grows: the floor shows by how much. Azure's listing is a range read of its sorted
index, and the request count (the same at every size) is the portable figure: with Azure's
per-request latency (~10-30 ms from a pod) the sweep costs about requests × latency / 8 threads.

Target (issue 10): the layout sweep's time flat within 1.5× from the smallest to the largest size.
Results go to stdout and ``--json`` (default ``.bench/fallback.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "flows"
CHUNKS = "sensor-data"
RESULTS = "sensor-features"
DEFAULT_LAYOUT = "{sensor}/{yyyy}/{mm}/{dd}/"
LOOKBACK = timedelta(hours=48)

__all__ = ["main"]

# Clone template blobs into Azurite's LokiJS database (Azurite stopped). `node -e SEED_JS LOKIJS SPEC`.
SEED_JS = r"""
const fs = require("fs");
const loki = require(process.argv[1]);
const spec = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const db = new loki(spec.db, { adapter: new loki.LokiFsAdapter() });
db.loadDatabase({}, (err) => {
  if (err) { console.error(String(err)); process.exit(1); }
  const coll = db.getCollection("$BLOBS_COLLECTION$");
  const adaptive = coll.adaptiveBinaryIndices;
  coll.adaptiveBinaryIndices = false;  // rebuild the indices once at the end, not per insert
  let added = 0;
  for (const group of spec.groups) {
    const template = coll.findOne({ containerName: group.container, name: group.template });
    if (!template) { console.error("template not found: " + group.template); process.exit(1); }
    const docs = [];
    for (const [name, etag, modified, meta] of group.blobs) {
      const doc = JSON.parse(JSON.stringify(template));
      delete doc.$loki; delete doc.meta;
      doc.name = name;
      doc.properties.etag = etag;
      doc.properties.lastModified = modified;
      doc.properties.creationTime = modified;
      if (meta) doc.metadata = meta;
      docs.push(doc);
    }
    if (docs.length) coll.insert(docs);
    added += docs.length;
  }
  coll.ensureAllIndexes(true);
  coll.adaptiveBinaryIndices = adaptive;
  db.saveDatabase((err2) => {
    if (err2) { console.error(String(err2)); process.exit(1); }
    console.log(JSON.stringify({ added, total: coll.count() }));
  });
});
"""


def _flows_on_path() -> None:
    # The flow's helpers are top-level modules (only flows/ is packaged for the pods).
    if str(FLOWS) not in sys.path:
        sys.path.append(str(FLOWS))


@dataclass
class RequestLog:
    """HTTP requests of one Blob client (its ``raw_request_hook``), by kind."""

    counts: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: Any) -> None:
        query = request.http_request.query
        kind = "list" if query.get("comp") == "list" else request.http_request.method
        if "delimiter" in query:
            kind = "list-delimiter"
        with self.lock:
            self.counts[kind] += 1

    def take(self) -> dict[str, int]:
        with self.lock:
            out = dict(self.counts)
            self.counts.clear()
        return out


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _etag(i: int, kind: int) -> str:
    return f"0x{kind}{i:015X}"


@dataclass(frozen=True)
class Fleet:
    """Names and times of the benchmark's chunks, deterministic for a given ``now``."""

    layout: Any  # chunk_layout.ChunkLayout
    sensors: int
    now: datetime

    def sensor(self, i: int) -> str:
        return f"sensor-{i % self.sensors:03d}"

    def in_window(self, count: int) -> list[tuple[str, datetime]]:
        """``count`` chunks over the last 47 hours, round-robin over the sensors."""
        per_sensor = max(1, -(-count // self.sensors))
        out = []
        for i in range(count):
            k = i // self.sensors
            when = self.now - timedelta(hours=1) - timedelta(hours=46) * (k / max(1, per_sensor - 1))
            out.append((self.layout.render(when, self.sensor(i)) + f"{when:%H%M%S}-{i:05d}.csv", when))
        return out

    def history(self, start: int, stop: int) -> list[tuple[str, datetime]]:
        """History chunks ``start..stop-1``: hourly per sensor, back from before the window's first day."""
        first_slot = self.layout.time_slots(self.now - LOOKBACK, self.now)[0]
        latest = first_slot - timedelta(hours=1)
        out = []
        for i in range(start, stop):
            when = latest - timedelta(hours=i // self.sensors)
            out.append((self.layout.render(when, self.sensor(i)) + f"{when:%H%M%S}.csv", when))
        return out


def _seed(location: Path, fleet: Fleet, start: int, stop: int, template: str, record_template: str | None) -> float:
    """Clone ``history(start, stop)`` (and their records) into the stopped Azurite's database."""
    from chunk_contract.records import META_CHUNK_ETAG, META_RECORD_KIND, result_blob_name

    # One row per blob: [name, ETag, last modified (ISO 8601), metadata or None], as SEED_JS reads it.
    chunks: list[list[Any]] = []
    records: list[list[Any]] = []
    for i, (name, when) in zip(range(start, stop), fleet.history(start, stop), strict=True):
        etag = _etag(i, 1)
        modified = (when + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
        chunks.append([name, f'"{etag}"', modified, None])
        if record_template is not None:
            meta = {META_CHUNK_ETAG: etag, META_RECORD_KIND: "result"}
            records.append([result_blob_name(name), f'"{_etag(i, 2)}"', modified, meta])
    groups: list[dict[str, Any]] = [{"container": CHUNKS, "template": template, "blobs": chunks}]
    if record_template is not None:
        groups.append({"container": RESULTS, "template": record_template, "blobs": records})
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not on PATH (Azurite needs it too)")
    started = time.perf_counter()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as spec:
        json.dump({"db": str(location / "__azurite_db_blob__.json"), "groups": groups}, spec)
    try:
        subprocess.run(
            [node, "-e", SEED_JS, str(ROOT / "node_modules" / "lokijs"), spec.name],
            check=True,
            capture_output=True,
            text=True,
        )
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"seeding Azurite's database failed: {exc.stderr.strip()}") from None
    finally:
        os.unlink(spec.name)
    return time.perf_counter() - started


def _upload(container: Any, names: Sequence[str], threads: int) -> None:
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda n: container.upload_blob(n, b"timestamp,value\n1,2\n", overwrite=True), names))


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def _measure_size(
    connection_string: str, azurite_pid: int, fleet: Fleet, args: argparse.Namespace, expected: set[str]
) -> dict[str, Any]:
    from azure.storage.blob import BlobServiceClient
    from sweep import fallback_sweep

    log = RequestLog()
    service = BlobServiceClient.from_connection_string(connection_string, raw_request_hook=log)
    chunks = service.get_container_client(CHUNKS)
    nothing = "no-such-prefix/"
    [b.name for b in chunks.list_blobs(name_starts_with=nothing)]  # warm the connection pool
    floors = [_timed(lambda: [b.name for b in chunks.list_blobs(name_starts_with=nothing)])[1] for _ in range(5)]
    log.take()

    def one(layout: str | None) -> dict[str, Any]:
        cpu = _cpu_seconds(azurite_pid)
        client_cpu = time.process_time()
        lines: list[str] = []
        plan, seconds = _timed(
            lambda: fallback_sweep(
                service,
                chunk_container=CHUNKS,
                results_container=RESULTS,
                layout=layout,
                lookback=LOOKBACK,
                now=fleet.now,
                grace=timedelta(0),
                limit=max(1, args.in_window),
                max_bytes=None,
                workers=args.workers,
                log=lines.append,
            )
        )
        listing = plan.listing.as_dict()
        return {
            "seconds": round(seconds, 4),
            "discovery_seconds": listing["discovery_seconds"],
            "azurite_cpu_s": round(_cpu_seconds(azurite_pid) - cpu, 3),
            "client_cpu_s": round(time.process_time() - client_cpu, 3),
            "requests": log.take(),
            "list_pages": listing["list_requests"],
            "sensors": listing["sensors"],
            "prefixes": listing["prefixes"],
            "chunks_listed": listing["chunks_listed"],
            "records_listed": listing["records_listed"],
            "taken": len(plan.take),
            "plan_is_the_window": {c.name for c in plan.take} == expected,
            "warning": bool(lines),
        }

    runs = [one(args.layout) for _ in range(args.repeat)]
    out: dict[str, Any] = {
        "floor_ms": round(1000 * statistics.median(floors), 2),
        "layout": {
            "best_s": min(r["seconds"] for r in runs),
            "median_s": statistics.median(r["seconds"] for r in runs),
            "runs": runs,
        },
    }
    if args.full:
        out["full"] = one(None)
    return out


def _report(result: dict[str, Any]) -> None:
    sizes = result["sizes"]
    print(f"\nlayout {result['layout']!r}, {result['sensors']} sensors, {result['in_window']} chunks in the window")
    head = f"{'history':>9} {'floor ms':>9} {'sweep s':>8} {'discover s':>10} {'requests':>9} {'listed':>7}"
    head += f" {'client cpu':>10} {'az cpu s':>8}"
    head += f" {'full s':>8} {'full req':>8} {'full listed':>11}"
    print(head)
    for size, m in sizes.items():
        best = min(m["layout"]["runs"], key=lambda r: r["seconds"])
        req = sum(best["requests"].values())
        line = f"{int(size):>9,} {m['floor_ms']:>9.2f} {best['seconds']:>8.3f} {best['discovery_seconds']:>10.3f}"
        line += f" {req:>9} {best['chunks_listed'] + best['records_listed']:>7}"
        line += f" {best['client_cpu_s']:>10.3f} {best['azurite_cpu_s']:>8.2f}"
        if "full" in m:
            f = m["full"]
            line += f" {f['seconds']:>8.2f} {sum(f['requests'].values()):>8} {f['chunks_listed'] + f['records_listed']:>11,}"
        print(line)
    s = result["summary"]
    print(
        f"layout sweep, best of {result['repeat']}: max/min = {s['layout_ratio']:.2f}x "
        f"(target <= 1.5x: {'met' if s['layout_flat'] else 'NOT met'}); requests per sweep {s['layout_requests']} "
        f"(the same at every size: {s['requests_flat']}); plans equal the window: {s['plans_correct']}"
    )
    if s.get("full_ratio") is not None:
        print(f"full listing: max/min = {s['full_ratio']:.1f}x")
    print(
        f"Azurite's floor (one empty listing) grew {s['floor_ratio']:.2f}x; the sweep's time per request "
        f"{s['per_request_ms'][0]:.2f} -> {s['per_request_ms'][-1]:.2f} ms"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default="2000,20000,100000", help="history sizes (chunks outside the window)")
    parser.add_argument("--sensors", type=int, default=20)
    parser.add_argument("--in-window", type=int, default=100, help="chunks inside the window, without records")
    parser.add_argument("--layout", default=DEFAULT_LAYOUT)
    parser.add_argument("--repeat", type=int, default=3, help="layout sweeps per size (best and median reported)")
    parser.add_argument("--workers", type=int, default=8, help="fallback_sweep's listing threads (its default)")
    parser.add_argument("--no-full", dest="full", action="store_false", help="skip the full-listing sweeps")
    parser.add_argument("--no-history-records", dest="history_records", action="store_false")
    parser.add_argument("--upload-threads", type=int, default=8)
    parser.add_argument("--json", type=Path, default=ROOT / ".bench" / "fallback.json")
    args = parser.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",")})
    if not sizes or sizes[0] < 1 or args.sensors < 1 or args.in_window < 0 or args.repeat < 1:
        parser.error("--sizes, --sensors, --repeat must be >= 1 and --in-window >= 0")

    _flows_on_path()
    from azure.storage.blob import BlobServiceClient
    from chunk_layout import parse_layout

    from chunk_contract.records import META_CHUNK_ETAG, META_RECORD_KIND, normalize_etag, result_blob_name
    from localdev.azurite import Azurite

    layout = parse_layout(args.layout, setting="--layout")
    # The sweep's "now": the next 10:30 UTC. The window (48 h back, 1 h ahead) then spans three days
    # whatever the clock says, and every upload is older than it (no grace period: all are ripe).
    real_now = datetime.now(UTC)
    now = real_now.replace(hour=10, minute=30, second=0, microsecond=0)
    if now < real_now + timedelta(hours=1):
        now += timedelta(days=1)
    fleet = Fleet(layout, args.sensors, now)
    window = fleet.in_window(args.in_window)
    expected = {name for name, _ in window}
    if not args.history_records:
        expected = set()  # without records, history is missing too: plans are not compared

    result: dict[str, Any] = {
        "layout": args.layout,
        "sensors": args.sensors,
        "in_window": args.in_window,
        "repeat": args.repeat,
        "history_records": args.history_records,
        "machine": {"cpus": os.cpu_count(), "load": os.getloadavg(), "python": platform.python_version()},
        "sizes": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-fallback-") as tmp:
        location = Path(tmp)
        azurite = Azurite(location=location)
        azurite.start()
        try:
            service = BlobServiceClient.from_connection_string(azurite.connection_string)
            chunks = service.create_container(CHUNKS)
            results = service.create_container(RESULTS)
            template = "template.csv"  # at the root: under no sensor and no day, outside every sweep
            template_etag = normalize_etag(chunks.get_blob_client(template).upload_blob(b"x")["etag"])
            record_template = None
            if args.history_records:
                # Its record is up to date: the template is "done", so a full listing misses only the window.
                record_template = result_blob_name(template)
                results.upload_blob(
                    record_template, b"{}", metadata={META_CHUNK_ETAG: template_etag, META_RECORD_KIND: "result"}
                )
            _, upload_s = _timed(lambda: _upload(chunks, [n for n, _ in window], args.upload_threads))
            result["in_window_upload_s"] = round(upload_s, 2)
            done = 0
            for size in sizes:
                azurite.stop()
                seed_s = _seed(location, fleet, done, size, template, record_template)
                done = size
                _, start_s = _timed(azurite.start)
                assert azurite._proc is not None
                print(f"history {size:,}: seeded in {seed_s:.1f} s, Azurite up in {start_s:.1f} s", flush=True)
                measured = _measure_size(azurite.connection_string, azurite._proc.pid, fleet, args, expected)
                measured["seed_s"] = round(seed_s, 2)
                result["sizes"][str(size)] = measured
        finally:
            azurite.stop()

    per = list(result["sizes"].values())
    best = [m["layout"]["best_s"] for m in per]
    requests = [sum(min(m["layout"]["runs"], key=lambda r: r["seconds"])["requests"].values()) for m in per]
    summary: dict[str, Any] = {
        "layout_best_s": best,
        "layout_ratio": max(best) / min(best),
        "layout_flat": max(best) / min(best) <= 1.5,
        "layout_requests": requests[0] if len(set(requests)) == 1 else requests,
        "requests_flat": len(set(requests)) == 1,
        "plans_correct": all(
            r["plan_is_the_window"] for m in per for r in m["layout"]["runs"] + ([m["full"]] if "full" in m else [])
        )
        if args.history_records
        else None,
        "floor_ratio": per[-1]["floor_ms"] / per[0]["floor_ms"],
        "per_request_ms": [round(1000 * b / r, 3) for b, r in zip(best, requests, strict=True)],
    }
    if args.full:
        full = [m["full"]["seconds"] for m in per]
        summary["full_s"] = full
        summary["full_ratio"] = max(full) / min(full)
    result["summary"] = summary
    _report(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
