"""Local mode end to end: event source → real blob-trigger handler → LocalBackend → real Metaflow runs.

Azurite, the real handler (``function_app.blob_trigger.handle_blob``) with a real ``BlobClient``, the
real submission path with ``SUBMIT_BACKEND=local``, and ``metaflow.Runner``. Nothing is faked.
"""

from __future__ import annotations

import json

import pytest
from azure.storage.blob import BlobServiceClient

from chunk_contract.records import result_blob_name
from function_app.blob_trigger import handle_blob
from function_app.settings import load_settings
from function_app.status import lookup_status
from localdev.event_source import EventSource
from localdev.local_backend import LocalBackend
from localdev.synthetic import generate_chunks

pytestmark = pytest.mark.slow


def test_duplicate_events_run_once_and_status_answers(e2e_env: dict[str, str]) -> None:
    settings = load_settings({**e2e_env, "SUBMIT_BACKEND": "local"})
    service = BlobServiceClient.from_connection_string(e2e_env["SENSOR_STORAGE"])
    container = service.get_container_client(e2e_env["SENSOR_CONTAINER"])
    chunks = generate_chunks(sensors=1, chunks_per_sensor=1, seconds_per_chunk=15)
    good, bad = chunks
    for c in chunks:
        container.upload_blob(c.name, c.data)

    backend = LocalBackend(settings)
    source = EventSource(e2e_env["SENSOR_STORAGE"], e2e_env["SENSOR_CONTAINER"], poison_threshold=3)
    events = source.poll()
    assert source.poll() == []  # one event per blob version
    plan = source.plan(events, duplicate_rate=1.0, reorder=True, seed=1)  # every event twice
    report = source.deliver(plan, lambda client: handle_blob(client, settings=settings, backend=backend), workers=2)

    assert report.deliveries == 4 and report.duplicates == 2 and report.poisoned == []
    markers = service.get_container_client("sensor-local-workflows")
    names = [backend.get_workflow(n) for n in (b.name for b in markers.list_blobs())]
    ours = [
        w
        for w in names
        if w and json.loads(w["spec"]["arguments"]["parameters"][1]["value"]) == container.container_name
    ]
    assert len(ours) == 2  # two chunk versions, two workflows: the duplicates were suppressed
    assert {w["status"]["phase"] for w in ours} == {"Succeeded"}

    results = e2e_env["SENSOR_RESULTS_CONTAINER"]
    processed = lookup_status(
        good.name, service=service, container=container.container_name, results_container=results, backend=backend
    )
    assert processed.status == "processed", processed
    assert processed.result_location == f"{results}/{result_blob_name(good.name)}"
    assert processed.run_id and processed.run_id.startswith("SensorProcessingFlow/")
    assert processed.workflow_phase == "Succeeded"
    failed = lookup_status(
        bad.name, service=service, container=container.container_name, results_container=results, backend=backend
    )
    assert failed.status == "failed" and "ERR#42" in (failed.reason or "")

    # Re-upload the good chunk: a new version is pending until its own event is delivered.
    container.upload_blob(good.name, good.data + b"", overwrite=True)
    pending = lookup_status(
        good.name, service=service, container=container.container_name, results_container=results, backend=backend
    )
    assert pending.status == "pending" and pending.workflow_name is None
