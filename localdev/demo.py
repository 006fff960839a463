"""The main job, on one machine: ``make demo`` (or ``.venv/bin/python -m localdev.demo``).

1. starts Azurite (pinned through npm) on free ports, data in a temporary folder;
2. generates synthetic chunks for a few sensors (irregular timestamps, gaps, duplicate rows, one
   corrupted chunk) and uploads them to the chunk container;
3. the local event source turns the uploads into ``BlobCreated`` events — delivered at least once,
   some twice, out of order — and hands them to the function app's real blob-trigger handler.
   In coalesce mode (the default) the trigger enqueues each chunk version and the timer drainer
   (called here tick by tick) claims them in the ledger and submits a few batch workflows; then one
   late redelivery shows the ledger suppressing a duplicate. In immediate mode (``--mode
   immediate``) each chunk version becomes one workflow. Either way ``SUBMIT_BACKEND=local`` runs
   each workflow as a local Metaflow run;
4. runs the cron fallback once (``chunks=[]``), which picks up anything the events missed;
5. prints one row per chunk (sensor, samples, dominant band, lag-1 autocorrelation, status, run),
   the answer of ``GET /api/chunks/{name}`` for one chunk, where the Metaflow cards are, and writes
   the fleet health page (``sensorctl health --html``) to ``.demo/health.html``;
6. stops Azurite and removes its data. Metaflow's runs and cards stay in ``.demo/`` (reported).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO_ROOT / ".demo"
CHUNK_CONTAINER = "sensor-data"


def _args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m localdev.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--sensors", type=int, default=3, help="synthetic sensors (default 3)")
    p.add_argument("--chunks-per-sensor", type=int, default=2, help="chunks per sensor (default 2)")
    p.add_argument("--seconds-per-chunk", type=float, default=60.0, help="time span of one chunk (default 60)")
    p.add_argument("--duplicates", type=float, default=0.2, help="fraction of events delivered twice (default 0.2)")
    p.add_argument("--workers", type=int, default=2, help="concurrent deliveries, i.e. local runs (default 2)")
    p.add_argument(
        "--mode",
        choices=("coalesce", "immediate"),
        default="coalesce",
        help="SUBMIT_MODE: batches through the queue and the drainer (default), or one workflow per chunk",
    )
    p.add_argument("--batch", type=int, default=4, help="coalesce mode: chunks per workflow, COALESCE_MAX_CHUNKS (4)")
    p.add_argument("--seed", type=int, default=20261122, help="random seed of data and delivery order")
    p.add_argument("--workdir", type=Path, default=DEMO_DIR, help="where Metaflow runs and cards go (default .demo)")
    args = p.parse_args(argv)
    for name in ("sensors", "chunks_per_sensor", "workers", "batch"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if not 0 <= args.duplicates <= 1:
        p.error(f"--duplicates must be within [0, 1], got {args.duplicates}")
    return args


def _say(text: str) -> None:
    tqdm.write(text, file=sys.stdout)


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def _card_paths(sysroot: Path, run_pathspec: str) -> list[Path]:
    flow, _, run_id = run_pathspec.partition("/")
    return sorted(sysroot.glob(f"**/{flow}/runs/{run_id}/**/*.html"))


def _fallback(env: dict[str, str]) -> tuple[str, dict[str, Any]]:
    from localdev.local_backend import decode_parameters, run_flow

    # The CronWorkflow submits the template's defaults: chunks "[]", the configured container.
    params = decode_parameters(['chunks="[]"', "container=" + json.dumps(CHUNK_CONTAINER)])
    run = run_flow(params, env, artifacts=("summary",))
    if not run.successful:
        raise RuntimeError(f"the fallback run {run.pathspec} failed: {run.message[-500:]}")
    return run.pathspec, dict(run.artifacts["summary"])


def _drain_until_empty(max_ticks: int = 20) -> list[Any]:
    """Tick the coalesce drainer (what the timer trigger does every 30 s) until the queue is empty."""
    from function_app.drain_trigger import handle_drain_tick
    from function_app.settings import get_settings
    from function_app.storage import event_queue

    reports = []
    with tqdm(total=None, desc="drainer ticks -> runs", unit="tick", leave=False) as bar:
        for _ in range(max_ticks):
            reports.append(handle_drain_tick())
            bar.update()
            if event_queue(get_settings()).depth() == 0:
                break
    return reports


def main(argv: Sequence[str] | None = None) -> int:
    args = _args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Chatty per-request logs of the storage SDK would drown the progress bars.
    logging.getLogger("azure").setLevel(logging.ERROR)
    logging.getLogger("function_app").setLevel(logging.ERROR)

    workdir = args.workdir.resolve()
    sysroot = workdir / "metaflow"
    sysroot.mkdir(parents=True, exist_ok=True)
    # Before metaflow is imported anywhere in this process: it reads its config at import.
    os.environ["METAFLOW_DATASTORE_SYSROOT_LOCAL"] = str(sysroot)
    # Metaflow puts local cards under <cwd>/.metaflow/mf.cards unless told otherwise; told, it
    # writes them beside the runs (see localdev.local_backend.flow_environment).
    os.environ["METAFLOW_CARD_LOCALROOT"] = str(sysroot / ".metaflow")
    os.environ.setdefault("METAFLOW_USER", os.environ.get("USER") or "demo")
    os.environ.setdefault("USERNAME", os.environ["METAFLOW_USER"])

    from azure.storage.blob import BlobServiceClient

    from chunk_contract.records import DEFAULT_RESULTS_CONTAINER, result_blob_name
    from function_app.blob_trigger import handle_blob
    from function_app.settings import get_settings
    from function_app.status import lookup_status
    from function_app.storage import ledger
    from function_app.submission import get_backend
    from localdev.azurite import Azurite
    from localdev.event_source import EventSource
    from localdev.report import format_table, result_row
    from localdev.synthetic import generate_chunks

    started = time.monotonic()
    _say("sensor-pipeline demo: Azurite + the function app's handlers + local Metaflow runs\n")
    with Azurite() as azurite:
        _say(f"[1/5] Azurite {azurite.blob_endpoint} (data in a temporary folder, removed at the end)")
        env = {
            "SENSOR_STORAGE": azurite.connection_string,
            "SENSOR_CONTAINER": CHUNK_CONTAINER,
            "SENSOR_RESULTS_CONTAINER": DEFAULT_RESULTS_CONTAINER,
            "SUBMIT_BACKEND": "local",
            "SUBMIT_MODE": args.mode,
            "COALESCE_MAX_CHUNKS": str(args.batch),
            # The fallback below runs right after the events; real deployments keep the 10-minute grace.
            "SENSOR_FALLBACK_GRACE_SECONDS": "0",
        }
        os.environ.update(env)
        get_settings.cache_clear()
        get_backend.cache_clear()
        service = BlobServiceClient.from_connection_string(azurite.connection_string)
        container = service.create_container(CHUNK_CONTAINER)

        chunks = generate_chunks(
            sensors=args.sensors,
            chunks_per_sensor=args.chunks_per_sensor,
            seconds_per_chunk=args.seconds_per_chunk,
            seed=args.seed,
        )
        _say(f"[2/5] uploading {len(chunks)} synthetic chunks ({args.sensors} sensors, one corrupted on purpose)")
        for c in tqdm(chunks, desc="upload", unit="chunk", leave=False):
            container.upload_blob(c.name, c.data)

        source = EventSource(azurite.connection_string, CHUNK_CONTAINER)
        events = source.poll()
        plan = source.plan(events, duplicate_rate=args.duplicates, reorder=True, seed=args.seed)
        outcomes: list[Any] = []

        def trigger(client: Any) -> None:
            outcomes.append(handle_blob(client))  # the function app's blob trigger, as the host calls it

        if args.mode == "coalesce":
            _say(
                f"[3/5] delivering {len(events)} BlobCreated events as {len(plan.deliveries)} deliveries "
                f"({plan.duplicates} duplicate(s), shuffled) to the blob trigger, which enqueues them; "
                f"the drainer batches up to {args.batch} chunks per workflow"
            )
            with tqdm(total=len(plan.deliveries), desc="events -> queue", unit="event", leave=False) as bar:
                report = source.deliver(plan, trigger, workers=args.workers, on_done=lambda d, o: bar.update())
            drains = _drain_until_empty()
            workflows = [w for d in drains for w in d.workflows]
            chunks_in = sum(d.chunks_submitted for d in drains)
            merged = sum(d.received for d in drains) - sum(d.candidates for d in drains)
            _say(
                f"      {report.deliveries} deliveries -> {chunks_in} chunk versions in {len(workflows)} workflow(s) "
                f"({', '.join(workflows)}); {merged} duplicate message(s) merged in the queue, "
                f"{report.retried} retried, {len(report.poisoned)} poisoned"
            )
            late = plan.deliveries[0]
            source.deliver([late.event], trigger)
            again = _drain_until_empty()
            _say(
                f"      a late redelivery of {late.event['subject'].rsplit('/blobs/', 1)[1]}: "
                f"{sum(d.duplicates for d in again)} duplicate suppressed by the ledger, "
                f"{sum(len(d.workflows) for d in again)} new workflow(s)"
            )
        else:
            _say(
                f"[3/5] delivering {len(events)} BlobCreated events as {len(plan.deliveries)} deliveries "
                f"({plan.duplicates} duplicate(s), shuffled) to the blob trigger; each new chunk version runs locally"
            )
            with tqdm(total=len(plan.deliveries), desc="events -> runs", unit="event") as bar:
                report = source.deliver(plan, trigger, workers=args.workers, on_done=lambda d, o: bar.update())
            ran = sum(1 for o in outcomes if o is not None and not o.duplicate)
            suppressed = sum(1 for o in outcomes if o is not None and o.duplicate)
            _say(
                f"      {report.deliveries} deliveries: {ran} local runs, {suppressed} duplicate(s) suppressed, "
                f"{report.retried} retried, {len(report.poisoned)} poisoned"
            )
        backend = get_backend(get_settings())

        _say("[4/5] cron fallback (chunks=[]): processes every chunk the events missed")
        with tqdm(total=1, desc="fallback run", unit="run", leave=False) as bar:
            fallback_run, fallback_summary = _fallback(dict(os.environ))
            bar.update()
        _say(f"      {fallback_run}: {fallback_summary.get('fallback', fallback_summary)}")

        _say("[5/5] results\n")
        rows = []
        results = service.get_container_client(DEFAULT_RESULTS_CONTAINER)
        runs: set[str] = set()
        for c in sorted(chunks, key=lambda c: c.name):
            answer = lookup_status(
                c.name,
                service=service,
                container=CHUNK_CONTAINER,
                results_container=DEFAULT_RESULTS_CONTAINER,
                backend=backend,
                ledger=ledger(get_settings()),
            ).as_dict()
            record = None
            if answer["status"] == "processed":
                record = json.loads(results.download_blob(result_blob_name(c.name)).readall())
            if answer.get("run_id"):
                runs.add(str(answer["run_id"]))
            rows.append(result_row(answer, record))
        print(format_table(rows))

        bad = next(c for c in chunks if c.bad)
        import azure.functions as func

        from function_app.status import chunk_status

        response = chunk_status(
            func.HttpRequest("GET", f"/api/chunks/{bad.name}", route_params={"name": bad.name}, body=b"")
        )
        print(f"\nGET /api/chunks/{bad.name} -> {response.status_code}")
        print(json.dumps(json.loads(response.get_body()), indent=2))

        print("\nMetaflow cards (open in a browser):")
        for run in sorted(runs, key=lambda r: int(r.rsplit("/", 1)[-1]) if r.rsplit("/", 1)[-1].isdigit() else 0):
            for path in _card_paths(sysroot, run):
                print(f"  {run}: {_shown(path)}")

        # The fleet health page of `sensorctl health --html`, from this demo's ledger, results and queue.
        from sensorctl.health_sources import write_health_page

        health_page = workdir / "health.html"
        health = write_health_page(health_page, get_settings())
        print(f"\nFleet health page (sensorctl health --html): {_shown(health_page)}")
        print(f"  status: {health.status}" + (f" ({'; '.join(health.reasons)})" if health.reasons else ""))
    print(
        f"\nAzurite stopped and its data removed. Metaflow runs and cards stay in {_shown(workdir)}/ "
        f"(rm -rf {_shown(workdir)} to clean). Done in {time.monotonic() - started:.0f} s."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
