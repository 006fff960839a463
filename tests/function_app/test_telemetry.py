"""OpenTelemetry in the function app: metrics and spans per outcome, no secrets, nothing when off.

The real handlers run on the real parts (the indexed functions, Azurite's blob, queue and table
services, the fake Argo Server, the real ArgoBackend), with a :class:`function_app.telemetry.Telemetry`
built on the SDK's in-memory reader and exporter and installed for the test — never OpenTelemetry's
global providers (settable once per process), never an exporter to Application Insights.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.storage.blob import BlobClient, ContainerClient
from azure.storage.queue import QueueClient
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from chunk_contract.versions import normalize_etag
from function_app import telemetry
from function_app.queue_messages import encode_message
from function_app.settings import get_settings
from function_app.telemetry import Telemetry, poison_reason_class, telemetry_enabled
from localdev.azurite import ACCOUNT_KEY, Azurite
from tests.fakes import FakeArgoServer, Fault
from tests.function_app.conftest import SECRET_TOKEN

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- the in-memory backend


@dataclass
class Metrics:
    """One collection of every metric: ``{name: [data point, ...]}``."""

    points: dict[str, list[Any]]
    data: MetricsData

    def total(self, name: str, **attributes: Any) -> float:
        """Sum of a counter's points whose attributes include ``attributes``."""
        return sum(p.value for p in self._matching(name, attributes))

    def histogram(self, name: str, **attributes: Any) -> tuple[int, float]:
        """(count, sum) of a histogram's points whose attributes include ``attributes``."""
        matching = self._matching(name, attributes)
        return sum(p.count for p in matching), sum(p.sum for p in matching)

    def gauge(self, name: str) -> float | None:
        values = [p.value for p in self.points.get(name, [])]
        return values[-1] if values else None

    def attribute_sets(self, name: str) -> list[dict[str, Any]]:
        return [dict(p.attributes) for p in self.points.get(name, [])]

    def _matching(self, name: str, attributes: dict[str, Any]) -> list[Any]:
        return [p for p in self.points.get(name, []) if all(p.attributes.get(k) == v for k, v in attributes.items())]


@dataclass
class Otel:
    reader: InMemoryMetricReader
    exporter: InMemorySpanExporter

    def metrics(self) -> Metrics:
        data = self.reader.get_metrics_data()
        points: dict[str, list[Any]] = {}
        if data is not None:
            for rm in data.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        points.setdefault(metric.name, []).extend(metric.data.data_points)
        assert data is not None
        return Metrics(points, data)

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if name is None or s.name == name]

    def span(self, name: str) -> ReadableSpan:
        (found,) = self.spans(name)
        return found


@pytest.fixture
def otel() -> Iterator[Otel]:
    reader = InMemoryMetricReader()
    exporter = InMemorySpanExporter()
    meters = MeterProvider(metric_readers=[reader])
    tracers = TracerProvider()
    tracers.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.install(Telemetry(meter_provider=meters, tracer_provider=tracers))
    try:
        yield Otel(reader, exporter)
    finally:
        telemetry.reset()
        meters.shutdown()
        tracers.shutdown()


# --------------------------------------------------------------------------- the app's parts


@pytest.fixture
def blob(azurite: Azurite, container: ContainerClient) -> Callable[[str], BlobClient]:
    def make(name: str) -> BlobClient:
        return BlobClient.from_connection_string(azurite.connection_string, container.container_name, name)

    return make


@pytest.fixture
def blob_trigger(indexed: dict[str, Callable[..., Any]], app_env: Callable[..., None]) -> Callable[[BlobClient], None]:
    return indexed["chunk_blob_trigger"]


def post(indexed: dict[str, Callable[..., Any]], body: bytes, *, key: str = "fn-key") -> func.HttpResponse:
    req = func.HttpRequest(
        "POST",
        f"http://localhost:7071/api/trigger?code={key}",
        body=body,
        headers={"Content-Type": "application/json"},
        params={"code": key},
    )
    response: func.HttpResponse = indexed["manual_trigger"](req)
    return response


def coalesce_env(app_env: Callable[..., None], **overrides: str) -> None:
    hexid = uuid.uuid4().hex[:20]
    app_env(
        SUBMIT_MODE="coalesce",
        SENSOR_EVENTS_QUEUE=f"q-{hexid}",
        SENSOR_LEDGER_TABLE=f"t{hexid}",
        **overrides,
    )


