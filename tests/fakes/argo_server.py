"""A fake Argo Server on loopback (HTTP or HTTPS) that follows the v4.1.2 REST contract.

Spec: ``shared/reference/argo/swagger-v4.1.2.json`` and ``NOTES.md``. It exists because no Argo
Server can run here; it is faithful where our client could go wrong and strict where Argo is
strict — it never accepts anything it does not understand *in the places Argo checks*.

Routes (everything else: 501 ``{"code": 12}``)::

    POST   /api/v1/workflows/{ns}/submit          WorkflowSubmitRequest -> Workflow
    GET    /api/v1/workflows/{ns}/{name}          Workflow, or 404 {"code": 5}; ?fields= as below
    DELETE /api/v1/workflows/{ns}/{name}          {} (WorkflowDeleteResponse), or 404 {"code": 5};
                                                  deleteOptions.* are type-checked, then ignored — as
                                                  Argo's DeleteWorkflow ignores them (even dryRun)
    GET    /api/v1/workflows/{ns}                 WorkflowList {"metadata": {...}, "items": [...]}
                                                  ("items" is null when empty, like Argo); newest
                                                  first, each page sorted like Argo's: unfinished
                                                  first, then the latest finished first
    GET    /api/v1/workflow-templates/{ns}/{name} WorkflowTemplate, or 404: ``fake.template_json[name]``
                                                  (a full template, e.g. Metaflow's compiled one) when
                                                  the name has one, else synthesized from
                                                  ``fake.templates[name]`` (the name must be in
                                                  ``templates`` either way: submit checks that dict)
    GET    /api/v1/cron-workflows/{ns}/{name}     CronWorkflow from ``fake.cron_workflows``, or 404
    PUT    /api/v1/cron-workflows/{ns}/{name}     UpdateCronWorkflowRequest {"namespace", "cronWorkflow"}
                                                  -> the stored CronWorkflow; the name is taken from
                                                  ``cronWorkflow.metadata.name`` (the path's is ignored,
                                                  as the spec says); 404 if absent; 400 without
                                                  ``metadata.resourceVersion``, 409 ``{"code": 10}`` when
                                                  it is stale (Kubernetes optimistic concurrency);
                                                  each update bumps ``resourceVersion``
    GET    /api/v1/version, /api/v1/info          no token needed

The list route takes:

- ``listOptions.labelSelector`` — Kubernetes syntax: ``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``,
  ``k in (a,b)``, ``k notin (a,b)``; keys and values are validated (400 ``{"code": 3}``). As in
  Kubernetes and Argo's store, ``!=``/``notin``/``!k`` also match workflows that lack the label, so
  ``workflows.argoproj.io/completed!=true`` matches the ones not finished yet.
- ``listOptions.limit`` — int64, parsed like grpc-gateway v1 does (Go ``ParseInt`` base 0:
  ``0x10`` is 16, ``010`` is 8). Not an integer: 400 ``{"code": 3}`` *before* the token is checked
  (the gateway parses first). Negative: 400 (the fake refuses it; Argo v4.1.2 hands it to SQLite,
  where a negative LIMIT means "no limit"). 0 or absent: everything.
- ``listOptions.continue`` — Argo's token is the decimal offset of the next item (opaque to
  clients); not an int or negative: 400. Ignored when the limit is 0, like Argo. Offset paging is
  not a snapshot: a workflow created or deleted between pages shifts the rest by one.
  ``metadata.continue`` is set when more items remain (Kubernetes semantics, as the spec
  describes). ``fake.list_continue = False`` reproduces Argo v4.1.2 without a workflow archive,
  which sets it only with ``listOptions.fieldSelector=ext.showRemainingItemCount=true``.
- ``listOptions.fieldSelector`` — only ``ext.showRemainingItemCount=<bool>`` (adds
  ``metadata.remainingItemCount``) and ``metadata.namespace=<the path's ns>``; anything else: 400.
  ``nameFilter``, ``createdAfter``, ``finishedBefore``: 400 (not supported by the fake).
- ``fields`` — Argo's ``util/fields`` cleaner: a comma-separated list of dotted JSON paths over the
  whole response (``items`` arrays are walked without an index). Include mode keeps a key when its
  path is listed or is a *string prefix* of a listed path (Argo's quirk: ``items.metadata.namespace``
  also keeps ``items.metadata.name``). A leading ``-`` switches the *whole list* to exclude mode
  (``-items.status.nodes,items.spec`` drops both). Top-level ``metadata`` is trimmed like anything
  else, so ``fields=items.metadata.name`` loses ``metadata.continue``: list ``metadata`` too when
  paging. Argo then re-marshals the trimmed JSON through its Go structs, so the fake puts back the
  zero values that brings: ``"metadata": {}``, ``"items": null``, and in each workflow
  ``metadata.creationTimestamp: null``, ``spec: {"arguments": {}}``,
  ``status: {"startedAt": null, "finishedAt": null}``. E.g. ``fields=items.metadata.name`` gives
  ``{"metadata": {}, "items": [{"metadata": {"name": "x", "creationTimestamp": null},
  "spec": {"arguments": {}}, "status": {"startedAt": null, "finishedAt": null}}]}``.

Labels, as Argo sets them: ``workflows.argoproj.io/workflow-template=<template>`` at creation;
``set_phase`` adds ``workflows.argoproj.io/phase=<phase>`` and ``workflows.argoproj.io/completed``
(``"false"`` on the first phase change, ``"true"`` once Succeeded/Failed/Error — never absent after
that, like the controller; absent on a workflow no phase was set on yet).

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
        fake.template_json           # dict name -> full WorkflowTemplate JSON served by GET (optional,
                                     #   constructor ``template_json=``); the name must be in templates
        fake.cron_workflows          # dict name -> CronWorkflow JSON (constructor ``cron_workflows=``)
        fake.workflows               # dict name -> Workflow JSON (a copy: fake.workflow(name))
        fake.created                 # list of created Workflow JSON, in order (a log: deletes keep it)
        fake.requests                # list of RecordedRequest (method, path, query, body, status,
                                     #   authorized, client_port, fault, route) — never the token
        fake.submit_requests()       # the recorded POSTs to the submit route
        fake.list_requests()         # the recorded GETs of the list route (faulted ones included)
        fake.on_created = callback   # called with (a copy of) each newly created Workflow JSON,
                                     #   in the request thread, BEFORE the response is sent: keep
                                     #   it short or hand off to a thread. Exceptions are kept in
                                     #   fake.hook_errors and the response is still 200.
        fake.set_phase(name, "Succeeded")        # status.phase + the labels above; Pending, Running,
                                     #   Succeeded, Failed, Error; a finished workflow cannot change
                                     #   phase again (ValueError), as Argo's controller refuses to
        fake.delete_workflow(name)   # as Argo's TTL/GC would (KeyError if absent): GET is 404 and
                                     #   a submit with the same name creates it anew
        fake.in_flight(template="sensorprocessingflow")      # workflows created and not finished
        fake.max_in_flight(template="sensorprocessingflow")  # the most ever in flight at once (it
                                     #   grows at creations; template=None, the default: all together)
        fake.list_continue = False   # metadata.continue as Argo v4.1.2 without an archive (above)
        fake.fail_next(Fault.unavailable(), Fault.rate_limited(2), ...)   # queue faults
        fake.fail_first(...)         # the same, ahead of the faults queued so far
        fake.pending_faults()        # faults not yet used

Faults are consumed in order by the next request whose route matches the fault's ``route``
(``"submit"`` by default; ``"get"``, ``"list"``, ``"delete"``, ``"template"``, ``"cron"`` (GET),
``"cron-update"`` (PUT) or ``"any"``):

    Fault.unavailable()                  503 {"code": 14}
    Fault.status_code(code, message)     any status with an Argo error body ({"code": gRPC code,
                                         "message": ...}: 401 -> 16, 403 -> 7, 404 -> 5, ...)
    Fault.rate_limited(s, plain=False)   429 + Retry-After: s (JSON body, or text/plain when plain)
    Fault.reset()                        connection reset (RST) before any response; nothing created
    Fault.slow(seconds)                  sleep, then handle normally (a client read timeout sees an
                                         error, but the workflow IS created — an ambiguous outcome)
    Fault.create_then_error(500)         create the workflow, then answer 500 {"code": 2} (ambiguous)
    Fault.create_then_slow(seconds)      handle the submit (the workflow IS created), then wait before
                                         answering: a client read timeout AFTER the work was done
    Fault.redirect(status, location)     a proxy's redirect: ``status`` (301/302/303/307/308) with
                                         ``Location: location`` and a small HTML body; nothing is
                                         handled (no token check, nothing created)
    Fault.raw(status, body, ...)         a proxy's odd answer: exactly ``body`` (bytes or str: HTML, "",
                                         "[]", cut-off JSON, ...) with ``content_type`` (None: no
                                         header) and extra ``headers``. ``create=True`` handles the
                                         request first (a submit creates the workflow) and replaces
                                         the real answer; ``bytes_per_second`` > 0 trickles the body
    Fault.truncated()                    handle normally, then send the real answer's headers (with
                                         its full Content-Length) and half its body, and close: the
                                         body is cut off in transit (a submit DID create)
    Fault.trickle(bytes_per_second=2)    handle normally (a submit creates), then send the headers at
                                         once and the body one byte at a time at that rate: every
                                         read gets a byte well within a read timeout, the whole body
                                         takes long (a slow-loris answer)

A trickled or cut-off body stops early when the fake is stopped or the client hangs up.
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

LABEL_TEMPLATE = "workflows.argoproj.io/workflow-template"
LABEL_COMPLETED = "workflows.argoproj.io/completed"
LABEL_PHASE = "workflows.argoproj.io/phase"
_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Error")
_TERMINAL = ("Succeeded", "Failed", "Error")

# Query parameters whose type grpc-gateway v1 checks before the request reaches Argo (and before
# the token is checked): a bad value is 400 {"code": 3}. Strings are not listed; unknown ones are ignored.
_GATEWAY_TYPES: dict[str, dict[str, str]] = {
    "list": {
        "listOptions.limit": "int64",
        "listOptions.timeoutSeconds": "int64",
        "listOptions.watch": "bool",
        "listOptions.allowWatchBookmarks": "bool",
        "listOptions.sendInitialEvents": "bool",
    },
    "delete": {
        "deleteOptions.gracePeriodSeconds": "int64",
        "deleteOptions.orphanDependents": "bool",
        "deleteOptions.ignoreStoreReadErrorWithClusterBreakingPotential": "bool",
        "force": "bool",
    },
}
_GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True}
_GO_BOOLS.update({"0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False})


@dataclass(frozen=True)
class Fault:
    """One injected failure; see the module docstring for the kinds."""

    # "status" | "reset" | "slow" | "create_then_error" | "create_then_slow" | "raw" | "truncated" | "trickle"
    kind: str
    status: int = 503
    message: str = "the server is currently unable to handle the request"
    retry_after: str | None = None
    plain_text: bool = False
    delay: float = 0.0
    route: str = "submit"
    # "raw" (and "redirect", which is a "raw" answer): the exact body, its content type, extra headers,
    # whether the request is handled first, and the trickle rate (0: all at once). "trickle": the rate.
    body: bytes = b""
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    create: bool = False
    bytes_per_second: float = 0.0

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

    @classmethod
    def create_then_slow(cls, seconds: float) -> Fault:
        return cls("create_then_slow", delay=seconds)

    @classmethod
    def raw(
        cls,
        status: int,
        body: bytes | str = b"",
        *,
        content_type: str | None = "text/html; charset=utf-8",
        headers: dict[str, str] | None = None,
        create: bool = False,
        bytes_per_second: float = 0.0,
        route: str = "submit",
    ) -> Fault:
        return cls(
            "raw",
            status=status,
            body=body.encode() if isinstance(body, str) else body,
            content_type=content_type,
            headers=tuple((headers or {}).items()),
            create=create,
            bytes_per_second=bytes_per_second,
            route=route,
        )

    @classmethod
    def redirect(cls, status: int, location: str, route: str = "submit") -> Fault:
        page = f'<html><body>Moved: <a href="{location}">sign in</a></body></html>'
        return cls.raw(status, page, headers={"Location": location}, route=route)

    @classmethod
    def truncated(cls, route: str = "submit") -> Fault:
        return cls("truncated", route=route)

    @classmethod
    def trickle(cls, bytes_per_second: float = 2.0, route: str = "submit") -> Fault:
        return cls("trickle", bytes_per_second=bytes_per_second, route=route)


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
    route: str | None = (
        None  # "submit", "get", "list", "delete", "template", "cron", "cron-update", "version", "info"; None: unknown
    )


class _ArgoError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _grpc_code(status: int) -> int:
    return {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 429: 8, 500: 2, 501: 12, 503: 14, 504: 4}.get(status, 2)


def _label_key_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _LABEL_PREFIX.fullmatch(prefix)):
        return False
    return len(name) <= 63 and bool(_LABEL_NAME.fullmatch(name))


def _label_value_ok(value: str) -> bool:
    return not value or (len(value) <= 63 and bool(_LABEL_NAME.fullmatch(value)))


def _parse_kv(text: str, what: str, *, labels: bool) -> dict[str, str]:
    result: dict[str, str] = {}
    if not text:
        return result
    for item in text.split(","):
        if "=" not in item:
            raise _ArgoError(400, 3, f"{what}: expected key=value, got {item!r}")
        key, value = item.split("=", 1)
        if not _label_key_ok(key):
            raise _ArgoError(
                400,
                3,
                f"metadata.{what}: Invalid value: {key!r}: name part must consist of alphanumeric characters, '-', '_' or '.'",
            )
        if labels and not _label_value_ok(value):
            raise _ArgoError(
                400,
                3,
                f"metadata.labels: Invalid value: {value!r}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', at most 63",
            )
        result[key] = value
    return result


def _go_parse_int(text: str) -> int:
    """``strconv.ParseInt(text, 0, 64)`` as grpc-gateway v1 calls it; ValueError with Go's message."""
    sign, body = (text[0], text[1:]) if text[:1] in ("+", "-") else ("", text)
    try:
        if not re.fullmatch(r"[0-9A-Za-z_]+", body):
            raise ValueError
        if len(body) > 1 and body[0] == "0" and body[1] not in "xXoObB":
            value = int("0o" + body[1:], 0)  # Go: a leading 0 means octal
        else:
            value = int(body, 0)
    except ValueError:
        raise ValueError(f"strconv.ParseInt: parsing {json.dumps(text)}: invalid syntax") from None
    value = -value if sign == "-" else value
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"strconv.ParseInt: parsing {json.dumps(text)}: value out of range")
    return value


