"""Submitting chunks for processing: decide (pure), then act (a backend).

:func:`decide` turns (trigger kind, container, chunk names, ETags, force, settings) into a
:class:`Submission` — the workflow name and the exact Argo submit body — or a :class:`Rejection`
naming the input and the rule it broke. It does no I/O, so most tests go there.
A :class:`SubmitBackend` carries a submission out: :class:`function_app.argo_backend.ArgoBackend`
(default) or ``function_app.local_backend.LocalBackend`` (``SUBMIT_BACKEND=local``, imported lazily
because it pulls in metaflow, which must stay off the cold-start path).
:func:`submit_chunks` is the one entry point every path calls — blob trigger, HTTP trigger, a
backfill — so the same chunk version always maps to the same workflow name and is deduplicated by
Argo (409 on an existing name).

Exceptions::

    SubmitError                 base: a submission did not happen (or its outcome is unknown)
    ├── SubmitRejected          the server refused it (400/401/403/404/...); not retried.
    │                           .status, .url, .server_message — never the token
    ├── SubmitUnavailable       unreachable, TLS failure, or 429/5xx/timeouts until the retry
    │                           budget ran out. .url, .attempts
    └── BackendNotAvailable     SUBMIT_BACKEND names a backend that is not installed

    InvalidSubmission(ValueError)   bad input (chunk names, count, ETags); .field, .reason.
                                    InvalidChunkName from processing.chunk_names is reported as one.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from function_app.naming import ANNOTATION_REQUEST_ID, normalize_etag, workflow_labels, workflow_name
from function_app.settings import Settings
from processing.chunk_names import InvalidChunkName, validate_chunk_name

__all__ = [
    "BackendNotAvailable",
    "InvalidSubmission",
    "Rejection",
    "Submission",
    "SubmitBackend",
    "SubmitError",
    "SubmitRejected",
    "SubmitResult",
    "SubmitUnavailable",
    "check_chunks",
    "decide",
    "get_backend",
    "log_decision",
    "submit_chunks",
]

logger = logging.getLogger(__name__)

# Azure container names: 3-63 chars, lowercase letters, digits, single hyphens, alphanumeric ends.
_CONTAINER = re.compile(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]")


# --------------------------------------------------------------------------- the contract


@dataclass(frozen=True)
class Submission:
    """One workflow to submit: its deterministic name and the exact body of ``POST .../submit``."""

    workflow_name: str
    template: str
    container: str
    chunks: tuple[str, ...]
    trigger: str
    body: dict[str, Any]

    @property
    def parameters(self) -> dict[str, str]:
        """``submitOptions.parameters`` as ``{NAME: VALUE}`` (values still JSON-encoded as sent)."""
        return dict(p.split("=", 1) for p in self.body["submitOptions"]["parameters"])

    @property
    def request_id(self) -> str:
        """The per-request id sent as an annotation (see ``naming.ANNOTATION_REQUEST_ID``)."""
        annotations = self.body["submitOptions"].get("annotations", "")
        for item in annotations.split(","):
            key, _, value = item.partition("=")
            if key == ANNOTATION_REQUEST_ID:
                return value
        return ""


@dataclass(frozen=True)
class SubmitResult:
    workflow_name: str
    run_id: str  # Argo: "argo-<workflow name>"; local: the Metaflow run id
    duplicate: bool  # True when it had already been submitted (Argo 409)
    attempts: int


@dataclass(frozen=True)
class Rejection:
    """Why a request cannot be submitted: ``field`` names the input, ``reason`` the rule it broke."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class SubmitBackend(Protocol):
    def submit(self, submission: Submission) -> SubmitResult: ...

    def get_workflow(self, name: str) -> dict[str, Any] | None: ...  # Argo Workflow JSON, or None if unknown


# --------------------------------------------------------------------------- exceptions


class SubmitError(Exception):
    """A submission did not happen, or its outcome is unknown."""


class SubmitRejected(SubmitError):
    """The server refused the request (4xx). Retrying the same request cannot help."""

    def __init__(self, message: str, *, status: int, url: str, server_message: str) -> None:
        super().__init__(message)
        self.status = status
        self.url = url
        self.server_message = server_message


class SubmitUnavailable(SubmitError):
    """The server could not be reached or kept failing until the retry budget ran out."""

    def __init__(self, message: str, *, url: str, attempts: int) -> None:
        super().__init__(message)
        self.url = url
        self.attempts = attempts


class BackendNotAvailable(SubmitError):
    """``SUBMIT_BACKEND`` names a backend whose module is not installed."""