def version_key(container: str, name: str, etag: str) -> str:
    return f"{container}/{name}@{normalize_etag(etag)}"


# --------------------------------------------------------------------------- outcomes


def test_a_submitted_chunk_counts_and_has_a_span_with_its_version_and_workflow(
    otel: Otel,
    blob_trigger: Callable[[BlobClient], None],
    blob: Callable[[str], BlobClient],
    upload: Callable[..., str],
    fake_argo: FakeArgoServer,
    container: ContainerClient,
) -> None:
    etag = upload("sensor-3/2026/c.csv")
    blob_trigger(blob("sensor-3/2026/c.csv"))
    (created,) = fake_argo.created

    m = otel.metrics()
    base = {"path": "blob", "mode": "immediate"}
    assert m.total("sensor.events.received", **base) == 1
    assert m.total("sensor.events.submitted", **base) == 1
    assert m.total("sensor.workflows.submitted", **base) == 1
    assert m.total("sensor.invocations", **base, outcome="submitted") == 1
    assert m.histogram("sensor.submit.attempts", **base) == (1, 1.0)
    count, seconds = m.histogram("sensor.submit.latency", **base)
    assert count == 1 and 0 <= seconds < 60  # upload -> accepted, seconds
    assert "sensor.events.duplicates" not in m.points

    span = otel.span("sensor.blob_trigger")
    assert span.attributes is not None
    assert span.attributes["sensor.chunk_version"] == version_key(container.container_name, "sensor-3/2026/c.csv", etag)
    assert span.attributes["sensor.workflow"] == created["metadata"]["name"]
    assert span.attributes["sensor.outcome"] == "submitted"
    assert span.attributes["sensor.path"] == "blob" and span.attributes["sensor.mode"] == "immediate"
    assert span.status.status_code is not StatusCode.ERROR


def test_a_repeated_event_is_a_duplicate_by_the_ledger(
    otel: Otel,
    blob_trigger: Callable[[BlobClient], None],
    blob: Callable[[str], BlobClient],
    upload: Callable[..., str],
    fake_argo: FakeArgoServer,
) -> None:
    upload("sensor-3/dup.csv")
    blob_trigger(blob("sensor-3/dup.csv"))
    blob_trigger(blob("sensor-3/dup.csv"))
    assert len(fake_argo.created) == 1

    m = otel.metrics()
    assert m.total("sensor.events.received", path="blob") == 2
    assert m.total("sensor.events.submitted", path="blob") == 1
    assert m.total("sensor.events.duplicates", path="blob", by="ledger") == 1
    assert m.total("sensor.events.duplicates", by="argo_409") == 0
    assert m.total("sensor.invocations", path="blob", outcome="duplicate") == 1
    first, second = otel.spans("sensor.blob_trigger")
    assert second.attributes is not None and first.attributes is not None
    assert second.attributes["sensor.outcome"] == "duplicate"
    assert second.attributes["sensor.workflow"] == first.attributes["sensor.workflow"]


def test_a_workflow_argo_has_but_the_ledger_does_not_is_a_duplicate_by_argo_409(
    otel: Otel,
    blob_trigger: Callable[[BlobClient], None],
    blob: Callable[[str], BlobClient],
    upload: Callable[..., str],
    fake_argo: FakeArgoServer,
    app_env: Callable[..., None],
) -> None:
    upload("sensor-4/argo.csv")
    blob_trigger(blob("sensor-4/argo.csv"))
    # A fresh ledger (another table): the claim is won again, and Argo answers 409 for the name.
    app_env(SENSOR_LEDGER_TABLE=f"t{uuid.uuid4().hex[:20]}")
    blob_trigger(blob("sensor-4/argo.csv"))
    assert len(fake_argo.created) == 1
    assert [r.status for r in fake_argo.submit_requests()] == [200, 409]

    m = otel.metrics()
    assert m.total("sensor.events.duplicates", path="blob", by="argo_409") == 1
    assert m.total("sensor.events.duplicates", by="ledger") == 0
    assert m.total("sensor.events.submitted", path="blob") == 1
    assert m.total("sensor.invocations", path="blob", outcome="duplicate") == 1
    assert m.histogram("sensor.submit.attempts", path="blob")[0] == 2  # both submissions reached Argo


