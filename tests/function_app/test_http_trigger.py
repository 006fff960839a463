"""POST /api/trigger through the real registered function, a real HttpRequest, Azurite and the fake Argo."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import azure.functions as func
import pytest
from azure.storage.blob import BlobServiceClient

from function_app.http_trigger import handle_trigger_request
from localdev.azurite import ACCOUNT_KEY, free_port
from tests.fakes import FakeArgoServer, Fault
from tests.function_app.conftest import SECRET_TOKEN

Call = Callable[..., tuple[int, dict[str, Any], func.HttpResponse]]


def decision_lines(logs: str) -> list[dict[str, Any]]:
    """The fields of every ``submit-decision`` line (one JSON object each)."""
    return [
        json.loads(line.split("submit-decision ", 1)[1]) for line in logs.splitlines() if "submit-decision " in line
    ]


@pytest.fixture
def post(indexed: dict[str, Callable[..., Any]], app_env: Callable[..., None]) -> Call:
    def call(body: object = None, *, raw: bytes | None = None) -> tuple[int, dict[str, Any], func.HttpResponse]:
        data = raw if raw is not None else json.dumps(body).encode()
        req = func.HttpRequest(
            "POST",
            "http://localhost:7071/api/trigger",
            body=data,
            headers={"Content-Type": "application/json"},
        )
        resp: func.HttpResponse = indexed["manual_trigger"](req)
        payload = json.loads(resp.get_body()) if resp.get_body() else {}
        return resp.status_code, payload, resp

    return call


def test_submits_a_chunk_and_answers_202(post: Call, upload: Callable[..., str], fake_argo: FakeArgoServer) -> None:
    upload("sensor-1/2026/11/22/c1.csv")
    status, body, resp = post({"chunks": ["sensor-1/2026/11/22/c1.csv"]})
    assert status == 202, body
    assert set(body) == {"workflow", "run_id", "chunks", "duplicate", "suppressed"}
    assert body["run_id"] == "argo-" + body["workflow"] and body["duplicate"] is False
    assert body["chunks"] == ["sensor-1/2026/11/22/c1.csv"]
    assert resp.mimetype == "application/json"
    (created,) = fake_argo.created
    assert created["metadata"]["name"] == body["workflow"]
    assert created["metadata"]["labels"]["sensor-pipeline.io/trigger"] == "http"


def test_repeat_is_a_duplicate_and_force_resubmits(
    post: Call, upload: Callable[..., str], fake_argo: FakeArgoServer
) -> None:
    upload("s/a.csv")
    first = post({"chunks": ["s/a.csv"]})[1]
    again = post({"chunks": ["s/a.csv"], "force": False})[1]
    assert again["duplicate"] is True and again["workflow"] == first["workflow"]
    forced = post({"chunks": ["s/a.csv"], "force": True})
    assert forced[0] == 202 and forced[1]["duplicate"] is False
    assert forced[1]["workflow"] != first["workflow"]
    assert len(fake_argo.created) == 2


def test_a_new_upload_of_the_same_blob_is_a_new_run(
    post: Call, upload: Callable[..., str], fake_argo: FakeArgoServer
) -> None:
    upload("s/a.csv", b"v1")
    first = post({"chunks": ["s/a.csv"]})[1]
    upload("s/a.csv", b"v2")
    second = post({"chunks": ["s/a.csv"]})[1]
    assert second["duplicate"] is False and second["workflow"] != first["workflow"]


def test_several_chunks_one_workflow_in_any_order(
    post: Call, upload: Callable[..., str], fake_argo: FakeArgoServer
) -> None:
    for name in ("s1/a.csv", "s2/b.csv", "s3/c.csv"):
        upload(name)
    first = post({"chunks": ["s3/c.csv", "s1/a.csv", "s2/b.csv"]})[1]
    second = post({"chunks": ["s1/a.csv", "s2/b.csv", "s3/c.csv"]})[1]
    assert first["workflow"] == second["workflow"] and second["duplicate"] is True
    assert first["chunks"] == ["s1/a.csv", "s2/b.csv", "s3/c.csv"]
    params = {p["name"]: p["value"] for p in fake_argo.created[0]["spec"]["arguments"]["parameters"]}
    assert json.loads(json.loads(params["chunks"])) == first["chunks"]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (b"{not json", "body", "not valid JSON"),
        (b"[1, 2]", "body", "JSON object"),
        ({}, "chunks", "missing"),
        ({"chunks": []}, "chunks", "at least one"),
        ({"chunks": "s/a.csv"}, "chunks", "list"),
        ({"chunks": ["a", "b", "c"]}, "chunks", "maximum is 2"),
        ({"chunks": ["raw/$HOME/x.csv"]}, "chunks[0]", "'$'"),
        ({"chunks": ["ok.csv", "a/`reboot`.csv"]}, "chunks[1]", "'`'"),
        ({"chunks": ["a b.csv"]}, "chunks[0]", "' '"),
        ({"chunks": ["a/../../etc/passwd"]}, "chunks[0]", "'..'"),
        ({"chunks": [""]}, "chunks[0]", "empty"),
        ({"chunks": [None]}, "chunks[0]", "string"),
        ({"chunks": ["a.csv", "a.csv"]}, "chunks[1]", "twice"),
        ({"chunks": ["a.csv"], "force": "yes"}, "force", "true or false"),
        ({"chunk": ["a.csv"]}, "chunk", "unknown field"),
    ],
)
def test_bad_requests_are_400_naming_the_problem(
    post: Call,
    app_env: Callable[..., None],
    fake_argo: FakeArgoServer,
    all_logs: Callable[[], str],
    body: object,
    field: str,
    words: str,
) -> None:
    app_env(MAX_CHUNKS_PER_REQUEST="2")
    status, payload, _ = post(raw=body) if isinstance(body, bytes) else post(body)
    assert status == 400
    assert payload["field"] == field and words in payload["error"]
    assert fake_argo.requests == []  # nothing was sent
    (line,) = decision_lines(all_logs())  # one structured line saying why
    assert line["outcome"] == "rejected" and line["trigger"] == "http" and line["status"] == 400
    assert line["field"] == field and words in line["reason"]


def test_a_missing_chunk_is_404(
    post: Call, upload: Callable[..., str], fake_argo: FakeArgoServer, all_logs: Callable[[], str]
) -> None:
    upload("s/here.csv")
    status, payload, _ = post({"chunks": ["s/here.csv", "s/missing.csv"]})
    assert status == 404 and payload["chunk"] == "s/missing.csv"
    assert "s/missing.csv" in payload["error"]
    assert fake_argo.requests == []
    (line,) = decision_lines(all_logs())
    assert line["outcome"] == "rejected" and line["status"] == 404 and "s/missing.csv" in line["reason"]


def test_argo_refusing_the_token_is_502_without_the_token(
    post: Call, app_env: Callable[..., None], upload: Callable[..., str], all_logs: Callable[[], str]
) -> None:
    app_env(ARGO_TOKEN="wrong-" + SECRET_TOKEN)
    upload("s/a.csv")
    status, payload, resp = post({"chunks": ["s/a.csv"]})
    assert status == 502 and payload["upstream_status"] == 401
    assert "ARGO_TOKEN" in payload["error"]
    assert SECRET_TOKEN not in resp.get_body().decode() and SECRET_TOKEN not in all_logs()


def test_unknown_template_is_502_naming_it(
    post: Call, app_env: Callable[..., None], upload: Callable[..., str]
) -> None:
    app_env(ARGO_WORKFLOW_TEMPLATE="notdeployed")
    upload("s/a.csv")
    status, payload, _ = post({"chunks": ["s/a.csv"]})
    assert status == 502 and payload["upstream_status"] == 404 and "notdeployed" in payload["error"]


def test_argo_unavailable_after_retries_is_503_with_retry_after(
    post: Call,
    app_env: Callable[..., None],
    upload: Callable[..., str],
    fake_argo: FakeArgoServer,
    all_logs: Callable[[], str],
) -> None:
    app_env(ARGO_MAX_ATTEMPTS="2")
    fake_argo.fail_next(Fault.unavailable(), Fault.rate_limited(0))
    upload("s/a.csv")
    status, payload, resp = post({"chunks": ["s/a.csv"]})
    assert status == 503 and resp.headers["Retry-After"] == "30"
    assert "2 attempt(s)" in payload["error"] and "429" in payload["error"]
    assert '"outcome": "failed"' in all_logs()
    assert SECRET_TOKEN not in all_logs() and SECRET_TOKEN not in resp.get_body().decode()


def test_a_missing_setting_is_500_naming_it(post: Call, app_env: Callable[..., None]) -> None:
    app_env(ARGO_TOKEN=None)
    status, payload, _ = post({"chunks": ["s/a.csv"]})
    assert status == 500 and payload["field"] == "ARGO_TOKEN"


def test_storage_unavailable_is_503(app_env: Callable[..., None], fake_argo: FakeArgoServer) -> None:
    dead = BlobServiceClient(
        f"http://127.0.0.1:{free_port()}/devstoreaccount1",
        credential={"account_name": "devstoreaccount1", "account_key": ACCOUNT_KEY},
        retry_total=0,
    )
    req = func.HttpRequest("POST", "http://localhost/api/trigger", body=b'{"chunks": ["s/a.csv"]}')
    resp = handle_trigger_request(req, storage=dead)
    assert resp.status_code == 503 and "Blob Storage" in json.loads(resp.get_body())["error"]
    assert fake_argo.requests == []


def test_one_decision_line_per_request(post: Call, upload: Callable[..., str], all_logs: Callable[[], str]) -> None:
    upload("s/a.csv")
    post({"chunks": ["s/a.csv"]})
    lines = [line for line in all_logs().splitlines() if "submit-decision" in line]
    assert len(lines) == 1
    fields = json.loads(lines[0].split("submit-decision ", 1)[1])
    assert fields["outcome"] == "submitted" and fields["chunks"] == ["s/a.csv"] and fields["attempts"] == 1
    assert {"workflow", "latency_ms", "trigger", "container"} <= set(fields)


# --------------------------------------------------------------------------- strict JSON bodies

MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("raw", "rule", "words"),
    [
        # What a gateway or an audit log reads (often the first value) must be what runs.
        (b'{"chunks": ["s/a.csv"], "chunks": ["s/b.csv"]}', "duplicate-key", "duplicate key 'chunks'"),
        (b'{"chunks": ["s/a.csv"], "force": false, "force": true}', "duplicate-key", "duplicate key 'force'"),
        (b"[" * 100_000, "depth", "nested deeper than 32 levels"),
        (b'{"c":' * 100_000, "depth", "nested deeper than 32 levels"),
        (b'{"chunks": ["s/a.csv"], "force": false}'.replace(b"false", b"[" * 40 + b"]" * 40), "depth", "deeper"),
        (b'{"chunks": [NaN]}', "constant", "NaN is not JSON"),
        (b'{"chunks": ["s/a.csv"], "force": -Infinity}', "constant", "-Infinity is not JSON"),
        (b'{"chunks": ["s/a.csv"], "force": 1e400}', "number", "out of range"),
        (b'{"chunks": ["s/\xff.csv"]}', "utf-8", "not UTF-8 (byte 0xff at position 15"),
        (b'{"chunks": ["s/a.csv"]}'.replace(b"{", b"\xfe\xff"), "utf-8", "not UTF-8"),
        (b'{"chunks": ["s/\\ud800.csv"]}', "surrogate", "unpaired surrogate"),
        (b'{"chunks": ["s/a.csv"]}' + b" " * MIB, "size", f"over the limit of {MIB} bytes"),
    ],
    ids=[
        "duplicate-chunks",
        "duplicate-force",
        "100000-arrays",
        "100000-objects",
        "40-deep-force",
        "nan",
        "infinity",
        "overflowing-float",
        "invalid-utf8",
        "utf16-bom",
        "lone-surrogate",
        "over-1-mib",
    ],
)
def test_ambiguous_or_hostile_json_is_400_naming_body_and_the_rule(
    post: Call,
    upload: Callable[..., str],
    fake_argo: FakeArgoServer,
    all_logs: Callable[[], str],
    raw: bytes,
    rule: str,
    words: str,
) -> None:
    upload("s/a.csv")
    upload("s/b.csv")  # so that every ambiguous body WOULD be submittable under either reading
    status, payload, _ = post(raw=raw)
    assert status == 400, payload
    assert payload["field"] == "body" and payload["rule"] == rule and words in payload["error"]
    assert fake_argo.requests == []
    (line,) = decision_lines(all_logs())
    assert (line["outcome"], line["field"], line["rule"], line["status"]) == ("rejected", "body", rule, 400)
    assert words in line["reason"] and line["body_bytes"] == len(raw)


def test_a_body_of_exactly_the_limit_is_read(post: Call, upload: Callable[..., str]) -> None:
    upload("s/a.csv")
    body = b'{"chunks": ["s/a.csv"]}'
    status, payload, _ = post(raw=body + b" " * (MIB - len(body)))
    assert status == 202, payload


def test_a_refused_body_is_never_logged_raw(
    post: Call, all_logs: Callable[[], str], caplog: pytest.LogCaptureFixture
) -> None:
    marker = "MARKER-7f3a-do-not-log"
    hostile_key = "x\n\r\x00\u2028" + marker * 1000  # control characters and 22 kB in ONE unknown key
    status, payload, _ = post({"chunks": ["s/a.csv"], hostile_key: marker * 10_000})
    assert status == 400
    assert marker * 10 not in all_logs()  # neither the value nor the whole key
    assert marker * 10 not in payload["field"] and len(payload["field"]) <= 130
    (record,) = [r for r in caplog.records if "submit-decision" in r.getMessage()]
    message = record.getMessage()
    assert len(message) < 2000 and "\n" not in message and "\r" not in message and "\x00" not in message
    assert message.isprintable()
    (line,) = decision_lines(all_logs())
    assert line["outcome"] == "rejected" and "unknown field" in line["reason"]
    # A force value of any size is described, not echoed.
    status, payload, _ = post({"chunks": ["s/a.csv"], "force": marker * 10_000})
    assert status == 400 and payload["field"] == "force" and marker * 10 not in payload["error"] + all_logs()


def test_a_rejection_by_submit_chunks_is_logged_once(
    post: Call, app_env: Callable[..., None], upload: Callable[..., str], all_logs: Callable[[], str]
) -> None:
    # MAX_CHUNKS_PARAM_BYTES is checked by decide() inside submit_chunks, which logs its own line.
    app_env(MAX_CHUNKS_PARAM_BYTES="1024")
    names = [f"s/{'x' * 300}-{i}.csv" for i in range(4)]
    for name in names:
        upload(name)
    status, payload, _ = post({"chunks": names})
    assert status == 400 and payload["field"] == "chunks"
    (line,) = decision_lines(all_logs())
    assert line["outcome"] == "rejected" and "MAX_CHUNKS_PARAM_BYTES" in line["reason"]


# --------------------------------------------------------------------------- GET /api/chunks/{name}


@pytest.mark.parametrize("which", ["azure-webjobs-secrets", "azure-webjobs-hosts", "results", "results-default"])
def test_status_refuses_any_container_but_the_chunk_container_without_io(
    app_env: Callable[..., None], fake_argo: FakeArgoServer, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    import function_app.status as status_module
    import function_app.storage as storage_module
    import function_app.submission as submission_module

    results = "my-results"
    # Storage that would refuse every connection, so any read would show up as a 503, not a 400.
    dead = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={ACCOUNT_KEY};BlobEndpoint=http://127.0.0.1:{free_port()}/devstoreaccount1;"
    )
    if which == "results-default":
        app_env(SENSOR_STORAGE=dead, SENSOR_RESULTS_CONTAINER=None)
        container = "sensor-features"
    else:
        app_env(SENSOR_STORAGE=dead, SENSOR_RESULTS_CONTAINER=results)
        container = results if which == "results" else which

    def no_io(*args: object, **kwargs: object) -> None:
        raise AssertionError("the status route touched storage or the submit backend")

    for module, name in [
        (storage_module, "blob_service_client"),
        (storage_module, "ledger"),
        (submission_module, "get_backend"),
        (status_module, "lookup_status"),
    ]:
        monkeypatch.setattr(module, name, no_io)
    req = func.HttpRequest(
        "GET",
        f"http://localhost/api/chunks/s/a.csv?container={container}",
        params={"container": container},
        route_params={"name": "s/a.csv"},
        body=b"",
    )
    resp = status_module.chunk_status(req)
    assert resp.status_code == 400
    payload = json.loads(resp.get_body())
    assert payload["error"] == "invalid_container" and container in payload["message"]
    assert fake_argo.requests == []
