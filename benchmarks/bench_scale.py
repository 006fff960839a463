"""A simulated sensor fleet through the queue drainer (coalesce mode), side by side with immediate mode.

``python -m benchmarks.bench_scale`` (``make bench-scale``):

1. **Coalesce mode.** One Azurite (blob, queue, table) and a fake Argo Server (plain HTTP) in a child
   process. A producer process enqueues ``blob_created_message`` events straight to the events queue
   (as Event Grid's StorageQueue endpoint does: the event carries the ETag, so no blobs are needed)
   at ``--sensors`` / 60 events per second (10,000 sensors × 1 chunk/min ≈ 167/s) for ``--seconds``,
   paced by the clock from ``--producer-threads`` threads. This process is the drainer: it calls
   :func:`function_app.drain.drain_once` with the real queue, ledger and ``ArgoBackend`` on the
   ``--interval`` grid (the timer's ``COALESCE_SCHEDULE``; a drain that overruns its slot makes the
   next start right after it), and keeps ticking after the producer stops until the queue is empty
   (or ``--max-tail-seconds`` have passed: reported). A drain that raises is recorded with where it
   raised, and the next tick goes on, as the timer would. The fake executes nothing: a thread in its process marks each created workflow
   Running, then Succeeded ``--run-seconds`` later, so the in-flight cap K (``COALESCE_MAX_IN_FLIGHT``)
   is what limits a drain.
2. **Immediate mode.** The same fleet rate for ``--immediate-seconds`` through
   :func:`function_app.submission.submit_chunks` (claim in the ledger, one workflow per chunk) from a
   pool of ``--immediate-threads`` threads (like concurrent blob-trigger invocations), against a
   fresh fake Argo Server.
3. **Profile** (``--profile``): one drain at full load (a queue holding the whole receive budget,
   K × N messages, nothing in flight) under cProfile, every thread of the drain profiled with a
   CPU-time clock and the profiles merged: the top 15 functions by cumulative CPU, and the CPU of
   each drain step.

Measured in the drainer process only (the producer, the fake Argo Server and Azurite each have their
own process; their CPU is reported apart): storage requests (every HTTP request an Azure SDK client
sends, counted per service at the transport), CPU time (``time.process_time``: every thread), and
from the fake, the workflows created and the most ever in flight. Latency is event time → the
acceptance of the chunk's workflow (``DrainReport.latencies``; in immediate mode, when
``submit_chunks`` returns), cross-checked with the creation time the fake records for each
workflow (which also covers chunks whose drain raised and lost its report). The wall time of each
drain step comes from ``drain_once``'s ``on_step`` hook.

Azurite is not Azure here: Azurite 3.35's queue (``LokiQueueMetadataStore``) runs
``clearExpiredMessages`` — a query over every message of the account, then a ``remove`` that makes
LokiJS re-sort its indices — on every receive and delete, so one delete costs Azurite ~3 µs of CPU
per message queued (~25 ms at 8,000 deep, measured with ``node --cpu-prof``). With 5,000 events per
30 s tick, Azurite's single thread, not the drainer, then sets the wall-clock pace (the report shows
both CPUs, and the drain's wall time by step); Azure Storage deletes do not depend on the depth.

Targets (the issue): ≤ 10 workflows per 1000 chunks at full load; in flight never above K;
p95 event → submit ≤ 2 × the drain interval; the drainer keeps up with 167 events/s on one core
(its CPU at that rate < 1 core, and every tick takes everything queued when it starts). The
machine is shared with Azurite, the producer and the fake: its size and load are printed; rerun if
the numbers look noisy. Results also go to ``.bench/scale.json`` (``--json``).
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import io
import json
import logging
import multiprocessing
import os
import platform
import pstats
import resource
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONTAINER = "sensor-data"
TEMPLATE = "sensorprocessingflow"
TOKEN = "bench-scale-token"  # noqa: S105  (the fake's token, not a credential)

# --------------------------------------------------------------------------- small helpers


def _pct(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _proc_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) of process ``pid`` so far, from /proc (Linux); None if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14 and 15 of stat)


def _azurite_cpu(azurite: Any) -> float | None:
    """CPU seconds of the Azurite (node) process so far; the launcher keeps its Popen private."""
    proc = getattr(azurite, "_proc", None)
    return _proc_cpu(proc.pid) if proc is not None else None


def _since(now: float | None, before: float | None) -> float | None:
    return None if now is None or before is None else now - before


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _machine() -> dict[str, Any]:
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def _chunk_name(i: int, sensors: int, day: int) -> str:
    return f"sensor-{i % sensors:05d}/2026/12/{day:02d}/{i // sensors:04d}.csv"


def _index_of(name: str, sensors: int) -> int:
    """Invert :func:`_chunk_name`: the event's index in the producer's sequence."""
    parts = name.split("/")
    return int(parts[-1].split(".")[0]) * sensors + int(parts[0].split("-")[1])


def _created_latencies(workflow_chunks: list[Any], times: Sequence[float | None], sensors: int) -> list[float]:
    """Seconds from each chunk's event to the creation of its workflow, as the fake Argo Server saw it."""
    out = []
    for created, names in workflow_chunks:
        for name in names:
            sent = times[_index_of(name, sensors)]
            if created is not None and sent is not None:
                out.append(created - sent)
    return out


def _raised_in(exc: BaseException) -> str:
    """Where in the project's code an exception came from: its innermost project frames."""
    import traceback

    frames = [
        f"{Path(f.filename).parent.name}/{Path(f.filename).name}:{f.lineno} {f.name}"
        for f in traceback.extract_tb(exc.__traceback__)
        if "/function_app/" in f.filename or "/chunk_contract/" in f.filename
    ]
    return f" (raised in {' <- '.join(reversed(frames[-3:]))})" if frames else ""


def _latency(values: Sequence[float], digits: int = 2) -> dict[str, Any]:
    return {
        "p50": _round(_pct(values, 50), digits),
        "p95": _round(_pct(values, 95), digits),
        "max": _round(max(values, default=None), digits),
        "count": len(values),
    }


def _etag() -> str:
    return "0x8DE" + uuid.uuid4().hex[:13].upper()


# --------------------------------------------------------------------------- storage request counting