def test_the_drain_counts_submitted_then_defers_at_the_in_flight_cap(
    otel: Otel,
    indexed: dict[str, Callable[..., Any]],
    app_env: Callable[..., None],
    blob: Callable[[str], BlobClient],
    upload: Callable[..., str],
    fake_argo: FakeArgoServer,
) -> None:
    coalesce_env(app_env, COALESCE_MAX_IN_FLIGHT="1", COALESCE_MAX_CHUNKS="2")
    trigger, drainer = indexed["chunk_blob_trigger"], indexed["coalesce_drainer"]
    for i in range(2):
        upload(f"sensor-5/a{i}.csv")
        trigger(blob(f"sensor-5/a{i}.csv"))
    drainer(None)  # one batch of 2: the one workflow the cap allows (it stays in flight)
    for i in range(3):
        upload(f"sensor-5/b{i}.csv")
        trigger(blob(f"sensor-5/b{i}.csv"))
    drainer(None)  # K = 1 in flight: nothing received, 3 events deferred
    assert len(fake_argo.created) == 1

    m = otel.metrics()
    assert m.total("sensor.invocations", path="blob", mode="coalesce", outcome="enqueued") == 5
    assert m.total("sensor.events.received", path="blob", mode="coalesce") == 5
    assert m.total("sensor.events.received", path="drain", mode="coalesce") == 2
    assert m.total("sensor.events.submitted", path="drain") == 2
    assert m.total("sensor.workflows.submitted", path="drain") == 1
    assert m.histogram("sensor.submit.latency", path="drain")[0] == 2
    assert m.histogram("sensor.submit.attempts", path="drain") == (1, 1.0)
    assert m.total("sensor.events.deferred", path="drain", mode="coalesce") == 3
    assert m.total("sensor.invocations", path="drain", outcome="drained") == 1
    assert m.total("sensor.invocations", path="drain", outcome="backpressure") == 1
    # Gauges, as the last drain found things: 1 in flight, 3 queued, the oldest a few seconds old.
    assert m.gauge("sensor.workflows.in_flight") == 1
    assert m.gauge("sensor.queue.depth") == 3
    assert m.gauge("sensor.queue.poison_depth") == 0
    oldest = m.gauge("sensor.queue.oldest_age")
    assert oldest is not None and 0 <= oldest < 120

    first, second = otel.spans("sensor.drain")
    assert first.attributes is not None and second.attributes is not None
    assert first.attributes["sensor.outcome"] == "drained"
    assert first.attributes["sensor.workflows"] == tuple(w["metadata"]["name"] for w in fake_argo.created)
    assert first.attributes["sensor.drain.submitted"] == 2
    assert second.attributes["sensor.outcome"] == "backpressure"
    assert second.attributes["sensor.drain.in_flight"] == 1
    assert second.attributes["sensor.drain.deferred"] == 3


def test_a_failed_drain_batch_is_counted_as_retried(
    otel: Otel,
    indexed: dict[str, Callable[..., Any]],
    app_env: Callable[..., None],
    blob: Callable[[str], BlobClient],
    upload: Callable[..., str],
    fake_argo: FakeArgoServer,
) -> None:
    coalesce_env(app_env, ARGO_MAX_ATTEMPTS="2")
    for i in range(3):
        upload(f"sensor-9/f{i}.csv")
        indexed["chunk_blob_trigger"](blob(f"sensor-9/f{i}.csv"))
    fake_argo.fail_next(Fault.unavailable(), Fault.unavailable())
    indexed["coalesce_drainer"](None)  # the batch's submit fails: its messages stay for a later drain
    assert fake_argo.created == []

    m = otel.metrics()
    assert m.total("sensor.events.retried", path="drain", **{"error.type": "SubmitUnavailable"}) == 3
    assert m.histogram("sensor.submit.attempts", path="drain") == (1, 2.0)
    assert m.total("sensor.events.submitted") == 0
    span = otel.span("sensor.drain")
    assert span.attributes is not None and span.attributes["sensor.drain.failed"] == 1
    assert span.attributes["sensor.outcome"] == "drained"


