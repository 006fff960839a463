"""The Argo Server REST backend: only HTTP, on one reused ``requests.Session``.

What it does with each answer to ``POST /api/v1/workflows/{ns}/submit``:

==========================================  =======================================================
2xx: a JSON object whose ``metadata.name``  submitted
is the name we asked for
2xx with anything else: HTML (a proxy's     ambiguous — a proxy may have passed the request on: GET
page), an empty or cut-off JSON body,       the workflow by name; found → success, else
``[]``, ``"ok"``, no ``metadata.name`` or   :class:`SubmitUpstreamInvalid` at once, saying what was
another name, over 1 MiB                    wrong and the content type (``maybe_created=True``)
3xx (a sign-in proxy's login page, http     :class:`SubmitRejected` at once, naming the Location;
where https is served, a moved server)      never followed: the body and the token go nowhere else
409 (name exists)                           GET it by name: found → already submitted, success with
                                            ``duplicate=True`` (unless it carries *our* request id:
                                            then an earlier attempt of this call created it);
                                            404 → retried (deleted between the two calls, or a proxy
                                            answered); the GET failed → duplicate (the 409 said so)
429, 503                                    retried: exponential backoff with jitter, ``Retry-After``
                                            honoured (seconds or HTTP date), bounded by
                                            ``ARGO_RETRY_SECONDS`` and ``ARGO_MAX_ATTEMPTS``
500, 502, 504, read timeout, reset or       ambiguous — the workflow may exist: GET it by name
refused, TLS broken mid-exchange, a 2xx     first; found → success, else retried as above
body cut off in transit or not in by the
request deadline
connect timeout                             retried (nothing was sent)
TLS certificate verification failure        :class:`SubmitUnavailable` at once (a config problem)
other 4xx/5xx (400, 401, 403, 404, 501...)  :class:`SubmitRejected` at once, with status, URL and the
                                            server's own message (never the token)
==========================================  =======================================================

``get_workflow`` and ``count_in_flight`` follow the same rules, without retries: a 3xx or another
4xx is a :class:`SubmitRejected` (a get's 404 is ``None``); 429/5xx, unreachable, or a body cut off
or late is a :class:`SubmitUnavailable`; a 2xx body must have the expected shape (get: an object
with ``metadata``, naming the workflow asked for if it names one; list: an object whose ``items``
is null or a list), else :class:`SubmitUpstreamInvalid` (``maybe_created=False``: a GET creates
nothing).

Exceptions (:class:`SubmitUpstreamInvalid` is defined here, the rest in :mod:`function_app.submission`)::

    SubmitError
    ├── SubmitRejected              3xx, 4xx, other 5xx: not retried. .status, .url, .server_message
    │   └── SubmitUpstreamInvalid   a 2xx that is not Argo's answer: 502 to HTTP callers. ALSO a
    │                               SubmitUnavailable: .attempts, .maybe_created (True after a
    │                               submit: the claim protocol must not release the claim)
    └── SubmitUnavailable           unreachable, TLS failure, 429/5xx/timeouts until the budget ran
                                    out. .url, .attempts, .maybe_created

Time. Every request has explicit (connect, read) timeouts and a deadline for the whole request,
body included: connect + read timeout. The read timeout alone bounds each socket read, so a body
trickling in a byte at a time would otherwise hold a call for as long as the server likes. A whole
``submit()`` ends within ``ARGO_RETRY_SECONDS`` + one request deadline: no attempt starts after
``ARGO_RETRY_SECONDS``, and a lookup gets only what is left (none left: the outcome stays unknown).
Bodies are read with ``stream=True`` up to a cap (1 MiB; 8 MiB for a Workflow, whose node status
can be large; 64 KiB for an error). Not covered: a server trickling its status line or headers
(http.client reads those line by line, each read bounded by the read timeout only).

Text from upstream (error messages, a redirect's Location, the content type, the reason phrase,
bodies) is sanitised before it enters an exception message or a log line: control characters are
escaped (a CR/LF cannot start a forged log line), it is cut at 300 characters, the token is
replaced by ``***``. Every request passes ``verify=`` and ``allow_redirects=False`` explicitly:
requests otherwise lets ``REQUESTS_CA_BUNDLE`` from the environment override a session's
``verify``, and follows a 307/308 by re-sending the body to wherever the Location points.
"""

