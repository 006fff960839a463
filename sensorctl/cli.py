"""The ``sensorctl`` command line: thin argparse handlers over ``function_app.status``, ``sensorctl.backfill``
and ``sensorctl.health``.

Settings are the function app's own (``SENSOR_STORAGE``, ``SENSOR_CONTAINER``, ``SUBMIT_BACKEND``,
``ARGO_*``; see ``function_app/settings.py``), so the command line submits and looks up exactly like
the deployed app. Exit codes: 0 done, 1 the operation failed (not found, unreachable, a batch
failed), 2 bad input or configuration; ``health --fail-on-attention`` exits 3 when the report needs
attention.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = ["build_parser", "main", "parse_time"]


class UsageError(ValueError):
    """Bad command-line input; the message names the option and the rule."""


def parse_time(option: str, text: str) -> datetime:
    """``2026-11-22``, ``2026-11-22T08:00``, ``2026-11-22T08:00:00Z`` or with an offset; naive means UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"{option} {text!r} is not an ISO 8601 date or time (e.g. 2026-11-22 or 2026-11-22T08:00:00Z)"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sensorctl", description="Look up and re-submit sensor chunks.")
    sub = parser.add_subparsers(dest="command", required=True)

    status = sub.add_parser("status", help="where a chunk stands: pending, submitted, processed or failed")
    status.add_argument("name", help="chunk blob name, e.g. sensor-001/2026/11/22/080000.csv")
    status.add_argument("--container", help="chunk container (default: SENSOR_CONTAINER or sensor-data)")
    status.add_argument("--json", action="store_true", help="print the answer as JSON")

    backfill = sub.add_parser("backfill", help="re-submit chunks by prefix and time range, in batches")
    backfill.add_argument(
        "--prefix", default="", help="only blobs whose name starts with this (e.g. sensor-001/2026/11/)"
    )
    backfill.add_argument("--since", help="only blobs last modified at or after this time (ISO 8601, UTC if no offset)")
    backfill.add_argument("--until", help="only blobs last modified before this time (ISO 8601, UTC if no offset)")
    backfill.add_argument("--container", help="chunk container (default: SENSOR_CONTAINER or sensor-data)")
    backfill.add_argument("--batch-size", type=int, default=20, help="chunks per workflow (default 20)")
    backfill.add_argument("--dry-run", action="store_true", help="print the plan, submit nothing")
    backfill.add_argument(
        "--force",
        action="store_true",
        help="also chunks with an up-to-date record or a running workflow (new run names)",
    )
    backfill.add_argument("--no-progress", action="store_true", help="no progress bar")

    health = sub.add_parser(
        "health",
        help="per-sensor and fleet health from the ledger, results, queue and Argo (table, --json, --html)",
        description=(
            "Chunks processed, failed and pending per sensor in a window, the oldest unprocessed chunk, "
            "upload -> result latency, silent sensors; fleet totals, queue and Argo. Exit codes: 0 report "
            "written (healthy or not), 1 a source could not be read or the page not written, 2 bad input, "
            "3 attention needed (only with --fail-on-attention). See docs/health.md."
        ),
    )
    health.add_argument("--window", default="24h", help="how far back: 90m, 24h, 7d, 1h30m ... (default 24h)")
    health.add_argument("--container", help="chunk container (default: SENSOR_CONTAINER or sensor-data)")
    health.add_argument("--json", action="store_true", help="print the report as JSON (schema sensorctl.health/1)")
    health.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page with plots to FILE")
    health.add_argument("--stuck-after", default="1h", help="a pending chunk older than this is stuck (default 1h)")
    health.add_argument(
        "--silent-factor",
        type=float,
        default=3.0,
        help="silent: no chunk for longer than this many times the sensor's median interval (default 3)",
    )
    health.add_argument(
        "--silent-min",
        default="10m",
        help="... and for at least this long, whatever the interval (default 10m; bursts of uploads seconds apart)",
    )
    health.add_argument(
        "--plot-sensors",
        type=int,
        default=12,
        help="sensors plotted on the page: the worst / most drifting N (default 12)",
    )
    health.add_argument(
        "--max-records-per-sensor",
        type=int,
        default=200,
        help="feature records read per sensor for the page's trends, newest first; 0: none (default 200)",
    )
    health.add_argument(
        "--fail-on-attention", action="store_true", help="exit 3 when the report needs attention (cron, CI)"
    )
    health.add_argument("--no-progress", action="store_true", help="no progress bars")

    from sensorctl.doctor import add_parsers

    add_parsers(sub)  # doctor, cron-forbid
    return parser


