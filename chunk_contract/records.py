"""Where a chunk's result (or its error record) lives in Blob Storage, and what state a chunk is in.

Shared by the flow (which writes records) and the function app's status lookup (which reads them),
so both agree on one layout:

- the result of chunk ``<name>`` is the blob ``<name>.features.json`` in the results container
  (default ``sensor-features``); its body is the feature record, exactly what
  ``python -m processing FILE --chunk-name NAME`` prints;
- a chunk that could not be processed gets ``<name>.error.json`` instead, a JSON object with the
  reason;
- both carry the chunk's ETag at processing time in their metadata (:data:`META_CHUNK_ETAG`), plus
  the Metaflow run that wrote them. A record whose ETag differs from the chunk's current ETag is
  *out of date*: the chunk was overwritten after it was processed.

Standard library and ``azure-storage-blob`` only: the function app imports this module on its
cold-start path, where numpy must not be loaded. ``azure-identity`` is imported lazily, only when an
account URL (rather than a connection string) is configured.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient, ContentSettings

from chunk_contract.versions import InvalidETag, normalize_etag

__all__ = [
    "DEFAULT_CHUNK_CONTAINER",
    "DEFAULT_RESULTS_CONTAINER",
    "ERROR_SUFFIX",
    "MAX_BLOB_NAME_LENGTH",
    "META_CHUNK_CONTAINER",
    "META_CHUNK_ETAG",
    "META_FLOW_NAME",
    "META_RECORD_KIND",
    "META_RUN_ID",
    "META_RUN_PATHSPEC",
    "RESULT_SUFFIX",
    "ChunkNotFound",
    "ChunkState",
    "InvalidContainerName",
    "RecordNameTooLong",
    "RunInfo",
    "blob_service_client",
    "chunk_of_record",
    "decide_state",
    "error_blob_name",
    "error_body",
    "is_up_to_date",
    "normalize_etag",
    "read_chunk_state",
    "result_blob_name",
    "validate_container_name",
    "write_error",
    "write_result",
]

MAX_BLOB_NAME_LENGTH = 1024
DEFAULT_CHUNK_CONTAINER = "sensor-data"
DEFAULT_RESULTS_CONTAINER = "sensor-features"

RESULT_SUFFIX = ".features.json"
ERROR_SUFFIX = ".error.json"

# Blob metadata keys must be valid C# identifiers (an Azure rule), hence snake_case.
META_CHUNK_ETAG = "chunk_etag"
META_CHUNK_CONTAINER = "chunk_container"
META_RUN_ID = "run_id"
META_RUN_PATHSPEC = "run_pathspec"
META_FLOW_NAME = "flow_name"
META_RECORD_KIND = "record_kind"

Status = Literal["processed", "failed", "pending"]

_CONTAINER_RULE = "3-63 characters, lowercase letters, digits and '-', starting with a letter or digit, no '--'"
_CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")


class InvalidContainerName(ValueError):
    """A container name broke Azure's naming rule (checked before it is used or sent anywhere)."""

    def __init__(self, name: object, what: str = "container") -> None:
        self.name = name
        super().__init__(f"invalid {what} name {name!r}: must be {_CONTAINER_RULE}")


class RecordNameTooLong(ValueError):
    """The record blob name would exceed Azure's 1024-character limit for blob names."""

    def __init__(self, chunk: str, record: str) -> None:
        self.chunk = chunk
        super().__init__(
            f"cannot record chunk {chunk[:120]!r}...: its record name {record[-40:]!r} would be "
            f"{len(record)} characters long, Azure allows {MAX_BLOB_NAME_LENGTH}"
        )


class ChunkNotFound(LookupError):
    """The chunk blob does not exist (never uploaded, or deleted)."""

    def __init__(self, container: str, chunk: str) -> None:
        self.container = container
        self.chunk = chunk
        super().__init__(f"chunk {chunk!r} does not exist in container {container!r}")


def validate_container_name(name: object, what: str = "container") -> str:
    """Return ``name`` if it is a valid Azure container name, else raise :class:`InvalidContainerName`.

    Parameters
    ----------
    name : object
        Candidate container name.
    what : str
        How the error message calls it (e.g. ``"results container"``).
    """
    if not isinstance(name, str) or not _CONTAINER.fullmatch(name):
        raise InvalidContainerName(name, what)
    return name


def result_blob_name(chunk: str) -> str:
    """Name of the result blob of ``chunk`` in the results container."""
    return chunk + RESULT_SUFFIX


def error_blob_name(chunk: str) -> str:
    """Name of the error record of ``chunk`` in the results container."""
    return chunk + ERROR_SUFFIX