from __future__ import annotations

import email.utils
import enum
import json
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import requests
import tenacity
import urllib3
from requests.adapters import HTTPAdapter

from chunk_contract.naming import ANNOTATION_REQUEST_ID
from function_app.settings import Settings
from function_app.submission import Submission, SubmitError, SubmitRejected, SubmitResult, SubmitUnavailable

__all__ = ["ArgoBackend", "SubmitUpstreamInvalid", "build_session", "parse_retry_after"]

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
AMBIGUOUS_STATUS = frozenset({500, 502, 504})  # the request may have been carried out before the error
MAX_RETRY_AFTER = 60.0  # never sleep longer than this on a server's say-so (the budget still applies)
_BACKOFF = tenacity.wait_exponential_jitter(multiplier=0.25, max=8.0, jitter=0.25)  # 0.25, 0.5, 1, ... + jitter

MAX_BODY_BYTES = 1 << 20  # a submit's answer (a fresh Workflow from a template ref) or a trimmed list
MAX_WORKFLOW_BYTES = 8 << 20  # a Workflow GET: its hydrated node status can exceed etcd's 1.5 MiB
MAX_ERROR_BYTES = 64 << 10  # the body of any non-2xx answer: only its message is used
MAX_UPSTREAM_TEXT = 300  # characters of upstream text in a message or a log line
_READ_SIZE = 64 << 10

_HINTS = {
    400: "the submit body was refused; see the server's message",
    401: "the Argo Server refused the token: check ARGO_TOKEN (sent as 'Authorization: Bearer ...')",
    403: "the token's service account may not submit workflows in this namespace (RBAC)",
    404: "is the WorkflowTemplate created in this namespace (ARGO_WORKFLOW_TEMPLATE, ARGO_NAMESPACE)?",
}


class SubmitUpstreamInvalid(SubmitRejected, SubmitUnavailable):
    """A 2xx whose body is not Argo's answer: HTML, empty, cut-off JSON, the wrong shape or name.

    A :class:`SubmitRejected` for the HTTP trigger (502, with what was wrong: a proxy in front of
    the Argo Server?) and a :class:`SubmitUnavailable` for the claim protocol
    (``function_app.claims.submit_owned`` keeps a claim whose submit ``maybe_created``). ``status``
    is the upstream's own status (200, 201, ...).
    """

    def __init__(
        self, message: str, *, status: int, url: str, server_message: str, attempts: int, maybe_created: bool
    ) -> None:
        # Neither parent passes unknown keywords on (no cooperative __init__): set both parents' fields.
        SubmitError.__init__(self, message)
        self.status = status
        self.url = url
        self.server_message = server_message
        self.attempts = attempts
        self.maybe_created = maybe_created


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


class _NoRedirectSession(requests.Session):
    """Never follows a redirect — and never reads a redirect's body by itself.

    With ``allow_redirects=False`` requests still prepares the next request (``Response.next``) and
    reads the 3xx's whole body to do so, without a size limit or a deadline; with no redirect
    target there is nothing to prepare, and the body is ours to read (capped, on the deadline).
    """

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        return None


def build_session(settings: Settings) -> requests.Session:
    """The one session for the Argo Server: keep-alive pool, bearer token, no urllib3 retries."""
    session = _NoRedirectSession()
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


class _OutOfTime(Exception):
    """The deadline passed before a request could be sent."""


class _Lookup(enum.Enum):
    NOT_FOUND = "not found"  # the server answered 404 for the name
    FAILED = "failed"  # no usable answer (unreachable, an error, a malformed body, no time left)


@dataclass
class _Outcome:
    workflow: dict[str, Any]
    duplicate: bool


@dataclass
class _Call:
    """One ``submit()``: its URL, submission, deadline, attempts so far and whether it may have created."""

    url: str
    submission: Submission
    until: float  # time.monotonic() by which the whole call ends
    attempts: int = 0
    uncertain: bool = False  # an attempt may have created the workflow unseen


