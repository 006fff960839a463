"""A fake Argo Server on loopback (HTTP or HTTPS) that follows the v4.1.2 REST contract.

Spec: ``shared/reference/argo/swagger-v4.1.2.json`` and ``NOTES.md``. It exists because no Argo
Server can run here; it is faithful where our client could go wrong and strict where Argo is
strict — it never accepts anything it does not understand *in the places Argo checks*.

Routes (everything else: 501 ``{"code": 12}``)::

    POST /api/v1/workflows/{ns}/submit          WorkflowSubmitRequest -> Workflow
    GET  /api/v1/workflows/{ns}/{name}          Workflow, or 404 {"code": 5}
    GET  /api/v1/workflows/{ns}                 WorkflowList; ?listOptions.labelSelector=k%3Dv,k2%3Dv2
                                                ("items" is null when empty, like Argo)
    GET  /api/v1/workflow-templates/{ns}/{name} WorkflowTemplate, or 404
    GET  /api/v1/version, /api/v1/info          no token needed

What it checks, as Argo does:

- ``Authorization: Bearer <token>`` exactly, else 401 ``{"code": 16}``;
- the body is a JSON object whose known fields have the spec's types, else 400 ``{"code": 3}``
  (unknown keys are silently ignored — like Argo, so a typo'd key loses its content quietly);
- ``resourceKind`` is case-sensitive: only ``WorkflowTemplate`` (others: 400);
- the template exists in the namespace, else 404 ``{"code": 5}``;
- each parameter is ``NAME=VALUE`` (split at the first ``=``), else **500** ``{"code": 13}``;
  unknown parameter names are accepted silently;
- ``labels``/``annotations`` are one ``"k=v,k2=v2"`` string; label keys/values follow Kubernetes
  rules (value ≤ 63 chars of ``[A-Za-z0-9._-]``), else 400;
- ``name`` is a DNS-1123 label of at most 63 characters, else 400; an existing name is 409
  ``{"code": 6, "message": "workflows.argoproj.io \\"X\\" already exists"}``.

Python API (all thread-safe)::

    fake = FakeArgoServer(token="t", templates={"sensorprocessingflow": {"chunks": '"[]"'}}, tls=True)
    with fake:                       # or fake.start() / fake.stop()
        fake.url                     # "https://127.0.0.1:PORT"
        fake.ca_bundle               # PEM path of the trustme CA (tls=True), for ARGO_CA_BUNDLE
        fake.namespace               # "argo" (the only namespace it serves)
        fake.templates               # dict name -> {param: default}: add/remove templates at will
        fake.workflows               # dict name -> Workflow JSON (a copy: fake.workflow(name))
        fake.created                 # list of created Workflow JSON, in order
        fake.requests                # list of RecordedRequest (method, path, query, body, status,
                                     #   authorized, client_port, fault) — never the token itself
        fake.submit_requests()       # the recorded POSTs to the submit route
        fake.on_created = callback   # called with (a copy of) each newly created Workflow JSON,
                                     #   in the request thread, BEFORE the response is sent: keep
                                     #   it short or hand off to a thread. Exceptions are kept in
                                     #   fake.hook_errors and the response is still 200.
        fake.set_phase(name, "Succeeded")        # status.phase of a stored workflow
        fake.fail_next(Fault.unavailable(), Fault.rate_limited(2), ...)   # queue faults
        fake.pending_faults()        # faults not yet used

Faults are consumed in order by the next request whose route matches the fault's ``route``
(``"submit"`` by default; ``"get"``, ``"list"``, ``"template"`` or ``"any"``):

    Fault.unavailable()                  503 {"code": 14}
    Fault.status_code(code, message)     any status with an Argo error body
    Fault.rate_limited(s, plain=False)   429 + Retry-After: s (JSON body, or text/plain when plain)
    Fault.reset()                        connection reset (RST) before any response; nothing created
    Fault.slow(seconds)                  sleep, then handle normally (a client read timeout sees an
                                         error, but the workflow IS created — an ambiguous outcome)
    Fault.create_then_error(500)         create the workflow, then answer 500 {"code": 2} (ambiguous)
"""

