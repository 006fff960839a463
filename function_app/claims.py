"""Claim, then submit: the ledger protocol that every submitting path follows.

The blob trigger (immediate mode), the HTTP trigger, ``sensorctl backfill`` and the queue drainer
(coalesce mode) all go through here, so a chunk version is given to exactly one workflow whichever
path sees it first, and a duplicate from any path is suppressed by the ledger — not by Argo's 409,
which only lasts as long as Argo keeps the Workflow object.

For one planned workflow ``W`` (a single chunk version, or a batch):

1. :meth:`ClaimBook.settle` each version for owner ``W`` (insert-if-absent). A lost insert is
   classified (``chunk_contract.ledger.classify``): a *duplicate* is counted and dropped, a
   released or abandoned claim is *taken* over with If-Match, a claim whose owner's workflow may
   not be accepted yet is *resumed* by whoever can submit it, and a batch claim whose manifest is
   missing is *fenced* (tombstone) once it is stale.
2. :func:`submit_owned`: for a batch, insert its manifest (state ``submitting``) — the fence: if a
   tombstone is there already, the plan is abandoned and nothing is submitted; then submit ``W``
   through the backend; on 2xx/409 mark it accepted (the manifest for a batch, the claim for a
   single). If the submit fails and the backend is sure nothing was created, the claim (single) or
   the manifest (batch) is released, so that the next attempt or the fallback can take it at once.

Exceptions::

    PlanFenced(SubmitError)   the batch's name was fenced before its manifest was written: not submitted
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from chunk_contract.ledger import Claim, Ledger, Manifest, classify
from chunk_contract.versions import ChunkVersion
from function_app.submission import Submission, SubmitBackend, SubmitError, SubmitResult, SubmitUnavailable

__all__ = ["ClaimBook", "PlanFenced", "Settled", "release", "submit_owned"]

logger = logging.getLogger(__name__)

Outcome = Literal["won", "duplicate", "resume", "wait"]


class PlanFenced(SubmitError):
    """A batch plan lost its manifest key to a tombstone: someone took its chunks over; not submitted."""


@dataclass(frozen=True)
class Settled:
    """Where one chunk version stands for a would-be owner after :meth:`ClaimBook.settle`.

    ``won``: the caller owns ``claim`` and must submit it (or release it). ``duplicate``: handled
    elsewhere (counted on the claim). ``resume``: ``claim.owner``'s workflow may not be accepted yet
    and should be submitted again by someone who can. ``wait``: another planner is on it right now.
    """

    version: ChunkVersion
    outcome: Outcome
    claim: Claim
    reason: str = ""


class ClaimBook:
    """Claims versions for owners and remembers the manifests it read (one drain or request).

    Parameters
    ----------
    ledger : Ledger
        The claim ledger.
    now : datetime
        The time every claim of this drain or request is stamped with.
    stale_after : timedelta
        ``SENSOR_CLAIM_STALE_SECONDS``: a batch claim without a manifest older than this is orphaned.
    """

    def __init__(self, ledger: Ledger, *, now: datetime, stale_after: timedelta) -> None:
        self.ledger = ledger
        self.now = now
        self.stale_after = stale_after
        self._manifests: dict[str, Manifest | None] = {}

    def manifest(self, name: str) -> Manifest | None:
        if name not in self._manifests:
            self._manifests[name] = self.ledger.get_manifest(name)
        return self._manifests[name]

    def settle(
        self,
        version: ChunkVersion,
        *,
        owner: str,
        owner_kind: str,
        path: str,
        event_time: datetime | None = None,
        forced: bool = False,
    ) -> Settled:
        """Claim ``version`` for ``owner``, or find out who has it and what that means."""
        attempt = self.ledger.claim(
            version, owner=owner, owner_kind=owner_kind, path=path, now=self.now, event_time=event_time, forced=forced
        )
        if attempt.won:
            return Settled(version, "won", attempt.claim)
        claim: Claim | None = attempt.claim
        for _ in range(4):
            assert claim is not None
            if claim.owner == owner and claim.state == "claimed":
                # Our own earlier attempt (a retried request, a host retry): carry on as its owner.
                return Settled(version, "won", claim, "claimed by an earlier attempt of this plan")
            manifest = self.manifest(claim.owner) if claim.owner_kind == "batch" else None
            verdict = classify(claim, manifest, now=self.now, stale_after=self.stale_after)
            if verdict.kind == "duplicate":
                counted = self.ledger.count_duplicate(claim, path=path, now=self.now)
                return Settled(version, "duplicate", counted, verdict.reason)
            if verdict.kind == "resume":
                return Settled(version, "resume", claim, verdict.reason)
            if verdict.kind in ("wait", "reclaim"):  # reclaim is the fallback's call, not ours
                return Settled(version, "wait", claim, verdict.reason)
            if verdict.kind == "fence":
                existing = self.ledger.fence(claim.owner, container=version.container, now=self.now)
                self._manifests[claim.owner] = existing if existing is not None else _tombstone(claim, self.now)
                if existing is not None:
                    continue  # the plan's manifest exists after all: classify again with it
            # take (or a fence we won): move the claim to us, only if nobody changed it meanwhile.
            taken = self.ledger.update(
                claim, owner=owner, owner_kind=owner_kind, state="claimed", claimed_at=self.now, path=path
            )
            if taken is not None:
                return Settled(version, "won", taken, f"taken over: {verdict.reason}")
            claim = self.ledger.latest(version)
            if claim is None:
                return self.settle(
                    version, owner=owner, owner_kind=owner_kind, path=path, event_time=event_time, forced=forced
                )
        assert claim is not None
        return Settled(version, "wait", claim, "its ledger row kept changing; left for the next attempt")


def _tombstone(claim: Claim, now: datetime) -> Manifest:
    return Manifest(claim.owner, claim.version.container, (), "abandoned", "fence", now)


def submit_owned(
    ledger: Ledger,
    backend: SubmitBackend,
    submission: Submission,
    owned: Sequence[Claim],
    *,
    owner_kind: str,
    path: str,
    now: datetime,
    token: str = "",
    manifest: Manifest | None = None,
) -> SubmitResult:
    """Submit ``submission`` whose chunk versions are all ``owned`` by it, fenced by its manifest.

    ``manifest`` is given when resuming a batch whose manifest exists; otherwise a batch's manifest
    is created here. Raises :class:`PlanFenced` when the batch was fenced first, and the backend's
    :class:`SubmitError` when the submit failed (after releasing what can safely be released).
    """
    name = submission.workflow_name
    assert all(c.owner == name for c in owned), "submit_owned needs claims owned by the submission"
    if owner_kind == "batch" and manifest is None:
        chunks = tuple(sorted((c.version.name, c.version.etag) for c in owned))
        manifest = ledger.create_manifest(
            Manifest(name, submission.container, chunks, "submitting", path, now, token=token)
        )
        if manifest is None:
            raise PlanFenced(f"batch {name} was fenced (its chunks were taken over) before it was submitted")
    try:
        result = backend.submit(submission)
    except SubmitError as exc:
        if isinstance(exc, SubmitUnavailable) and exc.maybe_created:
            logger.warning("submit of %s failed but may have created it: its claim stays for a resume", name)
        else:
            release(ledger, owned, manifest, owner_kind=owner_kind)
        raise
    if manifest is not None:
        if ledger.set_manifest_state(manifest, "accepted") is None:
            fresh = ledger.get_manifest(name)
            if fresh is not None and fresh.state != "accepted":
                ledger.set_manifest_state(fresh, "accepted")
    else:
        for claim in owned:
            _mark_accepted(ledger, claim)
    return result


def _mark_accepted(ledger: Ledger, claim: Claim) -> None:
    current: Claim | None = claim
    for _ in range(3):
        assert current is not None
        if current.owner != claim.owner or current.state != "claimed":
            return  # someone recorded more already (an outcome), or it was taken: nothing to do
        if ledger.update(current, state="accepted") is not None:
            return
        current = ledger.latest(claim.version)  # a duplicate counter changed the row: read again
        if current is None:
            return
    logger.warning("could not mark %s accepted; a later duplicate will resume it (harmless: 409)", claim.version.name)


def release(ledger: Ledger, owned: Sequence[Claim], manifest: Manifest | None, *, owner_kind: str) -> None:
    """Give up a plan that certainly created nothing, so anyone (a retry, the fallback) may take it."""
    if owner_kind == "batch":
        if manifest is not None and ledger.set_manifest_state(manifest, "abandoned") is None:
            logger.info("manifest of %s changed meanwhile; left as it is", manifest.workflow_name)
        return
    for claim in owned:
        current: Claim | None = claim
        for _ in range(3):
            assert current is not None
            if current.owner != claim.owner or current.state != "claimed":
                break
            if ledger.update(current, state="released") is not None:
                break
            current = ledger.latest(claim.version)
            if current is None:
                break
