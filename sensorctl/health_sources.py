"""The I/O behind ``sensorctl health``: read the ledger, the feature records, the queue and Argo.

Thin on purpose: every decision is in :mod:`sensorctl.health` (pure). What is read, and what it costs
(docs/health.md):

- **ledger** — one query over the ledger table: the claim entities of the chunk container that
  were first seen in the window, got their outcome in the window, or have none yet (any age), and
  the flow's ``kind == "run"`` entities of the window. Table Storage has no secondary index, so
  this filter scans the table server-side; the client pays one request per 1,000 entities
  returned (plus empty continuation pages). Then one point query per pending claim older than the
  window, to make sure no newer claim generation replaced it.
- **chunk container** — one listing with delimiter ``/`` (a request per 5,000 sensors): the
  sensors that exist, so that one silent for longer than the window still shows.
- **results container** — only for the page's trends: one GET per feature record, for the chunks
  the ledger says were processed in the window, newest first, at most ``max_records_per_sensor``
  per sensor (no listing: the ledger names the records), on a small thread pool.
- **queue** — queue properties and one peek (depth, oldest message), the poison queue's properties;
  skipped when the queue does not exist (immediate mode).
- **Argo Server** — one in-flight list request, only when ``SUBMIT_BACKEND=argo``.

The ledger or the chunk container failing is a :class:`HealthSourceError` (``sensorctl health``
exits 1 with its one-line message, never a secret); records, queue and Argo problems become notes
or an ``error`` state in the report instead.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sensorctl.health import (
    DEFAULT_SILENT_FACTOR,
    DEFAULT_SILENT_MIN,
    DEFAULT_STUCK_AFTER,
    DEFAULT_WINDOW,
    ArgoObservation,
    ChunkObservation,
    FeaturePoint,
    HealthReport,
    QueueObservation,
    RunObservation,
    build_report,
    latest_versions,
    select_records,
)

__all__ = [
    "ARGO_COUNT_LIMIT",
    "DEFAULT_MAX_RECORDS_PER_SENSOR",
    "HealthSourceError",
    "LedgerRead",
    "collect_report",
    "discover_sensors",
    "ledger_filter",
    "observe_argo",
    "observe_queue",
    "read_features",
    "read_ledger",
    "write_health_page",
]

DEFAULT_MAX_RECORDS_PER_SENSOR = 200
ARGO_COUNT_LIMIT = 1000  # the in-flight count stops here ("at least 1000")
RECORD_THREADS = 8
_MAX_TEXT = 300


class HealthSourceError(RuntimeError):
    """A source the report cannot do without (ledger, chunk container) could not be read.

    The message is one line naming the source, and never holds a key or a SAS signature.
    """


_SECRET = re.compile(r"(AccountKey|SharedAccessSignature|sig|SharedAccessKey)=[^;&\s'\"]+", re.IGNORECASE)


def describe(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """``ExceptionType: first line of its message``, secrets redacted, at most 300 characters."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _SECRET.sub(lambda m: f"{m.group(1)}=***", text)
    text = "".join(c if c.isprintable() else " " for c in text)
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "..."


def _progress(enabled: bool, **options: Any) -> Any:
    from tqdm import tqdm

    # disable=None: tqdm turns itself off when stderr is no terminal (cron, CI, a pipe)
    return tqdm(disable=None if enabled else True, **options)


# --------------------------------------------------------------------------- ledger


def ledger_filter() -> tuple[str, list[str]]:
    """The OData filter of the one ledger query, and its parameter names (``container``, ``since``).

    The SDK substitutes ``@name`` only as a whole space-separated word: keep the spaces around
    parentheses.
    """
    text = (
        "( kind eq 'claim' and container eq @container and ( first_seen ge @since or outcome_at ge @since"
        " or state eq 'claimed' or state eq 'accepted' or state eq 'released' ) )"
        " or ( kind eq 'run' and ( started_at ge @since or finished_at ge @since ) )"
    )
    return text, ["container", "since"]


@dataclass
class LedgerRead:
    chunks: list[ChunkObservation]
    runs: list[RunObservation]
    entities: int = 0
    malformed: int = 0
    resolved: int = 0  # old pending claims checked for a newer generation


def _plain(entity: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entity.items() if v is not None}