def _gateway_check(route: str, query: dict[str, list[str]]) -> None:
    """The types grpc-gateway v1 checks in the query string (only the first value of each is used)."""
    for key, kind in _GATEWAY_TYPES.get(route, {}).items():
        if key not in query:
            continue
        value = query[key][0]
        if kind == "int64":
            try:
                _go_parse_int(value)
            except ValueError as err:
                raise _ArgoError(400, 3, str(err)) from None
        elif value not in _GO_BOOLS:
            raise _ArgoError(400, 3, f"strconv.ParseBool: parsing {json.dumps(value)}: invalid syntax")


_KEY = r"[^\s!=<>(),]+"


def _parse_selector(selector: str) -> list[tuple[str, str, frozenset[str]]]:
    """Kubernetes label selector -> [(key, op, values)], op in exists/!exists/in/notin; else 400."""
    terms: list[str] = []
    depth, current = 0, ""
    for char in selector:  # split at the commas outside "(...)"
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    if selector.strip() == "":
        return []
    result: list[tuple[str, str, frozenset[str]]] = []
    for raw in terms:
        term = raw.strip()
        if m := re.fullmatch(rf"(!?)\s*({_KEY})", term):
            key, op, values = m[2], "!exists" if m[1] else "exists", frozenset[str]()
        elif m := re.fullmatch(rf"({_KEY})\s*(==|=|!=)\s*([^\s!=<>(),]*)", term):
            key, op, values = m[1], "notin" if m[2] == "!=" else "in", frozenset([m[3]])
        elif m := re.fullmatch(rf"({_KEY})\s+(in|notin)\s*\(([^()]*)\)", term):
            key, op = m[1], m[2]
            values = frozenset(v.strip() for v in m[3].split(","))
            if values == {""}:
                raise _ArgoError(400, 3, f"unable to parse requirement: {term!r}: values set can't be empty")
        else:
            raise _ArgoError(
                400,
                3,
                f"unable to parse requirement: {term!r} (this fake supports k=v, k==v, k!=v, k, !k, k in (..), k notin (..))",
            )
        if not _label_key_ok(key):
            raise _ArgoError(400, 3, f"unable to parse requirement: key: Invalid value: {key!r}")
        for value in values:
            if not _label_value_ok(value):
                raise _ArgoError(400, 3, f"unable to parse requirement: values[0][{key}]: Invalid value: {value!r}")
        result.append((key, op, values))
    return result