def test_poisoned_messages_are_counted_by_reason_class(
    otel: Otel,
    indexed: dict[str, Callable[..., Any]],
    app_env: Callable[..., None],
    azurite: Azurite,
) -> None:
    coalesce_env(app_env)
    settings = get_settings()
    queue = QueueClient.from_connection_string(azurite.connection_string, settings.events_queue)
    queue.create_queue()
    queue.send_message("this is not base64 !")
    queue.send_message(
        encode_message(
            {
                "id": uuid.uuid4().hex,
                "eventType": "Microsoft.Storage.BlobCreated",
                "subject": "/blobServices/default/containers/elsewhere/blobs/sensor-1/x.csv",
                "eventTime": "2026-11-22T08:00:00Z",
                "data": {"api": "PutBlob"},
            }
        )
    )
    indexed["coalesce_drainer"](None)

    m = otel.metrics()
    assert m.total("sensor.events.received", path="drain") == 2
    assert m.total("sensor.events.poisoned", path="drain", reason="content") == 1
    assert m.total("sensor.events.poisoned", path="drain", reason="subject") == 1
    # Read as the drain started: two messages waiting, nothing poisoned yet.
    assert m.gauge("sensor.queue.depth") == 2
    assert m.gauge("sensor.queue.poison_depth") == 0
    oldest = m.gauge("sensor.queue.oldest_age")
    assert oldest is not None and 0 <= oldest < 120
    span = otel.span("sensor.drain")
    assert span.attributes is not None and span.attributes["sensor.drain.poisoned"] == 2


def test_bad_requests_are_rejected_with_their_status(
    otel: Otel,
    indexed: dict[str, Callable[..., Any]],
    app_env: Callable[..., None],
    blob: Callable[[str], BlobClient],
) -> None:
    assert post(indexed, b'{"chunks": ["a.csv"], "chunks": ["b.csv"]}').status_code == 400
    assert post(indexed, json.dumps({"chunks": ["../etc/passwd"]}).encode()).status_code == 400
    assert post(indexed, json.dumps({"chunks": ["sensor-1/missing.csv"]}).encode()).status_code == 404
    indexed["chunk_blob_trigger"](blob("sensor-1/bad name.csv"))  # not on the allow-list

    m = otel.metrics()
    assert m.total("sensor.events.rejected", path="http", **{"http.response.status_code": 400}) == 2
    assert m.total("sensor.events.rejected", path="http", **{"http.response.status_code": 404}) == 1
    assert m.total("sensor.events.rejected", path="blob") == 1
    assert m.total("sensor.invocations", path="http", outcome="rejected") == 3
    assert m.total("sensor.events.submitted") == 0
    # Only the well-formed request (the 404) reached the allow-list: 1 event received over HTTP.
    assert m.total("sensor.events.received", path="http") == 1
    statuses = [s.attributes["sensor.http_status"] for s in otel.spans("sensor.http_trigger") if s.attributes]
    assert statuses == [400, 400, 404]
    for span in otel.spans():
        assert span.attributes is not None and span.attributes["sensor.outcome"] == "rejected"
        assert "sensor.chunk_version" not in span.attributes  # a refused name is never recorded


def test_an_http_batch_lists_its_chunk_versions_and_workflow(
    otel: Otel,
    indexed: dict[str, Callable[..., Any]],
    app_env: Callable[..., None],
    upload: Callable[..., str],
    container: ContainerClient,
    fake_argo: FakeArgoServer,
) -> None:
    etags = {n: upload(n) for n in ("sensor-2/h0.csv", "sensor-2/h1.csv")}
    response = post(indexed, json.dumps({"chunks": sorted(etags)}).encode())
    assert response.status_code == 202, response.get_body()

    m = otel.metrics()
    assert m.total("sensor.events.received", path="http") == 2
    assert m.total("sensor.events.submitted", path="http") == 2
    assert m.total("sensor.workflows.submitted", path="http") == 1
    assert m.histogram("sensor.submit.latency", path="http")[0] == 2
    span = otel.span("sensor.http_trigger")
    assert span.attributes is not None
    assert span.attributes["sensor.chunk_versions"] == tuple(
        version_key(container.container_name, n, e) for n, e in sorted(etags.items())
    )
    assert span.attributes["sensor.chunk_count"] == 2
    assert span.attributes["sensor.workflow"] == fake_argo.created[0]["metadata"]["name"]
    assert span.attributes["sensor.http_status"] == 202