class RequestCounter:
    """Counts every HTTP request the Azure SDK clients of this process send, by (service, method, status).

    Installed by wrapping ``azure.core.pipeline.transport.RequestsTransport.send`` (the transport
    every storage client here uses), so SDK retries count as the separate requests they are. The
    Argo backend talks through its own ``requests.Session`` and is not counted here (the fake counts it).
    """

    def __init__(self, ports: dict[int, str]) -> None:
        self.ports = ports
        self.counts: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self._lock = threading.Lock()
        self._original: Any = None

    def install(self) -> None:
        from urllib.parse import urlsplit

        from azure.core.pipeline.transport import RequestsTransport

        original = RequestsTransport.send
        self._original = original
        counter = self

        def counting_send(transport: Any, request: Any, **kwargs: Any) -> Any:
            service = counter.ports.get(urlsplit(request.url).port or 0, "other")
            status = "error"
            try:
                response = original(transport, request, **kwargs)
                status = str(response.status_code)
                return response
            finally:
                with counter._lock:
                    counter.counts[(service, request.method, status)] += 1

        RequestsTransport.send = counting_send

    def uninstall(self) -> None:
        from azure.core.pipeline.transport import RequestsTransport

        if self._original is not None:
            RequestsTransport.send = self._original
            self._original = None

    def snapshot(self) -> collections.Counter[tuple[str, str, str]]:
        with self._lock:
            return collections.Counter(self.counts)


def _by_service(delta: collections.Counter[tuple[str, str, str]]) -> dict[str, int]:
    out: dict[str, int] = collections.defaultdict(int)
    for (service, _, _), n in delta.items():
        out[service] += n
    return dict(out)


def _by_operation(delta: collections.Counter[tuple[str, str, str]]) -> dict[str, int]:
    out: dict[str, int] = collections.defaultdict(int)
    for (service, method, status), n in delta.items():
        out[f"{service} {method} {status}"] += n
    return dict(sorted(out.items()))


class _WarningCounter(logging.Handler):
    """Counts WARNING+ records by logger and keeps the first few, instead of printing them all."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.by_logger: collections.Counter[str] = collections.Counter()
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.by_logger[record.name] += 1
        if len(self.first) < 5:
            self.first.append(f"{record.name}: {record.getMessage()[:200]}")


# --------------------------------------------------------------------------- the fake Argo Server process


def _argo_main(conn: Any, token: str, run_seconds: float) -> None:
    """Child process: a fake Argo Server whose workflows 'run' for ``run_seconds`` (nothing executes)."""
    from tests.fakes.argo_server import FakeArgoServer

    fake = FakeArgoServer(token=token)
    fresh: collections.deque[tuple[float, str]] = collections.deque()
    running: collections.deque[tuple[float, str]] = collections.deque()
    stop = threading.Event()
    finished = [0]
    created_at: dict[str, float] = {}

    def on_created(workflow: dict[str, Any]) -> None:  # in the request thread: hand off at once
        created_at[workflow["metadata"]["name"]] = time.time()
        fresh.append((time.monotonic() + run_seconds, workflow["metadata"]["name"]))

    def complete() -> None:
        while not stop.is_set():
            while fresh:
                due, name = fresh.popleft()
                fake.set_phase(name, "Running")
                running.append((due, name))
            now = time.monotonic()
            while running and running[0][0] <= now:  # one run time for all: FIFO is due order
                fake.set_phase(running.popleft()[1], "Succeeded")
                finished[0] += 1
            stop.wait(0.02)

    fake.on_created = on_created
    fake.start()
    completer = threading.Thread(target=complete, name="fake-argo-completer", daemon=True)
    completer.start()
    conn.send(fake.url)
    while True:
        command = conn.recv()
        chunks: list[str] = []
        sizes: list[int] = []
        per_workflow: list[tuple[float | None, list[str]]] = []
        with fake._lock:
            created = list(fake.created)
            routes = collections.Counter(str(r.route) for r in fake.requests)
            statuses = collections.Counter(f"{r.route} {r.status}" for r in fake.requests)
        for wf in created:
            params = {p["name"]: p["value"] for p in wf["spec"]["arguments"]["parameters"]}
            names = json.loads(json.loads(params["chunks"]))
            chunks.extend(names)
            sizes.append(len(names))
            per_workflow.append((created_at.get(wf["metadata"]["name"]), names))
        conn.send(
            {
                "created": len(created),
                "chunk_names": chunks,
                "workflow_chunks": per_workflow,
                "batch_sizes": sizes,
                "max_in_flight": fake.max_in_flight(TEMPLATE),
                "in_flight": fake.in_flight(TEMPLATE),
                "finished": finished[0],
                "requests": dict(routes),
                "statuses": dict(statuses),
                "hook_errors": [repr(e) for e in fake.hook_errors[:3]],
                "cpu_s": _child_cpu(),
            }
        )
        if command == "stop":
            break
    stop.set()
    completer.join(timeout=5)
    fake.stop()


class ArgoProcess:
    """The fake Argo Server in its own process, so its CPU is not the drainer's."""

    def __init__(self, run_seconds: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_argo_main, args=(child, TOKEN, run_seconds), daemon=True, name="fake-argo")
        self.url = ""

    def __enter__(self) -> ArgoProcess:
        self._proc.start()
        if not self._conn.poll(60):
            raise RuntimeError("the fake Argo Server process did not start within 60 s")
        self.url = self._conn.recv()
        return self

    def stats(self) -> dict[str, Any]:
        self._conn.send("stats")
        result: dict[str, Any] = self._conn.recv()
        return result

    def stop(self) -> dict[str, Any]:
        self._conn.send("stop")
        result: dict[str, Any] = self._conn.recv()
        self._proc.join(timeout=10)
        return result

    def __exit__(self, *exc: object) -> None:
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout=10)


# --------------------------------------------------------------------------- the producer process


@dataclass
class ProducerPlan:
    connection_string: str
    queue_name: str
    total: int
    rate: float
    threads: int
    start_at: float  # time.time() of the first event
    sensors: int
    day: int