def _settings() -> Any:
    from function_app.settings import load_settings

    return load_settings(os.environ)


def _service(settings: Any) -> Any:
    from function_app.storage import blob_service_client

    return blob_service_client(settings)  # the app's own client: same connection, timeouts and retries


def _container(args: argparse.Namespace, settings: Any) -> str:
    from chunk_contract.records import validate_container_name

    return validate_container_name(args.container or settings.sensor_container, "chunk container (--container)")


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    from chunk_contract.records import ChunkNotFound
    from function_app.status import StatusLookupError, lookup_status
    from function_app.storage import ledger
    from function_app.submission import get_backend

    settings = _settings()
    try:
        answer = lookup_status(
            args.name,
            service=_service(settings),
            container=_container(args, settings),
            results_container=settings.sensor_results_container,
            backend=get_backend(settings),
            ledger=ledger(settings),
        )
    except ChunkNotFound as exc:
        print(f"sensorctl status: {exc}", file=sys.stderr)
        return 1
    except StatusLookupError as exc:
        print(f"sensorctl status: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(answer.as_dict(), indent=2), file=out)
    else:
        for key, value in answer.as_dict().items():
            if isinstance(value, dict):
                for sub, inner in value.items():
                    print(f"{key + '.' + sub:>28}: {inner}", file=out)
            else:
                print(f"{key:>28}: {value}", file=out)
    return 0


def cmd_backfill(args: argparse.Namespace, out: TextIO) -> int:
    from tqdm import tqdm

    from chunk_contract.names import MAX_CHUNK_NAME_LENGTH
    from function_app.storage import ledger
    from function_app.submission import get_backend, submit_chunks
    from sensorctl.backfill import Candidate, index_records, plan_backfill, run_backfill

    since = parse_time("--since", args.since) if args.since else None
    until = parse_time("--until", args.until) if args.until else None
    settings = _settings()
    if not 1 <= args.batch_size <= settings.max_chunks_per_request:
        raise UsageError(
            f"--batch-size {args.batch_size} must be between 1 and {settings.max_chunks_per_request} (MAX_CHUNKS_PER_REQUEST)"
        )
    if len(args.prefix) > MAX_CHUNK_NAME_LENGTH:
        raise UsageError(f"--prefix is longer than a blob name can be ({MAX_CHUNK_NAME_LENGTH} characters)")
    container = _container(args, settings)
    service = _service(settings)
    backend = get_backend(settings)
    book = ledger(settings)
    listing = [
        Candidate(b.name, b.etag, b.last_modified)
        for b in service.get_container_client(container).list_blobs(name_starts_with=args.prefix or None)
    ]
    results = service.get_container_client(settings.sensor_results_container)
    records = (
        index_records((b.name, b.metadata) for b in results.list_blobs(include=["metadata"]))
        if results.exists()
        else {}
    )
    plan = plan_backfill(
        listing,
        records,
        since=since,
        until=until,
        force=args.force,
        batch_size=args.batch_size,
        workflow_of=lambda c: _claimed_workflow(book, container, c),
    )
    print(
        f"backfill of {container!r} prefix {args.prefix!r}: {len(listing)} blob(s) listed, {plan.chunks} to submit in "
        f"{len(plan.batches)} batch(es); skipped {plan.up_to_date} up to date, {len(plan.in_flight)} in flight, "
        f"{plan.out_of_range} out of the time range, {len(plan.invalid)} invalid name(s)",
        file=out,
    )
    for name, reason in plan.invalid:
        print(f"  invalid name, not submitted: {name!r}: {reason}", file=out)
    if args.dry_run:
        for i, batch in enumerate(plan.batches, 1):
            print(f"  batch {i}: {', '.join(c.name for c in batch)}", file=out)
        print("dry run: nothing submitted", file=out)
        return 0
    with tqdm(total=plan.chunks, unit="chunk", desc="backfill", disable=args.no_progress or None) as bar:
        summary = run_backfill(
            plan,
            lambda names, etags: submit_chunks(
                settings, "backfill", names, etags, force=args.force, container=container, backend=backend
            ),
            on_batch=bar.update,
        )
    print(
        f"summary: {summary.selected} chunk(s) selected; {summary.workflows_submitted} workflow(s) submitted "
        f"({summary.chunks_submitted} chunks), {summary.duplicates} chunk(s) suppressed as duplicates, "
        f"{summary.failed_batches} batch(es) failed",
        file=out,
    )
    for error in summary.errors:
        print(f"  failed: {error}", file=out)
    return 1 if summary.failed_batches else 0


def cmd_health(args: argparse.Namespace, out: TextIO) -> int:
    from pathlib import Path

    from sensorctl.health import format_table, parse_duration
    from sensorctl.health_sources import HealthSourceError, collect_report

    window = parse_duration("--window", args.window)
    stuck_after = parse_duration("--stuck-after", args.stuck_after)
    silent_min = parse_duration("--silent-min", args.silent_min)
    if not args.silent_factor > 1:
        raise UsageError(f"--silent-factor {args.silent_factor:g} must be more than 1")
    if not 1 <= args.plot_sensors <= 200:
        raise UsageError(f"--plot-sensors {args.plot_sensors} must be between 1 and 200")
    if not 0 <= args.max_records_per_sensor <= 10000:
        raise UsageError(f"--max-records-per-sensor {args.max_records_per_sensor} must be between 0 and 10000")
    page = Path(args.html) if args.html else None
    if page is not None and not page.parent.is_dir():
        raise UsageError(f"--html {args.html!r}: the directory {str(page.parent)!r} does not exist")
    settings = _settings()
    container = _container(args, settings)
    try:
        report = collect_report(
            settings,
            container=container,
            window=window,
            stuck_after=stuck_after,
            silent_factor=args.silent_factor,
            silent_min=silent_min,
            read_records=page is not None and args.max_records_per_sensor > 0,
            max_records_per_sensor=args.max_records_per_sensor,
            progress=not args.no_progress,
        )
    except HealthSourceError as exc:
        print(f"sensorctl health: {exc}", file=sys.stderr)
        return 1
    if page is not None:
        from sensorctl.health_html import write_page

        try:
            write_page(report, page, plot_sensors=args.plot_sensors)
        except OSError as exc:
            print(f"sensorctl health: could not write --html {args.html!r}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(report.as_dict(), indent=2), file=out)
    else:
        print(format_table(report), file=out)
        if page is not None:
            print(f"\npage: {page}", file=out)
    return 3 if args.fail_on_attention and report.status != "ok" else 0


def _claimed_workflow(book: Any, container: str, candidate: Any) -> dict[str, Any] | None:
    """The ledger's view of a candidate, shaped like an Argo workflow for ``plan_backfill``'s in-flight check.

    A version claimed and not yet recorded (claimed or accepted) is in flight, whichever path or
    batch has it; one read of the ledger per candidate instead of one Argo lookup that only knew
    single-chunk workflows.
    """
    from chunk_contract.versions import ChunkVersion, InvalidETag

    try:
        claim = book.latest(ChunkVersion(container, candidate.name, candidate.etag))
    except InvalidETag:
        return None
    if claim is None or claim.state not in ("claimed", "accepted"):
        return None
    return {"metadata": {"name": claim.owner}, "status": {"phase": "Running"}}


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit code."""
    from chunk_contract.names import InvalidChunkName
    from chunk_contract.records import InvalidContainerName
    from function_app.settings import SettingsError

    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    from sensorctl.doctor import cmd_cron_forbid, cmd_doctor

    handlers = {
        "status": cmd_status,
        "backfill": cmd_backfill,
        "health": cmd_health,
        "doctor": cmd_doctor,
        "cron-forbid": cmd_cron_forbid,
    }
    handler = handlers[args.command]
    try:
        return handler(args, out)
    except (UsageError, SettingsError, InvalidChunkName, InvalidContainerName, ValueError) as exc:
        print(f"sensorctl {args.command}: {exc}", file=sys.stderr)
        return 2
