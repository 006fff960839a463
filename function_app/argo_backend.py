"""The Argo Server REST backend: only HTTP, on one reused ``requests.Session``.

What it does with each answer to ``POST /api/v1/workflows/{ns}/submit``:

====================================  ==========================================================
200                                   submitted
409 (name exists)                     already submitted: success, ``duplicate=True`` (unless the
                                      workflow carries *our* request id: then an earlier attempt
                                      of this very call created it)
429, 502, 503, 504                    retried: exponential backoff with jitter, ``Retry-After``
                                      honoured (seconds or HTTP date), bounded by
                                      ``ARGO_RETRY_SECONDS`` and ``ARGO_MAX_ATTEMPTS``
500, 502, 504, read timeout, reset    ambiguous — the workflow may exist: GET it by name first;
                                      found → success, else retried as above
connect timeout / refused             retried
TLS verification failure              :class:`SubmitUnavailable` at once (a config problem)
other 4xx (400, 401, 403, 404, ...)   :class:`SubmitRejected` at once, with status, URL and the
                                      server's own message (never the token)
====================================  ==========================================================

Every request has explicit (connect, read) timeouts and passes ``verify=`` explicitly: requests
otherwise lets ``REQUESTS_CA_BUNDLE`` from the environment override a session's ``verify``,
silently re-enabling or re-pointing TLS verification.
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests
import tenacity
from requests.adapters import HTTPAdapter

from function_app.naming import ANNOTATION_REQUEST_ID
from function_app.settings import Settings
from function_app.submission import Submission, SubmitRejected, SubmitResult, SubmitUnavailable

__all__ = ["ArgoBackend", "build_session", "parse_retry_after"]

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
AMBIGUOUS_STATUS = frozenset({500, 502, 504})  # the request may have been carried out before the error
MAX_RETRY_AFTER = 60.0
_BACKOFF = tenacity.wait_exponential_jitter(
    multiplier=0.25, max=8.0, jitter=0.25
)  # 0.25, 0.5, 1, ... + jitter  # never sleep longer than this on a server's say-so (the budget still applies)

_HINTS = {
    400: "the submit body was refused; see the server's message",
    401: "the Argo Server refused the token: check ARGO_TOKEN (sent as 'Authorization: Bearer ...')",
    403: "the token's service account may not submit workflows in this namespace (RBAC)",
    404: "is the WorkflowTemplate created in this namespace (ARGO_WORKFLOW_TEMPLATE, ARGO_NAMESPACE)?",
}


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), else None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def build_session(settings: Settings) -> requests.Session:
    """The one session for the Argo Server: keep-alive pool, bearer token, no urllib3 retries."""
    session = requests.Session()
    # trust_env=False: otherwise requests re-reads the environment on EVERY request (proxy variables:
    # ~20 % of a keep-alive submission, measured with cProfile), lets REQUESTS_CA_BUNDLE override
    # our `verify`, and lets a ~/.netrc entry replace the bearer token. Proxies from the environment
    # (HTTPS_PROXY / NO_PROXY) are still honoured: read once, here.
    session.trust_env = False
    session.proxies.update(requests.utils.get_environ_proxies(settings.argo_server_url))
    session.headers["Authorization"] = f"Bearer {settings.argo_token}"
    session.headers["Accept"] = "application/json"
    session.headers["User-Agent"] = "sensor-pipeline-function-app"
    # Retries are ours (tenacity, with Retry-After and an ambiguity check); urllib3's would hide them.
    adapter = HTTPAdapter(pool_connections=2, pool_maxsize=16, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    if settings.argo_insecure_skip_verify:
        logger.warning(
            "ARGO_INSECURE_SKIP_VERIFY=true: the TLS certificate of %s is NOT verified; "
            "set ARGO_CA_BUNDLE to the server's CA certificate instead",
            settings.argo_server_url,
        )
    return session


class _Retry(Exception):
    """One failed attempt that may be retried."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class _Outcome:
    workflow: dict[str, Any]
    duplicate: bool