def _produce_main(plan: ProducerPlan, sent: Any, conn: Any) -> None:
    """Child process: enqueue ``plan.total`` events at ``plan.rate``/s, paced by the clock."""
    from azure.storage.queue import QueueClient

    from function_app.queue_messages import blob_created_message

    clients = [QueueClient.from_connection_string(plan.connection_string, plan.queue_name) for _ in range(plan.threads)]
    for client in clients:
        client.get_queue_properties()  # open the connection before the clock starts
    lock = threading.Lock()
    cursor = [0]
    lags: list[float] = []
    failed: list[int] = []
    first_last = [float("inf"), 0.0]
    times: list[float | None] = [None] * plan.total

    def run(client: Any) -> None:
        while True:
            with lock:
                i = cursor[0]
                cursor[0] += 1
            if i >= plan.total:
                return
            due = plan.start_at + i / plan.rate
            wait = due - time.time()
            if wait > 0:
                time.sleep(wait)
            now = time.time()
            content = blob_created_message(
                container=CONTAINER,
                name=_chunk_name(i, plan.sensors, plan.day),
                etag=_etag(),
                event_time=datetime.fromtimestamp(now, UTC),
            )
            try:
                client.send_message(content, time_to_live=-1)
            except Exception:  # counted and reported; the rest of the fleet goes on
                with lock:
                    failed.append(i)
                continue
            with lock:
                times[i] = now
                lags.append(now - due)
                first_last[0] = min(first_last[0], now)
                first_last[1] = max(first_last[1], time.time())
                sent.value += 1

    cpu0 = _child_cpu()
    workers = [threading.Thread(target=run, args=(c,), name=f"producer-{n}") for n, c in enumerate(clients)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    span = first_last[1] - first_last[0] if lags else 0.0
    conn.send(
        {
            "sent": len(lags),
            "failed": sorted(failed),
            "first_send": first_last[0] if lags else None,
            "last_send": first_last[1] if lags else None,
            "achieved_rate": round((len(lags) - 1) / span, 1) if span > 0 else None,
            "lag_p95_ms": round((_pct(lags, 95) or 0.0) * 1000, 1),
            "lag_max_ms": round(max(lags, default=0.0) * 1000, 1),
            "cpu_s": round(_child_cpu() - cpu0, 2),
            "event_times": times,
        }
    )


class Producer:
    def __init__(self, plan: ProducerPlan) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.sent = ctx.Value("q", 0)
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_produce_main, args=(plan, self.sent, child), daemon=True, name="producer")
        self.result: dict[str, Any] | None = None

    def start(self) -> None:
        self._proc.start()

    def done(self) -> bool:
        if self.result is None and self._conn.poll():
            self.result = self._conn.recv()
        return self.result is not None

    def wait(self, timeout: float) -> dict[str, Any]:
        if self.result is None:
            if not self._conn.poll(timeout):
                raise RuntimeError(f"the producer did not finish within {timeout:.0f} s")
            self.result = self._conn.recv()
        self._proc.join(timeout=10)
        assert self.result is not None
        return self.result

    def count(self) -> int:
        return int(self.sent.value)

    def kill(self) -> None:
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout=10)


# --------------------------------------------------------------------------- settings


def _settings(connection_string: str, argo_url: str, args: argparse.Namespace, **extra: str) -> Any:
    from function_app.settings import load_settings

    env = {
        "SENSOR_STORAGE": connection_string,
        "SENSOR_CONTAINER": CONTAINER,
        "ARGO_SERVER_URL": argo_url,
        "ARGO_TOKEN": TOKEN,
        "ARGO_WORKFLOW_TEMPLATE": TEMPLATE,
        "COALESCE_MAX_IN_FLIGHT": str(args.max_in_flight),
        "COALESCE_MAX_CHUNKS": str(args.max_chunks),
        **extra,
    }
    return load_settings(env)


def _no_etag_lookup(container: str, name: str) -> str | None:
    raise AssertionError(f"every event carries its ETag: no blob lookup expected ({container}/{name})")


# --------------------------------------------------------------------------- coalesce mode


@dataclass
class Tick:
    index: int
    offset_s: float  # start, seconds after the first event
    late_s: float  # how far past its grid point it started (an overrun of the previous drain)
    wall_s: float
    cpu_s: float
    queued_at_start: int  # the queue's depth (visible and hidden messages) when the drain started
    in_flight: int | None
    budget: int
    backpressure: bool
    received: int
    workflows: int
    chunks: int
    accounted: int  # messages this drain deleted from the events queue (DELETE 204 at the transport)
    backlog_after: int  # the queue's depth when the drain ended
    during_load: bool  # started while the producer was still sending
    azurite_cpu_s: float | None = None  # Azurite's CPU during this drain (it serves the producer too)
    sent_during: int = 0  # events the producer sent while this drain ran
    phases_s: dict[str, float] = field(default_factory=dict)  # wall per drain step (from on_step)
    requests: dict[str, int] = field(default_factory=dict)
    error: str | None = None


# drain_once's on_step boundaries -> the step whose wall time ends there (see function_app.drain.STEPS)
_PHASE_OF_STEP = {
    "counted": "count",
    "received": "receive",
    "sorted": "sort",
    "claimed": "claim",
    "manifest": "between batches",
    "submitted": "manifest+submit",
    "accepted": "accept",
    "deleted": "delete",
}