@dataclass(frozen=True)
class _Answer:
    """One HTTP answer, its body read within the cap and the deadline; header text already sanitised."""

    method: str
    url: str
    status: int
    reason: str
    content_type: str
    location: str
    retry_after: str | None
    body: bytes
    cut: str = ""  # why the body is incomplete (cut off in transit, the deadline): "" when whole
    over_cap: int = 0  # the cap the body exceeded (nothing kept), else 0

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def redirect(self) -> bool:
        return 300 <= self.status < 400


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
        # The deadline of one request, body included: what a well-behaved server needs at most.
        self.request_seconds = settings.argo_connect_timeout + settings.argo_read_timeout
        self.verify: bool | str = False if settings.argo_insecure_skip_verify else (settings.argo_ca_bundle or True)
        self._sleep = sleep

    @classmethod
    def from_settings(cls, settings: Settings) -> ArgoBackend:
        return cls(settings)

    # ------------------------------------------------------------------ public API

    def submit(self, submission: Submission) -> SubmitResult:
        started = time.monotonic()
        call = _Call(
            url=f"{self.base_url}/api/v1/workflows/{quote(self.namespace, safe='')}/submit",
            submission=submission,
            until=started + self.settings.argo_retry_seconds + self.request_seconds,
        )

        def attempt() -> _Outcome:
            call.attempts += 1
            return self._attempt_submit(call)

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
        try:
            outcome = retrying(attempt)
        except tenacity.RetryError as exc:
            last = exc.last_attempt.exception()
            raise SubmitUnavailable(
                f"Argo Server at {call.url} did not take workflow {submission.workflow_name!r} after "
                f"{call.attempts} attempt(s) in {time.monotonic() - started:.1f} s; last error: "
                f"{self._clean(str(last), limit=1000)}",
                url=call.url,
                attempts=call.attempts,
                maybe_created=call.uncertain,
            ) from None
        name = submission.workflow_name  # every outcome was checked to carry exactly this name
        return SubmitResult(
            workflow_name=name, run_id=f"argo-{name}", duplicate=outcome.duplicate, attempts=call.attempts
        )

    def get_workflow(self, name: str) -> dict[str, Any] | None:
        """The Workflow JSON by name, or None if the server does not know it (404)."""
        return self._get_workflow(name, until=time.monotonic() + self.request_seconds)

    def count_in_flight(self, template: str, limit: int) -> int:
        """How many workflows of ``template`` are not completed, counted up to ``limit`` (K + 1).

        One list request, answered by argo-server >= 3.6 from its in-memory store: the label
        selector matches the template's workflows that Argo has not labelled completed, ``fields``
        trims every item to its name, and ``listOptions.limit`` stops the count at what the caller
        needs to know. A 3xx/401/403/404 is a :class:`SubmitRejected` (a proxy, the token, RBAC
        ``list`` or the namespace: nothing may be submitted until fixed); a malformed 2xx is a
        :class:`SubmitUpstreamInvalid`; unreachable, 429/5xx or past the deadline is a
        :class:`SubmitUnavailable`.
        """
        url = f"{self.base_url}/api/v1/workflows/{quote(self.namespace, safe='')}"
        params = {
            "listOptions.labelSelector": (
                f"workflows.argoproj.io/workflow-template={template},workflows.argoproj.io/completed!=true"
            ),
            "listOptions.limit": str(limit),
            "fields": "items.metadata.name",
        }
        answer = self._read_only("GET", url, time.monotonic() + self.request_seconds, "the in-flight count", params)
        payload, problem = self._parse(answer)
        items = payload.get("items", "missing") if isinstance(payload, dict) else "missing"
        if not problem and items is None:
            return 0  # Argo answers "items": null for an empty list
        if not problem and isinstance(items, list):
            return min(len(items), limit)
        if not problem:
            problem = "no 'items'" if items == "missing" else f"'items' that is a JSON {_json_type(items)}, not a list"
        raise self._invalid(answer, f"a workflow list with {problem}", attempts=1, maybe_created=False)

    # ------------------------------------------------------------------ one attempt

    def _attempt_submit(self, call: _Call) -> _Outcome:
        submission, url = call.submission, call.url
        try:
            answer = self._exchange(
                "POST", url, min(time.monotonic() + self.request_seconds, call.until), json_body=submission.body
            )
        except _OutOfTime:
            raise _Retry("no time left in ARGO_RETRY_SECONDS for another attempt") from None
        except requests.exceptions.SSLError as exc:
            if not _is_verification_failure(exc):  # TLS broke mid-exchange: like a reset
                return self._ambiguous(call, f"TLS error: {self._describe(exc)}")
            raise SubmitUnavailable(
                f"TLS verification of {url} failed ({self._describe(exc)}); set ARGO_CA_BUNDLE to the "
                "server's CA certificate",
                url=url,
                attempts=call.attempts,
                maybe_created=call.uncertain,  # a handshake that failed sent nothing
            ) from None
        except requests.exceptions.ConnectTimeout as exc:
            raise _Retry(f"connect timeout: {self._describe(exc)}") from None  # nothing was sent
        except requests.exceptions.ConnectionError as exc:
            if _never_connected(exc):
                # Refused, or the name did not resolve: no byte reached a server, so nothing can
                # have been created (a claim may be released for others if we give up).
                raise _Retry(f"could not connect: {self._describe(exc)}") from None
            return self._ambiguous(call, self._describe(exc))
        except requests.RequestException as exc:
            # Read timeout, reset or refused: the server may have created the workflow before we
            # lost it — or may still create it after our lookup, so the outcome stays uncertain.
            return self._ambiguous(call, self._describe(exc))
        status = answer.status
        if answer.ok:
            if answer.cut:  # the status line said it was done; the body did not all arrive
                return self._ambiguous(call, f"the {status} answer to POST {url} was cut off: {answer.cut}")
            workflow, problem = self._check_workflow(answer, submission.workflow_name)
            if workflow is not None:
                return _Outcome(workflow, duplicate=False)
            return self._malformed_submit_answer(call, answer, problem)
        if answer.redirect:
            raise self._redirect_error(answer)
        if status == 409:
            found = self._lookup(call)
            if isinstance(found, _Outcome):
                return found
            if found is _Lookup.FAILED:  # the 409 said it exists; we cannot tell more
                return _Outcome({"metadata": {"name": submission.workflow_name}}, duplicate=True)
            # It existed and now it does not: deleted in between (then it may have run: keep the
            # claim if we give up), or the 409 was not Argo's. Not a duplicate of anything: submit again.
            call.uncertain = True
            raise _Retry(
                f"409 from {url} ('{self._server_message(answer)}'), but GET of {submission.workflow_name!r} "
                "answered 404 (deleted between the two calls, or a proxy answered)"
            )
        if status in AMBIGUOUS_STATUS:
            call.uncertain = True
            found = self._lookup(call)
            if isinstance(found, _Outcome):
                return found
        if status in RETRYABLE_STATUS:
            raise _Retry(
                f"{status} from {url}: {self._server_message(answer)}",
                retry_after=parse_retry_after(answer.retry_after),
            )
        raise self._error(answer)

    def _ambiguous(self, call: _Call, what: str) -> _Outcome:
        """The request may have been carried out: the workflow found by name, else :class:`_Retry`."""
        call.uncertain = True
        found = self._lookup(call)
        if isinstance(found, _Outcome):
            return found
        raise _Retry(what)

    def _malformed_submit_answer(self, call: _Call, answer: _Answer, problem: str) -> _Outcome:
        """A 2xx that is not Argo's Workflow: a proxy may still have passed the submit on. Look."""
        call.uncertain = True
        found = self._lookup(call)
        if isinstance(found, _Outcome):
            logger.warning(
                "Argo Server at %s answered %d to POST with %s (content type '%s'), but workflow %s exists: "
                "taken as submitted",
                call.url,
                answer.status,
                problem,
                answer.content_type,
                call.submission.workflow_name,
            )
            return found
        after = {
            _Lookup.NOT_FOUND: "a GET by name then answered 404",
            _Lookup.FAILED: "a GET by name then failed too",
        }[found]
        raise self._invalid(
            answer,
            problem,
            attempts=call.attempts,
            maybe_created=True,
            tail=f"; {after}: it may still have been created, so it is not taken as absent",
        )

    def _lookup(self, call: _Call) -> _Outcome | _Lookup:
        """After an ambiguous answer: does the workflow exist, and did *this* call create it?"""
        name = call.submission.workflow_name
        if call.until - time.monotonic() <= 0:
            logger.info("no time left to look workflow %s up after an ambiguous answer", name)
            return _Lookup.FAILED
        try:
            workflow = self._get_workflow(name, until=call.until)
        except Exception as exc:  # the lookup is best effort; the caller retries the submit
            logger.info(
                "lookup of workflow %s after an ambiguous answer failed: %s",
                name,
                self._clean(f"{type(exc).__name__}: {exc}", limit=1000),
            )
            return _Lookup.FAILED
        if workflow is None:
            return _Lookup.NOT_FOUND
        annotations = workflow["metadata"].get("annotations")
        request_id = call.submission.request_id
        ours = (
            bool(request_id) and isinstance(annotations, dict) and annotations.get(ANNOTATION_REQUEST_ID) == request_id
        )
        return _Outcome(workflow, duplicate=not ours)

    def _get_workflow(self, name: str, *, until: float) -> dict[str, Any] | None:
        url = f"{self.base_url}/api/v1/workflows/{quote(self.namespace, safe='')}/{quote(name, safe='')}"
        answer = self._read_only("GET", url, until, f"workflow {name!r}", cap=MAX_WORKFLOW_BYTES, not_found_ok=True)
        if answer.status == 404:
            return None
        workflow, problem = self._check_workflow(answer, name, named_if_present=True)
        if workflow is None:
            raise self._invalid(answer, problem, attempts=1, maybe_created=False)
        return workflow

    # ------------------------------------------------------------------ HTTP

    def _read_only(
        self,
        method: str,
        url: str,
        until: float,
        what: str,
        params: Mapping[str, str] | None = None,
        *,
        cap: int = MAX_BODY_BYTES,
        not_found_ok: bool = False,
    ) -> _Answer:
        """A request that changes nothing: a 2xx answer (body whole), a 404 if ``not_found_ok``, else raise."""
        try:
            answer = self._exchange(method, url, until, params=params, cap=cap)
        except (requests.RequestException, _OutOfTime) as exc:
            raise SubmitUnavailable(
                f"Argo Server at {url} unreachable while reading {what}: {self._describe(exc)}",
                url=url,
                attempts=1,
                maybe_created=False,
            ) from None
        if answer.status in RETRYABLE_STATUS:
            raise SubmitUnavailable(
                f"Argo Server answered {answer.status} to {method} {url} ({what}): {self._server_message(answer)}",
                url=url,
                attempts=1,
                maybe_created=False,
            )
        if answer.ok and answer.cut:
            raise SubmitUnavailable(
                f"Argo Server's {answer.status} answer to {method} {url} ({what}) was cut off: {answer.cut}",
                url=url,
                attempts=1,
                maybe_created=False,
            )
        if answer.redirect:
            raise self._redirect_error(answer)
        if answer.ok or (not_found_ok and answer.status == 404):
            return answer
        raise self._error(answer)

    def _exchange(
        self,
        method: str,
        url: str,
        until: float,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        cap: int = MAX_BODY_BYTES,
    ) -> _Answer:
        """One request, never redirected, and its body read within ``cap`` bytes and by ``until``.

        Raises what requests raises before a response (connect/read timeout, reset, TLS) and
        :class:`_OutOfTime` when ``until`` has passed already; problems reading the body are in the
        answer (``cut``, ``over_cap``).
        """
        left = until - time.monotonic()
        if left <= 0:
            raise _OutOfTime(f"the deadline passed before {method} {url} could be sent")
        connect, read = self.timeout
        response = self.session.request(
            method,
            url,
            params=params,
            json=json_body,
            timeout=(min(connect, left), min(read, left)),
            verify=self.verify,
            allow_redirects=False,
            stream=True,
        )
        try:
            ok = 200 <= response.status_code < 300
            body, cut, over_cap = self._read_body(response, until, cap if ok else MAX_ERROR_BYTES)
        finally:
            response.close()  # a no-op for a body read whole (its connection is back in the pool)
        headers = response.headers
        return _Answer(
            method=method,
            url=url,
            status=response.status_code,
            reason=self._clean(response.reason or ""),
            content_type=self._clean(headers.get("Content-Type") or "none"),
            location=self._location(headers.get("Location"), url),
            retry_after=headers.get("Retry-After"),
            body=body,
            cut=cut,
            over_cap=over_cap,
        )

    def _read_body(self, response: requests.Response, until: float, cap: int) -> tuple[bytes, str, int]:
        """(body, why it is incomplete or "", the cap it exceeded or 0): read a socket read at a time."""
        declared = (response.headers.get("Content-Length") or "").strip()
        if declared.isdigit() and int(declared) > cap:
            return b"", "", cap
        raw = response.raw
        started = time.monotonic()
        chunks: list[bytes] = []
        size = 0
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return b"".join(chunks), self._late(size, started), 0
            _bound_next_read(raw, min(self.settings.argo_read_timeout, left))
            try:
                data = raw.read1(_READ_SIZE, decode_content=True)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                if time.monotonic() >= until:
                    return b"".join(chunks), self._late(size, started), 0
                return b"".join(chunks), f"after {size} byte(s): {self._describe(exc)}", 0
            if not data:
                return b"".join(chunks), "", 0
            size += len(data)
            if size > cap:
                return b"", "", cap
            chunks.append(data)

    def _late(self, size: int, started: float) -> str:
        return (
            f"the body did not arrive by the deadline ({size} byte(s) in {time.monotonic() - started:.1f} s; "
            f"one request may take {self.request_seconds:g} s: ARGO_CONNECT_TIMEOUT + ARGO_READ_TIMEOUT)"
        )

    # ------------------------------------------------------------------ answers

    def _parse(self, answer: _Answer) -> tuple[Any, str]:
        """(the JSON document, "") or (None, what is wrong with the body)."""
        if answer.over_cap:
            return None, f"a body larger than {answer.over_cap} bytes"
        if not answer.body.strip():
            return None, "an empty body"
        try:
            return json.loads(answer.body), ""
        except (ValueError, RecursionError):
            return None, f"a body that is not JSON ('{self._clean(answer.body[:80].decode('utf-8', 'replace'))}')"

    def _check_workflow(
        self, answer: _Answer, name: str, *, named_if_present: bool = False
    ) -> tuple[dict[str, Any] | None, str]:
        """(the Workflow, "") when the body is a Workflow named ``name``, else (None, what is wrong).

        ``named_if_present``: a missing ``metadata.name`` is accepted (a GET; a submit must carry it).
        """
        doc, problem = self._parse(answer)
        if problem:
            return None, problem
        if not isinstance(doc, dict):
            return None, f"a JSON {_json_type(doc)}, not a Workflow object"
        metadata = doc.get("metadata")
        if not isinstance(metadata, dict):
            return None, f"a Workflow whose metadata is a JSON {_json_type(metadata)}, not an object"
        got = metadata.get("name")
        if got is None and named_if_present:
            return doc, ""
        if not isinstance(got, str) or not got:
            return None, "a Workflow without metadata.name"
        if got != name:
            return None, f"a Workflow named '{self._clean(got, limit=80)}', not {name!r} as asked"
        return doc, ""

    def _invalid(
        self, answer: _Answer, problem: str, *, attempts: int, maybe_created: bool, tail: str = ""
    ) -> SubmitUpstreamInvalid:
        return SubmitUpstreamInvalid(
            f"Argo Server at {answer.url} answered {answer.status} to {answer.method} with {problem} "
            f"(content type '{answer.content_type}'): not an Argo answer — a proxy in front of it?{tail}",
            status=answer.status,
            url=answer.url,
            server_message=problem,
            attempts=attempts,
            maybe_created=maybe_created,
        )

    def _redirect_error(self, answer: _Answer) -> SubmitRejected:
        where = answer.location or "(no Location header)"
        return SubmitRejected(
            f"Argo Server at {answer.url} answered {answer.status} to {answer.method}, a redirect to {where}: "
            "not followed (a sign-in proxy in front of the Argo Server, http:// where https:// is served, "
            "or a moved server?); set ARGO_SERVER_URL to the Argo Server's own address",
            status=answer.status,
            url=answer.url,
            server_message=f"redirect to {where}",
        )

    def _error(self, answer: _Answer) -> SubmitRejected:
        server = self._server_message(answer)
        hint = _HINTS.get(answer.status, "the Argo Server refused the request")
        return SubmitRejected(
            f"Argo Server answered {answer.status} to {answer.method} {answer.url}: '{server}' ({hint})",
            status=answer.status,
            url=answer.url,
            server_message=server,
        )

    def _server_message(self, answer: _Answer) -> str:
        """The server's own words, sanitised: Argo's ``message`` (or ``error``), else the body text."""
        if answer.over_cap:
            return self._clean(f"{answer.reason} (a body over {answer.over_cap} bytes, not read)")
        text = answer.body.decode("utf-8", "replace").strip()
        try:
            payload = json.loads(text) if text else None
        except (ValueError, RecursionError):
            payload = None
        if isinstance(payload, dict):
            text = str(payload.get("message") or payload.get("error") or payload)
        if answer.cut:
            text = f"{text} (body cut off: {answer.cut})".strip()
        return self._clean(text or answer.reason)

    def _location(self, value: str | None, base: str) -> str:
        """A redirect's target for a message: resolved, without user info, query or fragment; sanitised."""
        if not value:
            return ""
        try:
            parts = urlsplit(urljoin(base, value.strip()))
            host = parts.hostname or ""
            host = f"[{host}]" if ":" in host else host
            netloc = f"{host}:{parts.port}" if parts.port is not None else host
            shown = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
            if parts.query or parts.fragment:
                shown += "?..."
        except ValueError:
            shown = value
        return self._clean(shown)

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
            self._clean(str(exc), limit=1000),
            sleep,
        )

    def _redact(self, text: str) -> str:
        token = self.settings.argo_token
        return text.replace(token, "***") if token else text

    def _clean(self, text: str, limit: int = MAX_UPSTREAM_TEXT) -> str:
        """Upstream text made safe for one log line: token redacted, control characters escaped, cut."""
        text = self._redact(text)
        escaped = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
        if len(escaped) > limit:
            escaped = f"{escaped[:limit]}... ({len(escaped) - limit} more characters)"
        return self._redact(escaped)

    def _describe(self, exc: BaseException) -> str:
        return self._clean(f"{type(exc).__name__}: {exc}", limit=500)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {dict: "object", list: "array", str: "string", type(None): "null"}.get(type(value), type(value).__name__)


def _bound_next_read(raw: Any, seconds: float) -> None:
    """Let the next socket read wait ``seconds`` at most (the rest of the deadline, not a new read timeout)."""
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if sock is not None:
        try:
            sock.settimeout(max(seconds, 0.001))
        except OSError:
            pass  # already closed: the read reports it


def _is_verification_failure(exc: BaseException) -> bool:
    """Whether a requests ``SSLError`` is a certificate check that failed (vs. TLS breaking mid-exchange)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        todo.extend(x for x in linked if isinstance(x, BaseException))
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def _never_connected(exc: BaseException) -> bool:
    """Whether a requests ConnectionError happened before any connection was made (refused, DNS).

    requests wraps urllib3's ``NewConnectionError`` (also ``NameResolutionError``) in ``MaxRetryError``
    in ``ConnectionError``; a reset or a read failure on an open connection is something else.
    """
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, NewConnectionError):
            return True
        if isinstance(current, MaxRetryError) and isinstance(current.reason, BaseException):
            stack.append(current.reason)
        stack.extend(a for a in current.args if isinstance(a, BaseException))
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                stack.append(linked)
    return False
