"""``POST /api/trigger``: submit named chunks by hand (auth level FUNCTION).

Request ``{"chunks": ["<blob name>", ...], "force": false}`` →
``202 {"workflow", "run_id", "chunks", "duplicate", "suppressed"}``: ``suppressed`` maps each chunk
version the ledger already gave to a workflow to that workflow (it is not run again unless
``force``); ``duplicate`` is true when nothing new was submitted.

======================================================  ======
a body that is not strict JSON (see below), not an      400
object, unknown field, ``chunks`` missing/empty/too
many/not a list, an invalid name, ``force`` not a
boolean
a chunk that does not exist in the container            404
a setting missing or malformed                          500
the Argo Server refused (401, 403, 404 template, ...)   502
the Argo Server, storage or the ledger unavailable      503 (+ ``Retry-After``)
======================================================  ======

Errors are ``{"error": "<message>", "field": "<input>"?}``; messages name the problem and never
hold a token or a connection string.

The body is read with :func:`function_app.strict_json.loads_strict`, never ``req.get_json()``: at
most 1 MiB of UTF-8, nested at most 32 deep, no key twice in an object (what a gateway or an audit
log reads must be what runs), no ``NaN``/``Infinity``, no unpaired surrogate escape. Any of these is
a 400 naming ``body`` and the rule, never a 500 (``json.loads`` alone raises RecursionError on
deep nesting).

Every refused request (400, 404) leaves ONE structured ``submit-decision`` log line
(``outcome: "rejected"``, ``field``, ``reason``, ``status``): the reason is escaped and capped, and
the body itself is never logged.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.functions as func
from azure.core.exceptions import AzureError
from azure.storage.blob import BlobServiceClient

from function_app.settings import Settings, SettingsError, get_settings
from function_app.storage import ChunkNotFound, blob_service_client, fetch_etags
from function_app.strict_json import StrictJSONError, loads_strict
from function_app.submission import (
    BackendNotAvailable,
    InvalidSubmission,
    Rejection,
    SubmitBackend,
    SubmitRejected,
    SubmitUnavailable,
    check_chunks,
    log_decision,
    submit_chunks,
)
from function_app.telemetry import Invocation, invocation

__all__ = ["handle_trigger_request"]

logger = logging.getLogger(__name__)

_FIELDS = {"chunks", "force"}
RETRY_AFTER_SECONDS = 30
MAX_BODY_BYTES = 1024 * 1024  # far above 100 names of 1010 characters; the rest is refused unread
MAX_BODY_DEPTH = 32  # the request nests 2 deep ({"chunks": [...]})
_SHOWN_FIELD = 120  # characters of a field name (it may be an unknown key of the caller's) echoed
_LOGGED_REASON = 400  # characters of a reason in the log line


def _json(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(payload), status_code=status, mimetype="application/json", headers=headers or {}
    )


def _printable(text: str, limit: int) -> str:
    """``text`` with anything unprintable escaped, cut to ``limit`` characters: safe to log."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[:limit] + "..."