def test_a_failed_blob_submit_is_retried_by_the_host_and_marks_the_span(
    otel: Otel,
    blob_trigger: Callable[[BlobClient], None],
    blob: Callable[[str], BlobClient],
    upload: Callable[..., str],
    fake_argo: FakeArgoServer,
    app_env: Callable[..., None],
) -> None:
    app_env(ARGO_MAX_ATTEMPTS="2")
    upload("sensor-6/down.csv")
    fake_argo.fail_next(Fault.unavailable(), Fault.unavailable())
    with pytest.raises(Exception, match="did not take workflow") as raised:
        blob_trigger(blob("sensor-6/down.csv"))
    error = type(raised.value).__name__

    m = otel.metrics()
    assert m.total("sensor.events.retried", path="blob", **{"error.type": error}) == 1
    assert m.total("sensor.invocations", path="blob", outcome="failed", **{"error.type": error}) == 1
    assert m.histogram("sensor.submit.attempts", path="blob") == (1, 2.0)
    span = otel.span("sensor.blob_trigger")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == error  # the class, never the message
    assert span.attributes is not None and span.attributes["error.type"] == error
    assert span.events == ()  # no exception event (its message and traceback are not recorded)


def test_the_status_route_has_a_span_with_the_chunk_version_and_workflow(
    otel: Otel,
    indexed: dict[str, Callable[..., Any]],
    blob_trigger: Callable[[BlobClient], None],
    blob: Callable[[str], BlobClient],
    upload: Callable[..., str],
    container: ContainerClient,
    fake_argo: FakeArgoServer,
) -> None:
    etag = upload("sensor-7/s.csv")
    blob_trigger(blob("sensor-7/s.csv"))
    req = func.HttpRequest(
        "GET", "http://localhost:7071/api/chunks/sensor-7/s.csv", body=b"", route_params={"name": "sensor-7/s.csv"}
    )
    response = indexed["chunk_status"](req)
    assert response.status_code == 200, response.get_body()

    span = otel.span("sensor.status")
    assert span.attributes is not None
    assert span.attributes["sensor.chunk_version"] == version_key(container.container_name, "sensor-7/s.csv", etag)
    assert span.attributes["sensor.workflow"] == fake_argo.created[0]["metadata"]["name"]
    assert span.attributes["sensor.chunk_status"] == "submitted"
    assert span.attributes["sensor.outcome"] == "answered"
    assert otel.metrics().total("sensor.invocations", path="status", outcome="answered") == 1


# --------------------------------------------------------------------------- no secrets


def _exported_text(otel: Otel) -> str:
    """Everything exported, as text: span names, attributes, statuses, events, links; metric names,
    descriptions, units, attributes."""
    parts: list[str] = []
    for span in otel.spans():
        parts.append(span.to_json())
    parts.append(otel.metrics().data.to_json())
    return "\n".join(parts)


def test_no_secret_reaches_any_span_or_metric(
    otel: Otel,
    indexed: dict[str, Callable[..., Any]],
    app_env: Callable[..., None],
    blob: Callable[[str], BlobClient],
    upload: Callable[..., str],
    fake_argo: FakeArgoServer,
    azurite: Azurite,
) -> None:
    # The settings hold a recognisable token and a connection string with an account key
    # (Azurite's, in the conftest's SENSOR_STORAGE); requests carry a function key.
    assert ACCOUNT_KEY in os.environ["SENSOR_STORAGE"] and os.environ["ARGO_TOKEN"] == SECRET_TOKEN
    function_key = "fn-key-" + uuid.uuid4().hex
    for name in ("sensor-8/a.csv", "sensor-8/b.csv", "sensor-8/c.csv"):
        upload(name)
    indexed["chunk_blob_trigger"](blob("sensor-8/a.csv"))  # submitted
    indexed["chunk_blob_trigger"](blob("sensor-8/a.csv"))  # duplicate
    post(indexed, json.dumps({"chunks": ["sensor-8/b.csv"]}).encode(), key=function_key)  # submitted
    post(indexed, json.dumps({SECRET_TOKEN: 1}).encode(), key=function_key)  # 400, an unknown field
    fake_argo.fail_next(Fault.status_code(401, f"token {SECRET_TOKEN} refused"))
    post(indexed, json.dumps({"chunks": ["sensor-8/c.csv"]}).encode(), key=function_key)  # 502
    req = func.HttpRequest(
        "GET",
        f"http://localhost:7071/api/chunks/sensor-8/a.csv?code={function_key}",
        body=b"",
        route_params={"name": "sensor-8/a.csv"},
        params={"code": function_key},
    )
    indexed["chunk_status"](req)
    coalesce_env(app_env)
    upload("sensor-8/d.csv")
    indexed["chunk_blob_trigger"](blob("sensor-8/d.csv"))
    indexed["coalesce_drainer"](None)
    app_env(ARGO_TOKEN="wrong-" + SECRET_TOKEN, SUBMIT_MODE="immediate")  # Argo refuses: the blob trigger raises
    upload("sensor-8/e.csv")
    with pytest.raises(Exception, match="401"):
        indexed["chunk_blob_trigger"](blob("sensor-8/e.csv"))

    assert len(otel.spans()) == 9
    text = _exported_text(otel)
    account_key_part = ACCOUNT_KEY[:24]
    for secret in (SECRET_TOKEN, ACCOUNT_KEY, account_key_part, function_key, "AccountKey", "Bearer", "code="):
        assert secret not in text, secret
    assert azurite.connection_string not in text


