"""``sensorctl status`` / ``backfill`` and ``GET /api/chunks/{name}`` against Azurite and the fake Argo Server."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator

import azure.functions as func
import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from chunk_contract.records import RunInfo, write_result
from function_app.settings import get_settings, load_settings
from function_app.status import chunk_status
from function_app.storage import blob_service_client
from function_app.submission import get_backend, submit_chunks
from localdev.azurite import Azurite
from sensorctl.cli import main
from tests.fakes.argo_server import FakeArgoServer, Fault

TOKEN = "sensorctl-test-token-never-printed"
CHUNK = b"timestamp,value\n0,1.0\n1,2.0\n"


def _clear() -> None:
    get_settings.cache_clear()
    get_backend.cache_clear()
    blob_service_client.cache_clear()


@pytest.fixture
def world(
    azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[FakeArgoServer, ContainerClient, ContainerClient]]:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    chunks = service.create_container(f"c-{uuid.uuid4().hex[:20]}")
    results = service.create_container(f"r-{uuid.uuid4().hex[:20]}")
    with FakeArgoServer(token=TOKEN) as fake:
        env = {
            "SENSOR_STORAGE": azurite.connection_string,
            "SENSOR_CONTAINER": chunks.container_name,
            "SENSOR_RESULTS_CONTAINER": results.container_name,
            "SUBMIT_BACKEND": "argo",
            "ARGO_SERVER_URL": fake.url,
            "ARGO_TOKEN": TOKEN,
            "ARGO_READ_TIMEOUT": "2",
        }
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        _clear()
        yield fake, chunks, results
        _clear()


def _run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def _chunks_of(workflow: dict) -> list[str]:
    value = next(p["value"] for p in workflow["spec"]["arguments"]["parameters"] if p["name"] == "chunks")
    return json.loads(json.loads(value))


def test_backfill_batches_dedups_skips_and_forces(world, capsys) -> None:
    fake, chunks, results = world
    for name in ("s1/a.csv", "s1/b.csv", "s1/c.csv", "s1/d.csv", "s1/e.csv", "s2/a.csv", "s1/bad name.csv"):
        chunks.upload_blob(name, CHUNK)
    # s1/a.csv is processed (a current result); s1/b.csv's event workflow is in flight.
    etag_a = chunks.get_blob_client("s1/a.csv").get_blob_properties().etag
    write_result(
        results, "s1/a.csv", {"x": 1}, chunk_container=chunks.container_name, chunk_etag=etag_a, run=RunInfo("F", "1")
    )
    settings = load_settings(dict(__import__("os").environ))
    etag_b = chunks.get_blob_client("s1/b.csv").get_blob_properties().etag
    event = submit_chunks(settings, "blob", ["s1/b.csv"], [etag_b])

    code, out = _run("backfill", "--prefix", "s1/", "--batch-size", "2", "--dry-run")
    assert code == 0, out
    assert "6 blob(s) listed, 3 to submit in 2 batch(es)" in out
    assert "skipped 1 up to date, 1 in flight, 0 out of the time range, 1 invalid name(s)" in out
    assert "invalid name, not submitted: 's1/bad name.csv': character ' ' is not allowed" in out
    assert len(fake.created) == 1  # dry run: only the event's workflow exists

    code, out = _run("backfill", "--prefix", "s1/", "--batch-size", "2", "--no-progress")
    assert code == 0, out
    assert "2 workflow(s) submitted (3 chunks), 0 chunk(s) suppressed as duplicates, 0 batch(es) failed" in out
    backfilled = fake.created[1:]
    assert sorted(c for w in backfilled for c in _chunks_of(w)) == ["s1/c.csv", "s1/d.csv", "s1/e.csv"]
    assert {w["metadata"]["labels"]["sensor-pipeline.io/trigger"] for w in backfilled} == {"backfill"}

    code, out = _run("backfill", "--prefix", "s1/", "--batch-size", "2", "--no-progress")
    # Every chunk of the earlier batches is claimed in the ledger now: in flight, skipped, and no
    # request reaches Argo (before the ledger, [c, d] was deduplicated only by Argo's 409).
    assert "skipped 1 up to date, 4 in flight" in out
    assert "0 to submit" in out
    assert len(fake.created) == 3

    code, out = _run("backfill", "--prefix", "s1/", "--batch-size", "10", "--force", "--no-progress")
    assert "1 workflow(s) submitted (5 chunks)" in out
    assert fake.created[-1]["metadata"]["name"].startswith("rerun-")

    code, out = _run("backfill", "--since", "2999-01-01", "--no-progress")
    assert "0 to submit" in out and "7 out of the time range" in out
    assert event.workflow_name == fake.created[0]["metadata"]["name"]
    assert TOKEN not in out + capsys.readouterr().err


def test_backfill_reports_failed_batches_with_exit_1(world) -> None:
    fake, chunks, _ = world
    chunks.upload_blob("s1/a.csv", CHUNK)
    fake.fail_next(Fault.status_code(403, "workflows is forbidden"))
    code, out = _run("backfill", "--no-progress")
    assert code == 1
    assert "1 batch(es) failed" in out and "SubmitRejected" in out and "403" in out
    assert TOKEN not in out


def test_status_command_and_http_route(world) -> None:
    fake, chunks, results = world
    chunks.upload_blob("s1/a.csv", CHUNK)
    chunks.upload_blob("s1/b.csv", CHUNK)
    chunks.upload_blob("s1/c.csv", CHUNK)
    etag_a = chunks.get_blob_client("s1/a.csv").get_blob_properties().etag
    write_result(
        results,
        "s1/a.csv",
        {"x": 1},
        chunk_container=chunks.container_name,
        chunk_etag=etag_a,
        run=RunInfo("SensorProcessingFlow", "42"),
    )
    settings = load_settings(dict(__import__("os").environ))
    etag_b = chunks.get_blob_client("s1/b.csv").get_blob_properties().etag
    submitted = submit_chunks(settings, "blob", ["s1/b.csv"], [etag_b])

    code, out = _run("status", "s1/a.csv", "--json")
    assert code == 0
    answer = json.loads(out)
    assert answer["status"] == "processed" and answer["run_id"] == "SensorProcessingFlow/42"
    assert answer["result_location"] == f"{results.container_name}/s1/a.csv.features.json"

    code, out = _run("status", "s1/b.csv", "--json")
    answer = json.loads(out)
    assert answer["status"] == "submitted" and answer["workflow_name"] == submitted.workflow_name
    assert answer["run_id"] == f"argo-{submitted.workflow_name}"
    fake.set_phase(submitted.workflow_name, "Failed")
    assert json.loads(_run("status", "s1/b.csv", "--json")[1])["status"] == "failed"

    code, out = _run("status", "s1/c.csv")
    assert code == 0 and "status: pending" in out
    assert _run("status", "s1/nope.csv")[0] == 1

    def get(name: str, **params: str) -> func.HttpResponse:
        return chunk_status(
            func.HttpRequest("GET", f"/api/chunks/{name}", route_params={"name": name}, params=params, body=b"")
        )

    ok = get("s1/a.csv")
    assert ok.status_code == 200 and json.loads(ok.get_body())["status"] == "processed"
    assert get("s1/nope.csv").status_code == 404
    bad = get("s1/$HOME.csv")
    assert bad.status_code == 400 and "character '$' is not allowed" in json.loads(bad.get_body())["message"]
    assert get("s1/a.csv", container="Not_A_Container").status_code == 400
    fake.fail_next(Fault.unavailable(route="get"))  # Argo down: a chunk without a record cannot be answered
    unavailable = get("s1/c.csv")
    assert unavailable.status_code == 503 and TOKEN not in unavailable.get_body().decode()
    assert json.loads(get("s1/a.csv").get_body())["status"] == "processed"  # records still answer