from __future__ import annotations

import copy
import json
import re
import socket
import ssl
import struct
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["FakeArgoServer", "Fault", "RecordedRequest"]

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

_STRING_FIELDS = (
    "name",
    "generateName",
    "entryPoint",
    "labels",
    "annotations",
    "serviceAccount",
    "podPriorityClassName",
)
_BOOL_FIELDS = ("serverDryRun", "dryRun")


@dataclass(frozen=True)
class Fault:
    """One injected failure; see the module docstring for the kinds."""

    kind: str  # "status" | "reset" | "slow" | "create_then_error"
    status: int = 503
    message: str = "the server is currently unable to handle the request"
    retry_after: str | None = None
    plain_text: bool = False
    delay: float = 0.0
    route: str = "submit"

    @classmethod
    def status_code(cls, status: int, message: str = "injected failure", route: str = "submit") -> Fault:
        return cls("status", status=status, message=message, route=route)

    @classmethod
    def unavailable(cls, route: str = "submit") -> Fault:
        return cls("status", status=503, route=route)

    @classmethod
    def rate_limited(cls, retry_after: float | str, *, plain: bool = False, route: str = "submit") -> Fault:
        return cls(
            "status",
            status=429,
            message="too many requests",
            retry_after=str(retry_after),
            plain_text=plain,
            route=route,
        )

    @classmethod
    def reset(cls, route: str = "submit") -> Fault:
        return cls("reset", route=route)

    @classmethod
    def slow(cls, seconds: float, route: str = "submit") -> Fault:
        return cls("slow", delay=seconds, route=route)

    @classmethod
    def create_then_error(cls, status: int = 500) -> Fault:
        return cls("create_then_error", status=status, message="Unknown desc = etcdserver: request timed out")


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    authorized: bool
    client_port: int = 0  # the client's TCP port: equal ports = one reused connection
    status: int = 0  # -1 when the fault was a connection reset
    fault: str | None = None


class _ArgoError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _grpc_code(status: int) -> int:
    return {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 429: 8, 500: 2, 501: 12, 503: 14, 504: 4}.get(status, 2)


def _parse_kv(text: str, what: str, *, labels: bool) -> dict[str, str]:
    result: dict[str, str] = {}
    if not text:
        return result
    for item in text.split(","):
        if "=" not in item:
            raise _ArgoError(400, 3, f"{what}: expected key=value, got {item!r}")
        key, value = item.split("=", 1)
        prefix, _, name = key.rpartition("/")
        if (
            (prefix and (len(prefix) > 253 or not _LABEL_PREFIX.fullmatch(prefix)))
            or len(name) > 63
            or not _LABEL_NAME.fullmatch(name)
        ):
            raise _ArgoError(
                400,
                3,
                f"metadata.{what}: Invalid value: {key!r}: name part must consist of alphanumeric characters, '-', '_' or '.'",
            )
        if labels and value and (len(value) > 63 or not _LABEL_NAME.fullmatch(value)):
            raise _ArgoError(
                400,
                3,
                f"metadata.labels: Invalid value: {value!r}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', at most 63",
            )
        result[key] = value
    return result