def _selected(labels: dict[str, str], wanted: list[tuple[str, str, frozenset[str]]]) -> bool:
    """As Argo's store does it: notin / != / !exists also match workflows without the label."""
    for key, op, values in wanted:
        present = key in labels
        if op == "exists" and not present:
            return False
        if op == "!exists" and present:
            return False
        if op == "in" and not (present and labels[key] in values):
            return False
        if op == "notin" and present and labels[key] in values:
            return False
    return True


def _clean_fields(doc: dict[str, Any], fields: str) -> bool:
    """Argo's ``fields.Cleaner.Clean`` on a JSON document, in place; False when ``fields`` is empty."""
    if not fields:
        return False
    exclude = fields.startswith("-")
    wanted = set((fields[1:] if exclude else fields).split(","))

    def clean(path: list[str], item: Any) -> None:
        if isinstance(item, dict):
            for key in list(item):
                field_path = ".".join([*path, key])
                path_in = field_path in wanted
                parent_in = path_in or any(f.startswith(field_path) for f in wanted)  # string prefix, as Argo
                if (exclude and not path_in) or (not exclude and parent_in):
                    if not path_in:
                        clean([*path, key], item[key])
                else:
                    del item[key]
        elif isinstance(item, list):
            for element in item:
                clean(path, element)

    clean([], doc)
    return True