class StepClock:
    """``on_step`` for drain_once: wall seconds spent in each step, summed over the batches."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.phases: dict[str, float] = collections.defaultdict(float)

    def __call__(self, step: str) -> None:
        now = time.perf_counter()
        self.phases[_PHASE_OF_STEP.get(step, step)] += now - self.last
        self.last = now

    def finish(self) -> dict[str, float]:
        self.phases["rest"] += time.perf_counter() - self.last
        return {k: round(v, 3) for k, v in self.phases.items()}


def run_coalesce(azurite: Any, counter: RequestCounter, args: argparse.Namespace) -> dict[str, Any]:
    from function_app.argo_backend import ArgoBackend
    from function_app.drain import drain_once
    from function_app.storage import event_queue, ledger

    total = round(args.rate * args.seconds)
    with ArgoProcess(args.run_seconds) as argo:
        settings = _settings(
            azurite.connection_string,
            argo.url,
            args,
            SUBMIT_MODE="coalesce",
            SENSOR_EVENTS_QUEUE="bench-events",
            SENSOR_LEDGER_TABLE="benchcoalesce",
        )
        queue = event_queue(settings)  # creates both queues
        led = ledger(settings)
        led.ensure_table()
        backend = ArgoBackend(settings)
        backend.count_in_flight(TEMPLATE, 1)  # open the connection before the clock starts
        start_at = time.time() + 3.0  # the producer process needs ~1-2 s to import the SDK
        producer = Producer(
            ProducerPlan(
                azurite.connection_string, settings.events_queue, total, args.rate, args.producer_threads,
                start_at, args.sensors, 1,
            )
        )  # fmt: skip
        producer.start()
        azurite_cpu0 = _azurite_cpu(azurite)
        ticks: list[Tick] = []
        latencies: list[float] = []
        accounted = 0  # messages deleted from the events queue (DELETE 204 at the transport)
        report_accounted = 0  # the same from the DrainReports (lost when a drain raises)
        drained_all = False
        tail_since: float | None = None
        k = 1
        try:
            while True:
                due = start_at + k * args.interval
                if time.time() < due:
                    time.sleep(due - time.time())
                started_wall = time.time()
                during_load = not producer.done()
                depth_before = queue.depth()
                sent_before = producer.count()
                before = counter.snapshot()
                az0 = _azurite_cpu(azurite)
                cpu0, t0 = time.process_time(), time.perf_counter()
                error = None
                clock = StepClock()
                try:
                    report = drain_once(
                        settings, queue=queue, ledger=led, backend=backend, etag_of=_no_etag_lookup, on_step=clock
                    )
                except Exception as exc:  # the timer would log it and tick again: so do we
                    from function_app.drain import DrainReport

                    report, error = DrainReport(), f"{type(exc).__name__}: {exc}"[:300] + _raised_in(exc)
                wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
                az = _since(_azurite_cpu(azurite), az0)
                delta = counter.snapshot() - before
                done = delta[("queue", "DELETE", "204")]
                accounted += done
                report_accounted += report.deleted + report.poisoned + report.ignored
                latencies.extend(report.latencies)
                depth_after = queue.depth()
                ticks.append(
                    Tick(
                        index=k,
                        offset_s=round(started_wall - start_at, 2),
                        late_s=round(max(0.0, started_wall - due), 2),
                        wall_s=round(wall, 3),
                        cpu_s=round(cpu, 3),
                        queued_at_start=depth_before,
                        in_flight=report.in_flight,
                        budget=report.budget,
                        backpressure=report.backpressure,
                        received=report.received,
                        workflows=len(report.workflows),
                        chunks=report.chunks_submitted,
                        accounted=done,
                        backlog_after=depth_after,
                        during_load=during_load,
                        azurite_cpu_s=_round(az, 3),
                        sent_during=producer.count() - sent_before,
                        phases_s=clock.finish(),
                        requests=_by_operation(delta),
                        error=error,
                    )
                )
                if not args.quiet:
                    t = ticks[-1]
                    print(
                        f"  tick {k:>2} at {t.offset_s:6.1f} s: queued {t.queued_at_start:>5}, in flight {t.in_flight}, "
                        f"budget {t.budget:>5}, received {t.received:>5}, {t.workflows:>3} workflows, "
                        f"{t.wall_s:6.2f} s wall, {t.cpu_s:6.2f} s CPU, queued after {t.backlog_after:>5}"
                        + (f"  ERROR {error}" if error else ""),
                        flush=True,
                    )
                    steps = ", ".join(f"{name} {sec:.2f}" for name, sec in t.phases_s.items() if sec >= 0.005)
                    print(
                        f"          wall by step (s): {steps or '-'}; Azurite CPU {_fmt(t.azurite_cpu_s)} s, "
                        f"{t.sent_during} events sent meanwhile",
                        flush=True,
                    )
                if producer.done():
                    if depth_after == 0:
                        drained_all = True
                        break
                    tail_since = tail_since or time.time()
                    if time.time() - tail_since > args.max_tail_seconds:
                        break
                if len(ticks) >= args.max_ticks:
                    break
                # The next grid point; after an overrun, the one just missed (so it starts at once), never a burst.
                k = max(k + 1, int((time.time() - start_at) // args.interval))
            produced = producer.wait(timeout=max(60.0, args.seconds * 2))
        finally:
            producer.kill()
        end_wall = time.time()
        azurite_cpu = _since(_azurite_cpu(azurite), azurite_cpu0)
        visible_left = len(list(queue.queue.peek_messages(max_messages=32)))
        left_in_queue = queue.depth()
        poison_left = queue.poison_depth()
        argo_stats = argo.stop()

    names = argo_stats["chunk_names"]
    expected = {_chunk_name(i, args.sensors, 1) for i in range(total)} - {
        _chunk_name(i, args.sensors, 1) for i in produced["failed"]
    }
    delta_total: collections.Counter[str] = collections.Counter()
    for t in ticks:
        for op, n in t.requests.items():
            delta_total[op] += n
    per_service: dict[str, int] = collections.defaultdict(int)
    for op, n in delta_total.items():
        per_service[op.split()[0]] += n
    drain_cpu = sum(t.cpu_s for t in ticks)
    drain_wall = sum(t.wall_s for t in ticks)
    az_drains = sum(t.azurite_cpu_s or 0.0 for t in ticks)
    by_step: dict[str, float] = collections.defaultdict(float)
    for t in ticks:
        for name, sec in t.phases_s.items():
            by_step[name] += sec
    drain_requests = sum(delta_total.values())
    sent_in_drains = sum(t.sent_during for t in ticks)
    load = [t for t in ticks if t.during_load]
    load_workflows = sum(t.workflows for t in load)
    load_chunks = sum(t.chunks for t in load)
    events = max(accounted, 1)
    left_behind = [max(0, t.queued_at_start - t.received) for t in load]
    return {
        "events_planned": total,
        "producer": produced,
        "ticks": [asdict(t) for t in ticks],
        "drained_all": drained_all,
        "accounted": accounted,
        "accounted_by_reports": report_accounted,
        "left_in_queue": left_in_queue,
        "visible_left_in_queue": visible_left,
        "poison_queue_depth": poison_left,
        "chunks_in_workflows": len(names),
        "distinct_chunks_in_workflows": len(set(names)),
        "chunks_submitted_twice": len(names) - len(set(names)),
        "produced_chunks_missing_from_workflows": len(expected - set(names)),
        "workflows": argo_stats["created"],
        "batch_sizes": {
            "min": min(argo_stats["batch_sizes"], default=0),
            "median": _pct(argo_stats["batch_sizes"], 50),
            "max": max(argo_stats["batch_sizes"], default=0),
        },
        "workflows_per_1000_chunks": round(1000 * argo_stats["created"] / max(len(names), 1), 2),
        "workflows_per_1000_chunks_full_load": round(1000 * load_workflows / load_chunks, 2) if load_chunks else None,
        "max_in_flight": argo_stats["max_in_flight"],
        "latency_s": _latency(latencies),
        "latency_to_created_s": _latency(
            _created_latencies(argo_stats["workflow_chunks"], produced.pop("event_times"), args.sensors)
        ),
        "storage_requests": dict(delta_total),
        "storage_requests_per_event": {k: round(v / events, 3) for k, v in sorted(per_service.items())},
        "storage_requests_per_event_total": round(sum(per_service.values()) / events, 3),
        "argo_requests": argo_stats["requests"],
        "argo_requests_per_event": round(sum(argo_stats["requests"].values()) / events, 4),
        "argo_statuses": argo_stats["statuses"],
        "drain_cpu_s": round(drain_cpu, 2),
        "drain_wall_s": round(drain_wall, 2),
        "drain_wall_by_step_s": {k: round(v, 2) for k, v in by_step.items()},
        "cpu_ms_per_event": round(1000 * drain_cpu / events, 3),
        "cores_at_rate": round(drain_cpu / events * args.rate, 3),
        "cpu_per_wall_during_drains": round(drain_cpu / drain_wall, 3) if drain_wall else None,
        "cpu_per_wall_over_run": round(drain_cpu / max(end_wall - start_at, 1e-9), 3),
        "drain_events_per_wall_s": round(accounted / drain_wall, 1) if drain_wall else None,
        "budget_capacity_per_s": round(args.max_in_flight * args.max_chunks / args.interval, 1),
        "overruns": sum(1 for t in ticks if t.late_s > 0.5),
        "max_drain_wall_s": max((t.wall_s for t in ticks), default=0.0),
        "backpressure_ticks": sum(1 for t in ticks if t.backpressure),
        "tick_errors": [t.error for t in ticks if t.error],
        "left_behind_during_load": left_behind,
        "backlog_after_ticks": [t.backlog_after for t in ticks],
        "run_wall_s": round(end_wall - start_at, 1),
        "azurite_cpu_s": _round(azurite_cpu),
        "azurite_cpu_during_drains_s": round(az_drains, 2),
        "azurite_cpu_per_drain_wall": round(az_drains / drain_wall, 3) if drain_wall else None,
        "azurite_cpu_ms_per_request_during_drains": round(
            1000 * az_drains / max(drain_requests + sent_in_drains, 1), 2
        ),
        "argo_process_cpu_s": round(argo_stats["cpu_s"], 2),
        "argo_hook_errors": argo_stats["hook_errors"],
        "fake_finished": argo_stats["finished"],
    }


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


# --------------------------------------------------------------------------- immediate mode


def run_immediate(azurite: Any, counter: RequestCounter, args: argparse.Namespace) -> dict[str, Any]:
    from function_app.argo_backend import ArgoBackend
    from function_app.storage import ledger
    from function_app.submission import submit_chunks

    total = round(args.rate * args.immediate_seconds)
    with ArgoProcess(args.run_seconds) as argo:
        settings = _settings(
            azurite.connection_string, argo.url, args, SUBMIT_MODE="immediate", SENSOR_LEDGER_TABLE="benchimmediate"
        )
        led = ledger(settings)
        led.ensure_table()
        backend = ArgoBackend(settings)
        backend.count_in_flight(TEMPLATE, 1)  # open the connection before the clock starts
        latencies: list[float] = []
        errors: list[str] = []
        azurite_cpu0 = _azurite_cpu(azurite)

        def invoke(name: str, etag: str, event_time: datetime) -> None:
            try:
                submit_chunks(settings, "blob", [name], [etag], ledger=led, backend=backend)
            except Exception as exc:  # an invocation failure: the host would retry; we count it
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                return
            latencies.append((datetime.now(UTC) - event_time).total_seconds())

        before = counter.snapshot()
        cpu0, t0 = time.process_time(), time.perf_counter()
        start = time.time() + 0.2
        lags: list[float] = []
        times: list[float | None] = [None] * total
        with ThreadPoolExecutor(args.immediate_threads, thread_name_prefix="invocation") as pool:
            for i in range(total):
                due = start + i / args.rate
                if time.time() < due:
                    time.sleep(due - time.time())
                now = time.time()
                lags.append(now - due)
                times[i] = now
                pool.submit(invoke, _chunk_name(i, args.sensors, 2), _etag(), datetime.fromtimestamp(now, UTC))
            dispatched = (times[-1] or 0.0) - (times[0] or 0.0) if total > 1 else 0.0
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        delta = counter.snapshot() - before
        azurite_cpu = _since(_azurite_cpu(azurite), azurite_cpu0)
        argo_stats = argo.stop()
    events = max(len(latencies), 1)
    per_service = _by_service(delta)
    names = argo_stats["chunk_names"]
    return {
        "events": total,
        "submitted": len(latencies),
        "errors": errors[:5],
        "error_count": len(errors),
        "dispatch_rate": round((total - 1) / dispatched, 1) if dispatched else None,
        "dispatch_lag_max_ms": round(max(lags, default=0.0) * 1000, 1),
        "wall_s": round(wall, 2),
        "workflows": argo_stats["created"],
        "chunks_submitted_twice": len(names) - len(set(names)),
        "workflows_per_1000_chunks": round(1000 * argo_stats["created"] / max(len(names), 1), 2),
        "max_in_flight": argo_stats["max_in_flight"],
        "latency_s": _latency(latencies, 3),
        "latency_to_created_s": _latency(_created_latencies(argo_stats["workflow_chunks"], times, args.sensors), 3),
        "storage_requests": _by_operation(delta),
        "storage_requests_per_event": {k: round(v / events, 3) for k, v in sorted(per_service.items())},
        "storage_requests_per_event_total": round(sum(per_service.values()) / events, 3),
        "argo_requests": argo_stats["requests"],
        "argo_requests_per_event": round(sum(argo_stats["requests"].values()) / events, 4),
        "cpu_s": round(cpu, 2),
        "cpu_ms_per_event": round(1000 * cpu / events, 3),
        "cores_at_rate": round(cpu / events * args.rate, 3),
        "azurite_cpu_s": _round(azurite_cpu),
        "argo_process_cpu_s": round(argo_stats["cpu_s"], 2),
    }


# --------------------------------------------------------------------------- profile of one drain


@contextmanager
def _profiled_pool_map(profiles: list[cProfile.Profile]) -> Iterator[None]:
    """Profile the drain's I/O pool threads too: each call runs under its thread's own profiler.

    ``drain._pool_map`` is replaced for the profiled drain only (this process, restored after);
    the pool itself, its size and the work are unchanged.
    """
    import function_app.drain as drain_module

    original: Callable[[Callable[[Any], Any], Sequence[Any]], list[Any]] = drain_module._pool_map
    local = threading.local()
    lock = threading.Lock()

    def profiled(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        def run(item: Any) -> Any:
            if threading.current_thread() is threading.main_thread():
                return fn(item)  # the main thread's profiler sees it already
            prof = getattr(local, "prof", None)
            if prof is None:
                prof = local.prof = cProfile.Profile(time.thread_time)
                with lock:
                    profiles.append(prof)
            prof.enable()
            try:
                return fn(item)
            finally:
                prof.disable()

        return original(run, items)

    drain_module._pool_map = profiled
    try:
        yield
    finally:
        drain_module._pool_map = original  # type: ignore[assignment]


# (file suffix, function) -> label: the drain's steps and the layers under them (cumulative CPU nests)
_ATTRIBUTION = (
    ("function_app/drain.py", "run", "drain: all of it, main thread"),
    ("function_app/argo_backend.py", "count_in_flight", "  1 count in flight (Argo list)"),
    ("function_app/event_queue.py", "receive", "  2 receive (queue GET, 32 per page)"),
    ("function_app/coalesce.py", "sort_messages", "  3 sort_messages (decode)"),
    ("function_app/queue_messages.py", "decode_message", "      decode_message"),
    ("function_app/coalesce.py", "group_batches", "  5 group_batches"),
    ("function_app/claims.py", "settle", "  5 claim: ClaimBook.settle (pool)"),
    ("chunk_contract/ledger.py", "claim", "      Ledger.claim (table insert)"),
    ("function_app/submission.py", "decide", "  5 decide (submission body)"),
    ("chunk_contract/ledger.py", "create_manifest", "  6 manifest create (table insert)"),
    ("function_app/argo_backend.py", "submit", "  6 submit (Argo POST)"),
    ("chunk_contract/ledger.py", "set_manifest_state", "  6 manifest accepted (table merge)"),
    ("function_app/drain.py", "_delete_all", "  6 delete messages (pool)"),
    ("function_app/event_queue.py", "delete", "      EventQueue.delete (queue DELETE)"),
    ("benchmarks/bench_scale.py", "counting_send", "  azure-core transport send (all storage HTTP)"),
    ("azure/core/pipeline/_base.py", "run", "  azure-core pipeline run (policies + transport)"),
)


def _stats_lines(stats: pstats.Stats, key: str, limit: int) -> list[str]:
    """The table of ``print_stats`` sorted by ``key``, paths shortened to the repo / site-packages."""
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats(key).print_stats(limit)
    text = out.getvalue()
    for prefix in sorted(
        {str(ROOT) + "/", *(p + "/" for p in sys.path if "site-packages" in p)}, key=len, reverse=True
    ):
        text = text.replace(prefix, "")
    lines = [line for line in text.splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    return lines[start:]


def run_profile(azurite: Any, counter: RequestCounter, args: argparse.Namespace) -> dict[str, Any]:
    from function_app.argo_backend import ArgoBackend
    from function_app.drain import drain_once
    from function_app.storage import event_queue, ledger

    budget = args.max_in_flight * args.max_chunks
    with ArgoProcess(args.run_seconds) as argo:
        settings = _settings(
            azurite.connection_string,
            argo.url,
            args,
            SUBMIT_MODE="coalesce",
            SENSOR_EVENTS_QUEUE="bench-profile",
            SENSOR_LEDGER_TABLE="benchprofile",
        )
        queue = event_queue(settings)
        led = ledger(settings)
        led.ensure_table()
        backend = ArgoBackend(settings)
        backend.count_in_flight(TEMPLATE, 1)
        producer = Producer(
            ProducerPlan(
                azurite.connection_string, settings.events_queue, budget, 100_000.0, 8, time.time() + 2.0,
                args.sensors, 3,
            )
        )  # fmt: skip
        producer.start()
        filled = producer.wait(timeout=600)
        profiles: list[cProfile.Profile] = []
        main_prof = cProfile.Profile(time.thread_time)
        before = counter.snapshot()
        cpu0, t0 = time.process_time(), time.perf_counter()
        with _profiled_pool_map(profiles):
            main_prof.enable()
            try:
                report = drain_once(settings, queue=queue, ledger=led, backend=backend, etag_of=_no_etag_lookup)
            finally:
                main_prof.disable()
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        delta = counter.snapshot() - before
        argo.stop()
    stats = pstats.Stats(main_prof)
    for prof in profiles:
        stats.add(prof)
    top_cumulative = _stats_lines(stats, "cumulative", 15)
    top_own = _stats_lines(stats, "tottime", 12)
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    events = max(report.received, 1)
    profiled_cpu = sum(v[2] for v in raw.values())  # tottime summed: every thread's CPU once
    attribution = []
    for suffix, func, label in _ATTRIBUTION:
        cum = sum(v[3] for (path, _, name), v in raw.items() if path.endswith(suffix) and name == func)
        calls = sum(v[1] for (path, _, name), v in raw.items() if path.endswith(suffix) and name == func)
        attribution.append(
            {
                "step": label,
                "calls": calls,
                "cpu_ms": round(cum * 1000, 1),
                "cpu_ms_per_event": round(cum * 1000 / events, 3),
                "share": round(cum / max(profiled_cpu, 1e-9), 3),
            }
        )
    return {
        "filled": filled["sent"],
        "received": report.received,
        "workflows": len(report.workflows),
        "wall_s": round(wall, 2),
        "cpu_s_with_profiler": round(cpu, 2),
        "profiled_cpu_s": round(profiled_cpu, 2),
        "threads_profiled": len(profiles) + 1,
        "storage_requests": _by_operation(delta),
        "top15_cumulative": top_cumulative,
        "top12_own_time": top_own,
        "attribution": attribution,
    }


# --------------------------------------------------------------------------- report


def _fmt(value: Any, spec: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and spec:
        return format(value, spec)
    return str(value)


def _verdicts(c: dict[str, Any], args: argparse.Namespace) -> list[tuple[str, bool, str]]:
    full = c["workflows_per_1000_chunks_full_load"]
    complete = c["latency_s"]["count"] >= c["chunks_in_workflows"]
    # DrainReport.latencies, unless a drain raised and took its report along: then the fake's creation times
    p95 = c["latency_s"]["p95"] if complete else c["latency_to_created_s"]["p95"]
    p95_source = "DrainReport" if complete else "workflow creation at the fake (a drain raised: its report was lost)"
    left = c["left_behind_during_load"]
    keeps_cpu = c["cores_at_rate"] < 1.0
    keeps_queue = c["drained_all"] and not any(left) and c["overruns"] == 0
    return [
        (
            "workflows per 1000 chunks at full load <= 10",
            full is not None and full <= 10,
            f"{_fmt(full)} at full load ({c['workflows_per_1000_chunks']} over the whole run, tail included)",
        ),
        (
            f"in flight never above K={args.max_in_flight}",
            c["max_in_flight"] <= args.max_in_flight,
            f"most in flight {c['max_in_flight']}",
        ),
        (
            f"p95 event -> submit <= 2 x interval = {2 * args.interval:g} s",
            p95 is not None and p95 <= 2 * args.interval,
            f"p95 {_fmt(p95)} s ({p95_source})",
        ),
        (
            f"drainer keeps up with {args.rate:.0f} events/s on one core",
            keeps_cpu and keeps_queue,
            f"drainer CPU {c['cores_at_rate']:.3f} core at that rate ({'ok' if keeps_cpu else 'over'}); "
            f"receive budget K x N / interval {c['budget_capacity_per_s']:g} events/s "
            f"({'ok' if c['budget_capacity_per_s'] >= args.rate else 'short'}); observed: events left behind by "
            f"the ticks during the load {left}, {c['overruns']} overrun(s), longest drain {c['max_drain_wall_s']:g} s, "
            f"queue drained {'yes' if c['drained_all'] else 'NO'}; during drains the drainer used "
            f"{_fmt(c['cpu_per_wall_during_drains'])} and Azurite {_fmt(c['azurite_cpu_per_drain_wall'])} of a core",
        ),
    ]


def print_report(result: dict[str, Any], args: argparse.Namespace) -> bool:
    c, i = result["coalesce"], result.get("immediate")
    print()
    print(
        f"Fleet: {args.sensors} sensors, {args.rate:.1f} events/s; coalesce {args.seconds:g} s, drain every "
        f"{args.interval:g} s, K={args.max_in_flight}, N={args.max_chunks}, run time {args.run_seconds:g} s; "
        f"immediate {args.immediate_seconds:g} s on {args.immediate_threads} threads"
    )
    rows: list[tuple[str, str, str, str]] = [
        ("events produced", _fmt(c["producer"]["sent"]), _fmt(i and i["submitted"]), ""),
        (
            "achieved event rate /s",
            _fmt(c["producer"]["achieved_rate"]),
            _fmt(i and i["dispatch_rate"]),
            f"{args.rate:.1f}",
        ),
        ("workflows created", _fmt(c["workflows"]), _fmt(i and i["workflows"]), ""),
        (
            "workflows per 1000 chunks (full load)",
            _fmt(c["workflows_per_1000_chunks_full_load"]),
            _fmt(i and i["workflows_per_1000_chunks"]),
            "<= 10",
        ),
        ("workflows per 1000 chunks (whole run)", _fmt(c["workflows_per_1000_chunks"]), "", ""),
        (
            "most workflows in flight",
            _fmt(c["max_in_flight"]),
            _fmt(i and i["max_in_flight"]),
            f"<= {args.max_in_flight}",
        ),
        ("p50 event -> submit, s", _fmt(c["latency_s"]["p50"]), _fmt(i and i["latency_s"]["p50"]), ""),
        (
            "p95 event -> submit, s",
            _fmt(c["latency_s"]["p95"]),
            _fmt(i and i["latency_s"]["p95"]),
            f"<= {2 * args.interval:g}",
        ),
        ("max event -> submit, s", _fmt(c["latency_s"]["max"]), _fmt(i and i["latency_s"]["max"]), ""),
        (
            "chunks with a latency / in workflows",
            f"{c['latency_s']['count']} / {c['chunks_in_workflows']}",
            f"{i['latency_s']['count']} / {i['workflows']}" if i else "",
            "",
        ),
        (
            "p50 / p95 event -> created (fake), s",
            f"{_fmt(c['latency_to_created_s']['p50'])} / {_fmt(c['latency_to_created_s']['p95'])}",
            f"{_fmt(i['latency_to_created_s']['p50'])} / {_fmt(i['latency_to_created_s']['p95'])}" if i else "",
            "",
        ),
    ]
    services = sorted(set(c["storage_requests_per_event"]) | set(i["storage_requests_per_event"] if i else ()))
    for s in services:
        rows.append(
            (
                f"storage requests/event: {s}",
                _fmt(c["storage_requests_per_event"].get(s, 0.0)),
                _fmt(i and i["storage_requests_per_event"].get(s, 0.0)),
                "",
            )
        )
    rows += [
        (
            "storage requests/event: total",
            _fmt(c["storage_requests_per_event_total"]),
            _fmt(i and i["storage_requests_per_event_total"]),
            "",
        ),
        ("Argo requests/event", _fmt(c["argo_requests_per_event"]), _fmt(i and i["argo_requests_per_event"]), ""),
        ("CPU ms/event (drainer process)", _fmt(c["cpu_ms_per_event"]), _fmt(i and i["cpu_ms_per_event"]), ""),
        (f"cores needed at {args.rate:.0f} events/s", _fmt(c["cores_at_rate"]), _fmt(i and i["cores_at_rate"]), "< 1"),
        ("drainer CPU / wall during drains", _fmt(c["cpu_per_wall_during_drains"]), "", ""),
        ("Azurite CPU / wall during drains", _fmt(c["azurite_cpu_per_drain_wall"]), "", ""),
        (
            "Azurite CPU ms/request during drains",
            _fmt(c["azurite_cpu_ms_per_request_during_drains"]),
            "",
            "",
        ),
        ("drain throughput, events/s of drain wall", _fmt(c["drain_events_per_wall_s"]), "", f">= {args.rate:.0f}"),
        ("longest drain, s", _fmt(c["max_drain_wall_s"]), "", f"< {args.interval:g}"),
        ("ticks / overruns / backpressure", f"{len(c['ticks'])} / {c['overruns']} / {c['backpressure_ticks']}", "", ""),
        ("drain errors", _fmt(len(c["tick_errors"])), _fmt(i and i["error_count"]), "0"),
        ("queue depth at the end of each tick", " ".join(map(str, c["backlog_after_ticks"])), "", ""),
        ("budget capacity K x N / interval, ev/s", _fmt(c["budget_capacity_per_s"]), "", f">= {args.rate:.0f}"),
        (
            "CPU s: Azurite / fake Argo / producer",
            _others(c, c["producer"]["cpu_s"]),
            _others(i, None) if i else "",
            "",
        ),
    ]
    w0, w1, w2 = max(len(r[0]) for r in rows) + 2, 18, 18
    print(f"{'metric':<{w0}}{'coalesce':>{w1}}{'immediate':>{w2}}   target")
    for name, a, b, target in rows:
        print(f"{name:<{w0}}{a:>{w1}}{b:>{w2}}   {target}")
    steps = c["drain_wall_by_step_s"]
    total = sum(steps.values()) or 1.0
    print(
        "coalesce drain wall by step: "
        + ", ".join(f"{name} {sec:g} s ({sec / total:.0%})" for name, sec in steps.items() if sec >= 0.01)
    )
    ok_all = True
    print()
    for label, ok, detail in _verdicts(c, args):
        ok_all &= ok
        print(f"[{'PASS' if ok else 'MISS'}] {label}: {detail}")
    checks = [
        (
            f"every produced event accounted for (queue empty: {c['left_in_queue']} left; deleted "
            f"{c['accounted']} of {c['producer']['sent']}; chunks missing from workflows: "
            f"{c['produced_chunks_missing_from_workflows']})",
            c["drained_all"] and c["produced_chunks_missing_from_workflows"] == 0,
        ),
        ("no chunk in two workflows", c["chunks_submitted_twice"] == 0),
    ]
    for error in c["tick_errors"][:3]:
        print(f"[ERROR] a drain raised: {error}")
    for label, ok in checks:
        print(f"[{'ok' if ok else 'FAIL'}] {label}")
    achieved = c["producer"]["achieved_rate"] or 0.0
    if achieved < 0.95 * args.rate:
        print(
            f"[WARN] the producer reached {achieved:g} events/s of {args.rate:.1f} (send lag p95 "
            f"{c['producer']['lag_p95_ms']} ms, max {c['producer']['lag_max_ms']} ms): Azurite, busy with the "
            f"drains ({_fmt(c['azurite_cpu_per_drain_wall'])} of a core during them), answered its sends late, "
            "so the offered load was below the fleet's"
        )
    return ok_all


def _others(block: dict[str, Any] | None, producer_cpu: float | None) -> str:
    if block is None:
        return ""
    parts = [_fmt(block.get("azurite_cpu_s")), _fmt(block.get("argo_process_cpu_s"))]
    parts.append(_fmt(producer_cpu) if producer_cpu is not None else "-")
    return " / ".join(parts)


def print_profile(p: dict[str, Any], coalesce: dict[str, Any] | None) -> None:
    print()
    print(
        f"Profile of one drain at full load: {p['received']} messages received, {p['workflows']} workflows, "
        f"{p['wall_s']} s wall, {p['cpu_s_with_profiler']} s CPU with the profiler on "
        f"({p['threads_profiled']} threads, CPU-time clock, merged)"
    )
    if coalesce:
        plain = coalesce["cpu_ms_per_event"] * p["received"] / 1000
        print(
            f"  (without the profiler the drains above cost {coalesce['cpu_ms_per_event']} ms/event, ~{plain:.1f} s for "
            f"this many messages: the profiler inflates CPU {p['profiled_cpu_s'] / max(plain, 1e-9):.1f}x, most where "
            "calls are many and small; read the shares, not the absolute numbers)"
        )
    print("  top 15 by cumulative CPU:")
    for line in p["top15_cumulative"]:
        print("  " + line)
    print("  top 12 by own CPU (tottime):")
    for line in p["top12_own_time"]:
        print("  " + line)
    print()
    print(f"  {'CPU by step (cumulative, nests)':<50}{'calls':>8}{'CPU ms':>10}{'ms/event':>10}{'share':>8}")
    for a in p["attribution"]:
        print(f"  {a['step']:<50}{a['calls']:>8}{a['cpu_ms']:>10.1f}{a['cpu_ms_per_event']:>10.3f}{a['share']:>8.1%}")


# --------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the phases and return the results (without printing the summary)."""
    from localdev.azurite import Azurite

    warnings = _WarningCounter()
    logging.getLogger().addHandler(warnings)
    logging.disable(logging.INFO)  # one INFO decision line per chunk would measure the logging
    result: dict[str, Any] = {"machine": _machine(), "argv": sys.argv[1:], "args": vars(args).copy()}
    result["args"].pop("json", None)
    result["load_average_start"] = os.getloadavg()
    phases: dict[str, float] = {}
    result["phase_seconds"] = phases  # wall of each phase, start-up included (to explain a slow run)
    mark = time.perf_counter()
    try:
        with Azurite() as azurite:
            phases["azurite_start"] = round(time.perf_counter() - mark, 2)
            counter = RequestCounter(
                {azurite.blob_port: "blob", azurite.queue_port: "queue", azurite.table_port: "table"}
            )
            counter.install()
            try:
                if not args.profile_only:
                    if not args.quiet:
                        print("coalesce mode:", flush=True)
                    mark = time.perf_counter()
                    result["coalesce"] = run_coalesce(azurite, counter, args)
                    phases["coalesce"] = round(time.perf_counter() - mark, 2)
                if args.immediate_seconds > 0 and not args.profile_only:
                    if not args.quiet:
                        print("immediate mode ...", flush=True)
                    mark = time.perf_counter()
                    result["immediate"] = run_immediate(azurite, counter, args)
                    phases["immediate"] = round(time.perf_counter() - mark, 2)
                if args.profile or args.profile_only:
                    if not args.quiet:
                        print("profiling one drain at full load ...", flush=True)
                    mark = time.perf_counter()
                    result["profile"] = run_profile(azurite, counter, args)
                    phases["profile"] = round(time.perf_counter() - mark, 2)
            finally:
                counter.uninstall()
                mark = time.perf_counter()
        phases["azurite_stop"] = round(time.perf_counter() - mark, 2)
    finally:
        logging.disable(logging.NOTSET)
        logging.getLogger().removeHandler(warnings)
    result["load_average_end"] = os.getloadavg()
    result["warnings"] = {"by_logger": dict(warnings.by_logger), "first": warnings.first}
    return result


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--sensors", type=int, default=10_000, help="fleet size (each sends 1 chunk per minute)")
    p.add_argument("--rate", type=float, default=None, help="events per second (default: sensors / 60)")
    p.add_argument("--seconds", type=float, default=60.0, help="how long the producer sends (coalesce mode)")
    p.add_argument("--interval", type=float, default=30.0, help="drain interval (COALESCE_SCHEDULE), seconds")
    p.add_argument("--run-seconds", type=float, default=20.0, help="simulated run time of each workflow")
    p.add_argument("--max-in-flight", type=int, default=20, help="K (COALESCE_MAX_IN_FLIGHT)")
    p.add_argument("--max-chunks", type=int, default=200, help="N (COALESCE_MAX_CHUNKS)")
    p.add_argument("--producer-threads", type=int, default=8, help="sender threads of the producer process")
    p.add_argument("--max-ticks", type=int, default=30, help="give up after this many drains")
    p.add_argument(
        "--max-tail-seconds",
        type=float,
        default=240.0,
        help="after the producer stops, give up draining after this long (the queue not empty: reported)",
    )
    p.add_argument("--immediate-seconds", type=float, default=15.0, help="immediate-mode stretch (0: skip)")
    p.add_argument("--immediate-threads", type=int, default=16, help="concurrent invocations in immediate mode")
    p.add_argument("--profile", action="store_true", help="also profile one drain at full load (~30 s more)")
    p.add_argument("--profile-only", action="store_true", help="only the profile of one drain (no fleet)")
    p.add_argument("--quiet", action="store_true", help="no per-tick lines")
    p.add_argument("--json", type=Path, default=ROOT / ".bench" / "scale.json", help="write the numbers here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.rate is None:
        args.rate = args.sensors / 60.0
    machine = _machine()
    load = os.getloadavg()
    print(
        f"machine: {machine['nproc']} CPUs ({machine['cpu_model']}); load average {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f}; python {machine['python']}; Azurite, the producer and the fake Argo Server share it",
        flush=True,
    )
    result = run(args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=str))
    ok = print_report(result, args) if "coalesce" in result else True
    if "profile" in result:
        print_profile(result["profile"], result.get("coalesce"))
    end = result["load_average_end"]
    warned = result["warnings"]["by_logger"]
    print(f"\nload average at the end {end[0]:.2f} {end[1]:.2f} {end[2]:.2f}; warnings logged: {warned or 'none'}")
    for line in result["warnings"]["first"]:
        print(f"  {line}")
    shown = args.json.relative_to(ROOT) if args.json.is_relative_to(ROOT) else args.json
    verdict = ("targets met" if ok else "TARGETS NOT MET") if "coalesce" in result else "profile only"
    print(f"{verdict}; details in {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