def chunk_of_record(record_name: str) -> tuple[str, Literal["result", "error"]] | None:
    """Invert :func:`result_blob_name` / :func:`error_blob_name`; ``None`` for any other blob.

    >>> chunk_of_record("s1/a.csv.features.json")
    ('s1/a.csv', 'result')
    """
    if record_name.endswith(RESULT_SUFFIX) and len(record_name) > len(RESULT_SUFFIX):
        return record_name[: -len(RESULT_SUFFIX)], "result"
    if record_name.endswith(ERROR_SUFFIX) and len(record_name) > len(ERROR_SUFFIX):
        return record_name[: -len(ERROR_SUFFIX)], "error"
    return None


def is_up_to_date(metadata: Mapping[str, str] | None, chunk_etag: str | None) -> bool:
    """Whether a record (result or error) with ``metadata`` belongs to the chunk's current content.

    Parameters
    ----------
    metadata : Mapping[str, str] or None
        The record blob's metadata (``None`` if there is no record).
    chunk_etag : str or None
        The chunk's current ETag, quoted or not.
    """
    if not metadata or not chunk_etag:
        return False
    recorded = metadata.get(META_CHUNK_ETAG)
    if not recorded:
        return False
    try:
        return normalize_etag(recorded) == normalize_etag(chunk_etag)
    except InvalidETag:  # a hand-edited or foreign record: not evidence that this version is done
        return False


@dataclass(frozen=True)
class RunInfo:
    """The Metaflow run that writes a record, so a user can find the run and its card."""

    flow_name: str
    run_id: str

    @property
    def pathspec(self) -> str:
        return f"{self.flow_name}/{self.run_id}"


@dataclass(frozen=True)
class ChunkState:
    """What is known about one chunk.

    ``status`` is ``processed`` (an up-to-date result exists), ``failed`` (an up-to-date error
    record exists and no up-to-date result), or ``pending`` (neither: not processed yet, or the chunk
    changed since). ``result_blob``/``error_blob`` name the record in ``results_container``;
    ``run_id``/``run_pathspec`` the Metaflow run that wrote the current record; ``reason`` the
    error record's reason; ``stale_record`` is true when an out-of-date record exists.
    """

    chunk: str
    chunk_container: str
    results_container: str
    status: Status
    chunk_etag: str
    result_blob: str | None = None
    error_blob: str | None = None
    run_id: str | None = None
    run_pathspec: str | None = None
    reason: str | None = None
    stale_record: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view (for an HTTP status endpoint, logs, tests)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def decide_state(
    chunk: str,
    chunk_etag: str,
    result_metadata: Mapping[str, str] | None,
    error_metadata: Mapping[str, str] | None,
    *,
    chunk_container: str = DEFAULT_CHUNK_CONTAINER,
    results_container: str = DEFAULT_RESULTS_CONTAINER,
    reason: str | None = None,
) -> ChunkState:
    """Decide a chunk's state from its current ETag and its records' metadata (pure).

    Parameters
    ----------
    chunk, chunk_etag : str
        The chunk's name and current ETag.
    result_metadata, error_metadata : Mapping[str, str] or None
        Metadata of ``<chunk>.features.json`` / ``<chunk>.error.json``, ``None`` if absent.
    reason : str or None
        The error record's reason, reported when the state is ``failed``.
    """
    etag = normalize_etag(chunk_etag)

    def state(status: Status, **found: Any) -> ChunkState:
        return ChunkState(chunk, chunk_container, results_container, status, etag, **found)

    if result_metadata is not None and is_up_to_date(result_metadata, chunk_etag):
        return state(
            "processed",
            result_blob=result_blob_name(chunk),
            run_id=result_metadata.get(META_RUN_ID),
            run_pathspec=result_metadata.get(META_RUN_PATHSPEC),
        )
    if error_metadata is not None and is_up_to_date(error_metadata, chunk_etag):
        return state(
            "failed",
            error_blob=error_blob_name(chunk),
            run_id=error_metadata.get(META_RUN_ID),
            run_pathspec=error_metadata.get(META_RUN_PATHSPEC),
            reason=reason,
            stale_record=result_metadata is not None,
        )
    return state("pending", stale_record=bool(result_metadata or error_metadata))


def _metadata_or_none(container: ContainerClient, blob: str) -> dict[str, str] | None:
    try:
        return dict(container.get_blob_client(blob).get_blob_properties().metadata or {})
    except ResourceNotFoundError:
        return None


