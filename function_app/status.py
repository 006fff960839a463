"""Where does a chunk stand? ``GET /api/chunks/{name}`` and the same lookup for ``sensorctl status``.

Decide-then-act: :func:`decide_status` is pure — from the chunk's records (``chunk_contract.records``)
and, when a submit backend is configured, the workflow its event path would have created — and
:func:`lookup_status` only fetches those two inputs. Answers:

``processed``   an up-to-date result exists: its location and the Metaflow run that wrote it
``failed``      an up-to-date error record exists (its reason), or the chunk's workflow failed
``submitted``   no up-to-date record yet, but the chunk version's workflow exists and has not failed
``pending``     nothing yet (not submitted, or the chunk changed since its last record)

The ledger says which workflow has the chunk version (its claim's owner: a single-chunk workflow, a
coalesced or backfill batch, or a fallback run) and whether it was accepted, so a chunk in a batch
or taken by the fallback answers ``submitted`` with its workflow, and ``claim.duplicates_suppressed``
counts the duplicate events the ledger suppressed. Without a claim the workflow asked about is the
single-chunk name every event path would give the version (chunks from before the ledger).

Register in ``function_app.py`` with ``app.register_functions(bp)``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import azure.functions as func

from chunk_contract.names import InvalidChunkName, validate_chunk_name
from chunk_contract.naming import workflow_name

__all__ = ["ChunkStatus", "StatusLookupError", "bp", "decide_status", "lookup_status"]

logger = logging.getLogger(__name__)

Status = Literal["pending", "submitted", "processed", "failed"]
FAILED_PHASES = frozenset({"Failed", "Error"})
RUN_ID_ANNOTATION = "sensor-pipeline.io/run-id"  # set by the local backend; Argo runs are argo-<name>


class StatusLookupError(RuntimeError):
    """Storage or the backend could not be asked; the message names which, never a secret."""


@dataclass(frozen=True)
class ChunkStatus:
    """The answer for one chunk (JSON via :meth:`as_dict`)."""

    chunk: str
    container: str
    status: Status
    chunk_etag: str
    workflow_name: str | None = None
    workflow_phase: str | None = None
    run_id: str | None = None
    result_location: str | None = None
    reason: str | None = None
    claim: dict[str, Any] | None = None  # the ledger's claim of this version (see _claim_view)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _run_id(workflow: Mapping[str, Any], name: str) -> str:
    annotations = workflow.get("metadata", {}).get("annotations") or {}
    # Metaflow names the run of a workflow created from its template "argo-<workflow name>".
    return annotations.get(RUN_ID_ANNOTATION) or f"argo-{name}"


def decide_status(
    state: Any,
    workflow_name: str | None,
    workflow: Mapping[str, Any] | None,
    claim: Any = None,
    manifest: Any = None,
) -> ChunkStatus:
    """Combine the chunk's records, its ledger claim and its workflow into one status (pure).

    Parameters
    ----------
    state : chunk_contract.records.ChunkState
        What the results container says (``processed`` / ``failed`` / ``pending``).
    workflow_name : str or None
        The workflow that has the chunk version: the claim's owner, else the single-chunk name
        every event path would give it; ``None`` when nothing was asked.
    workflow : mapping or None
        The workflow as ``GET /api/v1/workflows/{ns}/{name}`` returns it, ``None`` when absent.
    claim : chunk_contract.ledger.Claim or None
        The chunk version's latest claim in the ledger (``None``: never claimed).
    manifest : chunk_contract.ledger.Manifest or None
        The claim owner's manifest when the owner is a batch.
    """
    base: dict[str, Any] = {"chunk": state.chunk, "container": state.chunk_container, "chunk_etag": state.chunk_etag}
    if claim is not None:
        base["claim"] = _claim_view(claim, manifest)
    phase = (workflow or {}).get("status", {}).get("phase") if workflow is not None else None
    wf: dict[str, Any] = {}
    if workflow is not None and workflow_name:
        wf = {"workflow_name": workflow_name, "workflow_phase": phase or "Pending"}
    if state.status == "processed":
        return ChunkStatus(
            status="processed",
            result_location=f"{state.results_container}/{state.result_blob}",
            run_id=state.run_pathspec or state.run_id,
            **base,
            **wf,
        )
    if state.status == "failed":
        return ChunkStatus(
            status="failed",
            result_location=f"{state.results_container}/{state.error_blob}",
            run_id=state.run_pathspec or state.run_id,
            reason=state.reason or "the error record gives no reason",
            **base,
            **wf,
        )
    accepted = claim is not None and (
        claim.state == "accepted" or (manifest is not None and getattr(manifest, "state", "") == "accepted")
    )
    if workflow is None and accepted:
        # The ledger knows the workflow was accepted (a batch, the fallback, or one Argo has
        # garbage-collected since): submitted, even where the backend no longer answers for it.
        return ChunkStatus(
            status="submitted",
            workflow_name=claim.owner,
            run_id=claim.outcome_run or (claim.owner if claim.owner_kind == "run" else f"argo-{claim.owner}"),
            **base,
        )
    if workflow is None or not workflow_name:
        return ChunkStatus(status="pending", **base)
    run_id = _run_id(workflow, workflow_name)
    if phase in FAILED_PHASES:
        message = (workflow.get("status", {}).get("message") or "").strip() or "no message"
        return ChunkStatus(
            status="failed", reason=f"workflow {workflow_name} {phase}: {message}", run_id=run_id, **base, **wf
        )
    if phase == "Succeeded":
        # The run finished but left no record for this ETag: it cannot have processed this version.
        return ChunkStatus(
            status="failed",
            reason=f"workflow {workflow_name} Succeeded but wrote no up-to-date record for this chunk version",
            run_id=run_id,
            **base,
            **wf,
        )
    return ChunkStatus(status="submitted", run_id=run_id, **base, **wf)


def _claim_view(claim: Any, manifest: Any) -> dict[str, Any]:
    view = {
        "workflow": claim.owner,
        "state": manifest.state if claim.state == "claimed" and manifest is not None else claim.state,
        "path": claim.path,
        "first_seen": claim.first_seen.isoformat(),
        "generation": claim.generation,
        "duplicates_suppressed": claim.duplicates,
    }
    if claim.last_duplicate_path:
        view["last_duplicate_path"] = claim.last_duplicate_path
    if claim.outcome_run:
        view["outcome_run"] = claim.outcome_run
    return view


def lookup_status(
    chunk: str,
    *,
    service: Any,
    container: str,
    results_container: str,
    backend: Any | None,
    ledger: Any = None,
) -> ChunkStatus:
    """Fetch the inputs of :func:`decide_status` and decide.

    Parameters
    ----------
    chunk : str
        Chunk name; checked against the allow-list first.
    service : azure.storage.blob.BlobServiceClient
        The storage account of chunks and results.
    container, results_container : str
        Chunk and results containers.
    backend : SubmitBackend or None
        Asked for the chunk version's workflow (``get_workflow``); ``None`` skips that.

    Raises
    ------
    InvalidChunkName
        Bad name (before any I/O).
    chunk_contract.records.ChunkNotFound
        The chunk does not exist.
    StatusLookupError
        Storage or the backend failed.
    """
    from azure.core.exceptions import AzureError

    from chunk_contract.records import read_chunk_state
    from function_app.submission import SubmitError

    validate_chunk_name(chunk)
    try:
        state = read_chunk_state(service, chunk, chunk_container=container, results_container=results_container)
    except AzureError as exc:
        raise StatusLookupError(f"storage could not be read: {type(exc).__name__}") from None
    claim = manifest = None
    if ledger is not None and state.chunk_etag:
        from chunk_contract.versions import ChunkVersion

        try:
            claim = ledger.latest(ChunkVersion(container, chunk, state.chunk_etag))
            if claim is not None and claim.owner_kind == "batch":
                manifest = ledger.get_manifest(claim.owner)
        except AzureError as exc:
            raise StatusLookupError(f"the claim ledger could not be read: {type(exc).__name__}") from None
    name: str | None
    if claim is not None and claim.owner_kind != "run":
        name = claim.owner
    elif claim is not None:
        name = None  # a fallback run inside the flow: no Argo workflow of its own to ask about
    else:
        name = workflow_name(container, [(chunk, state.chunk_etag)]) if state.chunk_etag else None
    workflow = None
    if backend is not None and name and state.status == "pending":
        try:
            workflow = backend.get_workflow(name)
        except (SubmitError, AzureError, OSError) as exc:
            raise StatusLookupError(
                f"the submit backend could not be asked about {name}: {type(exc).__name__}"
            ) from None
    elif backend is not None and name:
        # Records answer already; the workflow is only context, so a backend error is not fatal.
        try:
            workflow = backend.get_workflow(name)
        except Exception as exc:
            logger.warning("status of %s: backend lookup of %s failed (%s); answering from records", chunk, name, exc)
    return decide_status(state, name, workflow, claim, manifest)


# --------------------------------------------------------------------------- HTTP


bp = func.Blueprint()


def _json(status_code: int, body: Mapping[str, Any]) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status_code, mimetype="application/json")


@bp.function_name("chunk_status")
@bp.route(route="chunks/{*name}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def chunk_status(req: func.HttpRequest) -> func.HttpResponse:
    """``GET /api/chunks/{name}?container=...``: the chunk's status as JSON (200), 400, 404 or 503.

    One span when telemetry is on (``function_app.telemetry``): the chunk version asked about, its
    workflow and its status.
    """
    from function_app.telemetry import invocation

    with invocation("status") as inv:
        response = _chunk_status(req, inv)
        inv.http_status(response.status_code)
        if 400 <= response.status_code < 500:
            inv.rejected(response.status_code)
        elif response.status_code >= 500 and inv.outcome is None:
            inv.outcome = "failed"
        return response


def _chunk_status(req: func.HttpRequest, inv: Any) -> func.HttpResponse:
    from chunk_contract.records import ChunkNotFound, InvalidContainerName, validate_container_name
    from function_app.settings import SettingsError, get_settings
    from function_app.storage import blob_service_client, ledger
    from function_app.submission import get_backend

    name = req.route_params.get("name") or ""
    try:
        settings = get_settings()
        inv.set_mode(settings.submit_mode)
        container = req.params.get("container") or settings.sensor_container
        validate_container_name(container)
        if container != settings.sensor_container:
            # Only the chunk container: any other (the results container, azure-webjobs-secrets)
            # would let a caller probe blobs this app has no business reading.
            return _json(
                400,
                {
                    "error": "invalid_container",
                    "message": f"container {container!r} is not the chunk container (SENSOR_CONTAINER)",
                },
            )
    except SettingsError as exc:
        logger.error("status lookup: %s", exc)
        inv.failed(exc)
        return _json(500, {"error": "configuration", "message": str(exc)})
    except InvalidContainerName as exc:
        return _json(400, {"error": "invalid_container", "message": str(exc)})
    try:
        validate_chunk_name(name)
    except InvalidChunkName as exc:
        return _json(400, {"error": "invalid_chunk_name", "message": str(exc)})
    try:
        # The HTTP trigger's client: short timeouts and retries that fit a caller waiting for an answer.
        service = blob_service_client(settings)
        backend = get_backend(settings)
        answer = lookup_status(
            name,
            service=service,
            container=container,
            results_container=settings.sensor_results_container,
            backend=backend,
            ledger=ledger(settings),
        )
    except ChunkNotFound as exc:
        return _json(404, {"error": "not_found", "message": str(exc)})
    except StatusLookupError as exc:
        logger.warning("status lookup of %s: %s", name, exc)
        inv.failed(exc)
        return _json(503, {"error": "unavailable", "message": str(exc)})
    claim = answer.claim or {}
    inv.answered(
        container=container,
        name=name,
        etag=answer.chunk_etag,
        status=answer.status,
        workflow=answer.workflow_name or claim.get("workflow"),
    )
    return _json(200, answer.as_dict())