class FakeArgoServer:
    """See the module docstring."""

    def __init__(
        self,
        *,
        token: str = "fake-argo-token",  # noqa: S107  (a test value, not a credential)
        templates: dict[str, dict[str, str]] | None = None,
        namespace: str = "argo",
        tls: bool = False,
    ) -> None:
        self.token = token
        self.namespace = namespace
        self.templates: dict[str, dict[str, str]] = (
            templates
            if templates is not None
            else {"sensorprocessingflow": {"chunks": json.dumps("[]"), "container": json.dumps("sensor-data")}}
        )
        self.workflows: dict[str, dict[str, Any]] = {}
        self.created: list[dict[str, Any]] = []
        self.requests: list[RecordedRequest] = []
        self.hook_errors: list[BaseException] = []
        self.on_created: Callable[[dict[str, Any]], None] | None = None
        self.tls = tls
        self.ca_bundle: str | None = None
        self._faults: list[Fault] = []
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._ssl: ssl.SSLContext | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        assert self._server is not None, "start the fake first"
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeArgoServer:
        if self.tls:
            import trustme

            # RSA like the Argo Server's own self-signed certificate (SHA256WithRSA), not trustme's ECDSA default.
            ca = trustme.CA(key_type=trustme.KeyType.RSA)
            cert = ca.issue_cert("127.0.0.1", "localhost", key_type=trustme.KeyType.RSA)
            self._tmp = tempfile.TemporaryDirectory(prefix="fake-argo-")
            self.ca_bundle = str(Path(self._tmp.name) / "ca.pem")
            ca.cert_pem.write_to_path(self.ca_bundle)
            self._ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            cert.configure_cert(self._ssl)
        fake = self

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def finish_request(self, request: Any, client_address: Any) -> None:
                # TLS handshake in the connection's own thread, so a slow client blocks nobody else.
                if fake._ssl is not None:
                    try:
                        request = fake._ssl.wrap_socket(request, server_side=True)
                    except (ssl.SSLError, OSError):
                        return  # e.g. a client that does not trust our CA hangs up
                super().finish_request(request, client_address)

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # resets and client hang-ups are expected in fault tests

        self._server = Server(("127.0.0.1", 0), _handler_class(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-argo", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> FakeArgoServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ test API

    def fail_next(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    def pending_faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def workflow(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            wf = self.workflows.get(name)
            return copy.deepcopy(wf) if wf is not None else None

    def set_phase(self, name: str, phase: str) -> None:
        with self._lock:
            status = self.workflows[name].setdefault("status", {})
            status["phase"] = phase
            if phase in ("Succeeded", "Failed", "Error"):
                status["finishedAt"] = _now()

    def submit_requests(self) -> list[RecordedRequest]:
        """The recorded POSTs to the submit route (attempts as the server saw them)."""
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and r.path.endswith("/submit")]

    # ------------------------------------------------------------------ internals

    def _take_fault(self, route: str) -> Fault | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.route in (route, "any"):
                    return self._faults.pop(i)
        return None

    def _submit(self, ns: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _ArgoError(400, 3, "json: cannot unmarshal into Go value of type workflow.WorkflowSubmitRequest")
        for key in ("namespace", "resourceKind", "resourceName"):
            if key in body and not isinstance(body[key], str):
                raise _ArgoError(
                    400,
                    3,
                    f"json: cannot unmarshal {type(body[key]).__name__} into Go struct field WorkflowSubmitRequest.{key} of type string",
                )
        opts = body.get("submitOptions") or {}
        if not isinstance(opts, dict):
            raise _ArgoError(
                400,
                3,
                "json: cannot unmarshal into Go struct field WorkflowSubmitRequest.submitOptions of type v1alpha1.SubmitOpts",
            )
        for key in _STRING_FIELDS:
            if key in opts and not isinstance(opts[key], str):
                raise _ArgoError(
                    400,
                    3,
                    f"json: cannot unmarshal {type(opts[key]).__name__} into Go struct field SubmitOpts.submitOptions.{key} of type string",
                )
        for key in _BOOL_FIELDS:
            if key in opts and not isinstance(opts[key], bool):
                raise _ArgoError(
                    400, 3, f"json: cannot unmarshal into Go struct field SubmitOpts.submitOptions.{key} of type bool"
                )
        if "priority" in opts and (not isinstance(opts["priority"], int) or isinstance(opts["priority"], bool)):
            raise _ArgoError(
                400, 3, "json: cannot unmarshal into Go struct field SubmitOpts.submitOptions.priority of type int32"
            )
        params = opts.get("parameters", [])
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            raise _ArgoError(
                400,
                3,
                "json: cannot unmarshal into Go struct field SubmitOpts.submitOptions.parameters of type []string",
            )
        if body.get("namespace") and body["namespace"] != ns:
            raise _ArgoError(400, 3, f"namespace {body['namespace']!r} in the body does not match {ns!r} in the path")
        kind = body.get("resourceKind", "")
        if kind != "WorkflowTemplate":
            raise _ArgoError(
                400,
                3,
                f"resourceKind {kind!r} is not supported (this fake serves WorkflowTemplate; the match is case-sensitive)",
            )
        template_name = body.get("resourceName", "")
        with self._lock:
            template = copy.deepcopy(self.templates.get(template_name)) if ns == self.namespace else None
        if template is None:
            raise _ArgoError(404, 5, f'workflowtemplates.argoproj.io "{template_name}" not found')
        values: dict[str, str] = dict(template)
        for p in params:
            if "=" not in p:
                raise _ArgoError(500, 13, f"expected parameter of the form: NAME=VALUE. Received: {p}")
            key, value = p.split("=", 1)
            values[key] = value
        labels = _parse_kv(opts.get("labels", ""), "labels", labels=True)
        annotations = _parse_kv(opts.get("annotations", ""), "annotations", labels=False)
        name = opts.get("name", "")
        if name:
            if len(name) > 63 or not _DNS1123_LABEL.fullmatch(name):
                raise _ArgoError(
                    400,
                    3,
                    f'Workflow.argoproj.io "{name}" is invalid: metadata.name: Invalid value: "{name}": must be a DNS-1123 label of at most 63 characters',
                )
        else:
            name = (opts.get("generateName") or template_name + "-") + uuid.uuid4().hex[:5]
        labels["workflows.argoproj.io/workflow-template"] = template_name
        workflow = {
            "metadata": {
                "name": name,
                "namespace": ns,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": _now(),
                "labels": labels,
                "annotations": annotations,
            },
            "spec": {
                "workflowTemplateRef": {"name": template_name},
                "arguments": {"parameters": [{"name": k, "value": v} for k, v in values.items()]},
                **({"entrypoint": opts["entryPoint"]} if opts.get("entryPoint") else {}),
            },
            "status": {"phase": "Pending"},
        }
        if opts.get("serverDryRun"):
            return workflow
        with self._lock:
            if name in self.workflows:
                raise _ArgoError(409, 6, f'workflows.argoproj.io "{name}" already exists')
            self.workflows[name] = workflow
            self.created.append(copy.deepcopy(workflow))
        hook = self.on_created
        if hook is not None:
            try:
                hook(copy.deepcopy(workflow))
            except BaseException as exc:  # kept for the test to inspect; the submit still succeeded
                self.hook_errors.append(exc)
        return copy.deepcopy(workflow)

    def _list(self, ns: str, selector: str) -> dict[str, Any]:
        wanted: list[tuple[str, str, bool]] = []
        for term in filter(None, selector.split(",")):
            if "!=" in term:
                key, value = term.split("!=", 1)
                wanted.append((key.strip(), value.strip(), False))
            elif "=" in term:
                key, value = term.split("==", 1) if "==" in term else term.split("=", 1)
                wanted.append((key.strip(), value.strip(), True))
            else:
                raise _ArgoError(400, 3, f"unable to parse requirement: {term!r} (this fake supports k=v, k==v, k!=v)")
        with self._lock:
            items = [
                copy.deepcopy(wf)
                for wf in self.workflows.values()
                if wf["metadata"]["namespace"] == ns
                and all((wf["metadata"]["labels"].get(k) == v) == eq for k, v, eq in wanted)
            ]
        return {"metadata": {"resourceVersion": str(len(self.created))}, "items": items or None}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _handler_class(fake: FakeArgoServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like the real server: session reuse matters
        # TCP_NODELAY, as Go's net/http sets it: without it, headers and body leave in two segments
        # and Nagle + the client's delayed ACK add ~40 ms to every reply on a kept-alive connection.
        disable_nagle_algorithm = True
        server_version = "fake-argo-server"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(
            self, status: int, payload: Any, headers: dict[str, str] | None = None, plain: str | None = None
        ) -> None:
            data = plain.encode() if plain is not None else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8" if plain is not None else "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _reset(self) -> None:
            # SO_LINGER 0 + close sends a RST (no TLS close_notify): the client sees a reset / abort.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_PUT(self) -> None:
            self._dispatch("PUT")

        def do_DELETE(self) -> None:
            self._dispatch("DELETE")

        def _dispatch(self, method: str) -> None:
            parts = urlsplit(self.path)
            path = parts.path
            query = parse_qs(parts.query)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body: Any = None
            body_error = False
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body_error = True
            authorized = self.headers.get("Authorization") == f"Bearer {fake.token}"
            record = RecordedRequest(method, path, query, body, authorized, client_port=int(self.client_address[1]))
            with fake._lock:
                fake.requests.append(record)
            segments = [unquote(s) for s in path.strip("/").split("/")]
            route, args = _route(method, segments)
            fault = fake._take_fault(route) if route else None
            if fault is not None:
                record.fault = fault.kind
                if fault.kind == "reset":
                    record.status = -1
                    self._reset()
                    return
                if fault.kind == "slow":
                    fake._stopping.wait(fault.delay)
                elif fault.kind == "status":
                    record.status = fault.status
                    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
                    if fault.plain_text:
                        self._send(fault.status, None, headers, plain=fault.message + "\n")
                    else:
                        self._send(fault.status, {"code": _grpc_code(fault.status), "message": fault.message}, headers)
                    return
            try:
                if route is None:
                    raise _ArgoError(501, 12, f"Method Not Allowed: {method} {path}")
                if route not in ("version", "info") and not authorized:
                    raise _ArgoError(
                        401, 16, "token not valid. see https://argo-workflows.readthedocs.io/en/latest/faq/"
                    )
                if body_error:
                    raise _ArgoError(400, 3, "invalid character in JSON body")
                ns = args[0] if args else ""
                result: dict[str, Any] | None
                if route == "submit":
                    result = fake._submit(ns, body)
                    if fault is not None and fault.kind == "create_then_error":
                        raise _ArgoError(fault.status, _grpc_code(fault.status), fault.message)
                elif route == "get":
                    with fake._lock:
                        wf = fake.workflows.get(args[1]) if ns == fake.namespace else None
                        result = copy.deepcopy(wf) if wf is not None else None
                    if result is None:
                        raise _ArgoError(404, 5, f'workflows.argoproj.io "{args[1]}" not found')
                elif route == "list":
                    result = fake._list(ns, query.get("listOptions.labelSelector", [""])[0])
                elif route == "template":
                    with fake._lock:
                        params = fake.templates.get(args[1]) if ns == fake.namespace else None
                    if params is None:
                        raise _ArgoError(404, 5, f'workflowtemplates.argoproj.io "{args[1]}" not found')
                    result = {
                        "metadata": {"name": args[1], "namespace": ns},
                        "spec": {"arguments": {"parameters": [{"name": k, "value": v} for k, v in params.items()]}},
                    }
                elif route == "version":
                    result = {"version": "v4.1.2-fake"}
                else:
                    result = {"managedNamespace": fake.namespace}
            except _ArgoError as err:
                record.status = err.status
                self._send(err.status, {"code": err.code, "message": err.message})
                return
            record.status = 200
            self._send(200, result)

    return Handler


def _route(method: str, s: list[str]) -> tuple[str | None, list[str]]:
    if len(s) < 3 or s[:2] != ["api", "v1"]:
        return None, []
    rest = s[2:]
    if method == "GET" and rest in (["version"], ["info"]):
        return rest[0], []
    if rest[0] == "workflows":
        if method == "POST" and len(rest) == 3 and rest[2] == "submit":
            return "submit", [rest[1]]
        if method == "GET" and len(rest) == 3:
            return "get", [rest[1], rest[2]]
        if method == "GET" and len(rest) == 2:
            return "list", [rest[1]]
    if rest[0] == "workflow-templates" and method == "GET" and len(rest) == 3:
        return "template", [rest[1], rest[2]]
    return None, []
