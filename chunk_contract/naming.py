"""Deterministic workflow names and labels for chunk versions (pure functions, no I/O).

The workflow name is Argo's idempotency key: submitting a name that already exists is a 409.
So the same chunk *version* — (container, blob name, ETag) — must always give the same name, from
whichever path it arrives (Event Grid, polling, the HTTP trigger, a backfill), and a new upload of
the same blob (new ETag) must give a new one.

- Name: ``chunk-<sensor slug>-<20 hex>`` (one chunk), ``batch-<count>-<20 hex>`` (several),
  ``rerun-...`` when forced; at most 63 characters, a valid DNS-1123 label. The hex is a SHA-256
  of the canonical (container, sorted [(name, ETag)]) encoding — 80 bits, collisions are not a
  practical concern. The slug is only for humans; uniqueness comes from the hash.
- Labels (Kubernetes label values: ≤ 63 chars of ``[A-Za-z0-9._-]``): a hash of the chunk-version
  set, a hash of the blob (container, name) for single-chunk runs (to find every run of a blob),
  the trigger kind, and ``forced``. Never a blob path: it can hold ``/`` and exceed 63 characters.

ETags are normalized (quotes and a weak ``W/`` prefix removed): the blob SDK returns
``"0x8D..."`` with quotes, Event Grid's ``data.eTag`` has none — both must name the same run.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable

from chunk_contract.versions import normalize_etag

__all__ = [
    "ANNOTATION_REQUEST_ID",
    "LABEL_BLOB",
    "LABEL_FORCED",
    "LABEL_KEY",
    "LABEL_TRIGGER",
    "blob_key",
    "chunk_param_cost",
    "chunk_versions_key",
    "chunks_param_bytes",
    "is_dns1123_label",
    "normalize_etag",
    "workflow_labels",
    "workflow_name",
]

LABEL_KEY = "sensor-pipeline.io/chunks-key"
LABEL_BLOB = "sensor-pipeline.io/blob-key"
LABEL_TRIGGER = "sensor-pipeline.io/trigger"
LABEL_FORCED = "sensor-pipeline.io/forced"
# Per submission attempt: lets the backend tell "my earlier attempt created it" from "someone else did".
ANNOTATION_REQUEST_ID = "sensor-pipeline.io/request-id"

MAX_NAME = 63
_HASH_CHARS = 20
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_TRIGGER = re.compile(r"[a-z][a-z0-9-]{0,30}")


def chunks_param_bytes(names: Iterable[str]) -> int:
    """Bytes of the ``chunks`` parameter value as submitted: ``json.dumps(json.dumps(sorted(names)))``.

    Metaflow's start pod receives it base64-encoded inside one shell argument (Linux: < 128 KiB).
    """
    return len(json.dumps(json.dumps(sorted(names))).encode())


def chunk_param_cost(name: str) -> int:
    """What one (allow-listed) name adds to :func:`chunks_param_bytes` of a non-empty list, exactly.

    Allow-listed names need no JSON escaping; encoded twice, each name costs its length, two
    escaped quotes (``\\"`` = 2 bytes each) and a ``", "`` separator (2 bytes); the list itself
    costs 4 bytes (``"[`` and ``]"``) minus the one separator too many. So
    ``chunks_param_bytes(ns) == 2 + sum(chunk_param_cost(n) for n in ns)``.
    """
    return len(name) + 6


def is_dns1123_label(name: str) -> bool:
    return len(name) <= MAX_NAME and _DNS1123_LABEL.fullmatch(name) is not None


def _sha256(payload: object) -> str:
    canonical = json.dumps(payload, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def chunk_versions_key(container: str, versions: Iterable[tuple[str, str]]) -> str:
    """SHA-256 hex of the canonical, order-independent (container, [(name, ETag)...]) set."""
    pairs = sorted({(name, normalize_etag(etag)) for name, etag in versions})
    return _sha256(["v1", container, [list(p) for p in pairs]])


def blob_key(container: str, name: str) -> str:
    """A label-safe hash (40 hex) of a blob regardless of version: every run of one blob shares it."""
    return _sha256(["blob", container, name])[:40]


def _slug(text: str, limit: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")
    return slug or "x"


def workflow_name(
    container: str,
    versions: Iterable[tuple[str, str]],
    force_token: str | None = None,
    batch_token: str | None = None,
) -> str:
    """The deterministic workflow name of a chunk-version set; a different one per ``force_token``.

    ``batch_token`` (the drain tick or request that planned a multi-chunk batch) salts the name too:
    a batch plan that was abandoned must never share its name with a later plan of the same set,
    or the later plan would find the abandoned plan's tombstone under its name (see the ledger).
    """
    pairs = sorted({(name, normalize_etag(etag)) for name, etag in versions})
    if not pairs:
        raise ValueError("a workflow name needs at least one chunk")
    digest = chunk_versions_key(container, pairs)
    if force_token is not None:
        digest = _sha256(["force", digest, force_token])
    if batch_token is not None:
        digest = _sha256(["batch", digest, batch_token])
    prefix = "rerun" if force_token is not None else "chunk" if len(pairs) == 1 and batch_token is None else "batch"
    if prefix != "batch" and len(pairs) == 1:
        sensor = pairs[0][0].split("/", 1)[0]
        middle = _slug(sensor, MAX_NAME - len(prefix) - _HASH_CHARS - 2)
    else:
        middle = str(len(pairs))
    name = f"{prefix}-{middle}-{digest[:_HASH_CHARS]}"
    assert is_dns1123_label(name), name  # by construction; a failure here is a bug, not bad input
    return name


def workflow_labels(
    container: str, versions: Iterable[tuple[str, str]], trigger: str, *, forced: bool = False
) -> dict[str, str]:
    """Labels for the workflow: hashes and the trigger kind, all valid Kubernetes label values."""
    if not _TRIGGER.fullmatch(trigger):
        raise ValueError(f"trigger kind {trigger!r} must match {_TRIGGER.pattern} (it becomes a label value)")
    pairs = sorted({(name, normalize_etag(etag)) for name, etag in versions})
    labels = {
        LABEL_KEY: chunk_versions_key(container, pairs)[:40],
        LABEL_TRIGGER: trigger,
        LABEL_FORCED: "true" if forced else "false",
    }
    if len(pairs) == 1:
        labels[LABEL_BLOB] = blob_key(container, pairs[0][0])
    return labels