def read_ledger(
    ledger: Any, *, container: str, since: datetime, progress: bool = False, table_name: str = ""
) -> LedgerRead:
    """The claims (and run entities) that a report from ``since`` needs; see the module docstring.

    ``ledger`` is a :class:`chunk_contract.ledger.Ledger`. Raises :class:`HealthSourceError`.
    """
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    from chunk_contract.ledger import claim_from_entity
    from chunk_contract.versions import ChunkVersion

    text, _ = ledger_filter()
    read = LedgerRead(chunks=[], runs=[])
    what = f"the ledger table {table_name!r}" if table_name else "the ledger table"
    try:
        pages = ledger.table.query_entities(text, parameters={"container": container, "since": since})
        with _progress(progress, desc="ledger", unit=" entities") as bar:
            for entity in pages:
                read.entities += 1
                bar.update(1)
                row = _plain(entity)
                try:
                    if row.get("kind") == "run":
                        read.runs.append(RunObservation.from_entity(row))
                        continue
                    claim = claim_from_entity(row)
                    read.chunks.append(
                        ChunkObservation.from_claim(claim, outcome_latency_s=row.get("outcome_latency_s"))
                    )
                except (KeyError, ValueError, TypeError):
                    read.malformed += 1  # a hand-edited row: counted in the notes, never fatal
        # A pending claim older than the window may have been replaced by a newer generation that
        # the filter did not return (first seen and finished before the window): ask its version.
        chunks = latest_versions(read.chunks)
        resolved = []
        for c in chunks:
            if c.pending and c.first_seen < since:
                latest = ledger.latest(ChunkVersion(c.container, c.chunk, c.etag))
                read.resolved += 1
                if latest is not None and latest.generation > c.generation:
                    c = ChunkObservation.from_claim(latest)
            resolved.append(c)
        read.chunks = resolved
    except ResourceNotFoundError as exc:
        if "TableNotFound" in str(exc) or getattr(exc, "error_code", None) == "TableNotFound":
            raise HealthSourceError(
                f"{what} does not exist: nothing has been claimed yet, or SENSOR_LEDGER_TABLE names another table"
            ) from None
        raise HealthSourceError(f"could not read {what}: {describe(exc, _secrets())}") from None
    except AzureError as exc:
        raise HealthSourceError(f"could not read {what}: {describe(exc, _secrets())}") from None
    return read


def _secrets() -> list[str]:
    return [os.environ.get("SENSOR_STORAGE", ""), os.environ.get("ARGO_TOKEN", "")]


# --------------------------------------------------------------------------- chunk container


def discover_sensors(service: Any, container: str) -> tuple[list[str], str | None]:
    """The sensors with a chunk in ``container`` (its top-level prefixes); and a note if it is absent.

    Raises :class:`HealthSourceError` on a storage error.
    """
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    from chunk_contract.names import InvalidChunkName, validate_chunk_name

    sensors = []
    try:
        for item in service.get_container_client(container).walk_blobs(delimiter="/"):
            name = str(item.name)
            if not name.endswith("/"):
                continue  # a blob at the top level: no sensor
            sensor = name[:-1]
            try:
                validate_chunk_name(f"{sensor}/x")
            except InvalidChunkName:
                continue
            sensors.append(sensor)
    except ResourceNotFoundError:
        return (
            [],
            f"chunk container {container!r} does not exist: sensors silent for longer than the window are not listed",
        )
    except AzureError as exc:
        raise HealthSourceError(f"could not list chunk container {container!r}: {describe(exc, _secrets())}") from None
    return sensors, None


# --------------------------------------------------------------------------- results container


def read_features(
    results: Any,
    selection: Mapping[str, list[str]],
    *,
    progress: bool = False,
    threads: int = RECORD_THREADS,
) -> tuple[list[FeaturePoint], list[str]]:
    """Read ``<chunk>.features.json`` of every selected chunk (``{sensor: [chunk, ...]}``) on a thread
    pool; returns the points and notes (missing, malformed or unreadable records are counted, not fatal)."""
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    from chunk_contract.records import result_blob_name

    names = [chunk for chunks in selection.values() for chunk in chunks]
    if not names:
        return [], []
    try:
        if not results.exists():
            return [], [f"results container {results.container_name!r} does not exist: no feature trends"]
    except AzureError as exc:
        return [], [f"results container could not be read ({describe(exc, _secrets())}): no feature trends"]

    def one(chunk: str) -> FeaturePoint | str:
        try:
            body = results.get_blob_client(result_blob_name(chunk)).download_blob().readall()
        except ResourceNotFoundError:
            return "missing"
        except AzureError as exc:
            return "error: " + describe(exc, _secrets())
        try:
            return FeaturePoint.from_record(json.loads(body), chunk)
        except ValueError:
            return "malformed"

    points: list[FeaturePoint] = []
    missing = malformed = 0
    errors: list[str] = []
    with (
        _progress(progress, desc="records", unit=" records", total=len(names)) as bar,
        ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="health-records") as pool,
    ):
        for got in pool.map(one, names):
            bar.update(1)
            if isinstance(got, FeaturePoint):
                points.append(got)
            elif got == "missing":
                missing += 1
            elif got == "malformed":
                malformed += 1
            else:
                errors.append(got[len("error: ") :])
    notes = []
    if missing:
        notes.append(f"{missing} feature record(s) the ledger calls processed were not found (deleted or renamed?)")
    if malformed:
        notes.append(f"{malformed} feature record(s) were not valid feature JSON")
    if errors:
        notes.append(f"{len(errors)} feature record(s) could not be read, e.g. {errors[0]}")
    return points, notes