def _go_workflow(doc: dict[str, Any]) -> dict[str, Any]:
    """What a (trimmed) Workflow looks like once Go has unmarshalled and marshalled it again."""
    doc.setdefault("metadata", {}).setdefault("creationTimestamp", None)  # metav1.Time zero -> null
    doc.setdefault("spec", {}).setdefault("arguments", {})  # a struct, not a pointer: never omitted
    status = doc.setdefault("status", {})
    status.setdefault("startedAt", None)
    status.setdefault("finishedAt", None)
    return doc


def _go_workflow_list(doc: dict[str, Any]) -> dict[str, Any]:
    doc.setdefault("metadata", {})  # ListMeta is a struct: {} even when every field was trimmed
    doc.setdefault("items", None)  # `json:"items"` without omitempty
    for item in doc["items"] or []:
        if isinstance(item, dict):
            _go_workflow(item)
    return doc


class FakeArgoServer:
    """See the module docstring."""

    def __init__(
        self,
        *,
        token: str = "fake-argo-token",  # noqa: S107  (a test value, not a credential)
        templates: dict[str, dict[str, str]] | None = None,
        namespace: str = "argo",
        tls: bool = False,
        template_json: dict[str, dict[str, Any]] | None = None,
        cron_workflows: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.token = token
        self.template_json: dict[str, dict[str, Any]] = template_json if template_json is not None else {}
        self.cron_workflows: dict[str, dict[str, Any]] = cron_workflows if cron_workflows is not None else {}
        self.namespace = namespace
        self.templates: dict[str, dict[str, str]] = (
            templates
            if templates is not None
            else {
                "sensorprocessingflow": {
                    "chunks": json.dumps("[]"),
                    "container": json.dumps("sensor-data"),
                    "force": json.dumps(False),
                }
            }
        )
        self.workflows: dict[str, dict[str, Any]] = {}
        self.created: list[dict[str, Any]] = []
        self.requests: list[RecordedRequest] = []
        self.hook_errors: list[BaseException] = []
        self.on_created: Callable[[dict[str, Any]], None] | None = None
        self.list_continue = True  # False: metadata.continue as Argo v4.1.2 without an archive sets it
        self.tls = tls
        self.ca_bundle: str | None = None
        self._faults: list[Fault] = []
        self._lock = threading.RLock()
        self._resource_version = 0  # bumped by every change to a stored workflow
        self._finish_order: dict[str, int] = {}  # name -> _resource_version when it finished
        self._max_in_flight: dict[str | None, int] = {}  # template (None: all) -> most ever in flight
        # template (None: all) -> in flight now, kept as workflows are created, finish or are deleted
        # (counting by a scan on every submit made a long benchmark quadratic).
        self._in_flight: dict[str | None, int] = {}
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

    def fail_first(self, *faults: Fault) -> None:
        """Queue ``faults`` ahead of every fault queued so far (an outage that starts now)."""
        with self._lock:
            self._faults[:0] = faults

    def pending_faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def workflow(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            wf = self.workflows.get(name)
            return copy.deepcopy(wf) if wf is not None else None

    def set_phase(self, name: str, phase: str) -> None:
        """Do what Argo's controller does when the workflow reaches ``phase`` (KeyError if absent)."""
        if phase not in _PHASES:
            raise ValueError(f"unknown workflow phase {phase!r}; Argo's are {', '.join(_PHASES)}")
        with self._lock:
            workflow = self.workflows[name]
            status = workflow.setdefault("status", {})
            labels = workflow["metadata"].setdefault("labels", {})
            if labels.get(LABEL_COMPLETED) == "true":
                if status.get("phase") == phase:
                    return
                raise ValueError(
                    f"workflow {name!r} already finished ({status.get('phase')}); Argo's controller never changes its phase"
                )
            status["phase"] = phase
            labels[LABEL_PHASE] = phase
            labels.setdefault(LABEL_COMPLETED, "false")
            if phase != "Pending":
                status.setdefault("startedAt", _now())
            self._resource_version += 1
            if phase in _TERMINAL:
                status["finishedAt"] = _now()
                labels[LABEL_COMPLETED] = "true"
                self._finish_order[name] = self._resource_version
                self._count_in_flight(workflow, -1)

    def delete_workflow(self, name: str) -> None:
        """Delete a stored workflow, as Argo's TTL/GC (or ``argo delete``) does; KeyError if absent."""
        with self._lock:
            workflow = self.workflows.pop(name)
            if workflow["metadata"]["labels"].get(LABEL_COMPLETED) != "true":
                self._count_in_flight(workflow, -1)
            self._finish_order.pop(name, None)
            self._resource_version += 1

    def in_flight(self, template: str | None = None) -> int:
        """Workflows of ``template`` (None: of any) that exist and have not finished."""
        with self._lock:
            return self._in_flight.get(template, 0)

    def _count_in_flight(self, workflow: dict[str, Any], delta: int) -> None:
        template = workflow["spec"]["workflowTemplateRef"]["name"]
        for key in (template, None):
            self._in_flight[key] = self._in_flight.get(key, 0) + delta

    def max_in_flight(self, template: str | None = None) -> int:
        """The largest :meth:`in_flight` ever reached (it only grows when a workflow is created)."""
        with self._lock:
            return self._max_in_flight.get(template, 0)

    def submit_requests(self) -> list[RecordedRequest]:
        """The recorded POSTs to the submit route (attempts as the server saw them)."""
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and r.path.endswith("/submit")]

    def list_requests(self) -> list[RecordedRequest]:
        """The recorded GETs of the list route, faulted and refused ones included."""
        with self._lock:
            return [r for r in self.requests if r.route == "list"]

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
        labels[LABEL_TEMPLATE] = template_name
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
            self._resource_version += 1
            self._count_in_flight(workflow, +1)
            for counted in (str(template_name), None):
                self._max_in_flight[counted] = max(self._max_in_flight.get(counted, 0), self.in_flight(counted))
        hook = self.on_created
        if hook is not None:
            try:
                hook(copy.deepcopy(workflow))
            except BaseException as exc:  # kept for the test to inspect; the submit still succeeded
                self.hook_errors.append(exc)
        return copy.deepcopy(workflow)

    def _update_cron(self, ns: str, body: Any) -> dict[str, Any]:
        """CronWorkflowService_UpdateCronWorkflow: replace the stored CronWorkflow (see the docstring)."""
        if not isinstance(body, dict) or not isinstance(body.get("cronWorkflow"), dict):
            raise _ArgoError(400, 3, "json: cannot unmarshal into Go value of type workflow.UpdateCronWorkflowRequest")
        cron = copy.deepcopy(body["cronWorkflow"])
        metadata = cron.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        if not isinstance(name, str) or not name:
            raise _ArgoError(400, 3, "cronWorkflow.metadata.name is required")
        if not isinstance(cron.get("spec"), dict):
            raise _ArgoError(400, 3, "cronWorkflow.spec is required")
        with self._lock:
            stored = self.cron_workflows.get(name) if ns == self.namespace else None
            if stored is None:
                raise _ArgoError(404, 5, f'cronworkflows.argoproj.io "{name}" not found')
            current = str(stored.get("metadata", {}).get("resourceVersion", "1"))
            given = metadata.get("resourceVersion")
            if not given:
                raise _ArgoError(
                    400, 3, "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
                )
            if str(given) != current:
                raise _ArgoError(
                    409,
                    10,
                    f'Operation cannot be fulfilled on cronworkflows.argoproj.io "{name}": the object has been '
                    "modified; please apply your changes to the latest version and try again",
                )
            metadata["resourceVersion"] = str(int(current) + 1) if current.isdigit() else current + "1"
            metadata["namespace"] = ns
            self.cron_workflows[name] = cron
            return copy.deepcopy(cron)

    def _list(self, ns: str, query: dict[str, list[str]]) -> dict[str, Any]:
        def arg(key: str) -> str:
            return query.get(key, [""])[0]

        limit = _go_parse_int(arg("listOptions.limit") or "0")  # the gateway has checked it
        continue_ = arg("listOptions.continue") or "0"
        if not re.fullmatch(r"[+-]?[0-9]+", continue_):
            raise _ArgoError(400, 3, "listOptions.continue must be int")
        offset = int(continue_)
        if offset < 0:
            raise _ArgoError(400, 3, "listOptions.continue must >= 0")
        if limit < 0:
            raise _ArgoError(
                400,
                3,
                f"listOptions.limit must be >= 0, got {limit} (the fake refuses it; Argo v4.1.2 passes it to SQLite, where a negative LIMIT means no limit)",
            )
        show_remaining = False
        for term in filter(None, arg("listOptions.fieldSelector").split(",")):
            if term.startswith("ext.showRemainingItemCount"):
                value = term.removeprefix("ext.showRemainingItemCount=")
                if value not in _GO_BOOLS:
                    raise _ArgoError(500, 13, f"strconv.ParseBool: parsing {json.dumps(value)}: invalid syntax")
                show_remaining = _GO_BOOLS[value]
            elif term.startswith(("metadata.namespace==", "metadata.namespace=")):
                if term.split("=")[-1] != ns:
                    raise _ArgoError(
                        400,
                        3,
                        f"'namespace' query param ({ns!r}) and fieldselector 'metadata.namespace' ({term.split('=')[-1]!r}) are both specified and contradict each other",
                    )
            elif term.startswith(("metadata.", "spec.startedAt")):
                raise _ArgoError(400, 3, f"field selector {term!r} is valid in Argo but not supported by this fake")
            else:
                raise _ArgoError(400, 3, f"unsupported requirement {term}")
        for key in ("nameFilter", "createdAfter", "finishedBefore"):
            if arg(key):
                raise _ArgoError(400, 3, f"{key} is valid in Argo but not supported by this fake")
        wanted = _parse_selector(arg("listOptions.labelSelector"))
        with self._lock:
            matching = [
                copy.deepcopy(wf)
                for wf in reversed(self.workflows.values())  # newest first (Argo: by startedAt, descending)
                if wf["metadata"]["namespace"] == ns and _selected(wf["metadata"]["labels"], wanted)
            ]
            finished = dict(self._finish_order)
            meta: dict[str, Any] = {"resourceVersion": str(self._resource_version)}
        page = matching[offset : offset + limit] if limit > 0 else matching  # limit 0: Argo ignores the offset
        # Argo sorts each page (wfv1.Workflows.Less): unfinished first, then the latest finished first.
        page.sort(key=lambda wf: -finished.get(wf["metadata"]["name"], 2**62))
        remaining = max(len(matching) - offset - len(page), 0)
        if show_remaining:
            meta["remainingItemCount"] = remaining
        if remaining and (self.list_continue or show_remaining):
            meta["continue"] = str(offset + len(page))
        return {"metadata": meta, "items": page or None}


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

        # The fault that changes how this request's answer is sent (create_then_slow, raw with
        # create=True, truncated, trickle), and the request's record; both set by _dispatch.
        _shaping: Fault | None = None
        _record: RecordedRequest | None = None

        def _send(
            self, status: int, payload: Any, headers: dict[str, str] | None = None, plain: str | None = None
        ) -> None:
            data = plain.encode() if plain is not None else json.dumps(payload).encode()
            content_type = "text/plain; charset=utf-8" if plain is not None else "application/json"
            shaping = self._shaping
            if shaping is not None and shaping.kind == "raw":  # handled (create=True), then replaced
                if self._record is not None:
                    self._record.status = shaping.status
                self._send_bytes(
                    shaping.status, shaping.body, shaping.content_type, dict(shaping.headers), shaping.bytes_per_second
                )
                return
            if shaping is not None and shaping.kind == "create_then_slow":
                fake._stopping.wait(shaping.delay)
            rate = shaping.bytes_per_second if shaping is not None and shaping.kind == "trickle" else 0.0
            cut = shaping is not None and shaping.kind == "truncated"
            self._send_bytes(status, data, content_type, headers or {}, rate, cut=cut)

        def _send_bytes(
            self,
            status: int,
            data: bytes,
            content_type: str | None,
            headers: dict[str, str],
            bytes_per_second: float = 0.0,
            *,
            cut: bool = False,
        ) -> None:
            self.send_response(status)
            if content_type is not None:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if cut:  # half the body, then close: the client sees the body cut off in transit
                self.wfile.write(data[: len(data) // 2])
                self.close_connection = True
                return
            if bytes_per_second <= 0:
                self.wfile.write(data)
                return
            try:
                for i in range(len(data)):
                    self.wfile.write(data[i : i + 1])
                    if i + 1 < len(data) and fake._stopping.wait(1.0 / bytes_per_second):
                        self.close_connection = True  # stopped: the rest never comes
                        return
            except OSError:  # the client gave up and hung up
                self.close_connection = True

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
            query = parse_qs(parts.query, keep_blank_values=True)  # Go keeps "k=" as [""] too
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
            segments = [unquote(s) for s in path.strip("/").split("/")]
            route, args = _route(method, segments)
            record = RecordedRequest(
                method, path, query, body, authorized, client_port=int(self.client_address[1]), route=route
            )
            with fake._lock:
                fake.requests.append(record)
            fault = fake._take_fault(route) if route else None
            self._record = record
            shaped = ("create_then_slow", "truncated", "trickle")
            self._shaping = fault if fault is not None and (fault.kind in shaped or fault.kind == "raw") else None
            if fault is not None:
                record.fault = fault.kind
                if fault.kind == "reset":
                    record.status = -1
                    self._reset()
                    return
                if fault.kind == "slow":
                    fake._stopping.wait(fault.delay)
                elif fault.kind == "raw" and not fault.create:  # answered instead of Argo (a proxy)
                    record.status = fault.status
                    self._send(fault.status, None)
                    return
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
                _gateway_check(route, query)  # grpc-gateway parses the query before Argo sees the token
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
                    if _clean_fields(result, query.get("fields", [""])[0]):
                        result = _go_workflow(result)
                elif route == "delete":
                    with fake._lock:
                        if ns != fake.namespace or args[1] not in fake.workflows:
                            raise _ArgoError(404, 5, f'workflows.argoproj.io "{args[1]}" not found')
                        fake.delete_workflow(args[1])
                    result = {}
                elif route == "list":
                    result = fake._list(ns, query)
                    if _clean_fields(result, query.get("fields", [""])[0]):
                        result = _go_workflow_list(result)
                elif route == "template":
                    with fake._lock:
                        params = fake.templates.get(args[1]) if ns == fake.namespace else None
                        full = fake.template_json.get(args[1]) if params is not None else None
                        full = copy.deepcopy(full) if full is not None else None
                    if params is None:
                        raise _ArgoError(404, 5, f'workflowtemplates.argoproj.io "{args[1]}" not found')
                    result = full or {
                        "metadata": {"name": args[1], "namespace": ns},
                        "spec": {"arguments": {"parameters": [{"name": k, "value": v} for k, v in params.items()]}},
                    }
                elif route == "cron":
                    with fake._lock:
                        cron = fake.cron_workflows.get(args[1]) if ns == fake.namespace else None
                        result = copy.deepcopy(cron) if cron is not None else None
                    if result is None:
                        raise _ArgoError(404, 5, f'cronworkflows.argoproj.io "{args[1]}" not found')
                elif route == "cron-update":
                    result = fake._update_cron(ns, body)
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
        if method == "DELETE" and len(rest) == 3:
            return "delete", [rest[1], rest[2]]
        if method == "GET" and len(rest) == 2:
            return "list", [rest[1]]
    if rest[0] == "workflow-templates" and method == "GET" and len(rest) == 3:
        return "template", [rest[1], rest[2]]
    if rest[0] == "cron-workflows" and len(rest) == 3:
        if method == "GET":
            return "cron", [rest[1], rest[2]]
        if method == "PUT":
            return "cron-update", [rest[1], rest[2]]
    return None, []
