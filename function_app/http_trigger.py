"""``POST /api/trigger``: submit named chunks by hand (auth level FUNCTION).

Request ``{"chunks": ["<blob name>", ...], "force": false}`` →
``202 {"workflow", "run_id", "chunks", "duplicate"}``.

======================================================  ======
invalid JSON, not an object, unknown field, ``chunks``  400
missing/empty/too many/not a list, an invalid name,
``force`` not a boolean
a chunk that does not exist in the container            404
a setting missing or malformed                          500
the Argo Server refused (401, 403, 404 template, ...)   502
the Argo Server or storage unavailable after retries    503 (+ ``Retry-After``)
======================================================  ======

Errors are ``{"error": "<message>", "field": "<input>"?}``; messages name the problem and never
hold a token or a connection string.
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
from function_app.submission import (
    BackendNotAvailable,
    InvalidSubmission,
    Rejection,
    SubmitBackend,
    SubmitRejected,
    SubmitUnavailable,
    check_chunks,
    submit_chunks,
)

__all__ = ["handle_trigger_request"]

logger = logging.getLogger(__name__)

_FIELDS = {"chunks", "force"}
RETRY_AFTER_SECONDS = 30


def _json(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(payload), status_code=status, mimetype="application/json", headers=headers or {}
    )


def _bad_request(field: str, reason: str) -> func.HttpResponse:
    return _json(400, {"error": f"{field}: {reason}", "field": field})


def handle_trigger_request(
    req: func.HttpRequest,
    *,
    settings: Settings | None = None,
    backend: SubmitBackend | None = None,
    storage: BlobServiceClient | None = None,
) -> func.HttpResponse:
    """The whole HTTP trigger; the keyword arguments are for tests and tools (defaults: from settings)."""
    try:
        payload = req.get_json()
    except ValueError:
        return _bad_request("body", 'is not valid JSON (expected {"chunks": ["<blob name>", ...], "force": false})')
    if not isinstance(payload, dict):
        return _bad_request("body", f"must be a JSON object, got {type(payload).__name__}")
    unknown = sorted(set(payload) - _FIELDS)
    if unknown:
        return _bad_request(unknown[0], f"unknown field (allowed: {', '.join(sorted(_FIELDS))})")
    if "chunks" not in payload:
        return _bad_request("chunks", "is missing (a list of blob names)")
    force = payload.get("force", False)
    if not isinstance(force, bool):
        return _bad_request("force", f"must be true or false, got {json.dumps(force)}")
    try:
        settings = settings or get_settings()
    except SettingsError as exc:
        logger.error("%s", exc)
        return _json(500, {"error": str(exc), "field": exc.setting})
    # Names are checked against the allow-list before anything is read or sent.
    checked = check_chunks(payload["chunks"], settings.max_chunks_per_request)
    if isinstance(checked, Rejection):
        return _bad_request(checked.field, checked.reason)
    container = settings.sensor_container
    try:
        etags = fetch_etags(storage or blob_service_client(settings), container, checked)
    except ChunkNotFound as exc:
        return _json(404, {"error": str(exc), "field": "chunks", "chunk": exc.name})
    except AzureError as exc:
        logger.warning("storage unavailable while reading chunk ETags: %s", type(exc).__name__)
        return _json(
            503,
            {"error": f"Blob Storage did not answer for container {container!r} ({type(exc).__name__}); retry later"},
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    try:
        result = submit_chunks(settings, "http", checked, etags, force=force, container=container, backend=backend)
    except InvalidSubmission as exc:
        return _bad_request(exc.field, exc.reason)
    except SubmitRejected as exc:
        return _json(502, {"error": str(exc), "upstream_status": exc.status})
    except SubmitUnavailable as exc:
        return _json(503, {"error": str(exc)}, {"Retry-After": str(RETRY_AFTER_SECONDS)})
    except BackendNotAvailable as exc:
        return _json(500, {"error": str(exc), "field": "SUBMIT_BACKEND"})
    return _json(
        202,
        {
            "workflow": result.workflow_name,
            "run_id": result.run_id,
            "chunks": sorted(checked),
            "duplicate": result.duplicate,
        },
    )
