"""The Argo backend against the fake Argo Server: every answer class, retries, TLS, no token leaks."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import certifi
import pytest

from function_app.argo_backend import ArgoBackend, build_session, parse_retry_after
from function_app.settings import Settings, load_settings
from function_app.submission import Submission, SubmitRejected, SubmitUnavailable, decide
from localdev.azurite import free_port
from tests.fakes import FakeArgoServer, Fault
from tests.function_app.conftest import SECRET_TOKEN


def make_settings(fake: FakeArgoServer, **env: str) -> Settings:
    base = {
        "SENSOR_STORAGE": "UseDevelopmentStorage=true",
        "ARGO_SERVER_URL": fake.url,
        "ARGO_TOKEN": SECRET_TOKEN,
        "ARGO_RETRY_SECONDS": "10",
        "ARGO_READ_TIMEOUT": "2",
    }
    if fake.ca_bundle:
        base["ARGO_CA_BUNDLE"] = fake.ca_bundle
    return load_settings({**base, **env})


def submission(settings: Settings, name: str = "sensor-1/2026/chunk-1.csv", etag: str = '"0x8DC1"') -> Submission:
    decision = decide(
        trigger="blob",
        container=settings.sensor_container,
        chunks=[name],
        etags=[etag],
        force=False,
        settings=settings,
        request_id="req1",
    )
    assert isinstance(decision, Submission)
    return decision


class Sleeps(list[float]):
    """Records the backoff tenacity asks for, without sleeping (no timed tests)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def test_submit_creates_the_workflow_with_decoded_parameters(fake_argo: FakeArgoServer, sleeps: Sleeps) -> None:
    settings = make_settings(fake_argo)
    result = ArgoBackend(settings, sleep=sleeps).submit(submission(settings))
    assert result.duplicate is False and result.attempts == 1
    assert result.run_id == f"argo-{result.workflow_name}"
    (created,) = fake_argo.created
    assert created["metadata"]["name"] == result.workflow_name
    params = {p["name"]: p["value"] for p in created["spec"]["arguments"]["parameters"]}
    # Metaflow decodes a JSONType parameter twice and a str parameter once.
    assert json.loads(json.loads(params["chunks"])) == ["sensor-1/2026/chunk-1.csv"]
    assert json.loads(params["container"]) == "sensor-data"
    assert created["metadata"]["labels"]["sensor-pipeline.io/trigger"] == "blob"
    assert sleeps == []


def test_existing_name_is_a_duplicate_not_an_error(fake_argo: FakeArgoServer, sleeps: Sleeps) -> None:
    settings = make_settings(fake_argo)
    backend = ArgoBackend(settings, sleep=sleeps)
    first = backend.submit(submission(settings))
    again = backend.submit(replace(submission(settings), body=_with_request_id(submission(settings).body, "other")))
    assert again.duplicate is True and again.workflow_name == first.workflow_name
    assert len(fake_argo.created) == 1
    assert [r.status for r in fake_argo.submit_requests()] == [200, 409]


def _with_request_id(body: dict, request_id: str) -> dict:
    body = json.loads(json.dumps(body))
    body["submitOptions"]["annotations"] = f"sensor-pipeline.io/request-id={request_id}"
    return body


def test_503_is_retried_with_growing_bounded_backoff(fake_argo: FakeArgoServer, sleeps: Sleeps) -> None:
    settings = make_settings(fake_argo)
    fake_argo.fail_next(Fault.unavailable(), Fault.unavailable(), Fault.unavailable())
    result = ArgoBackend(settings, sleep=sleeps).submit(submission(settings))
    assert result.attempts == 4 and result.duplicate is False
    assert len(sleeps) == 3 and all(0 < s <= 8.25 for s in sleeps)
    assert sleeps[2] > sleeps[0]  # exponential (jitter is at most 0.25 s)
    assert len(fake_argo.created) == 1


@pytest.mark.parametrize("plain", [False, True], ids=["json-body", "plain-text-body"])
def test_429_honours_retry_after(fake_argo: FakeArgoServer, sleeps: Sleeps, plain: bool) -> None:
    settings = make_settings(fake_argo)
    fake_argo.fail_next(Fault.rate_limited(3, plain=plain), Fault.rate_limited("1.5", plain=plain))
    result = ArgoBackend(settings, sleep=sleeps).submit(submission(settings))
    assert sleeps == [3.0, 1.5]
    assert result.attempts == 3