# --------------------------------------------------------------------------- queue, Argo


def observe_queue(settings: Any, *, now: datetime) -> QueueObservation:
    """Depth and oldest message of the events queue, and the poison queue's depth (read-only)."""
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    from function_app.storage import event_queue_clients

    name = settings.events_queue
    try:
        queue = event_queue_clients(settings)
        try:
            depth = queue.depth()
        except ResourceNotFoundError:
            return QueueObservation(name, "absent")
        oldest = queue.oldest_age(now)
        try:
            poison: int | None = queue.poison_depth()
        except ResourceNotFoundError:
            poison = None
    except AzureError as exc:
        return QueueObservation(name, "error", error=describe(exc, _secrets()))
    return QueueObservation(name, "ok", depth=depth, oldest_age_s=oldest, poison_depth=poison)


def observe_argo(settings: Any, backend_factory: Callable[[Any], Any] | None = None) -> ArgoObservation:
    """The template's workflows in flight (one list request), when ``SUBMIT_BACKEND=argo``."""
    if settings.submit_backend != "argo":
        return ArgoObservation("not configured")
    from function_app.submission import SubmitError

    try:
        if backend_factory is None:
            from function_app.argo_backend import ArgoBackend

            backend_factory = ArgoBackend.from_settings
        count = backend_factory(settings).count_in_flight(settings.argo_workflow_template, ARGO_COUNT_LIMIT)
    except SubmitError as exc:  # refused, unreachable or malformed; its message is sanitised (no token)
        return ArgoObservation("error", error=describe(exc, _secrets()), limit=ARGO_COUNT_LIMIT)
    except Exception as exc:  # any other client error is shown in the report too, never a crash
        return ArgoObservation("error", error=describe(exc, _secrets()), limit=ARGO_COUNT_LIMIT)
    return ArgoObservation("ok", in_flight=count, capped=count >= ARGO_COUNT_LIMIT, limit=ARGO_COUNT_LIMIT)


# --------------------------------------------------------------------------- all of it


def collect_report(
    settings: Any = None,
    *,
    container: str | None = None,
    now: datetime | None = None,
    window: timedelta = DEFAULT_WINDOW,
    stuck_after: timedelta = DEFAULT_STUCK_AFTER,
    silent_factor: float = DEFAULT_SILENT_FACTOR,
    silent_min: timedelta = DEFAULT_SILENT_MIN,
    read_records: bool = True,
    max_records_per_sensor: int = DEFAULT_MAX_RECORDS_PER_SENSOR,
    progress: bool = False,
) -> HealthReport:
    """Read every source and build the report.

    Parameters
    ----------
    settings : function_app.settings.Settings or None
        The function app's settings; ``None`` loads them from the environment.
    container : str or None
        The chunk container (default ``settings.sensor_container``).
    read_records : bool
        Read feature records for the trends (the page needs them; the table and ``--json`` do not).

    Raises
    ------
    HealthSourceError
        The ledger or the chunk container could not be read.
    """
    from function_app.storage import blob_service_client, ledger

    if settings is None:
        from function_app.settings import load_settings

        settings = load_settings(os.environ)
    container = container or settings.sensor_container
    now = now or datetime.now(UTC)
    since = now - window
    read = read_ledger(
        ledger(settings), container=container, since=since, progress=progress, table_name=settings.ledger_table
    )
    service = blob_service_client(settings)
    known, absent_note = discover_sensors(service, container)
    notes = [absent_note] if absent_note else []
    if read.malformed:
        notes.append(f"{read.malformed} ledger entity(ies) could not be read as claims and were left out")
    features: list[FeaturePoint] | None = None
    if read_records:
        selection = select_records(read.chunks, since, max_records_per_sensor)
        features, more = read_features(
            service.get_container_client(settings.sensor_results_container), selection, progress=progress
        )
        notes.extend(more)
    return build_report(
        read.chunks,
        now=now,
        window=window,
        stuck_after=stuck_after,
        silent_factor=silent_factor,
        silent_min=silent_min,
        known_sensors=known,
        runs=read.runs,
        queue=observe_queue(settings, now=now),
        argo=observe_argo(settings),
        features=features,
        notes=notes,
        container=container,
        results_container=settings.sensor_results_container,
    )


def write_health_page(
    path: str | Path,
    settings: Any = None,
    *,
    plot_sensors: int = 12,
    **options: Any,
) -> HealthReport:
    """Collect the report (``options`` as :func:`collect_report`) and write the HTML page to ``path``.

    For scripts such as ``localdev/demo.py``::

        from sensorctl.health_sources import write_health_page
        report = write_health_page(".demo/health.html", settings)   # settings: function_app Settings
        print(report.status, report.reasons)
    """
    from sensorctl.health_html import write_page

    report = collect_report(settings, **options)
    write_page(report, path, plot_sensors=plot_sensors)
    return report