class InvalidSubmission(ValueError):
    """Bad input: ``field`` names it, ``reason`` states the rule (an HTTP 400)."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(str(rejection))
        self.field = rejection.field
        self.reason = rejection.reason


# --------------------------------------------------------------------------- decide (pure)


def check_chunks(chunks: object, max_chunks: int) -> tuple[str, ...] | Rejection:
    """Validate a list of chunk names against the shared allow-list, before anything is read or sent."""
    if not isinstance(chunks, list | tuple):
        return Rejection("chunks", f"must be a list of blob names, got {type(chunks).__name__}")
    if not chunks:
        return Rejection("chunks", "must hold at least one blob name")
    if len(chunks) > max_chunks:
        return Rejection("chunks", f"holds {len(chunks)} names, the maximum is {max_chunks} (MAX_CHUNKS_PER_REQUEST)")
    seen: set[str] = set()
    for i, name in enumerate(chunks):
        try:
            validate_chunk_name(name)
        except InvalidChunkName as exc:
            return Rejection(f"chunks[{i}]", str(exc))
        assert isinstance(name, str)
        if name in seen:
            return Rejection(f"chunks[{i}]", f"{name!r} is listed twice")
        seen.add(name)
    return tuple(chunks)


def decide(
    *,
    trigger: str,
    container: str,
    chunks: Sequence[object],
    etags: Sequence[str],
    force: bool,
    settings: Settings,
    request_id: str,
) -> Submission | Rejection:
    """Turn a request into a :class:`Submission`, or a :class:`Rejection` with the reason. Pure.

    ``request_id`` is unique per request (the caller draws it, keeping this function
    deterministic): it is sent as an annotation, and when ``force`` it salts the workflow name so
    a forced re-run gets a new one.
    """
    checked = check_chunks(chunks, settings.max_chunks_per_request)
    if isinstance(checked, Rejection):
        return checked
    if not _CONTAINER.fullmatch(container):
        return Rejection("container", f"{container!r} is not a valid Azure container name (3-63 of a-z 0-9 -)")
    if len(etags) != len(checked):
        return Rejection("etags", f"{len(etags)} ETags for {len(checked)} chunks")
    try:
        versions = [(name, normalize_etag(etag)) for name, etag in zip(checked, etags, strict=True)]
    except ValueError as exc:
        return Rejection("etags", str(exc))
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,63}", request_id):
        return Rejection("request_id", f"must be 1-63 of [A-Za-z0-9_-] (it becomes an annotation), got {request_id!r}")
    try:
        labels = workflow_labels(container, versions, trigger, forced=force)
    except ValueError as exc:
        return Rejection("trigger", str(exc))
    name = workflow_name(container, versions, force_token=request_id if force else None)
    ordered = sorted(checked)  # the name is order-independent; so is what the flow receives
    body: dict[str, Any] = {
        "namespace": settings.argo_namespace,
        "resourceKind": "WorkflowTemplate",  # case-sensitive: "workflowTemplate" is a 400
        "resourceName": settings.argo_workflow_template,
        "submitOptions": {
            "name": name,
            # Encoded exactly as Metaflow decodes them: every value json.dumps'ed once, and a
            # JSONType parameter twice. Argo splits "NAME=VALUE" at the first "=" only.
            "parameters": [
                "chunks=" + json.dumps(json.dumps(ordered)),
                "container=" + json.dumps(container),
            ],
            # One "k=v,k=v" string (Argo's format), values are hashes and fixed words only.
            "labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
            "annotations": f"{ANNOTATION_REQUEST_ID}={request_id}",
        },
    }
    return Submission(
        workflow_name=name,
        template=settings.argo_workflow_template,
        container=container,
        chunks=tuple(ordered),
        trigger=trigger,
        body=body,
    )


# --------------------------------------------------------------------------- act


@functools.cache
def get_backend(settings: Settings) -> SubmitBackend:
    """The backend for these settings, built once per process (one reused HTTP session)."""
    if settings.submit_backend == "local":
        try:
            module = importlib.import_module("function_app.local_backend")
        except ModuleNotFoundError as exc:
            if exc.name != "function_app.local_backend":
                raise
            raise BackendNotAvailable(
                "SUBMIT_BACKEND=local, but function_app/local_backend.py is not installed; use SUBMIT_BACKEND=argo"
            ) from None
        backend: SubmitBackend = module.LocalBackend(settings)
        return backend
    from function_app.argo_backend import ArgoBackend

    return ArgoBackend.from_settings(settings)


def log_decision(**fields: Any) -> None:
    # One JSON line per decision: Application Insights keeps it as the trace message, and
    # `traces | where message startswith "submit-decision"` | parse_json(...) recovers the fields.
    level = logging.INFO if fields.get("outcome") in ("submitted", "duplicate") else logging.WARNING
    logger.log(level, "submit-decision %s", json.dumps(fields, sort_keys=True, default=str))


def submit_chunks(
    settings: Settings,
    trigger: str,
    chunks: Sequence[str],
    etags: Sequence[str],
    *,
    force: bool = False,
    container: str | None = None,
    backend: SubmitBackend | None = None,
    request_id: str | None = None,
) -> SubmitResult:
    """Decide, then submit. The entry point of every path (blob trigger, HTTP trigger, backfill).

    Raises :class:`InvalidSubmission` for bad input, :class:`SubmitError` subclasses when the
    backend fails. Logs one structured ``submit-decision`` line either way.
    """
    started = time.monotonic()
    container = settings.sensor_container if container is None else container
    request_id = request_id or uuid.uuid4().hex
    decision = decide(
        trigger=trigger,
        container=container,
        chunks=chunks,
        etags=etags,
        force=force,
        settings=settings,
        request_id=request_id,
    )
    base = {"trigger": trigger, "container": container, "chunks": list(chunks)[:20], "chunk_count": len(chunks)}
    if isinstance(decision, Rejection):
        log_decision(**base, outcome="rejected", reason=str(decision), latency_ms=_ms(started))
        raise InvalidSubmission(decision)
    base["workflow"] = decision.workflow_name
    base["force"] = force
    try:
        result = (backend or get_backend(settings)).submit(decision)
    except SubmitError as exc:
        attempts = getattr(exc, "attempts", 1)
        log_decision(
            **base,
            outcome="failed",
            error=type(exc).__name__,
            status=getattr(exc, "status", None),
            attempts=attempts,
            latency_ms=_ms(started),
        )
        raise
    log_decision(
        **base,
        outcome="duplicate" if result.duplicate else "submitted",
        run_id=result.run_id,
        attempts=result.attempts,
        latency_ms=_ms(started),
    )
    return result


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
