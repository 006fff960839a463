"""Backfill: re-submit chunks by prefix and time range, in batches, through the normal submission path.

:func:`plan_backfill` decides (pure) which chunks to submit and how they are grouped;
:func:`run_backfill` carries the plan out with ``function_app.submission.submit_chunks`` — the
same entry point as the blob and HTTP triggers — so a chunk version submitted twice gets the same
workflow name and the backend suppresses the duplicate (Argo's 409, or the local backend's claim).

Without ``--force`` a chunk is skipped when

- it already has an up-to-date record (result *or* error record: the same bytes fail the same way);
- its single-chunk workflow (what the event path creates) exists and has not failed: it is in
  flight, and a batch containing it would process it a second time.

With ``--force`` every selected chunk is submitted again under a fresh ``rerun-`` name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chunk_contract.names import InvalidChunkName, validate_chunk_name
from chunk_contract.records import chunk_of_record, is_up_to_date

__all__ = [
    "BackfillPlan",
    "BackfillSummary",
    "Candidate",
    "batched",
    "in_flight",
    "plan_backfill",
    "run_backfill",
]

FAILED_PHASES = frozenset({"Failed", "Error"})


@dataclass(frozen=True)
class Candidate:
    """One blob of the chunk container, as listed."""

    name: str
    etag: str
    last_modified: datetime


@dataclass(frozen=True)
class BackfillPlan:
    """What a backfill will do.

    Attributes
    ----------
    batches : tuple of tuple of Candidate
        Chunks to submit, one workflow per batch, oldest first.
    out_of_range : int
        Blobs under the prefix outside ``[since, until)``.
    invalid : tuple of (str, str)
        Names that fail the allow-list, with the reason; never submitted.
    up_to_date : int
        Chunks skipped because an up-to-date result or error record exists.
    in_flight : tuple of str
        Chunks skipped because their event workflow is still pending or running.
    """

    batches: tuple[tuple[Candidate, ...], ...]
    out_of_range: int = 0
    invalid: tuple[tuple[str, str], ...] = ()
    up_to_date: int = 0
    in_flight: tuple[str, ...] = ()

    @property
    def chunks(self) -> int:
        return sum(len(b) for b in self.batches)


def batched(items: Sequence[Candidate], size: int) -> tuple[tuple[Candidate, ...], ...]:
    """Consecutive groups of at most ``size`` items."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    return tuple(tuple(items[i : i + size]) for i in range(0, len(items), size))


def in_flight(workflow: Mapping[str, Any] | None) -> bool:
    """Whether an event workflow (Argo JSON, or ``None`` if absent) may still produce a record."""
    if workflow is None:
        return False
    phase = (workflow.get("status") or {}).get("phase")
    return phase not in FAILED_PHASES and phase != "Succeeded"


def plan_backfill(
    listing: Iterable[Candidate],
    records: Mapping[str, tuple[Mapping[str, str] | None, Mapping[str, str] | None]],
    *,
    since: datetime | None,
    until: datetime | None,
    force: bool,
    batch_size: int,
    workflow_of: Callable[[Candidate], Mapping[str, Any] | None] = lambda c: None,
) -> BackfillPlan:
    """Decide which chunks to submit (pure apart from ``workflow_of``, which the caller supplies).

    Parameters
    ----------
    listing : iterable of Candidate
        The chunk container listed under the prefix.
    records : mapping
        ``chunk name -> (result metadata, error metadata)`` from one listing of the results container.
    since, until : datetime or None
        Keep chunks last modified in ``[since, until)`` (timezone-aware).
    force : bool
        Submit every selected chunk, records and in-flight workflows notwithstanding.
    batch_size : int
        Chunks per workflow.
    workflow_of : callable
        The chunk version's single-chunk workflow, or ``None``; asked only for chunks without a record.
    """
    if since is not None and until is not None and since >= until:
        raise ValueError(f"--since ({since.isoformat()}) must be before --until ({until.isoformat()})")
    chosen: list[Candidate] = []
    invalid: list[tuple[str, str]] = []
    flying: list[str] = []
    out_of_range = up_to_date = 0
    for c in listing:
        if (since is not None and c.last_modified < since) or (until is not None and c.last_modified >= until):
            out_of_range += 1
            continue
        try:
            validate_chunk_name(c.name)
        except InvalidChunkName as exc:
            invalid.append((c.name, exc.reason))
            continue
        if not force:
            result, error = records.get(c.name, (None, None))
            if is_up_to_date(result, c.etag) or is_up_to_date(error, c.etag):
                up_to_date += 1
                continue
            if in_flight(workflow_of(c)):
                flying.append(c.name)
                continue
        chosen.append(c)
    chosen.sort(key=lambda c: (c.last_modified, c.name))
    return BackfillPlan(
        batches=batched(chosen, batch_size),
        out_of_range=out_of_range,
        invalid=tuple(invalid),
        up_to_date=up_to_date,
        in_flight=tuple(flying),
    )


def index_records(listing: Iterable[tuple[str, Mapping[str, str] | None]]) -> dict[str, tuple[Any, Any]]:
    """Group a results-container listing ``(blob name, metadata)`` into ``chunk -> (result, error)``."""
    out: dict[str, list[Any]] = {}
    for name, metadata in listing:
        parsed = chunk_of_record(name)
        if parsed is None:
            continue
        chunk, kind = parsed
        out.setdefault(chunk, [None, None])[0 if kind == "result" else 1] = dict(metadata or {})
    return {k: (v[0], v[1]) for k, v in out.items()}


@dataclass
class BackfillSummary:
    """Counts printed at the end of a backfill."""

    selected: int = 0
    workflows_submitted: int = 0
    duplicates: int = 0  # chunks suppressed: the ledger (or Argo) already had them
    failed_batches: int = 0
    chunks_submitted: int = 0
    errors: list[str] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)


def run_backfill(
    plan: BackfillPlan,
    submit: Callable[[Sequence[str], Sequence[str]], Any],
    *,
    on_batch: Callable[[int], None] | None = None,
) -> BackfillSummary:
    """Submit each batch with ``submit(names, etags)``; a failing batch is counted, the rest go on.

    ``submit`` is ``submit_chunks`` with settings, trigger, container and force bound; it returns a
    ``SubmitResult`` or raises a ``SubmitError``/``InvalidSubmission``.
    """
    from function_app.submission import InvalidSubmission, SubmitError

    summary = BackfillSummary(selected=plan.chunks)
    for batch in plan.batches:
        names = [c.name for c in batch]
        try:
            result = submit(names, [c.etag for c in batch])
        except (SubmitError, InvalidSubmission) as exc:
            summary.failed_batches += 1
            summary.errors.append(f"batch of {len(batch)} starting {names[0]!r}: {type(exc).__name__}: {exc}")
        else:
            suppressed = len(getattr(result, "suppressed", {}) or {})
            if result.duplicate:
                # Nothing new: every chunk was claimed already (the ledger), or Argo had the name (409).
                summary.duplicates += suppressed or len(batch)
            else:
                summary.workflows_submitted += 1
                summary.chunks_submitted += len(batch) - suppressed
                summary.duplicates += suppressed
            summary.run_ids.append(result.run_id)
        if on_batch is not None:
            on_batch(len(batch))
    return summary