class ArgoBackend:
    """Submits to an Argo Server. Thread-safe for concurrent calls (requests' pool is)."""

    def __init__(
        self,
        settings: Settings,
        session: requests.Session | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.session = session if session is not None else build_session(settings)
        self.base_url = settings.argo_server_url.rstrip("/")
        self.namespace = settings.argo_namespace
        self.timeout = (settings.argo_connect_timeout, settings.argo_read_timeout)
        self.verify: bool | str = False if settings.argo_insecure_skip_verify else (settings.argo_ca_bundle or True)
        self._sleep = sleep

    @classmethod
    def from_settings(cls, settings: Settings) -> ArgoBackend:
        return cls(settings)

    # ------------------------------------------------------------------ public API

    def submit(self, submission: Submission) -> SubmitResult:
        url = f"{self.base_url}/api/v1/workflows/{quote(self.namespace, safe='')}/submit"
        attempts = 0

        def attempt() -> _Outcome:
            nonlocal attempts
            attempts += 1
            return self._attempt_submit(url, submission)

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_Retry),
            wait=self._wait,
            stop=(
                tenacity.stop_after_attempt(self.settings.argo_max_attempts)
                | tenacity.stop_before_delay(self.settings.argo_retry_seconds)
            ),
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=False,
        )
        started = time.monotonic()
        try:
            outcome = retrying(attempt)
        except tenacity.RetryError as exc:
            last = exc.last_attempt.exception()
            raise SubmitUnavailable(
                f"Argo Server at {url} did not take workflow {submission.workflow_name!r} after {attempts} "
                f"attempt(s) in {time.monotonic() - started:.1f} s; last error: {self._redact(str(last))}",
                url=url,
                attempts=attempts,
            ) from None
        name = outcome.workflow.get("metadata", {}).get("name") or submission.workflow_name
        return SubmitResult(workflow_name=name, run_id=f"argo-{name}", duplicate=outcome.duplicate, attempts=attempts)

    def get_workflow(self, name: str) -> dict[str, Any] | None:
        """The Workflow JSON by name, or None if the server does not know it (404)."""
        url = f"{self.base_url}/api/v1/workflows/{quote(self.namespace, safe='')}/{quote(name, safe='')}"
        try:
            response = self.session.get(url, timeout=self.timeout, verify=self.verify)
        except requests.RequestException as exc:
            raise SubmitUnavailable(
                f"Argo Server at {url} unreachable: {self._redact(str(exc))}", url=url, attempts=1
            ) from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._error(response, url, attempts=1)
        workflow: dict[str, Any] = response.json()
        return workflow

    # ------------------------------------------------------------------ one attempt

    def _attempt_submit(self, url: str, submission: Submission) -> _Outcome:
        try:
            response = self.session.post(url, json=submission.body, timeout=self.timeout, verify=self.verify)
        except requests.exceptions.SSLError as exc:
            raise SubmitUnavailable(
                f"TLS verification of {url} failed ({self._redact(str(exc))}); set ARGO_CA_BUNDLE to the "
                "server's CA certificate",
                url=url,
                attempts=1,
            ) from None
        except requests.exceptions.ConnectTimeout as exc:
            raise _Retry(f"connect timeout: {exc}") from None  # nothing was sent
        except requests.RequestException as exc:
            # Read timeout or reset: the server may have created the workflow before we lost it.
            found = self._lookup(submission)
            if found is not None:
                return found
            raise _Retry(f"{type(exc).__name__}: {exc}") from None
        status = response.status_code
        if status == 200:
            return _Outcome(response.json(), duplicate=False)
        if status == 409:
            found = self._lookup(submission)
            return found if found is not None else _Outcome({"metadata": {"name": submission.workflow_name}}, True)
        if status in AMBIGUOUS_STATUS:
            found = self._lookup(submission)
            if found is not None:
                return found
        if status in RETRYABLE_STATUS:
            raise _Retry(
                f"{status} from {url}: {self._server_message(response)}",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        raise self._error(response, url, attempts=1)

    def _lookup(self, submission: Submission) -> _Outcome | None:
        """After an ambiguous answer: does the workflow exist, and did *this* call create it?"""
        try:
            workflow = self.get_workflow(submission.workflow_name)
        except Exception:  # the lookup is best effort; the caller retries the submit
            logger.info("lookup of workflow %s after an ambiguous answer failed", submission.workflow_name)
            return None
        if workflow is None:
            return None
        annotations = workflow.get("metadata", {}).get("annotations") or {}
        ours = bool(submission.request_id) and annotations.get(ANNOTATION_REQUEST_ID) == submission.request_id
        return _Outcome(workflow, duplicate=not ours)

    # ------------------------------------------------------------------ helpers

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retry) and exc.retry_after is not None:
            return min(exc.retry_after, MAX_RETRY_AFTER)
        return float(_BACKOFF(state))

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        sleep = state.next_action.sleep if state.next_action else 0.0
        logger.warning(
            "Argo submit attempt %d failed (%s); retrying in %.2f s",
            state.attempt_number,
            self._redact(str(exc)),
            sleep,
        )

    def _redact(self, text: str) -> str:
        token = self.settings.argo_token
        return text.replace(token, "***") if token else text

    def _server_message(self, response: requests.Response) -> str:
        try:
            payload = response.json()
            message = (
                str(payload.get("message") or payload.get("error") or payload)
                if isinstance(payload, dict)
                else str(payload)
            )
        except (ValueError, json.JSONDecodeError):
            message = response.text.strip()
        return self._redact(message[:500] or response.reason or "")

    def _error(self, response: requests.Response, url: str, attempts: int) -> SubmitRejected:
        status = response.status_code
        server = self._server_message(response)
        hint = _HINTS.get(status, "the Argo Server refused the request")
        method = response.request.method if response.request is not None else "request"
        return SubmitRejected(
            f"Argo Server answered {status} to {method} {url}: {server!r} ({hint})",
            status=status,
            url=url,
            server_message=server,
        )
