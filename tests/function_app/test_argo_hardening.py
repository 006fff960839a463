"""The Argo backend against an Argo Server — or a proxy in front of it — that answers oddly.

Odd 2xx bodies, redirects, trickling bodies, forged log lines, a 409 for a workflow gone by the
lookup, and tokens in all of it: every case through the fake Argo Server (tests/fakes), some
through the HTTP and blob triggers and the claim protocol as well.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, TypeVar

import azure.functions as func
import pytest
import requests

from chunk_contract.versions import ChunkVersion, normalize_etag
from function_app import storage
from function_app.argo_backend import ArgoBackend, SubmitUpstreamInvalid
from function_app.blob_trigger import handle_blob
from function_app.claims import ClaimBook, submit_owned
from function_app.settings import Settings, get_settings, load_settings
from function_app.submission import Submission, SubmitError, SubmitRejected, SubmitUnavailable, decide
from tests.fakes import FakeArgoServer, Fault
from tests.function_app.conftest import SECRET_TOKEN
from tests.function_app.test_argo_backend import Sleeps, make_settings, submission

T = TypeVar("T")


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def other_server() -> Iterator[FakeArgoServer]:
    """A second server on another port: where a redirect points (a proxy's login page, an attacker)."""
    with FakeArgoServer(token="another-token") as fake:
        yield fake


def bounded(seconds: float, call: Callable[[], T]) -> tuple[T | None, BaseException | None, float]:
    """Run ``call`` in a thread and fail if it is still running after ``seconds`` (no hung test)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = call()
        except BaseException as exc:
            box["error"] = exc

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"the call was still running after {seconds} s")
    return box.get("result"), box.get("error"), time.monotonic() - started


def workflow_json(name: str) -> str:
    return json.dumps({"metadata": {"name": name, "namespace": "argo"}, "spec": {}, "status": {}})


def log_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


# ------------------------------------------------------------------ odd 2xx answers to a submit

JSON = "application/json"
ODD_BODIES = {
    "html": ("<html><title>Sign in</title><body>Please sign in</body></html>", "text/html; charset=utf-8", "not JSON"),
    "empty": ("", JSON, "an empty body"),
    "truncated-json": ('{"metadata": {"name": "chunk-', JSON, "not JSON"),
    "array": ("[]", JSON, "a JSON array, not a Workflow object"),
    "string": ('"ok"', JSON, "a JSON string, not a Workflow object"),
    "metadata-null": ('{"metadata": null}', JSON, "metadata is a JSON null"),
    "no-metadata": ("{}", JSON, "metadata is a JSON null"),
    "no-name": ('{"metadata": {"name": ""}}', JSON, "without metadata.name"),
    "other-name": ('{"metadata": {"name": "someone-elses-workflow"}}', JSON, "named 'someone-elses-workflow'"),
    "deep": ("[" * 100_000, JSON, "not JSON"),
    "huge": (json.dumps({"metadata": {"name": "x"}, "pad": "x" * (1 << 21)}), JSON, "larger than 1048576 bytes"),
}


@pytest.mark.parametrize("kind", list(ODD_BODIES), ids=list(ODD_BODIES))
def test_an_odd_200_is_looked_up_then_a_502_kind_of_error_that_may_have_created(
    fake_argo: FakeArgoServer, sleeps: Sleeps, kind: str
) -> None:
    body, content_type, problem = ODD_BODIES[kind]
    settings = make_settings(fake_argo)
    fake_argo.fail_next(Fault.raw(200, body, content_type=content_type))
    with pytest.raises(SubmitUpstreamInvalid) as info:
        ArgoBackend(settings, sleep=sleeps).submit(submission(settings))
    error = info.value
    # Both: a rejection for the HTTP trigger (502), an unknown outcome for the claim protocol.
    assert isinstance(error, SubmitRejected) and isinstance(error, SubmitUnavailable)
    assert error.status == 200 and error.maybe_created is True and error.attempts == 1
    assert problem in str(error) and f"content type '{content_type}'" in str(error)
    assert error.url == f"{fake_argo.url}/api/v1/workflows/argo/submit"
    assert len(str(error)) < 1000
    # Looked up by name (a proxy may have passed the submit on), found nothing, did not resubmit.
    assert [(r.method, r.status) for r in fake_argo.requests] == [("POST", 200), ("GET", 404)]
    assert sleeps == [] and fake_argo.created == []


def test_an_odd_200_after_the_proxy_passed_the_submit_on_is_a_success(
    fake_argo: FakeArgoServer, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(fake_argo)
    fake_argo.fail_next(Fault.raw(200, "<html>ok</html>", create=True))
    result = ArgoBackend(settings, sleep=sleeps).submit(submission(settings))
    assert result.duplicate is False and result.attempts == 1  # our request id is on it
    assert len(fake_argo.created) == 1 and len(fake_argo.submit_requests()) == 1
    assert any("taken as submitted" in m and "text/html" in m for m in log_messages(caplog))


def test_an_odd_200_whose_lookup_is_odd_too_stays_unknown(fake_argo: FakeArgoServer, sleeps: Sleeps) -> None:
    settings = make_settings(fake_argo)
    page = "<html>Sign in</html>"
    fake_argo.fail_next(Fault.raw(200, page, create=True), Fault.raw(200, page, route="get"))
    with pytest.raises(SubmitUpstreamInvalid) as info:
        ArgoBackend(settings, sleep=sleeps).submit(submission(settings))
    assert info.value.maybe_created is True and "GET by name then failed too" in str(info.value)
    assert len(fake_argo.submit_requests()) == 1


def test_a_submit_answer_cut_off_in_transit_is_resolved_by_the_lookup(
    fake_argo: FakeArgoServer, sleeps: Sleeps
) -> None:
    settings = make_settings(fake_argo)
    fake_argo.fail_next(Fault.truncated())
    result = ArgoBackend(settings, sleep=sleeps).submit(submission(settings))
    assert result.duplicate is False and result.attempts == 1
    assert len(fake_argo.created) == 1 and [r.method for r in fake_argo.requests] == ["POST", "GET"]


def test_a_submit_answer_cut_off_over_tls_is_resolved_by_the_lookup(
    fake_argo_tls: FakeArgoServer, sleeps: Sleeps
) -> None:
    settings = make_settings(fake_argo_tls)
    fake_argo_tls.fail_next(Fault.truncated())
    result = ArgoBackend(settings, sleep=sleeps).submit(submission(settings))
    assert result.duplicate is False and len(fake_argo_tls.created) == 1


def test_tls_breaking_mid_exchange_is_ambiguous_not_a_certificate_problem(
    fake_argo: FakeArgoServer, sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(fake_argo)
    backend = ArgoBackend(settings, sleep=sleeps)
    real = backend.session.request
    calls: list[str] = []

    def flaky(method: str, url: str, **kwargs: Any) -> requests.Response:
        calls.append(method)
        if len(calls) == 1:
            real(method, url, **kwargs).close()  # the server got it (and created the workflow)...
            raise requests.exceptions.SSLError("EOF occurred in violation of protocol (_ssl.c:2427)")
        return real(method, url, **kwargs)

    monkeypatch.setattr(backend.session, "request", flaky)
    result = backend.submit(submission(settings))
    assert calls == ["POST", "GET"] and result.duplicate is False and result.attempts == 1


# ------------------------------------------------------------------ odd answers to GET and list


@pytest.mark.parametrize(
    ("body", "content_type", "problem"),
    [
        ("<html>Sign in</html>", "text/html", "not JSON"),
        ("[]", JSON, "a JSON array"),
        ('{"metadata": null}', JSON, "metadata is a JSON null"),
        ('{"metadata": {"name": "another"}}', JSON, "named 'another'"),
    ],
    ids=["html", "array", "metadata-null", "other-name"],
)
def test_get_workflow_checks_the_body(
    fake_argo: FakeArgoServer, sleeps: Sleeps, body: str, content_type: str, problem: str
) -> None:
    backend = ArgoBackend(make_settings(fake_argo), sleep=sleeps)
    fake_argo.fail_next(Fault.raw(200, body, content_type=content_type, route="get"))
    with pytest.raises(SubmitUpstreamInvalid) as info:
        backend.get_workflow("chunk-abc")
    assert problem in str(info.value) and content_type in str(info.value)
    assert info.value.maybe_created is False  # a GET creates nothing


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("<html>Sign in</html>", "not JSON"),
        ("{}", "no 'items'"),
        ('{"items": {}}', "'items' that is a JSON object"),
        ('{"items": "3"}', "'items' that is a JSON string"),
        ('{"items": [' + ",".join(['{"metadata": {"name": "x"}}'] * 40_000) + "]}", "larger than 1048576 bytes"),
    ],
    ids=["html", "no-items", "items-object", "items-string", "huge"],
)
def test_count_in_flight_checks_the_body(fake_argo: FakeArgoServer, sleeps: Sleeps, body: str, problem: str) -> None:
    backend = ArgoBackend(make_settings(fake_argo), sleep=sleeps)
    fake_argo.fail_next(Fault.raw(200, body, content_type="text/html", route="list"))
    with pytest.raises(SubmitUpstreamInvalid) as info:
        backend.count_in_flight("sensorprocessingflow", 3)
    assert problem in str(info.value) and "content type 'text/html'" in str(info.value)


def test_count_in_flight_still_counts(fake_argo: FakeArgoServer, sleeps: Sleeps) -> None:
    settings = make_settings(fake_argo)
    backend = ArgoBackend(settings, sleep=sleeps)
    assert backend.count_in_flight("sensorprocessingflow", 3) == 0  # "items": null
    for i in range(4):
        backend.submit(submission(settings, name=f"sensor-1/c{i}.csv"))
    assert backend.count_in_flight("sensorprocessingflow", 3) == 3


# ------------------------------------------------------------------ redirects


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_never_followed(
    fake_argo: FakeArgoServer, other_server: FakeArgoServer, sleeps: Sleeps, status: int
) -> None:
    settings = make_settings(fake_argo)
    sub = submission(settings)
    elsewhere = f"{other_server.url}/api/v1/workflows/argo/submit"
    fake_argo.fail_next(Fault.redirect(status, elsewhere))
    # What answers there would say "created" (and would have been believed).
    other_server.fail_next(Fault.raw(200, workflow_json(sub.workflow_name), content_type=JSON, route="any"))
    with pytest.raises(SubmitRejected) as info:
        ArgoBackend(settings, sleep=sleeps).submit(sub)
    assert not isinstance(info.value, SubmitUnavailable)  # nothing was taken: the claim may be released
    assert info.value.status == status and elsewhere in str(info.value)
    assert "ARGO_SERVER_URL" in str(info.value)
    assert other_server.requests == [] and fake_argo.created == []
    assert len(fake_argo.requests) == 1 and sleeps == []  # no lookup, no retry: a config problem


def test_a_redirect_is_not_followed_on_a_session_of_the_callers_either(
    fake_argo: FakeArgoServer, other_server: FakeArgoServer, sleeps: Sleeps
) -> None:
    # Not only build_session's: allow_redirects=False is passed on every request.
    settings = make_settings(fake_argo)
    fake_argo.fail_next(Fault.redirect(307, f"{other_server.url}/api/v1/workflows/argo/submit"))
    with pytest.raises(SubmitRejected) as info:
        ArgoBackend(settings, session=requests.Session(), sleep=sleeps).submit(submission(settings))
    assert info.value.status == 307 and other_server.requests == []


def test_a_same_origin_redirect_does_not_resend_the_body_or_the_token(
    fake_argo: FakeArgoServer, sleeps: Sleeps
) -> None:
    # requests keeps the Authorization header on a same-host-and-port redirect and re-POSTs on 307.
    settings = make_settings(fake_argo)
    fake_argo.fail_next(Fault.redirect(307, "/api/v1/workflows/argo/submit?moved=1"))
    with pytest.raises(SubmitRejected) as info:
        ArgoBackend(settings, sleep=sleeps).submit(submission(settings))
    assert info.value.status == 307 and f"{fake_argo.url}/api/v1/workflows/argo/submit?..." in str(info.value)
    assert len(fake_argo.requests) == 1 and fake_argo.created == []


def test_a_sign_in_proxy_redirect_names_the_location_without_secrets(
    fake_argo: FakeArgoServer, other_server: FakeArgoServer, sleeps: Sleeps
) -> None:
    settings = make_settings(fake_argo)
    host = other_server.url.removeprefix("http://")
    login = f"http://someone:hunter2@{host}/api/v1/version/\x1b[31mlogin?next=/submit&token={SECRET_TOKEN}"
    fake_argo.fail_next(Fault.redirect(302, login))
    with pytest.raises(SubmitRejected) as info:
        ArgoBackend(settings, sleep=sleeps).submit(submission(settings))
    message = str(info.value)
    assert info.value.status == 302 and f"http://{host}/api/v1/version/\\x1b[31mlogin?..." in message
    for secret in (SECRET_TOKEN, "hunter2", "someone", "next=", "\x1b"):
        assert secret not in message and secret not in info.value.server_message
    assert other_server.requests == []


def test_a_redirect_with_a_trickling_body_ends_on_the_deadline(fake_argo: FakeArgoServer, sleeps: Sleeps) -> None:
    # requests reads a redirect's whole body (to prepare Response.next) even when not following it.
    settings = make_settings(fake_argo, ARGO_CONNECT_TIMEOUT="0.2", ARGO_READ_TIMEOUT="0.4", ARGO_RETRY_SECONDS="0.5")
    fake_argo.fail_next(Fault.raw(302, "x" * 200, headers={"Location": "/login"}, bytes_per_second=20))
    _, error, elapsed = bounded(5, lambda: ArgoBackend(settings, sleep=sleeps).submit(submission(settings)))
    assert isinstance(error, SubmitRejected) and error.status == 302
    assert elapsed < 0.6 + 0.5


def test_get_and_list_do_not_follow_redirects(
    fake_argo: FakeArgoServer, other_server: FakeArgoServer, sleeps: Sleeps
) -> None:
    backend = ArgoBackend(make_settings(fake_argo), sleep=sleeps)
    fake_argo.fail_next(
        Fault.redirect(302, f"{other_server.url}/api/v1/workflows/argo/chunk-x", route="get"),
        Fault.redirect(307, f"{other_server.url}/api/v1/workflows/argo", route="list"),
    )
    other_server.fail_next(Fault.raw(200, '{"metadata": {"name": "chunk-x"}, "items": []}', route="any"))
    with pytest.raises(SubmitRejected) as get_info:
        backend.get_workflow("chunk-x")
    with pytest.raises(SubmitRejected) as list_info:
        backend.count_in_flight("sensorprocessingflow", 3)
    assert (get_info.value.status, list_info.value.status) == (302, 307)
    assert other_server.url in str(get_info.value) and other_server.url in str(list_info.value)
    assert other_server.requests == []


# ------------------------------------------------------------------ deadlines


def deadline_settings(fake: FakeArgoServer, **env: str) -> Settings:
    # One request may take 0.2 + 0.4 s; the whole call 0.5 s of retries + one request: 1.1 s.
    return make_settings(fake, ARGO_CONNECT_TIMEOUT="0.2", ARGO_READ_TIMEOUT="0.4", ARGO_RETRY_SECONDS="0.5", **env)


def test_a_trickling_body_ends_in_a_clear_error_within_the_budget(fake_argo: FakeArgoServer, sleeps: Sleeps) -> None:
    settings = deadline_settings(fake_argo)
    fake_argo.fail_next(*[Fault.trickle(10, route="any") for _ in range(20)])  # every request, 0.1 s a byte
    _, error, elapsed = bounded(8, lambda: ArgoBackend(settings, sleep=sleeps).submit(submission(settings)))
    assert isinstance(error, SubmitUnavailable) and not isinstance(error, SubmitRejected)
    assert "did not arrive by the deadline" in str(error) and "ARGO_READ_TIMEOUT" in str(error)
    assert error.maybe_created is True  # the trickled 200 came from a server that created it
    assert elapsed < 0.5 + 0.6 + 0.4  # ARGO_RETRY_SECONDS + one request, and some slack


def test_a_trickling_submit_answer_is_cut_at_the_request_deadline_then_looked_up(
    fake_argo: FakeArgoServer, sleeps: Sleeps
) -> None:
    settings = deadline_settings(fake_argo)
    fake_argo.fail_next(Fault.trickle(10))  # each byte well within the read timeout
    result, error, elapsed = bounded(8, lambda: ArgoBackend(settings, sleep=sleeps).submit(submission(settings)))
    assert error is None and result is not None
    assert result.duplicate is False and result.attempts == 1 and len(fake_argo.created) == 1
    assert elapsed < 0.6 + 0.4


@pytest.mark.parametrize("route", ["get", "list"])
def test_get_and_list_end_on_the_request_deadline(fake_argo: FakeArgoServer, sleeps: Sleeps, route: str) -> None:
    backend = ArgoBackend(deadline_settings(fake_argo), sleep=sleeps)
    fake_argo.fail_next(Fault.raw(200, "x" * 100, content_type=JSON, bytes_per_second=4, route=route))
    call = (lambda: backend.get_workflow("chunk-x")) if route == "get" else (lambda: backend.count_in_flight("t", 3))
    _, error, elapsed = bounded(8, call)
    assert isinstance(error, SubmitUnavailable) and "did not arrive by the deadline" in str(error)
    assert elapsed < 0.6 + 0.4


# ------------------------------------------------------------------ a 409 for a workflow that is gone


def test_a_409_whose_lookup_says_404_is_retried_not_a_duplicate(fake_argo: FakeArgoServer, sleeps: Sleeps) -> None:
    settings = make_settings(fake_argo)
    sub = submission(settings)
    exists = f'workflows.argoproj.io "{sub.workflow_name}" already exists'
    fake_argo.fail_next(Fault.status_code(409, exists), Fault.status_code(404, "not found", route="get"))
    result = ArgoBackend(settings, sleep=sleeps).submit(sub)
    assert result.duplicate is False and result.attempts == 2 and len(sleeps) == 1
    assert len(fake_argo.created) == 1
    assert [(r.method, r.status) for r in fake_argo.requests] == [("POST", 409), ("GET", 404), ("POST", 200)]


def test_a_409_then_404_until_the_budget_ends_may_have_created(fake_argo: FakeArgoServer, sleeps: Sleeps) -> None:
    settings = make_settings(fake_argo, ARGO_MAX_ATTEMPTS="2")
    sub = submission(settings)
    gone = [Fault.status_code(409, "already exists"), Fault.status_code(404, "not found", route="get")]
    fake_argo.fail_next(*gone, *gone)
    with pytest.raises(SubmitUnavailable) as info:
        ArgoBackend(settings, sleep=sleeps).submit(sub)
    assert info.value.maybe_created is True and info.value.attempts == 2
    assert "answered 404" in str(info.value)


def test_a_409_whose_lookup_fails_is_still_a_duplicate(fake_argo: FakeArgoServer, sleeps: Sleeps) -> None:
    settings = make_settings(fake_argo)
    backend = ArgoBackend(settings, sleep=sleeps)
    backend.submit(submission(settings))
    fake_argo.fail_next(Fault.unavailable(route="get"))
    again = backend.submit(submission(settings))
    assert again.duplicate is True and again.attempts == 1


# ------------------------------------------------------------------ upstream text in messages and logs

FORGED = '\r\n2026-11-22 12:00:00 INFO function_app.submission submit-decision {"outcome": "submitted"}'


def test_upstream_text_cannot_forge_a_log_line(
    fake_argo: FakeArgoServer, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    settings = make_settings(fake_argo, ARGO_MAX_ATTEMPTS="3")
    backend = ArgoBackend(settings, sleep=sleeps)
    fake_argo.fail_next(
        Fault.status_code(503, "overloaded" + FORGED),
        Fault.status_code(502, "bad gateway" + FORGED),
        Fault.status_code(503, "still" + FORGED),
    )
    with pytest.raises(SubmitUnavailable) as info:
        backend.submit(submission(settings))
    messages = log_messages(caplog)
    assert any("overloaded" in m for m in messages), "expected the retry warnings"
    for text in [*messages, str(info.value)]:
        assert "\n" not in text and "\r" not in text
    assert "\\r\\n2026-11-22" in str(info.value)  # still there, escaped: one line


def test_upstream_error_text_is_escaped_and_capped(fake_argo: FakeArgoServer, sleeps: Sleeps) -> None:
    settings = make_settings(fake_argo)
    fake_argo.fail_next(Fault.status_code(403, "denied" + FORGED + "\x1b[2J\u2028" + "y" * 10_000))
    with pytest.raises(SubmitRejected) as info:
        ArgoBackend(settings, sleep=sleeps).submit(submission(settings))
    server = info.value.server_message
    assert server.startswith("denied\\r\\n2026") and "\\x1b[2J\\u2028" in server
    assert all(ch.isprintable() for ch in server + str(info.value))
    assert len(server) < 400 and len(str(info.value)) < 700


def test_a_plain_text_429_with_line_breaks_stays_one_line(fake_argo: FakeArgoServer, sleeps: Sleeps) -> None:
    settings = make_settings(fake_argo, ARGO_MAX_ATTEMPTS="1")
    fake_argo.fail_next(replace(Fault.rate_limited(1, plain=True), message="slow down" + FORGED))
    with pytest.raises(SubmitUnavailable) as info:
        ArgoBackend(settings, sleep=sleeps).submit(submission(settings))
    assert "slow down\\r\\n" in str(info.value) and "\n" not in str(info.value)


# ------------------------------------------------------------------ tokens


def test_the_token_never_reaches_messages_or_logs_on_the_new_paths(
    fake_argo: FakeArgoServer, other_server: FakeArgoServer, sleeps: Sleeps, all_logs: Callable[[], str]
) -> None:
    settings = make_settings(fake_argo, ARGO_MAX_ATTEMPTS="2")
    backend = ArgoBackend(settings, sleep=sleeps)
    errors: list[SubmitError] = []
    echo = f"<html>token={SECRET_TOKEN}</html>"
    scenarios = [
        [Fault.redirect(302, f"{other_server.url}/{SECRET_TOKEN}?t={SECRET_TOKEN}")],
        [Fault.raw(200, echo), Fault.raw(200, echo, route="get")],
        [Fault.raw(200, f'{{"metadata": {{"name": "{SECRET_TOKEN}"}}}}', content_type=f"text/{SECRET_TOKEN}")],
        [Fault.status_code(409, SECRET_TOKEN), Fault.status_code(404, SECRET_TOKEN, route="get")] * 2,
        [Fault.status_code(503, SECRET_TOKEN), Fault.raw(200, echo * 3, bytes_per_second=1000)],
    ]
    for i, faults in enumerate(scenarios):
        fake_argo.fail_next(*faults)
        with pytest.raises(SubmitError) as info:
            backend.submit(submission(settings, name=f"sensor-1/t{i}.csv"))
        errors.append(info.value)
        assert fake_argo.pending_faults() == []
    assert all_logs()
    for text in [all_logs(), *map(str, errors), *(getattr(e, "server_message", "") for e in errors)]:
        assert SECRET_TOKEN not in text
    assert all(not r.authorized for r in other_server.requests)


# ------------------------------------------------------------------ through the triggers and the claims


def test_the_http_trigger_answers_502_naming_the_problem_and_keeps_the_claim(
    indexed: dict[str, Callable[..., Any]],
    app_env: Callable[..., None],
    upload: Callable[..., str],
    fake_argo: FakeArgoServer,
) -> None:
    etag = upload("sensor-1/2026/h.csv")
    fake_argo.fail_next(Fault.raw(200, "<html>Sign in</html>"))
    request = func.HttpRequest(
        "POST",
        "http://localhost:7071/api/trigger",
        body=json.dumps({"chunks": ["sensor-1/2026/h.csv"]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    response = indexed["manual_trigger"](request)
    body = json.loads(response.get_body())
    assert response.status_code == 502, body
    assert body["upstream_status"] == 200 and "text/html" in body["error"] and "not JSON" in body["error"]
    settings = get_settings()
    claim = storage.ledger(settings).latest(
        ChunkVersion(settings.sensor_container, "sensor-1/2026/h.csv", normalize_etag(etag))
    )
    assert claim is not None and claim.state == "claimed"  # not released: it may have been created
    # The next request (the proxy fixed) resumes the same claim and workflow.
    again = indexed["manual_trigger"](request)
    assert again.status_code == 202 and json.loads(again.get_body())["workflow"] == claim.owner
    assert [wf["metadata"]["name"] for wf in fake_argo.created] == [claim.owner]


def test_the_http_trigger_answers_502_to_a_redirect(
    indexed: dict[str, Callable[..., Any]],
    app_env: Callable[..., None],
    upload: Callable[..., str],
    fake_argo: FakeArgoServer,
    other_server: FakeArgoServer,
) -> None:
    upload("sensor-1/2026/r.csv")
    fake_argo.fail_next(Fault.redirect(307, f"{other_server.url}/api/v1/workflows/argo/submit"))
    other_server.fail_next(Fault.raw(200, '{"metadata": {"name": "anything"}}', route="any"))
    request = func.HttpRequest(
        "POST",
        "http://localhost:7071/api/trigger",
        body=json.dumps({"chunks": ["sensor-1/2026/r.csv"]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    response = indexed["manual_trigger"](request)
    body = json.loads(response.get_body())
    assert response.status_code == 502 and body["upstream_status"] == 307
    assert other_server.url in body["error"] and other_server.requests == []


def test_the_blob_trigger_raises_so_the_host_retries(
    settings: Settings, upload: Callable[..., str], fake_argo: FakeArgoServer
) -> None:
    upload("sensor-1/2026/b.csv")
    fake_argo.fail_next(Fault.raw(200, "[]", content_type=JSON))
    client = SimpleNamespace(container_name=settings.sensor_container, blob_name="sensor-1/2026/b.csv")
    with pytest.raises(SubmitUpstreamInvalid):
        handle_blob(client, settings=settings)
    result = handle_blob(client, settings=settings)  # the host's retry
    assert result is not None and result.duplicate is False and len(fake_argo.created) == 1


def test_a_batch_manifest_stays_submitting_after_an_odd_answer(
    base_env: dict[str, str], fake_argo: FakeArgoServer
) -> None:
    settings = load_settings({**base_env, "SENSOR_LEDGER_TABLE": f"t{time.time_ns()}"})
    ledger = storage.ledger(settings)
    now = datetime.now(UTC)
    versions = [ChunkVersion(settings.sensor_container, n, "0x1") for n in ("s/a.csv", "s/b.csv")]
    decision = decide(
        trigger="coalesce",
        container=settings.sensor_container,
        chunks=[v.name for v in versions],
        etags=[v.etag for v in versions],
        force=False,
        settings=settings,
        request_id="req1",
        batch_token="tok1",
        max_chunks=10,
    )
    assert isinstance(decision, Submission)
    book = ClaimBook(ledger, now=now, stale_after=timedelta(seconds=60))
    owned = [book.settle(v, owner=decision.workflow_name, owner_kind="batch", path="blob").claim for v in versions]
    fake_argo.fail_next(Fault.raw(200, '{"metadata": null}', content_type=JSON))
    with pytest.raises(SubmitUpstreamInvalid):
        submit_owned(
            ledger, ArgoBackend(settings), decision, owned, owner_kind="batch", path="blob", now=now, token="tok1"
        )
    manifest = ledger.get_manifest(decision.workflow_name)
    assert manifest is not None and manifest.state == "submitting"  # a later planner resumes it
