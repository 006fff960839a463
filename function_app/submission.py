"""Submitting chunks for processing: decide (pure), then act (a backend).

:func:`decide` turns (trigger kind, container, chunk names, ETags, force, settings) into a
:class:`Submission` — the workflow name and the exact Argo submit body — or a :class:`Rejection`
naming the input and the rule it broke. It does no I/O, so most tests go there.
A :class:`SubmitBackend` carries a submission out: :class:`function_app.argo_backend.ArgoBackend`
(default) or ``localdev.local_backend.LocalBackend`` (``SUBMIT_BACKEND=local``, imported lazily
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
                                    InvalidChunkName from chunk_contract.names is reported as one.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from chunk_contract.names import InvalidChunkName, validate_chunk_name
from chunk_contract.naming import (
    ANNOTATION_REQUEST_ID,
    chunks_param_bytes,
    is_dns1123_label,
    normalize_etag,
    workflow_labels,
    workflow_name,
)
from function_app.settings import Settings

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
    duplicate: bool  # True when nothing new was submitted (the ledger, or Argo's 409, had it)
    attempts: int
    # chunk name -> the workflow that already has it (suppressed by the ledger, not submitted again)
    suppressed: Mapping[str, str] = field(default_factory=dict)
    chunks: tuple[str, ...] = ()  # what this call submitted


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

    def count_in_flight(self, template: str, limit: int) -> int: ...  # workflows not completed, up to limit


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

    def __init__(self, message: str, *, url: str, attempts: int, maybe_created: bool = True) -> None:
        super().__init__(message)
        self.url = url
        self.attempts = attempts
        # False only when no attempt could have created the workflow unseen (refused, 503, 429,
        # TLS failure, or every ambiguous answer was followed by a lookup that found nothing):
        # then a claim may be released for others without risking a second run.
        self.maybe_created = maybe_created


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
    batch_token: str | None = None,
    max_chunks: int | None = None,
    name: str | None = None,
) -> Submission | Rejection:
    """Turn a request into a :class:`Submission`, or a :class:`Rejection` with the reason. Pure.

    ``request_id`` is unique per request (the caller draws it, keeping this function
    deterministic): it is sent as an annotation, and when ``force`` it salts the workflow name so
    a forced re-run gets a new one. ``batch_token`` salts the name of a multi-chunk batch (the
    ledger's plan id: see ``chunk_contract.naming.workflow_name``). ``max_chunks`` overrides
    ``MAX_CHUNKS_PER_REQUEST`` (the drainer's batches are bounded by ``COALESCE_MAX_CHUNKS``).
    ``name`` is the workflow name a claim already recorded (a plan whose duplicates dropped out,
    or a resume): the submission then carries that name instead of one derived from ``chunks``.
    """
    checked = check_chunks(chunks, max_chunks or settings.max_chunks_per_request)
    if isinstance(checked, Rejection):
        return checked
    size = chunks_param_bytes(checked)
    if size > settings.max_chunks_param_bytes:
        return Rejection(
            "chunks",
            f"the names add up to a {size}-byte 'chunks' parameter, the limit is {settings.max_chunks_param_bytes} "
            "(MAX_CHUNKS_PARAM_BYTES: Metaflow's start pod passes it in one shell argument); send fewer names",
        )
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
    if name is None:
        name = workflow_name(container, versions, force_token=request_id if force else None, batch_token=batch_token)
    elif not is_dns1123_label(name):
        return Rejection("name", f"{name!r} is not a DNS-1123 label of at most 63 characters")
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
                # A bool parameter: json.dumps(bool) = bare `true`/`false`, as Metaflow's own trigger
                # and the template default; the flow then skips up-to-date chunks unless true.
                "force=" + json.dumps(bool(force)),
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
            module = importlib.import_module("localdev.local_backend")
        except ModuleNotFoundError as exc:
            if exc.name != "localdev.local_backend":
                raise
            raise BackendNotAvailable(
                "SUBMIT_BACKEND=local, but localdev/local_backend.py is not installed; use SUBMIT_BACKEND=argo"
            ) from None
        backend: SubmitBackend = module.LocalBackend(settings)
        return backend
    from function_app.argo_backend import ArgoBackend

    return ArgoBackend.from_settings(settings)


def log_decision(**fields: Any) -> None:
    # One JSON line per decision: Application Insights keeps it as the trace message, and
    # `traces | where message startswith "submit-decision"` | parse_json(...) recovers the fields.
    level = logging.INFO if fields.get("outcome") in ("submitted", "duplicate", "enqueued") else logging.WARNING
    logger.log(level, "submit-decision %s", json.dumps(fields, sort_keys=True, default=str))


_PATH_OF_TRIGGER = {"blob": "blob", "http": "http", "backfill": "backfill", "coalesce": "blob"}


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
    ledger: Any = None,
    now: datetime | None = None,
) -> SubmitResult:
    """Decide, claim, then submit. The entry point of every submitting path but the drainer.

    The request is validated whole first (:func:`decide`). Then every chunk version is claimed in
    the ledger for the planned workflow (``function_app.claims``): versions another workflow has
    already are suppressed (``SubmitResult.suppressed``), and only the versions claimed here are
    submitted, under the planned name. A single chunk's name is deterministic (a retry or a
    duplicate event resumes the same workflow); a multi-chunk request's name is salted with its
    request id, because the ledger, not Argo's 409, is what deduplicates batches.

    Raises :class:`InvalidSubmission` for bad input, :class:`SubmitError` subclasses when the
    backend fails, ``azure.core.exceptions.AzureError`` when the ledger is unreachable. Logs one
    structured ``submit-decision`` line either way.
    """
    from chunk_contract.versions import ChunkVersion
    from function_app.claims import ClaimBook, submit_owned

    started = time.monotonic()
    container = settings.sensor_container if container is None else container
    request_id = request_id or uuid.uuid4().hex
    many = len(chunks) > 1
    decision = decide(
        trigger=trigger,
        container=container,
        chunks=chunks,
        etags=etags,
        force=force,
        settings=settings,
        request_id=request_id,
        batch_token=request_id if many else None,
    )
    base: dict[str, Any] = {
        "trigger": trigger,
        "container": container,
        "chunks": list(chunks)[:20],
        "chunk_count": len(chunks),
    }
    if isinstance(decision, Rejection):
        log_decision(**base, outcome="rejected", reason=str(decision), latency_ms=_ms(started))
        raise InvalidSubmission(decision)
    base["workflow"] = decision.workflow_name
    base["force"] = force
    if ledger is None:
        from function_app.storage import ledger as app_ledger

        ledger = app_ledger(settings)
    backend = backend or get_backend(settings)
    now = now or datetime.now(UTC)
    owner = decision.workflow_name
    owner_kind = "batch" if many else "single"
    path = _PATH_OF_TRIGGER.get(trigger, "manual")
    book = ClaimBook(ledger, now=now, stale_after=timedelta(seconds=settings.claim_stale_seconds))
    etag_of = dict(zip(chunks, etags, strict=True))
    settled = [
        book.settle(
            ChunkVersion(container, name, normalize_etag(etag_of[name])),
            owner=owner,
            owner_kind=owner_kind,
            path=path,
            forced=force,
        )
        for name in decision.chunks
    ]
    won = [x.claim for x in settled if x.outcome == "won"]
    suppressed = {x.version.name: x.claim.owner for x in settled if x.outcome != "won"}
    if not won:
        owners = sorted(set(suppressed.values()))
        log_decision(
            **base,
            outcome="duplicate",
            suppressed_by="ledger",
            owners=owners[:5],
            reasons=sorted({x.reason for x in settled})[:5],
            latency_ms=_ms(started),
        )
        first = settled[0].claim
        return SubmitResult(
            workflow_name=first.owner,
            run_id=first.outcome_run or _run_id(settings, first.owner, backend),
            duplicate=True,
            attempts=0,
            suppressed=suppressed,
        )
    submission = decision
    if suppressed:
        narrowed = decide(
            trigger=trigger,
            container=container,
            chunks=[c.version.name for c in won],
            etags=[c.version.etag for c in won],
            force=force,
            settings=settings,
            request_id=request_id,
            name=owner,
        )
        assert not isinstance(narrowed, Rejection), narrowed  # a subset of a valid request is valid
        submission = narrowed
    try:
        result = submit_owned(
            ledger, backend, submission, won, owner_kind=owner_kind, path=path, now=now, token=request_id
        )
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
        suppressed=len(suppressed),
        latency_ms=_ms(started),
    )
    return SubmitResult(
        workflow_name=result.workflow_name,
        run_id=result.run_id,
        duplicate=result.duplicate,
        attempts=result.attempts,
        suppressed=suppressed,
        chunks=submission.chunks,
    )


def _run_id(settings: Settings, workflow: str, backend: SubmitBackend | None = None) -> str:
    # Metaflow names the run of a workflow created from its template "argo-<workflow name>".
    if settings.submit_backend == "argo":
        return f"argo-{workflow}"
    # The local backend's runs have Metaflow's own ids: ask it (local mode only, never on Argo).
    try:
        found = backend.get_workflow(workflow) if backend is not None else None
    except Exception:  # the run id is a courtesy in the answer; the suppression stands without it
        return ""
    annotations = ((found or {}).get("metadata") or {}).get("annotations") or {}
    return str(annotations.get("sensor-pipeline.io/run-id") or "")


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
