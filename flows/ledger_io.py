"""The flow's side of the claim ledger: the fallback claims what it takes, every run records outcomes.

The cron fallback (``chunks=[]``) is one of the paths that may execute a chunk version, so it claims
each chunk it picked before processing it, like the function app does (``chunk_contract.ledger``).
It cannot submit a workflow, so where the app would *resume* a claim it waits; it takes a chunk only

- with no claim at all (nothing ever saw it: a lost event, a poisoned message without a claim);
- whose claim is ``released`` (its submitter failed and created nothing) or whose batch was
  ``abandoned``, or a batch claim without a manifest older than ``SENSOR_CLAIM_STALE_SECONDS``
  (fenced with a tombstone first, so that batch can never be submitted);
- whose claim is older than ``SENSOR_FALLBACK_RECLAIM_SECONDS`` and still has no outcome (its
  workflow is presumed dead): a new claim generation.

Every run records each chunk's outcome (``processed``/``failed``, the run, the reason) on the
version's latest claim, so the status lookup and the health report see it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from flow_settings import FlowSettings

from chunk_contract.ledger import Claim, Ledger, classify, open_ledger
from chunk_contract.versions import ChunkVersion

__all__ = ["FallbackClaims", "claim_for_fallback", "connect_ledger", "record_outcomes"]

logger = logging.getLogger(__name__)

_THREADS = 8


def connect_ledger(settings: FlowSettings) -> Ledger:
    """The ledger on the chunk storage account (connection string, else the account's table URL)."""
    if settings.storage_connection_string:
        return open_ledger(settings.storage_connection_string, table_name=settings.ledger_table, auto_create=True)
    url = settings.storage_account_url or ""
    import os

    table_url = os.environ.get("SENSOR_STORAGE__tableServiceUri") or url.replace(".blob.", ".table.", 1)
    return open_ledger(account_url=table_url, table_name=settings.ledger_table, auto_create=True)


_RECOVERED = "recovered"  # _take_one's answer for a chunk no other path had ever claimed


def _take_one(
    ledger: Ledger, version: ChunkVersion, *, owner: str, now: datetime, stale: timedelta, reclaim: timedelta
) -> str | None:
    """Claim ``version`` for the fallback run ``owner``: None (taken over), ``_RECOVERED``, else why not."""
    attempt = ledger.claim(version, owner=owner, owner_kind="run", path="fallback", now=now, state="accepted")
    if attempt.won:
        return _RECOVERED
    claim: Claim | None = attempt.claim
    for _ in range(4):
        assert claim is not None
        manifest = ledger.get_manifest(claim.owner) if claim.owner_kind == "batch" else None
        verdict = classify(claim, manifest, now=now, stale_after=stale, can_submit=False, reclaim_after=reclaim)
        if verdict.kind in ("duplicate", "wait", "resume"):
            return verdict.reason
        if verdict.kind == "reclaim":
            ledger.claim(
                version, owner=owner, owner_kind="run", path="fallback", now=now, state="accepted", forced=True
            )
            logger.warning("fallback reclaims %s: %s", version.name, verdict.reason)
            return None
        if verdict.kind == "fence" and ledger.fence(claim.owner, container=version.container, now=now) is not None:
            claim = ledger.latest(version)  # the manifest exists after all: look again
            if claim is None:
                return "its claim disappeared"
            continue
        taken = ledger.update(claim, owner=owner, owner_kind="run", state="accepted", claimed_at=now, path="fallback")
        if taken is not None:
            return None
        claim = ledger.latest(version)
        if claim is None:
            return "its claim disappeared"
    return "its ledger row kept changing"


@dataclass(frozen=True)
class FallbackClaims:
    """What a fallback run claimed.

    Attributes
    ----------
    taken : list of ChunkVersion
        Versions this run now owns (in the order asked).
    held : dict
        ``{name: why not taken}`` for versions another claim holds.
    recovered : frozenset of ChunkVersion
        The taken versions no other path had ever claimed: chunks the event path missed.
    """

    taken: list[ChunkVersion]
    held: dict[str, str]
    recovered: frozenset[ChunkVersion]


def claim_for_fallback(
    ledger: Ledger,
    versions: Sequence[ChunkVersion],
    *,
    owner: str,
    now: datetime,
    stale_after: timedelta,
    reclaim_after: timedelta,
) -> FallbackClaims:
    """Claim each of ``versions`` for the fallback run ``owner``."""

    def one(v: ChunkVersion) -> str | None:
        return _take_one(ledger, v, owner=owner, now=now, stale=stale_after, reclaim=reclaim_after)

    with ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="fallback-claims") as pool:
        reasons = list(pool.map(one, versions))
    pairs = list(zip(versions, reasons, strict=True))
    return FallbackClaims(
        taken=[v for v, r in pairs if r is None or r == _RECOVERED],
        held={v.name: r for v, r in pairs if r is not None and r != _RECOVERED},
        recovered=frozenset(v for v, r in pairs if r == _RECOVERED),
    )


def record_outcomes(
    ledger: Ledger,
    outcomes: Mapping[ChunkVersion, tuple[str, str | None]],
    *,
    run: str,
    now: datetime,
    uploaded: Mapping[ChunkVersion, datetime] | None = None,
) -> dict[ChunkVersion, Claim]:
    """Record ``{version: (processed|failed, reason)}`` for ``run`` on each version's latest claim.

    ``uploaded`` gives the blob's last-modified time per version (as downloaded), for the upload ->
    result latency of versions whose claim has no event time. Returns the updated claims.
    """
    uploaded = uploaded or {}

    def one(item: tuple[ChunkVersion, tuple[str, str | None]]) -> Claim:
        version, (state, reason) = item
        return ledger.record_outcome(
            version, state=state, run=run, reason=reason, now=now, path="manual", uploaded_at=uploaded.get(version)
        )

    items = list(outcomes.items())
    with ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="ledger-outcomes") as pool:
        claims = list(pool.map(one, items))
    return {version: claim for (version, _), claim in zip(items, claims, strict=True)}