def read_chunk_state(
    service: BlobServiceClient,
    chunk: str,
    *,
    chunk_container: str = DEFAULT_CHUNK_CONTAINER,
    results_container: str = DEFAULT_RESULTS_CONTAINER,
) -> ChunkState:
    """Read the state of ``chunk`` from Blob Storage (three small HEAD requests, one GET if failed).

    Raises
    ------
    ChunkNotFound
        If the chunk blob does not exist.
    """
    try:
        props = service.get_blob_client(chunk_container, chunk).get_blob_properties()
    except ResourceNotFoundError:
        raise ChunkNotFound(chunk_container, chunk) from None
    results = service.get_container_client(results_container)
    result_meta = _metadata_or_none(results, result_blob_name(chunk))
    error_meta = _metadata_or_none(results, error_blob_name(chunk))
    reason = None
    if error_meta is not None and is_up_to_date(error_meta, props.etag) and not is_up_to_date(result_meta, props.etag):
        try:
            body = json.loads(results.get_blob_client(error_blob_name(chunk)).download_blob().readall())
            reason = str(body.get("reason")) if isinstance(body, dict) else None
        except (ResourceNotFoundError, ValueError):
            reason = None  # deleted or rewritten between the two requests: the status still stands
    return decide_state(
        chunk,
        props.etag,
        result_meta,
        error_meta,
        chunk_container=chunk_container,
        results_container=results_container,
        reason=reason,
    )


def _recorded_etag(etag: str | None) -> str:
    # An error record for a chunk that no longer exists has no ETag: stored as "" (never up to date).
    return normalize_etag(etag) if etag else ""


def _record_metadata(kind: str, chunk_container: str, chunk_etag: str, run: RunInfo) -> dict[str, str]:
    return {
        META_RECORD_KIND: kind,
        META_CHUNK_CONTAINER: chunk_container,
        META_CHUNK_ETAG: _recorded_etag(chunk_etag),
        META_FLOW_NAME: run.flow_name,
        META_RUN_ID: run.run_id,
        META_RUN_PATHSPEC: run.pathspec,
    }


def _checked(chunk: str, record: str) -> str:
    if len(record) > MAX_BLOB_NAME_LENGTH:
        raise RecordNameTooLong(chunk, record)
    return record


_JSON = ContentSettings(content_type="application/json")


def write_result(
    results: ContainerClient,
    chunk: str,
    record: Mapping[str, Any],
    *,
    chunk_container: str,
    chunk_etag: str,
    run: RunInfo,
) -> str:
    """Write ``<chunk>.features.json`` and drop any error record of the chunk; return the blob name.

    Idempotent: the body is ``json.dumps(record)`` (deterministic for the same chunk content and
    settings) and the blob is overwritten, so a repeated or concurrent run leaves the same result.
    """
    name = _checked(chunk, result_blob_name(chunk))
    results.upload_blob(
        name,
        json.dumps(record).encode("utf-8"),
        overwrite=True,
        metadata=_record_metadata("result", chunk_container, chunk_etag, run),
        content_settings=_JSON,
    )
    # A leftover error record from an earlier content of the chunk would only confuse readers.
    try:
        results.delete_blob(error_blob_name(chunk))
    except ResourceNotFoundError:
        pass
    return name


def error_body(chunk: str, reason: str, *, chunk_container: str, chunk_etag: str, step: str, run: RunInfo) -> dict:
    """The JSON body of an error record (pure, so tests and readers know its shape)."""
    return {
        "chunk": chunk,
        "chunk_container": chunk_container,
        "chunk_etag": _recorded_etag(chunk_etag),
        "reason": reason,
        "step": step,
        "run_pathspec": run.pathspec,
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_error(
    results: ContainerClient,
    chunk: str,
    reason: str,
    *,
    chunk_container: str,
    chunk_etag: str,
    step: str,
    run: RunInfo,
) -> str:
    """Write ``<chunk>.error.json`` with ``reason``; return the blob name.

    An out-of-date result of the chunk is left in place (its ETag already marks it as stale):
    nothing a user might still want is deleted.
    """
    name = _checked(chunk, error_blob_name(chunk))
    body = error_body(chunk, reason, chunk_container=chunk_container, chunk_etag=chunk_etag, step=step, run=run)
    results.upload_blob(
        name,
        json.dumps(body).encode("utf-8"),
        overwrite=True,
        metadata=_record_metadata("error", chunk_container, chunk_etag, run),
        content_settings=_JSON,
    )
    return name


def blob_service_client(connection_string: str | None = None, account_url: str | None = None) -> BlobServiceClient:
    """A Blob service client from a connection string (Azurite, account keys) or an account URL.

    With ``account_url`` the client authenticates with ``DefaultAzureCredential`` (managed or
    workload identity, Azure CLI, ...). The connection string wins when both are given.

    Raises
    ------
    ValueError
        If neither is given; the message names the settings, never their values.
    """
    if connection_string:
        try:
            return BlobServiceClient.from_connection_string(connection_string)
        except ValueError:
            # The SDK's message may echo parts of the string: never let it reach a log.
            raise ValueError("the storage connection string (SENSOR_STORAGE) is malformed") from None
    if account_url:
        from azure.identity import DefaultAzureCredential  # only needed for identity-based access

        return BlobServiceClient(account_url, credential=DefaultAzureCredential())
    raise ValueError(
        "no storage connection configured: set SENSOR_STORAGE (connection string) or "
        "SENSOR_STORAGE__blobServiceUri / SENSOR_STORAGE__serviceUri (account URL, DefaultAzureCredential)"
    )
