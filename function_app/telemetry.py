"""OpenTelemetry for the function app: metrics and one span per invocation — or nothing at all.

**The switch** is the Functions worker's own: ``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY`` set to
``true`` (or ``1``, any case). Then the Python worker imports ``azure-monitor-opentelemetry`` and calls
``configure_azure_monitor()`` *before* it indexes the app, which installs the global meter and tracer
providers that export to Application Insights (``APPLICATIONINSIGHTS_CONNECTION_STRING``). This
module never calls ``configure_azure_monitor`` (a second call duplicates every log record) and
never builds an exporter: it only uses the OpenTelemetry API (``metrics.get_meter``,
``trace.get_tracer``). With the setting off, nothing here imports OpenTelemetry, and every call
below is a no-op on plain Python objects.

The setting is read lazily, on the first invocation (:func:`get_telemetry`, cached), never at
import time. Tests and benchmarks :func:`install` a :class:`Telemetry` built on their own
``MeterProvider`` / ``TracerProvider`` instead (OpenTelemetry's global providers can be set only once
per process).

**Decide, then record.** The handlers (``blob_trigger``, ``http_trigger``, ``drain_trigger``,
``status``) open one :func:`invocation` each and tell it what they decided — a
:class:`~function_app.submission.SubmitResult`, a rejection, a ``DrainReport`` — and
:class:`Invocation` turns that into span attributes and metric points. The pure decision code
(``submission.decide``, ``coalesce``, ``claims``) knows nothing about telemetry.

**What is recorded** (the table with units and attributes is in docs/telemetry.md): counters
``sensor.events.{received,submitted,duplicates,deferred,poisoned,retried,rejected}``,
``sensor.workflows.submitted`` and ``sensor.invocations``; histograms ``sensor.submit.latency``
(seconds) and ``sensor.submit.attempts``; gauges ``sensor.queue.depth``, ``sensor.queue.oldest_age``,
``sensor.queue.poison_depth`` and ``sensor.workflows.in_flight``, recorded by each drain. Metric
attributes are low-cardinality only (``path``, ``mode``, ``outcome``, ``by``, ``reason``,
``error.type``, ``http.response.status_code``): never a sensor, a chunk or a workflow. Those go on
the spans: ``sensor.chunk_version`` (``container/name@etag``), ``sensor.workflow``.

**Never recorded**: the Argo token, a connection string or any part of it, an ``Authorization``
header, a request URL (its ``code=`` query is the function key), exception messages (only the
exception's class: a storage error's text may carry a SAS URL). Telemetry never fails an
invocation: an error while recording is logged and dropped.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ParamSpec

if TYPE_CHECKING:  # never imported at run time unless telemetry is on
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

__all__ = [
    "ENABLE_SETTING",
    "SCOPE",
    "SPAN_NAMES",
    "Invocation",
    "Telemetry",
    "get_telemetry",
    "install",
    "invocation",
    "poison_reason_class",
    "reset",
    "telemetry_enabled",
]

logger = logging.getLogger(__name__)

ENABLE_SETTING = "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"
SCOPE = "sensor_pipeline.function_app"  # the instrumentation scope (meter and tracer name)
SPAN_NAMES = {
    "blob": "sensor.blob_trigger",
    "http": "sensor.http_trigger",
    "status": "sensor.status",
    "drain": "sensor.drain",
}
MAX_LISTED = 20  # chunk versions or workflows listed on one span (the count is always there)
# Seconds: a blob trigger submits in well under a second, a coalesced chunk waits about one
# COALESCE_SCHEDULE interval (30 s), a backlog minutes. (Application Insights keeps only sum,
# count, min and max of a histogram; the buckets serve other backends.)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
ATTEMPT_BUCKETS = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)

# The field a poison reason starts with ("<field>: <rule>", function_app.queue_messages): a fixed set,
# so it can be a metric attribute. Anything else is "other"; an over-dequeued message "max_dequeue".
_POISON_FIELDS = frozenset(
    {
        "content",
        "specversion",
        "type",
        "eventType",
        "subject",
        "data",
        "data.api",
        "data.eTag",
        "time",
        "eventTime",
        "id",
    }
)


def telemetry_enabled(env: Mapping[str, str] | None = None) -> bool:
    """Whether ``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY`` is ``true`` or ``1`` (any case)."""
    raw = (os.environ if env is None else env).get(ENABLE_SETTING, "")
    return raw.strip().lower() in ("true", "1")


def poison_reason_class(reason: str) -> str:
    """The low-cardinality class of a poison reason: the event field it names, ``max_dequeue``, or ``other``.

    >>> poison_reason_class("subject: event for container 'x'; this app processes 'y'")
    'subject'
    >>> poison_reason_class("received 6 times, more than COALESCE_MAX_DEQUEUE=5; left for the cron fallback")
    'max_dequeue'
    """
    if reason.startswith("received ") and "COALESCE_MAX_DEQUEUE" in reason:
        return "max_dequeue"
    field = reason.split(":", 1)[0].strip()
    return field if field in _POISON_FIELDS else "other"


def _version_key(container: str, name: str, etag: str) -> str:
    """``container/name@etag`` with the ETag normalised (the ledger's identity of a chunk version)."""
    from chunk_contract.versions import InvalidETag, normalize_etag

    try:
        etag = normalize_etag(etag)
    except InvalidETag:
        etag = etag.strip().strip('"')
    return f"{container}/{name}@{etag}"


# --------------------------------------------------------------------------- the facade


class Telemetry:
    """The instruments, on the given providers (default: OpenTelemetry's global ones).

    Building one imports the OpenTelemetry API; it is built only when telemetry is on
    (:func:`get_telemetry`), or explicitly by a test or a benchmark.
    """

    def __init__(
        self, *, meter_provider: MeterProvider | None = None, tracer_provider: TracerProvider | None = None
    ) -> None:
        from opentelemetry import metrics, trace

        self._span_kind = trace.SpanKind.INTERNAL
        self._status = trace.Status
        self._error = trace.StatusCode.ERROR
        meter = metrics.get_meter(SCOPE, meter_provider=meter_provider)
        self.tracer = trace.get_tracer(SCOPE, tracer_provider=tracer_provider)
        counter = meter.create_counter
        self.invocations = counter(
            "sensor.invocations", unit="{invocation}", description="Invocations of the app's functions, by outcome"
        )
        self.received = counter(
            "sensor.events.received",
            unit="{event}",
            description="Chunk events delivered: blob-trigger invocations, chunk names of valid HTTP requests, "
            "queue messages received by a drain",
        )
        self.submitted = counter(
            "sensor.events.submitted",
            unit="{event}",
            description="Chunk versions in a workflow the backend created (not a duplicate)",
        )
        self.workflows = counter(
            "sensor.workflows.submitted", unit="{workflow}", description="Workflows the backend created"
        )
        self.duplicates = counter(
            "sensor.events.duplicates",
            unit="{event}",
            description="Chunk versions suppressed as duplicates: by the claim ledger or by Argo's 409",
        )
        self.deferred = counter(
            "sensor.events.deferred",
            unit="{event}",
            description="Chunk events a drain left queued because of the in-flight cap (once per drain)",
        )
        self.poisoned = counter(
            "sensor.events.poisoned", unit="{event}", description="Queue messages moved to the poison queue"
        )
        self.retried = counter(
            "sensor.events.retried",
            unit="{event}",
            description="Chunk events that failed and will be delivered again (host retry, queue redelivery)",
        )
        self.rejected = counter(
            "sensor.events.rejected",
            unit="{event}",
            description="Deliveries refused as invalid: HTTP requests answered 4xx, blob events with an invalid name",
        )
        self.latency = meter.create_histogram(
            "sensor.submit.latency",
            unit="s",
            description="Seconds from a chunk's event (upload, request, enqueue) to its workflow's acceptance",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        self.attempts = meter.create_histogram(
            "sensor.submit.attempts",
            unit="{attempt}",
            description="Attempts of one submission to the backend (1 = no retry)",
            explicit_bucket_boundaries_advisory=ATTEMPT_BUCKETS,
        )
        self.queue_depth = meter.create_gauge(
            "sensor.queue.depth", unit="{message}", description="Approximate messages in the chunk-event queue"
        )
        self.oldest_age = meter.create_gauge(
            "sensor.queue.oldest_age",
            unit="s",
            description="Age of the oldest visible message in the chunk-event queue (0 when empty)",
        )
        self.poison_depth = meter.create_gauge(
            "sensor.queue.poison_depth", unit="{message}", description="Approximate messages in the poison queue"
        )
        self.in_flight = meter.create_gauge(
            "sensor.workflows.in_flight",
            unit="{workflow}",
            description="The template's workflows not completed, as counted by the drain (up to K + 1)",
        )

    @contextmanager
    def invocation(self, path: str, mode: str = "unknown") -> Iterator[Invocation]:
        """One invocation's span (current for its duration) and its recorder."""
        inv = Invocation(self, path, mode)
        with self.tracer.start_as_current_span(
            SPAN_NAMES[path],
            kind=self._span_kind,
            # Not OpenTelemetry's own: it records the exception's message and traceback, and an
            # Azure SDK error's message may hold a SAS URL. We record the class only.
            record_exception=False,
            set_status_on_exception=False,
            attributes={"sensor.path": path, "sensor.mode": mode},
        ) as span:
            inv._span = span
            try:
                yield inv
            except BaseException as exc:
                if inv.outcome is None:
                    inv.failed(exc)
                raise
            finally:
                inv._finish()


_installed: Telemetry | None = None


def install(telemetry: Telemetry | None) -> None:
    """Use ``telemetry`` for every invocation from now on (tests, benchmarks); None: back to the setting."""
    global _installed
    _installed = telemetry


@functools.cache
def _from_environment() -> Telemetry | None:
    if not telemetry_enabled():
        return None
    try:
        return Telemetry()
    except ImportError as exc:
        logger.warning(
            "%s is true but OpenTelemetry is not importable (%s): no telemetry from the app; "
            "add azure-monitor-opentelemetry to requirements.txt",
            ENABLE_SETTING,
            exc.name,
        )
        return None


def get_telemetry() -> Telemetry | None:
    """The installed :class:`Telemetry`, else one on the global providers when the setting is on, else None.

    Read and built on first use, then cached (:func:`reset` reads the setting again).
    """
    if _installed is not None:
        return _installed
    return _from_environment()


def reset() -> None:
    """Forget the installed telemetry and the cached setting: the next invocation reads it again."""
    install(None)
    _from_environment.cache_clear()


@contextmanager
def invocation(path: str, mode: str = "unknown") -> Iterator[Invocation]:
    """``with invocation("blob") as inv:`` — a span and metrics when telemetry is on, a plain recorder when off."""
    telemetry = get_telemetry()
    if telemetry is None:
        yield Invocation(None, path, mode)
        return
    with telemetry.invocation(path, mode) as inv:
        yield inv


# --------------------------------------------------------------------------- one invocation

_P = ParamSpec("_P")


def _safe(method: Callable[_P, None]) -> Callable[_P, None]:
    """Telemetry never fails an invocation: a recording error is logged (its class only) and dropped."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> None:
        try:
            method(*args, **kwargs)
        except Exception as exc:  # pragma: no cover - a bug in recording, not in the app
            logger.warning("telemetry: %s failed (%s); not recorded", method.__name__, type(exc).__name__)

    return wrapper


class Invocation:
    """What one invocation decided, as span attributes and metric points (a no-op recorder when off).

    ``outcome`` is what the invocation ended with (``submitted``, ``duplicate``, ``enqueued``,
    ``rejected``, ``skipped``, ``failed``; a drain: ``drained``, ``idle``, ``backpressure``; the
    status route: ``answered``); it becomes the span's ``sensor.outcome`` and the ``outcome``
    attribute of ``sensor.invocations``.
    """

    def __init__(self, telemetry: Telemetry | None, path: str, mode: str) -> None:
        self._tel = telemetry
        self.path = path
        self.mode = mode
        self.outcome: str | None = None
        self.error_type: str | None = None
        self.started = time.monotonic()
        self._span: Any = None
        self._queue_depth: int | None = None
        self._received = 0

    @property
    def enabled(self) -> bool:
        return self._tel is not None

    def _attributes(self, **extra: Any) -> dict[str, Any]:
        return {"path": self.path, "mode": self.mode, **extra}

    def _set(self, **attributes: Any) -> None:
        if self._span is not None:
            self._span.set_attributes({f"sensor.{k}": v for k, v in attributes.items() if v is not None})

    # ------------------------------------------------------------------ what the handlers tell

    @_safe
    def set_mode(self, mode: str) -> None:
        """The app's ``SUBMIT_MODE``, once the settings are read."""
        self.mode = mode
        self._set(mode=mode)

    @_safe
    def chunk_versions(self, container: str, names: Sequence[str], etags: Sequence[str]) -> None:
        """The chunk versions this invocation is about (allow-listed names only, never raw input)."""
        if self._tel is None:
            return
        keys = [_version_key(container, n, e) for n, e in zip(names, etags, strict=False)]
        if len(keys) == 1:
            self._set(chunk_version=keys[0])
        else:
            self._set(chunk_versions=keys[:MAX_LISTED])
        self._set(chunk_count=len(names))

    @_safe
    def count_received(self, n: int = 1) -> None:
        """``n`` chunk events delivered; recorded when the invocation ends (with its final ``mode``)."""
        self._received += n

    @_safe
    def rejected(self, status: int | None = None, n: int = 1) -> None:
        """Refused as invalid input: an HTTP 4xx (``status``), a blob with an invalid name."""
        self.outcome = "rejected"
        if self._tel is None:
            return
        extra = {} if status is None else {"http.response.status_code": status}
        self._tel.rejected.add(n, self._attributes(**extra))

    @_safe
    def skipped(self) -> None:
        self.outcome = "skipped"

    @_safe
    def enqueued(self) -> None:
        self.outcome = "enqueued"

    @_safe
    def http_status(self, status: int) -> None:
        # sensor.http_status, not http.response.status_code: the Azure Monitor exporter drops
        # http.* attributes of a span from customDimensions (it reads them as HTTP semantics).
        self._set(http_status=status)

    @_safe
    def result(self, result: Any, *, event_time: datetime | None = None) -> None:
        """A :class:`~function_app.submission.SubmitResult` of ``submit_chunks``.

        Suppressed by the ledger: ``result.suppressed`` (nothing was sent when ``attempts == 0``);
        a duplicate after sending: Argo's 409. ``event_time``: when the chunk's event happened (the
        blob's upload time), else the invocation's start.
        """
        ledger = len(result.suppressed)
        if result.duplicate:
            self.outcome = "duplicate"
        else:
            self.outcome = "submitted"
        if self._tel is None:
            return
        t = self._tel
        self._set(workflow=result.workflow_name, attempts=result.attempts)
        if ledger:
            t.duplicates.add(ledger, self._attributes(by="ledger"))
        if result.attempts > 0:
            t.attempts.record(result.attempts, self._attributes())
        chunks = len(result.chunks) or 1
        if result.duplicate and result.attempts > 0:
            t.duplicates.add(chunks, self._attributes(by="argo_409"))
        elif not result.duplicate:
            t.submitted.add(chunks, self._attributes())
            t.workflows.add(1, self._attributes())
            if event_time is not None:
                seconds = max(0.0, (datetime.now(UTC) - event_time).total_seconds())
            else:
                seconds = time.monotonic() - self.started
            for _ in range(chunks):
                t.latency.record(seconds, self._attributes())

    @_safe
    def failed(self, exc: BaseException, *, retried: int = 0, attempts: int | None = None) -> None:
        """The invocation failed with ``exc``; ``retried`` chunk events will be delivered again."""
        self.outcome = "failed"
        self.error_type = type(exc).__name__
        if self._tel is None:
            return
        if retried:
            self._tel.retried.add(retried, self._attributes(**{"error.type": self.error_type}))
        tried = attempts if attempts is not None else getattr(exc, "attempts", None)
        if isinstance(tried, int) and tried > 0:
            self._tel.attempts.record(tried, self._attributes())

    @_safe
    def observe_queue(self, queue: Any) -> None:
        """Record the queue gauges (three storage requests: properties of both queues, one peek). Off: nothing.

        Called as a drain starts, so ``sensor.queue.oldest_age`` is the age of the oldest event
        waiting for it (a peek sees visible messages only: those a drain holds are not waiting).
        """
        if self._tel is None:
            return
        t = self._tel
        try:
            depth = queue.depth()
            poison = queue.poison_depth()
            oldest = queue.oldest_age()
        except Exception as exc:  # storage unreachable: the drain itself says so; no gauges this time
            logger.warning("telemetry: queue gauges not read (%s)", type(exc).__name__)
            return
        self._queue_depth = depth
        t.queue_depth.set(depth)
        t.poison_depth.set(poison)
        t.oldest_age.set(oldest or 0.0)
        self._set(queue_depth=depth, queue_oldest_age=oldest or 0.0, poison_depth=poison)

    @_safe
    def drain(self, report: Any) -> None:
        """A ``function_app.drain.DrainReport``."""
        if report.backpressure:
            self.outcome = "backpressure"
        elif report.received == 0:
            self.outcome = "idle"
        else:
            self.outcome = "drained"
        if self._tel is None:
            return
        t = self._tel
        a = self._attributes()
        if report.in_flight is not None:
            t.in_flight.set(report.in_flight)
        self._received += report.received
        if report.created_chunks:
            t.submitted.add(report.created_chunks, a)
            t.workflows.add(report.created_workflows, a)
        if report.duplicates:
            t.duplicates.add(report.duplicates, self._attributes(by="ledger"))
        if report.argo_duplicates:
            t.duplicates.add(report.argo_duplicates, self._attributes(by="argo_409"))
        deferred = report.deferred
        if report.backpressure and self._queue_depth:
            deferred += self._queue_depth  # nothing received: every queued event waits for a later drain
        if deferred:
            t.deferred.add(deferred, a)
        for error, n in sorted(report.failed_chunks.items()):  # their messages come back after the visibility timeout
            t.retried.add(n, self._attributes(**{"error.type": error}))
        classes: dict[str, int] = {}
        for reason in report.poison_reasons:
            cls = poison_reason_class(reason)
            classes[cls] = classes.get(cls, 0) + 1
        for cls, n in sorted(classes.items()):
            t.poisoned.add(n, self._attributes(reason=cls))
        for seconds in report.latencies:
            t.latency.record(max(0.0, seconds), a)
        for n in report.submit_attempts:
            t.attempts.record(n, a)
        workflows = [*report.workflows, *report.resumed]
        self._set(
            workflows=workflows[:MAX_LISTED],
            workflow_count=len(workflows),
            **{
                "drain.in_flight": report.in_flight,
                "drain.budget": report.budget,
                "drain.received": report.received,
                "drain.submitted": report.created_chunks,
                "drain.duplicates": report.duplicates + report.argo_duplicates,
                "drain.deferred": deferred,
                "drain.poisoned": report.poisoned,
                "drain.failed": len(report.failed),
            },
        )

    @_safe
    def answered(self, *, container: str, name: str, etag: str, status: str, workflow: str | None) -> None:
        """The status route's answer for one chunk."""
        self.outcome = "answered"
        if self._tel is None:
            return
        self._set(chunk_status=status, workflow=workflow)
        if etag:
            self._set(chunk_version=_version_key(container, name, etag))

    # ------------------------------------------------------------------ the end

    @_safe
    def _finish(self) -> None:
        if self._tel is None:
            return
        outcome = self.outcome or "completed"
        if self._received > 0:
            self._tel.received.add(self._received, self._attributes())
        extra = {} if self.error_type is None else {"error.type": self.error_type}
        self._tel.invocations.add(1, self._attributes(outcome=outcome, **extra))
        span = self._span
        if span is not None:
            span.set_attributes({"sensor.outcome": outcome, "sensor.mode": self.mode})
            if self.error_type is not None:
                span.set_attribute("error.type", self.error_type)
                span.set_status(self._tel._status(self._tel._error, self.error_type))