def test_retry_after_beyond_the_budget_stops_instead_of_sleeping(fake_argo: FakeArgoServer, sleeps: Sleeps) -> None:
    settings = make_settings(fake_argo, ARGO_RETRY_SECONDS="5")
    fake_argo.fail_next(Fault.rate_limited(30))
    with pytest.raises(SubmitUnavailable) as info:
        ArgoBackend(settings, sleep=sleeps).submit(submission(settings))
    assert sleeps == [] and info.value.attempts == 1
    assert "429" in str(info.value)


def test_parse_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
    later = (now + timedelta(seconds=7)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(later, now=now) == 7.0
    assert parse_retry_after("2", now=now) == 2.0
    assert parse_retry_after("-4", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None


def test_connection_reset_is_retried_and_creates_one_workflow(fake_argo: FakeArgoServer, sleeps: Sleeps) -> None:
    settings = make_settings(fake_argo)
    fake_argo.fail_next(Fault.reset(), Fault.reset())
    result = ArgoBackend(settings, sleep=sleeps).submit(submission(settings))
    assert result.attempts == 3 and result.duplicate is False
    assert len(fake_argo.created) == 1
    # Each reset was followed by a GET by name (the outcome was ambiguous) before retrying.
    methods = [(r.method, r.status) for r in fake_argo.requests]
    assert methods == [("POST", -1), ("GET", 404), ("POST", -1), ("GET", 404), ("POST", 200)]


def test_ambiguous_500_after_creating_is_resolved_by_a_lookup(fake_argo: FakeArgoServer, sleeps: Sleeps) -> None:
    settings = make_settings(fake_argo)
    fake_argo.fail_next(Fault.create_then_error(500))
    result = ArgoBackend(settings, sleep=sleeps).submit(submission(settings))
    # Our request id is on the workflow: this call created it, so it is not a duplicate.
    assert result.duplicate is False and result.attempts == 1 and sleeps == []
    assert len(fake_argo.created) == 1
    assert [r.method for r in fake_argo.requests] == ["POST", "GET"]


def test_plain_500_without_creation_is_retried(fake_argo: FakeArgoServer, sleeps: Sleeps) -> None:
    settings = make_settings(fake_argo)
    fake_argo.fail_next(Fault.status_code(500, "Unknown"))
    result = ArgoBackend(settings, sleep=sleeps).submit(submission(settings))
    assert result.attempts == 2 and result.duplicate is False and len(fake_argo.created) == 1


def test_read_timeout_then_late_creation_yields_exactly_one_workflow(fake_argo: FakeArgoServer, sleeps: Sleeps) -> None:
    settings = make_settings(fake_argo, ARGO_READ_TIMEOUT="0.3")
    fake_argo.fail_next(Fault.slow(1.0))
    result = ArgoBackend(settings, sleep=sleeps).submit(submission(settings))
    assert result.duplicate is False
    assert len(fake_argo.created) == 1
    assert result.attempts == 2  # timed out, looked up (not there yet), resubmitted


def test_read_timeout_after_creation_is_resolved_by_the_lookup(fake_argo: FakeArgoServer, sleeps: Sleeps) -> None:
    # The server creates the workflow, then answers after the read timeout: only the GET by name
    # after the timeout tells that it exists — without it, a second POST would be needed (a 409).
    settings = make_settings(fake_argo, ARGO_READ_TIMEOUT="0.3")
    fake_argo.fail_next(Fault.create_then_slow(1.0))
    result = ArgoBackend(settings, sleep=sleeps).submit(submission(settings))
    assert result.duplicate is False and result.attempts == 1 and sleeps == []
    assert len(fake_argo.created) == 1 and len(fake_argo.submit_requests()) == 1
    assert [(r.method, r.route) for r in fake_argo.requests] == [("POST", "submit"), ("GET", "get")]


@pytest.mark.parametrize(
    ("fault", "status"),
    [(Fault.status_code(400, "bad request"), 400), (Fault.status_code(403, "forbidden: rbac"), 403)],
    ids=["400", "403"],
)
def test_client_errors_are_not_retried(fake_argo: FakeArgoServer, sleeps: Sleeps, fault: Fault, status: int) -> None:
    settings = make_settings(fake_argo)
    fake_argo.fail_next(fault)
    with pytest.raises(SubmitRejected) as info:
        ArgoBackend(settings, sleep=sleeps).submit(submission(settings))
    assert info.value.status == status
    assert info.value.url == f"{fake_argo.url}/api/v1/workflows/argo/submit"
    assert fault.message in str(info.value) and str(status) in str(info.value)
    assert len(fake_argo.submit_requests()) == 1 and sleeps == []


def test_bad_token_is_401_with_a_hint_and_no_token(fake_argo: FakeArgoServer, sleeps: Sleeps) -> None:
    settings = make_settings(fake_argo, ARGO_TOKEN="Bearer wrong-" + SECRET_TOKEN)
    with pytest.raises(SubmitRejected) as info:
        ArgoBackend(settings, sleep=sleeps).submit(submission(settings))
    assert info.value.status == 401 and "ARGO_TOKEN" in str(info.value)
    assert SECRET_TOKEN not in str(info.value)
    assert len(fake_argo.submit_requests()) == 1


def test_unknown_template_is_404_naming_it(fake_argo: FakeArgoServer, sleeps: Sleeps) -> None:
    settings = make_settings(fake_argo, ARGO_WORKFLOW_TEMPLATE="nosuchflow")
    with pytest.raises(SubmitRejected) as info:
        ArgoBackend(settings, sleep=sleeps).submit(submission(settings))
    assert info.value.status == 404 and "nosuchflow" in str(info.value)
    assert "ARGO_WORKFLOW_TEMPLATE" in str(info.value)


def test_resource_kind_is_case_sensitive(fake_argo: FakeArgoServer, sleeps: Sleeps) -> None:
    settings = make_settings(fake_argo)
    good = submission(settings)
    bad = replace(good, body={**good.body, "resourceKind": "workflowTemplate"})
    with pytest.raises(SubmitRejected) as info:
        ArgoBackend(settings, sleep=sleeps).submit(bad)
    assert info.value.status == 400 and fake_argo.created == []


def test_parameter_without_equals_is_a_500_from_argo_and_gives_up(fake_argo: FakeArgoServer, sleeps: Sleeps) -> None:
    settings = make_settings(fake_argo, ARGO_MAX_ATTEMPTS="2")
    good = submission(settings)
    body = json.loads(json.dumps(good.body))
    body["submitOptions"]["parameters"].append("novalue")
    with pytest.raises(SubmitUnavailable) as info:
        ArgoBackend(settings, sleep=sleeps).submit(replace(good, body=body))
    assert "NAME=VALUE" in str(info.value) and info.value.attempts == 2
    assert fake_argo.created == []


def test_retries_exhausted_raise_unavailable(fake_argo: FakeArgoServer, sleeps: Sleeps) -> None:
    settings = make_settings(fake_argo, ARGO_MAX_ATTEMPTS="4")
    fake_argo.fail_next(*[Fault.unavailable() for _ in range(10)])
    with pytest.raises(SubmitUnavailable) as info:
        ArgoBackend(settings, sleep=sleeps).submit(submission(settings))
    assert info.value.attempts == 4 and len(fake_argo.submit_requests()) == 4 and len(sleeps) == 3
    assert "503" in str(info.value) and fake_argo.url in str(info.value)


def test_unreachable_server_raises_unavailable(sleeps: Sleeps) -> None:
    settings = load_settings(
        {
            "SENSOR_STORAGE": "UseDevelopmentStorage=true",
            "ARGO_SERVER_URL": f"http://127.0.0.1:{free_port()}",
            "ARGO_TOKEN": SECRET_TOKEN,
            "ARGO_MAX_ATTEMPTS": "3",
        }
    )
    with pytest.raises(SubmitUnavailable) as info:
        ArgoBackend(settings, sleep=sleeps).submit(submission(settings))
    assert info.value.attempts == 3 and len(sleeps) == 2


def test_one_session_reuses_one_connection(fake_argo: FakeArgoServer, sleeps: Sleeps) -> None:
    settings = make_settings(fake_argo)
    backend = ArgoBackend(settings, sleep=sleeps)
    for i in range(5):
        backend.submit(submission(settings, name=f"sensor-1/c{i}.csv"))
    assert len({r.client_port for r in fake_argo.requests}) == 1


def test_get_workflow_returns_json_or_none(fake_argo: FakeArgoServer, sleeps: Sleeps) -> None:
    settings = make_settings(fake_argo)
    backend = ArgoBackend(settings, sleep=sleeps)
    result = backend.submit(submission(settings))
    workflow = backend.get_workflow(result.workflow_name)
    assert workflow is not None and workflow["metadata"]["name"] == result.workflow_name
    assert backend.get_workflow("chunk-unknown-0") is None


# ---------------------------------------------------------------------------- TLS


def test_https_with_ca_bundle(fake_argo_tls: FakeArgoServer, sleeps: Sleeps) -> None:
    settings = make_settings(fake_argo_tls)
    assert settings.argo_ca_bundle == fake_argo_tls.ca_bundle
    assert ArgoBackend(settings, sleep=sleeps).submit(submission(settings)).attempts == 1


def test_https_without_the_ca_fails_fast_with_a_hint(fake_argo_tls: FakeArgoServer, sleeps: Sleeps) -> None:
    settings = replace(make_settings(fake_argo_tls), argo_ca_bundle=None)
    with pytest.raises(SubmitUnavailable) as info:
        ArgoBackend(settings, sleep=sleeps).submit(submission(settings))
    assert "ARGO_CA_BUNDLE" in str(info.value) and sleeps == []
    assert fake_argo_tls.created == []


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_requests_ca_bundle_in_the_environment_does_not_override_ours(
    fake_argo_tls: FakeArgoServer, sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests would let REQUESTS_CA_BUNDLE replace a session-level `verify`; we pass it per request.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    settings = make_settings(fake_argo_tls)
    assert ArgoBackend(settings, sleep=sleeps).submit(submission(settings)).attempts == 1
    insecure = replace(settings, argo_ca_bundle=None, argo_insecure_skip_verify=True)
    assert ArgoBackend(insecure, sleep=sleeps).submit(submission(settings, name="sensor-1/x.csv")).attempts == 1


def test_a_netrc_entry_does_not_replace_the_bearer_token(
    fake_argo: FakeArgoServer, sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # With trust_env (requests' default) a ~/.netrc entry for the host would overwrite our
    # Authorization header with Basic auth: the Argo Server would answer 401.
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password other\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    settings = make_settings(fake_argo)
    assert ArgoBackend(settings, sleep=sleeps).submit(submission(settings)).attempts == 1


def test_proxy_settings_are_read_once_when_the_session_is_built(
    fake_argo: FakeArgoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "")
    session = build_session(replace(make_settings(fake_argo), argo_server_url="https://argo.example:2746"))
    assert session.trust_env is False
    assert session.proxies["https"] == "http://proxy.invalid:3128"
    # NO_PROXY naming the Argo host: no proxy for it.
    monkeypatch.setenv("NO_PROXY", "argo.example")
    session = build_session(replace(make_settings(fake_argo), argo_server_url="https://argo.example:2746"))
    assert "https" not in session.proxies


def test_skipping_verification_is_logged_as_a_warning(
    fake_argo_tls: FakeArgoServer, sleeps: Sleeps, all_logs: Callable[[], str]
) -> None:
    settings = make_settings(fake_argo_tls, ARGO_INSECURE_SKIP_VERIFY="true")
    settings = replace(settings, argo_ca_bundle=None)
    with pytest.warns(Warning):  # urllib3's InsecureRequestWarning, once per request
        ArgoBackend(settings, sleep=sleeps).submit(submission(settings))
    assert "WARNING" in all_logs() and "NOT verified" in all_logs()


def test_the_token_never_reaches_the_logs(
    fake_argo: FakeArgoServer, sleeps: Sleeps, all_logs: Callable[[], str]
) -> None:
    settings = make_settings(fake_argo, ARGO_MAX_ATTEMPTS="3")
    backend = ArgoBackend(settings, sleep=sleeps)
    fake_argo.fail_next(Fault.unavailable(), Fault.reset(), Fault.rate_limited(1, plain=True))
    with pytest.raises(SubmitUnavailable) as info:
        backend.submit(submission(settings))
    fake_argo.fail_next(Fault.status_code(403, f"echo {SECRET_TOKEN}"))  # even a server echoing it
    with pytest.raises(SubmitRejected) as rejected:
        backend.submit(submission(settings))
    assert all_logs(), "expected retry warnings"
    for text in (all_logs(), str(info.value), str(rejected.value), repr(settings)):
        assert SECRET_TOKEN not in text
