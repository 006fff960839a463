"""The claim ledger: one Azure Table entity per chunk version, the idempotency claim of every path.

Every path that wants a chunk version executed — the blob trigger, the HTTP trigger, the queue
drainer, ``sensorctl backfill`` and the cron fallback inside the flow — first *claims* it here with an
insert-if-absent (Table Storage answers 409 on an existing key). Exactly one claim per chunk version
and generation can exist, so exactly one workflow is given each version, however often its events
are duplicated, reordered or retried, and for as long as the table keeps the row (forever: nothing
here expires, unlike Argo's Workflow objects). ``force`` opens a new *generation* on purpose.

Entities (one table, ``SENSOR_LEDGER_TABLE``, default ``chunkledger``)::

    claim      PartitionKey  "c" + 32 hex of sha256(container, sensor)  -- one partition per sensor
               RowKey        40 hex of sha256(container, name, ETag) + "-" + generation (4 digits)
               properties    container, blob_name, etag, sensor, generation, owner (workflow name),
                             owner_kind (single | batch | run), state, path, first_seen, claimed_at,
                             event_time, forced, duplicates, last_duplicate_at, last_duplicate_path,
                             outcome_run, outcome_reason, outcome_at, outcome_latency_s
    run        PartitionKey  "r" + the run's start day (YYYYMMDD, UTC)  -- a time window is a key range
               RowKey        flow_name + "." + run_id
               properties    mode, started_at, finished_at, processed, failed, skipped_up_to_date,
                             set_aside, recovered, latency_count, latency_p50_s/p95_s/max_s
    manifest   PartitionKey  "m" + 2 hex of sha256(workflow name)  -- 256 partitions
               RowKey        the workflow name (a DNS-1123 label: a valid key)
               properties    state (submitting | accepted | abandoned), container, count, path,
                             created_at, token, part_0 .. part_k (the chunk versions as JSON, split to
                             stay under Table Storage's 64 KiB per string property)

Table keys may not hold ``/ \\ # ?`` or control characters, and a blob name can hold ``/``: keys are
hashes and the name is a property. Partitions follow the sensor so that a hot sensor's rows never
share a partition (Table Storage scales by partition, ~2,000 entities/s each).

Claim states::

    claimed   owned by ``owner``; its workflow is not known to be accepted by Argo yet
    accepted  the owner's workflow was accepted (2xx or 409); for a batch owner, the manifest's
              state says so instead (one write per batch, not per chunk)
    released  the owner gave up without submitting (nothing can be running): free for anyone
    processed / failed   the flow recorded the outcome (``outcome_run``, ``outcome_reason``)

A batch's *manifest* fences its plan: the planner inserts it (state ``submitting``) before it
submits; whoever wants to take over a batch claim whose manifest does not exist inserts a
tombstone (state ``abandoned``) under the same key. Exactly one of the two inserts wins, so a plan is
either submitted with exactly its manifest's chunks, or never (see docs/coalescing.md for the
invariant and its proof sketch).

Pure parts (keys, entity <-> :class:`Claim`, :func:`classify`) need no I/O; :class:`Ledger` is the
thin Table Storage layer. Only the standard library and ``azure-data-tables``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from chunk_contract.versions import ChunkVersion

__all__ = [
    "DEFAULT_LEDGER_TABLE",
    "OWNER_KINDS",
    "PATHS",
    "Claim",
    "ClaimAttempt",
    "Ledger",
    "Manifest",
    "RunReport",
    "Verdict",
    "claim_entity",
    "claim_from_entity",
    "claim_keys",
    "classify",
    "latency_summary",
    "manifest_entity",
    "manifest_from_entity",
    "manifest_keys",
    "open_ledger",
    "percentile",
    "run_entity",
    "run_from_entity",
    "run_keys",
]

logger = logging.getLogger(__name__)

DEFAULT_LEDGER_TABLE = "chunkledger"
PATHS = ("blob", "http", "backfill", "fallback", "manual")
OWNER_KINDS = ("single", "batch", "run")
ClaimState = Literal["claimed", "accepted", "released", "processed", "failed"]
ManifestState = Literal["submitting", "accepted", "abandoned"]
DONE_STATES = frozenset({"accepted", "processed", "failed"})

_PART_CHARS = 30_000  # Table Storage: a string property holds at most 64 KiB of UTF-16 (32 K chars)
_MAX_GENERATION = 9999
_MAX_MANIFEST_CHARS = 480_000  # 1 MiB entity limit, UTF-16, with room for the other properties


def _sha(*parts: object) -> str:
    canonical = json.dumps(list(parts), separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


# --------------------------------------------------------------------------- keys (pure)


def claim_keys(version: ChunkVersion, generation: int = 0) -> tuple[str, str]:
    """``(PartitionKey, RowKey)`` of a claim: hashes only, so any valid blob name gives valid keys."""
    if not 0 <= generation <= _MAX_GENERATION:
        raise ValueError(f"generation must be within 0..{_MAX_GENERATION}, got {generation}")
    partition = "c" + _sha("sensor", version.container, version.sensor)[:32]
    return partition, f"{_version_prefix(version)}-{generation:04d}"


def _version_prefix(version: ChunkVersion) -> str:
    return _sha("v1", version.container, version.name, version.etag)[:40]


def manifest_keys(workflow_name: str) -> tuple[str, str]:
    """``(PartitionKey, RowKey)`` of a batch manifest; the workflow name is a DNS-1123 label, a valid key."""
    return "m" + _sha("manifest", workflow_name)[:2], workflow_name


# --------------------------------------------------------------------------- entities (pure)


@dataclass(frozen=True)
class Claim:
    """One claim of one chunk version (see the module docstring). ``entity_etag`` is for If-Match."""

    version: ChunkVersion
    owner: str
    owner_kind: str
    state: str
    path: str
    first_seen: datetime
    claimed_at: datetime
    generation: int = 0
    event_time: datetime | None = None
    forced: bool = False
    duplicates: int = 0
    last_duplicate_at: datetime | None = None
    last_duplicate_path: str | None = None
    outcome_run: str | None = None
    outcome_reason: str | None = None
    outcome_at: datetime | None = None
    outcome_latency_s: float | None = None
    entity_etag: str | None = field(default=None, compare=False)

    @property
    def keys(self) -> tuple[str, str]:
        return claim_keys(self.version, self.generation)

    @property
    def uploaded_at(self) -> datetime:
        """Best known upload time: the event's time, else when the ledger first saw the version."""
        return self.event_time or self.first_seen

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view (status answers, logs)."""
        out: dict[str, Any] = {
            "container": self.version.container,
            "chunk": self.version.name,
            "etag": self.version.etag,
            "generation": self.generation,
            "owner": self.owner,
            "owner_kind": self.owner_kind,
            "state": self.state,
            "path": self.path,
            "first_seen": self.first_seen.isoformat(),
            "claimed_at": self.claimed_at.isoformat(),
            "forced": self.forced,
            "duplicates": self.duplicates,
        }
        for key in ("event_time", "last_duplicate_at", "outcome_at"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value.isoformat()
        for key in ("last_duplicate_path", "outcome_run", "outcome_reason"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.outcome_latency_s is not None:
            out["outcome_latency_s"] = self.outcome_latency_s
        return out


def claim_entity(claim: Claim) -> dict[str, Any]:
    """The Table entity of ``claim`` (``None`` values are left out: Tables has no null)."""
    partition, row = claim.keys
    entity: dict[str, Any] = {
        "PartitionKey": partition,
        "RowKey": row,
        "kind": "claim",
        "container": claim.version.container,
        "blob_name": claim.version.name,
        "etag": claim.version.etag,
        "sensor": claim.version.sensor,
        "generation": claim.generation,
        "owner": claim.owner,
        "owner_kind": claim.owner_kind,
        "state": claim.state,
        "path": claim.path,
        "first_seen": claim.first_seen,
        "claimed_at": claim.claimed_at,
        "forced": claim.forced,
        "duplicates": claim.duplicates,
    }
    for key in (
        "event_time",
        "last_duplicate_at",
        "last_duplicate_path",
        "outcome_run",
        "outcome_reason",
        "outcome_at",
        "outcome_latency_s",
    ):
        value = getattr(claim, key)
        if value is not None:
            entity[key] = value
    return entity


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise ValueError(f"expected a datetime, got {type(value).__name__}")
    # TablesEntityDatetime is a datetime subclass; keep plain datetimes so values compare and print simply.
    plain = datetime(
        value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond, value.tzinfo
    )
    return plain if plain.tzinfo is not None else plain.replace(tzinfo=UTC)


def claim_from_entity(entity: Mapping[str, Any], entity_etag: str | None = None) -> Claim:
    """Invert :func:`claim_entity` (``entity_etag``: the entity's ETag, for a later If-Match)."""
    version = ChunkVersion(str(entity["container"]), str(entity["blob_name"]), str(entity["etag"]))
    first_seen = _aware(entity["first_seen"])
    claimed_at = _aware(entity.get("claimed_at") or entity["first_seen"])
    assert first_seen is not None and claimed_at is not None
    return Claim(
        version=version,
        owner=str(entity.get("owner", "")),
        owner_kind=str(entity.get("owner_kind", "single")),
        state=str(entity.get("state", "claimed")),
        path=str(entity.get("path", "manual")),
        first_seen=first_seen,
        claimed_at=claimed_at,
        generation=int(entity.get("generation", 0)),
        event_time=_aware(entity.get("event_time")),
        forced=bool(entity.get("forced", False)),
        duplicates=int(entity.get("duplicates", 0)),
        last_duplicate_at=_aware(entity.get("last_duplicate_at")),
        last_duplicate_path=entity.get("last_duplicate_path"),
        outcome_run=entity.get("outcome_run"),
        outcome_reason=entity.get("outcome_reason"),
        outcome_at=_aware(entity.get("outcome_at")),
        outcome_latency_s=_float_or_none(entity.get("outcome_latency_s")),
        entity_etag=entity_etag,
    )


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class Manifest:
    """A batch workflow's plan: its name, the chunk versions it carries, and whether it was accepted."""

    workflow_name: str
    container: str
    chunks: tuple[tuple[str, str], ...]  # (blob name, normalised ETag), sorted
    state: str
    path: str
    created_at: datetime
    token: str = ""  # the batch token that salted the workflow name (to rebuild the same submission)
    entity_etag: str | None = field(default=None, compare=False)

    @property
    def versions(self) -> tuple[ChunkVersion, ...]:
        return tuple(ChunkVersion(self.container, name, etag) for name, etag in self.chunks)


def manifest_entity(manifest: Manifest) -> dict[str, Any]:
    partition, row = manifest_keys(manifest.workflow_name)
    text = json.dumps([list(c) for c in manifest.chunks], separators=(",", ":"))
    parts = [text[i : i + _PART_CHARS] for i in range(0, len(text), _PART_CHARS)] or [""]
    entity: dict[str, Any] = {
        "PartitionKey": partition,
        "RowKey": row,
        "kind": "manifest",
        "state": manifest.state,
        "container": manifest.container,
        "count": len(manifest.chunks),
        "path": manifest.path,
        "created_at": manifest.created_at,
        "token": manifest.token,
        "parts": len(parts),
    }
    if len(text) > _MAX_MANIFEST_CHARS:
        # Table Storage refuses entities over 1 MiB (Azurite stores them silently); the chunks
        # parameter limit (MAX_CHUNKS_PARAM_BYTES, 64 KiB) keeps real batches far below this.
        raise ValueError(
            f"manifest of {manifest.workflow_name} holds {len(text)} characters of chunk names; "
            f"a Table entity allows about {_MAX_MANIFEST_CHARS} (1 MiB of UTF-16)"
        )
    for i, part in enumerate(parts):
        entity[f"part_{i}"] = part
    return entity


def manifest_from_entity(entity: Mapping[str, Any], entity_etag: str | None = None) -> Manifest:
    text = "".join(str(entity.get(f"part_{i}", "")) for i in range(int(entity.get("parts", 0))))
    chunks = tuple((str(n), str(e)) for n, e in json.loads(text)) if text else ()
    created = _aware(entity["created_at"])
    assert created is not None
    return Manifest(
        workflow_name=str(entity["RowKey"]),
        container=str(entity.get("container", "")),
        chunks=chunks,
        state=str(entity.get("state", "abandoned")),
        path=str(entity.get("path", "")),
        created_at=created,
        token=str(entity.get("token", "")),
        entity_etag=entity_etag,
    )


# --------------------------------------------------------------------------- the decision (pure)

VerdictKind = Literal["duplicate", "resume", "take", "fence", "wait", "reclaim"]


_KEY_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


@dataclass(frozen=True)
class RunReport:
    """What one flow run did: one ``run`` entity per run, for the health report and dashboards.

    Attributes
    ----------
    flow_name, run_id : str
        The run (``flow_name/run_id`` is its Metaflow pathspec).
    mode : str
        ``event`` or ``fallback``.
    started_at, finished_at : datetime
        When the run's start step began and when its outcomes were recorded.
    processed, failed, skipped_up_to_date, set_aside : int
        Chunks with a new result; with a new error record; left out because their record was up
        to date; set aside before processing (stray names, missing chunks) — ``set_aside`` is part
        of ``failed`` when the chunk got an error record.
    recovered : int
        Fallback runs: chunks no event path had claimed (a lost event, a dropped message).
    latency_count, latency_p50_s, latency_p95_s, latency_max_s
        Upload -> result latency over the run's recorded chunks (None when there were none).
    """

    flow_name: str
    run_id: str
    mode: str
    started_at: datetime
    finished_at: datetime
    processed: int = 0
    failed: int = 0
    skipped_up_to_date: int = 0
    set_aside: int = 0
    recovered: int = 0
    latency_count: int = 0
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    latency_max_s: float | None = None

    @property
    def keys(self) -> tuple[str, str]:
        return run_keys(self.flow_name, self.run_id, self.started_at)

    def as_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["started_at"] = self.started_at.isoformat()
        out["finished_at"] = self.finished_at.isoformat()
        return out


def run_keys(flow_name: str, run_id: str, started_at: datetime) -> tuple[str, str]:
    """``(PartitionKey, RowKey)`` of a run report: one partition per UTC day, so a window is a key range."""
    day = started_at.astimezone(UTC).strftime("%Y%m%d")
    row = f"{flow_name}.{run_id}"
    if not row or len(row) > 200 or not set(row) <= _KEY_SAFE:
        row = "h" + _sha("run", flow_name, run_id)[:40]  # an exotic run id: a hash is always a valid key
    return f"r{day}", row


def run_entity(report: RunReport) -> dict[str, Any]:
    partition, row = report.keys
    entity: dict[str, Any] = {"PartitionKey": partition, "RowKey": row, "kind": "run"}
    for key in report.__dataclass_fields__:
        value = getattr(report, key)
        if value is not None:
            entity[key] = value
    return entity


def run_from_entity(entity: Mapping[str, Any]) -> RunReport:
    started, finished = _aware(entity["started_at"]), _aware(entity["finished_at"])
    assert started is not None and finished is not None
    return RunReport(
        flow_name=str(entity["flow_name"]),
        run_id=str(entity["run_id"]),
        mode=str(entity.get("mode", "")),
        started_at=started,
        finished_at=finished,
        processed=int(entity.get("processed", 0)),
        failed=int(entity.get("failed", 0)),
        skipped_up_to_date=int(entity.get("skipped_up_to_date", 0)),
        set_aside=int(entity.get("set_aside", 0)),
        recovered=int(entity.get("recovered", 0)),
        latency_count=int(entity.get("latency_count", 0)),
        latency_p50_s=_float_or_none(entity.get("latency_p50_s")),
        latency_p95_s=_float_or_none(entity.get("latency_p95_s")),
        latency_max_s=_float_or_none(entity.get("latency_max_s")),
    )


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100), linear between order statistics (numpy's default); None if empty."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    ordered = sorted(float(v) for v in values)
    if not ordered:
        return None
    rank = (len(ordered) - 1) * q / 100.0
    lo = int(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def latency_summary(values: Iterable[float]) -> tuple[int, float | None, float | None, float | None]:
    """``(count, p50, p95, max)`` of latencies in seconds (:func:`percentile`)."""
    xs = [float(v) for v in values]
    if not xs:
        return 0, None, None, None
    return len(xs), percentile(xs, 50), percentile(xs, 95), max(xs)


@dataclass(frozen=True)
class Verdict:
    """What a would-be claimant does about an existing claim.

    ``duplicate``  the version is handled (accepted, processed or failed): suppress, count.
    ``resume``     the owner's workflow may not have been accepted: submit the owner again under its
                   name, with the same chunks (its manifest's, or the one version for a single owner);
                   Argo's 409 makes a repeat harmless.
    ``take``       nothing can run it (released, or its batch abandoned): take it over (If-Match).
    ``fence``      a batch claim without a manifest, older than ``stale_after``: insert the tombstone
                   manifest first; if that wins, ``take``; if a manifest exists, classify again with it.
    ``wait``       a batch claim without a manifest, younger than ``stale_after``: its planner may be
                   between the claim and the manifest; leave it for now.
    ``reclaim``    (fallback only) accepted long ago and still no outcome: the workflow is dead;
                   open a new generation.
    """

    kind: VerdictKind
    reason: str


def classify(
    claim: Claim,
    manifest: Manifest | None,
    *,
    now: datetime,
    stale_after: timedelta,
    can_submit: bool = True,
    reclaim_after: timedelta | None = None,
) -> Verdict:
    """Decide what to do about an existing ``claim`` (pure).

    Parameters
    ----------
    claim : Claim
        The latest claim of the version.
    manifest : Manifest or None
        The owner's manifest when the owner is a batch (``None``: absent or not looked up).
    now : datetime
        The current time (aware).
    stale_after : timedelta
        How long a batch claim may lack its manifest before it is considered orphaned: longer than
        one drain may take.
    can_submit : bool
        False for the fallback inside the flow, which cannot submit a workflow: where others would
        ``resume``, it waits (or reclaims once ``reclaim_after`` has passed).
    reclaim_after : timedelta or None
        When an accepted (or resumable) claim without an outcome is presumed dead; ``None`` = never.
    """
    age = now - claim.claimed_at
    dead = reclaim_after is not None and age > reclaim_after
    if claim.state in ("processed", "failed"):
        return Verdict("duplicate", f"already {claim.state} by {claim.outcome_run or claim.owner}")
    if claim.state == "released":
        return Verdict("take", f"released by {claim.owner}")
    if claim.state == "accepted" or (manifest is not None and manifest.state == "accepted"):
        if dead:
            return Verdict("reclaim", f"accepted by {claim.owner} {age} ago and no outcome recorded")
        return Verdict("duplicate", f"accepted by {claim.owner}")
    # state == "claimed": the owner's workflow is not known to be accepted.
    if claim.generation > 0:
        # A forced re-run (only `force` opens generation > 0) that is not accepted yet: the
        # version itself was claimed before, at generation 0. An unforced claimant is a duplicate
        # of that; the re-run is its requester's to retry (they were told it failed).
        return Verdict("duplicate", f"claimed before; a forced re-run {claim.owner} is pending")
    if claim.owner_kind == "batch":
        if manifest is not None and manifest.state == "abandoned":
            return Verdict("take", f"batch {claim.owner} was abandoned before it was submitted")
        if manifest is None:
            if age > stale_after:
                return Verdict("fence", f"batch {claim.owner} has no manifest {age} after its claim")
            return Verdict("wait", f"batch {claim.owner} is being planned")
    if claim.owner_kind == "run":
        # A fallback run claims as accepted; a "claimed" run claim is a run that died while claiming.
        return Verdict("reclaim" if dead else "wait", f"run {claim.owner} holds it")
    if not can_submit:
        return Verdict("reclaim" if dead else "wait", f"{claim.owner} may still be submitted")
    return Verdict("resume", f"{claim.owner} not yet accepted")


# --------------------------------------------------------------------------- I/O


@dataclass(frozen=True)
class ClaimAttempt:
    """The result of :meth:`Ledger.claim`: ``won`` is True when this call inserted ``claim``."""

    won: bool
    claim: Claim


class Ledger:
    """The claim ledger on one Table Storage table (see the module docstring).

    Parameters
    ----------
    table : azure.data.tables.TableClient
        The ledger table (created by :meth:`ensure_table` or by the deployment).

    Storage errors (``azure.core.exceptions.AzureError``) propagate after the SDK's own retries:
    callers retry or fail, never guess.
    """

    def __init__(self, table: Any, *, auto_create: bool = False) -> None:
        self.table = table
        # auto_create: the first write that finds no table creates it (one request per process at
        # most), and a read that finds no table answers "no claim" — nothing was ever claimed.
        self.auto_create = auto_create

    def _create(self, entity: dict[str, Any]) -> Any:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self.table.create_entity(entity)
        except ResourceNotFoundError as exc:
            if not (self.auto_create and _table_missing(exc)):
                raise
        self.ensure_table()
        return self.table.create_entity(entity)

    def ensure_table(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        try:
            self.table.create_table()
        except ResourceExistsError:
            pass

    # ------------------------------------------------------------------ claims

    def claim(
        self,
        version: ChunkVersion,
        *,
        owner: str,
        owner_kind: str,
        path: str,
        now: datetime,
        event_time: datetime | None = None,
        state: str = "claimed",
        forced: bool = False,
    ) -> ClaimAttempt:
        """Insert-if-absent the claim of ``version`` for ``owner``.

        Unforced claims live at generation 0, so every unforced claimant of a version competes for
        one key. ``forced`` opens the next generation after the latest one. When the insert loses,
        the returned claim is the latest existing one (for :func:`classify`).
        """
        from azure.core.exceptions import ResourceExistsError

        if path not in PATHS:
            raise ValueError(f"path must be one of {', '.join(PATHS)}, got {path!r}")
        if owner_kind not in OWNER_KINDS:
            raise ValueError(f"owner_kind must be one of {', '.join(OWNER_KINDS)}, got {owner_kind!r}")
        generation = 0
        if forced:
            latest = self.latest(version)
            generation = latest.generation + 1 if latest is not None else 0
        for _ in range(5):
            claim = Claim(
                version=version,
                owner=owner,
                owner_kind=owner_kind,
                state=state,
                path=path,
                first_seen=now,
                claimed_at=now,
                generation=generation,
                event_time=event_time,
                forced=forced,
            )
            try:
                meta = self._create(claim_entity(claim))
            except ResourceExistsError:
                existing = self.latest(version)
                if existing is None:  # deleted in between (by hand): try again
                    continue
                if forced and existing.generation >= generation:
                    generation = existing.generation + 1  # a concurrent force took this generation
                    continue
                return ClaimAttempt(False, existing)
            return ClaimAttempt(True, replace(claim, entity_etag=_etag(meta)))
        raise RuntimeError(f"could not claim {version.name!r}: the ledger row kept changing")

    def latest(self, version: ChunkVersion) -> Claim | None:
        """The claim of ``version`` with the highest generation, or None."""
        from azure.core.exceptions import ResourceNotFoundError

        partition, _ = claim_keys(version)
        prefix = _version_prefix(version)
        rows = self.table.query_entities(
            "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
            parameters={"pk": partition, "lo": prefix + "-", "hi": prefix + "."},
        )
        best = None
        try:
            for row in rows:
                if best is None or int(row.get("generation", 0)) > int(best.get("generation", 0)):
                    best = row
        except ResourceNotFoundError as exc:
            if not (self.auto_create and _table_missing(exc)):
                raise
            return None
        return claim_from_entity(best, _etag(best.metadata)) if best is not None else None

    def latest_many(self, versions: Iterable[ChunkVersion]) -> dict[ChunkVersion, Claim | None]:
        return {v: self.latest(v) for v in versions}

    def update(self, claim: Claim, **changes: Any) -> Claim | None:
        """Change ``claim`` only if nobody else did since it was read (If-Match); None if someone did."""

        updated = replace(claim, **changes)
        meta = self._update_if_unchanged(claim_entity(updated), claim.entity_etag)
        return None if meta is None else replace(updated, entity_etag=_etag(meta))

    def _update_if_unchanged(self, entity: dict[str, Any], etag: str | None) -> Any:
        """Merge ``entity`` only if the row still has ``etag`` (If-Match): its metadata, or None if
        the row changed or is gone (a missing *table* raises)."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

        try:
            return self.table.update_entity(
                entity, mode=_merge(), etag=etag, match_condition=MatchConditions.IfNotModified
            )
        except ResourceModifiedError:
            return None
        except ResourceNotFoundError as exc:
            _raise_unless_row_absent(exc)
            return None

    def count_duplicate(self, claim: Claim, *, path: str, now: datetime) -> Claim:
        """Count one suppressed duplicate on the claim (best effort: a lost counter is no lost chunk)."""
        current: Claim | None = claim
        for _ in range(3):
            assert current is not None
            done = self.update(
                current, duplicates=current.duplicates + 1, last_duplicate_at=now, last_duplicate_path=path
            )
            if done is not None:
                return done
            current = self.latest(claim.version)
            if current is None:
                break
        logger.info("duplicate of %s not counted: its ledger row kept changing", claim.version.name)
        return claim

    def record_outcome(
        self,
        version: ChunkVersion,
        *,
        state: str,
        run: str,
        reason: str | None,
        now: datetime,
        path: str = "manual",
        uploaded_at: datetime | None = None,
    ) -> Claim:
        """Record what the flow did with ``version`` on its latest claim (inserting one if there is none).

        An outcome is a fact about the content, whoever owned the claim: written without If-Match
        (a merge of the outcome fields only), so it never loses a race with a duplicate counter.
        ``outcome_latency_s`` is upload -> result: from the claim's event time, else ``uploaded_at``
        (the blob's last-modified time as the flow downloaded it), else the claim's first sight.
        """
        from azure.core.exceptions import ResourceNotFoundError

        if state not in ("processed", "failed"):
            raise ValueError(f"outcome state must be processed or failed, got {state!r}")
        for _ in range(3):
            claim = self.latest(version)
            if claim is None:
                attempt = self.claim(version, owner=run, owner_kind="run", path=path, now=now, state="accepted")
                claim = attempt.claim
            partition, row = claim.keys
            fields: dict[str, Any] = {
                "PartitionKey": partition,
                "RowKey": row,
                "state": state,
                "outcome_run": run,
                "outcome_at": now,
            }
            if reason:
                fields["outcome_reason"] = reason[:2000]
            start = claim.event_time or uploaded_at or claim.first_seen
            latency = max(0.0, (now - start).total_seconds())
            fields["outcome_latency_s"] = latency
            try:
                meta = self.table.update_entity(fields, mode=_merge())
            except ResourceNotFoundError as exc:
                _raise_unless_row_absent(exc)
                continue
            return replace(
                claim,
                state=state,
                outcome_run=run,
                outcome_reason=reason[:2000] if reason else claim.outcome_reason,
                outcome_at=now,
                outcome_latency_s=latency,
                entity_etag=_etag(meta),
            )
        raise RuntimeError(f"could not record the outcome of {version.name!r}: its ledger row kept disappearing")

    # ------------------------------------------------------------------ manifests

    def create_manifest(self, manifest: Manifest) -> Manifest | None:
        """Insert ``manifest``; None when one (or a tombstone) exists under its name already."""
        from azure.core.exceptions import ResourceExistsError

        try:
            meta = self._create(manifest_entity(manifest))
        except ResourceExistsError:
            return None
        return replace(manifest, entity_etag=_etag(meta))

    def get_manifest(self, workflow_name: str) -> Manifest | None:
        from azure.core.exceptions import ResourceNotFoundError

        partition, row = manifest_keys(workflow_name)
        try:
            entity = self.table.get_entity(partition, row)
        except ResourceNotFoundError as exc:
            if not (self.auto_create and _table_missing(exc)):
                _raise_unless_row_absent(exc)
            return None
        return manifest_from_entity(entity, _etag(entity.metadata))

    def fence(self, workflow_name: str, *, container: str, now: datetime) -> Manifest | None:
        """Insert the tombstone of batch ``workflow_name``: None when it won (the batch can never be
        submitted now), else the manifest that exists."""
        tomb = Manifest(workflow_name, container, (), "abandoned", "fence", now)
        if self.create_manifest(tomb) is not None:
            return None
        return self.get_manifest(workflow_name)

    def set_manifest_state(self, manifest: Manifest, state: str) -> Manifest | None:
        """Move a manifest to ``state`` only if it is unchanged since read (If-Match); None otherwise."""

        partition, row = manifest_keys(manifest.workflow_name)
        meta = self._update_if_unchanged(
            {"PartitionKey": partition, "RowKey": row, "state": state}, manifest.entity_etag
        )
        return None if meta is None else replace(manifest, state=state, entity_etag=_etag(meta))

    # ------------------------------------------------------------------ run reports

    def record_run(self, report: RunReport) -> None:
        """Write ``report`` (an upsert: a retried join task writes the same run again)."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self.table.upsert_entity(run_entity(report), mode=_merge())
        except ResourceNotFoundError as exc:
            if not (self.auto_create and _table_missing(exc)):
                raise
            self.ensure_table()
            self.table.upsert_entity(run_entity(report), mode=_merge())

    def runs(self, since: datetime, until: datetime | None = None) -> list[RunReport]:
        """Run reports of runs started in ``[since, until]`` (default until now), oldest first."""
        from azure.core.exceptions import ResourceNotFoundError

        until = until or datetime.now(UTC)
        lo, _ = run_keys("x", "x", since)
        hi, _ = run_keys("x", "x", until)
        try:
            entities = list(
                self.table.query_entities(
                    "PartitionKey ge @lo and PartitionKey le @hi and kind eq 'run'",
                    parameters={"lo": lo, "hi": hi},
                )
            )
        except ResourceNotFoundError as exc:
            if self.auto_create and _table_missing(exc):
                return []
            raise
        reports = [run_from_entity(e) for e in entities]
        return sorted((r for r in reports if since <= r.started_at <= until), key=lambda r: r.started_at)


def _table_missing(exc: Exception) -> bool:
    # create_entity's error carries no error_code (azure-data-tables 12.7): read the service's own text.
    return getattr(exc, "error_code", None) == "TableNotFound" or "TableNotFound" in str(exc)


def _raise_unless_row_absent(exc: Exception) -> None:
    """A 404 means a missing *row* only with error code ResourceNotFound; TableNotFound (a missing
    table: a deployment problem) must surface, not be mistaken for "no manifest" or "lost a race"."""
    if _table_missing(exc) or getattr(exc, "error_code", None) not in (None, "ResourceNotFound"):
        raise exc


def _merge() -> Any:
    from azure.data.tables import UpdateMode

    return UpdateMode.MERGE


def _etag(meta: Any) -> str | None:
    if not meta:
        return None
    value = meta.get("etag")
    return str(value) if value else None


def open_ledger(
    connection_string: str | None = None,
    *,
    table_name: str = DEFAULT_LEDGER_TABLE,
    account_url: str | None = None,
    credential: Any = None,
    create: bool = False,
    auto_create: bool = False,
    **client_options: Any,
) -> Ledger:
    """A :class:`Ledger` on ``table_name`` from a connection string, or a table account URL + credential.

    Raises
    ------
    ValueError
        If neither is given, or the connection string is malformed (the message never holds it).
    """
    from azure.data.tables import TableClient

    if connection_string:
        try:
            client = TableClient.from_connection_string(connection_string, table_name, **client_options)
        except ValueError:
            raise ValueError("the storage connection string (SENSOR_STORAGE) is malformed") from None
    elif account_url:
        if credential is None:
            from azure.identity import DefaultAzureCredential  # identity-based access only

            credential = DefaultAzureCredential()
        client = TableClient(account_url, table_name, credential=credential, **client_options)
    else:
        raise ValueError("no ledger connection: set SENSOR_STORAGE or SENSOR_STORAGE__tableServiceUri")
    ledger = Ledger(client, auto_create=auto_create)
    if create:
        ledger.ensure_table()
    return ledger