# --------------------------------------------------------------------------- off: nothing at all


def _in_fresh_interpreter(code: str, **env: str) -> dict[str, Any]:
    clean = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **env}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=clean, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


_LOADED = (
    "import json, sys; "
    "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'opentelemetry' or m.startswith('azure.monitor')); "
)


def test_with_telemetry_off_the_app_imports_no_opentelemetry() -> None:
    code = (
        "import function_app\n"
        "from function_app import telemetry\n"
        f"{_LOADED}\n"
        "at_import = loaded\n"
        "with telemetry.invocation('blob') as inv:\n"
        "    inv.count_received(); inv.set_mode('immediate'); inv.chunk_versions('c', ['n'], ['0x1'])\n"
        "off = telemetry.get_telemetry() is None\n"
        f"{_LOADED}\n"
        "print(json.dumps({'at_import': at_import, 'after_invocation': loaded, 'off': off}))\n"
    )
    for env in ({}, {"PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "false"}):
        result = _in_fresh_interpreter(code, **env)
        assert result == {"at_import": [], "after_invocation": [], "off": True}, env


def test_with_telemetry_on_the_app_uses_the_api_only_and_never_the_distro() -> None:
    # The worker imports and configures the distro; the app itself must import neither it nor the
    # SDK, and must not touch OpenTelemetry before the first invocation.
    code = (
        "import function_app\n"
        "from function_app import telemetry\n"
        f"{_LOADED}\n"
        "at_import = loaded\n"
        "with telemetry.invocation('blob') as inv:\n"
        "    inv.count_received()\n"
        "on = telemetry.get_telemetry() is not None\n"
        f"{_LOADED}\n"
        "print(json.dumps({'at_import': at_import, 'on': on, "
        "'distro_or_sdk': [m for m in loaded if m.startswith(('azure.monitor', 'opentelemetry.sdk'))], "
        "'api': 'opentelemetry.metrics' in loaded and 'opentelemetry.trace' in loaded}))\n"
    )
    for value in ("true", "TRUE", "1"):
        result = _in_fresh_interpreter(code, PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=value)
        assert result == {"at_import": [], "on": True, "distro_or_sdk": [], "api": True}, value


def test_the_switch_and_the_poison_classes() -> None:
    assert [telemetry_enabled({"PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": v}) for v in ("true", "True", "1")] == [
        True,
        True,
        True,
    ]
    assert not any(
        telemetry_enabled({"PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": v}) for v in ("", "false", "0", "yes")
    )
    assert not telemetry_enabled({})
    assert poison_reason_class("content: not base64 (Incorrect padding)") == "content"
    assert poison_reason_class("data.eTag: absent, and the blob's own ETag is unusable: x") == "data.eTag"
    assert poison_reason_class("received 7 times, more than COALESCE_MAX_DEQUEUE=5; left for the cron fallback") == (
        "max_dequeue"
    )
    # Whatever else a reason says, the class comes from a fixed set (a metric attribute stays low-cardinality).
    assert poison_reason_class(base64.b64encode(os.urandom(12)).decode() + ": x") == "other"
    assert poison_reason_class("no colon at all") == "other"