def _describe(value: object) -> str:
    """A short description of a JSON value for a message (strings capped, containers by kind)."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:40]) + "..."
    if isinstance(value, dict | list):
        return "an object" if isinstance(value, dict) else "an array"
    return json.dumps(value)[:40]  # null, a number


def _refused(
    status: int, field: str, reason: str, *, body_bytes: int, rule: str | None = None, logged: bool = False
) -> func.HttpResponse:
    """The 400 answer, and its one ``submit-decision`` line unless ``submit_chunks`` logged it already.

    ``rule`` is the strict-JSON rule a body broke (``function_app.strict_json.RULES``).
    """
    field = _printable(field, _SHOWN_FIELD)
    extra = {} if rule is None else {"rule": rule}
    if not logged:
        log_decision(
            trigger="http",
            outcome="rejected",
            status=status,
            field=field,
            reason=_printable(reason, _LOGGED_REASON),
            body_bytes=body_bytes,
            **extra,
        )
    return _json(status, {"error": f"{field}: {reason}", "field": field, **extra})


def handle_trigger_request(
    req: func.HttpRequest,
    *,
    settings: Settings | None = None,
    backend: SubmitBackend | None = None,
    storage: BlobServiceClient | None = None,
    ledger: Any = None,
) -> func.HttpResponse:
    """The whole HTTP trigger; the keyword arguments are for tests and tools (defaults: from settings).

    One span and the metrics of the outcome when telemetry is on (``function_app.telemetry``).
    """
    with invocation("http") as inv:
        response = _handle(req, inv, settings=settings, backend=backend, storage=storage, ledger=ledger)
        inv.http_status(response.status_code)
        if 400 <= response.status_code < 500:
            inv.rejected(response.status_code)
        return response


def _handle(
    req: func.HttpRequest,
    inv: Invocation,
    *,
    settings: Settings | None,
    backend: SubmitBackend | None,
    storage: BlobServiceClient | None,
    ledger: Any,
) -> func.HttpResponse:
    body = req.get_body() or b""
    size = len(body)
    try:
        payload = loads_strict(body, max_bytes=MAX_BODY_BYTES, max_depth=MAX_BODY_DEPTH)
    except StrictJSONError as exc:
        hint = ' (expected {"chunks": ["<blob name>", ...], "force": false})' if exc.rule == "syntax" else ""
        return _refused(400, "body", exc.reason + hint, body_bytes=size, rule=exc.rule)
    if not isinstance(payload, dict):
        return _refused(400, "body", f"must be a JSON object, got {type(payload).__name__}", body_bytes=size)
    unknown = sorted(set(payload) - _FIELDS)
    if unknown:
        return _refused(400, unknown[0], f"unknown field (allowed: {', '.join(sorted(_FIELDS))})", body_bytes=size)
    if "chunks" not in payload:
        return _refused(400, "chunks", "is missing (a list of blob names)", body_bytes=size)
    force = payload.get("force", False)
    if not isinstance(force, bool):
        return _refused(400, "force", f"must be true or false, got {_describe(force)}", body_bytes=size)
    try:
        settings = settings or get_settings()
    except SettingsError as exc:
        logger.error("%s", exc)
        inv.failed(exc)
        return _json(500, {"error": str(exc), "field": exc.setting})
    inv.set_mode(settings.submit_mode)
    # Names are checked against the allow-list before anything is read or sent.
    checked = check_chunks(payload["chunks"], settings.max_chunks_per_request)
    if isinstance(checked, Rejection):
        return _refused(400, checked.field, checked.reason, body_bytes=size)
    inv.count_received(len(checked))
    container = settings.sensor_container
    try:
        etags = fetch_etags(storage or blob_service_client(settings), container, checked)
    except ChunkNotFound as exc:
        log_decision(
            trigger="http",
            outcome="rejected",
            status=404,
            field="chunks",
            reason=_printable(str(exc), _LOGGED_REASON),
            body_bytes=size,
        )
        return _json(404, {"error": str(exc), "field": "chunks", "chunk": exc.name})
    except AzureError as exc:
        logger.warning("storage unavailable while reading chunk ETags: %s", type(exc).__name__)
        inv.failed(exc)
        return _json(
            503,
            {"error": f"Blob Storage did not answer for container {container!r} ({type(exc).__name__}); retry later"},
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    inv.chunk_versions(container, checked, etags)
    try:
        result = submit_chunks(
            settings, "http", checked, etags, force=force, container=container, backend=backend, ledger=ledger
        )
    except InvalidSubmission as exc:  # submit_chunks logged its decision line already
        return _refused(400, exc.field, exc.reason, body_bytes=size, logged=True)
    except SubmitRejected as exc:
        inv.failed(exc)
        return _json(502, {"error": str(exc), "upstream_status": exc.status})
    except SubmitUnavailable as exc:
        inv.failed(exc)
        return _json(503, {"error": str(exc)}, {"Retry-After": str(RETRY_AFTER_SECONDS)})
    except BackendNotAvailable as exc:
        inv.failed(exc)
        return _json(500, {"error": str(exc), "field": "SUBMIT_BACKEND"})
    except AzureError as exc:  # the ledger (Table Storage) did not answer: nothing was submitted
        logger.warning("ledger unavailable while claiming chunks: %s", type(exc).__name__)
        inv.failed(exc)
        return _json(
            503,
            {
                "error": f"the claim ledger (table {settings.ledger_table!r}) did not answer ({type(exc).__name__}); retry later"
            },
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    inv.result(result)  # latency: from the request's arrival
    return _json(
        202,
        {
            "workflow": result.workflow_name,
            "run_id": result.run_id,
            "chunks": sorted(checked),
            "duplicate": result.duplicate,
            # chunk -> the workflow that already has it: suppressed by the ledger, not run again
            "suppressed": dict(result.suppressed),
        },
    )
