"""The queue drainer (``SUBMIT_MODE=coalesce``): chunk events -> at most K workflows of up to N chunks.

One drain, run by the timer trigger every ``COALESCE_SCHEDULE`` (timer triggers run on one instance
across scale-out, so drains never overlap), does, in this order:

1. count the template's workflows in flight through the Argo Server (one list call); at ``K`` or more,
   stop: the messages stay in the queue (backpressure), nothing is received;
2. receive up to ``(K - in flight) * N`` messages, hidden for ``COALESCE_VISIBILITY_SECONDS``;
3. sort them (``function_app.coalesce.sort_messages``): garbage and events that can never succeed go
   to ``<queue>-poison`` with the reason; well-formed events that need no run are deleted; an event
   without an ETag gets the blob's current one (a deleted blob: nothing to run, deleted);
4. settle over-dequeued messages (received more than ``COALESCE_MAX_DEQUEUE`` times): a chunk that is
   handled after all is deleted, a resumable one is resumed, anything else is poisoned with its reason
   and its claim left free for the cron fallback;
5. cut the candidates into batches (``group_batches``), claim each chunk version in the ledger for its
   batch's workflow name (``function_app.claims``), drop duplicates (their messages are deleted),
   collect claims whose owner's workflow must be resumed, and leave claims another planner is on;
6. per batch: write the manifest (the fence), submit, mark accepted, then delete its messages;
7. resume the owners found in step 5: submit each again under its recorded name with its manifest's
   chunks (Argo's 409 makes a repeat harmless), mark accepted, delete the messages.

A message is deleted only after its chunk version is claimed and its workflow accepted (2xx or 409),
or it is a duplicate of one that is. Any crash leaves the messages in the queue; they reappear after
the visibility timeout, and the claims they meet say what happened (docs/coalescing.md has the
invariant and the proof sketch). ``on_step`` is called at each step boundary: tests raise there to
kill the drainer at exactly that point.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import AzureError

from chunk_contract.ledger import Claim, Ledger, classify
from chunk_contract.versions import ChunkVersion, InvalidETag, normalize_etag
from function_app.claims import ClaimBook, PlanFenced, Settled, submit_owned
from function_app.coalesce import Candidate, group_batches, receive_budget, sort_messages
from function_app.event_queue import EventQueue, ReceivedMessage
from function_app.settings import Settings
from function_app.submission import (
    InvalidSubmission,
    Rejection,
    Submission,
    SubmitBackend,
    SubmitError,
    decide,
    log_decision,
)

__all__ = ["STEPS", "DrainReport", "drain_once"]

logger = logging.getLogger(__name__)

STEPS = ("counted", "received", "sorted", "claimed", "manifest", "submitted", "accepted", "deleted")
_IO_THREADS = 8  # claims and deletes are independent requests: overlap their latency


@dataclass
class DrainReport:
    """What one drain did: logged as one ``drain-report`` JSON line, returned for tests and benchmarks."""

    in_flight: int | None = None
    budget: int = 0
    backpressure: bool = False
    received: int = 0
    poisoned: int = 0
    ignored: int = 0
    candidates: int = 0
    claimed: int = 0
    duplicates: int = 0
    waiting: int = 0
    workflows: list[str] = field(default_factory=list)
    chunks_submitted: int = 0
    resumed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    deleted: int = 0
    # seconds from each submitted chunk's event (or enqueue) time to its workflow's acceptance
    latencies: list[float] = field(default_factory=list)
    poison_reasons: list[str] = field(default_factory=list)
    # What the telemetry counts (function_app.telemetry), from the same decisions:
    created_workflows: int = 0  # workflows (new batches and resumes) the backend created in this drain
    created_chunks: int = 0  # chunk versions carried by those
    argo_duplicates: int = 0  # chunk versions accepted with a 409: their workflow existed already
    deferred: int = 0  # chunk versions handed back to the queue because of the in-flight cap
    # chunk versions of failed batches or resumes (their messages come back), by the error's class
    failed_chunks: dict[str, int] = field(default_factory=dict)
    submit_attempts: list[int] = field(default_factory=list)  # attempts of each submit to the backend

    def summary(self) -> dict[str, Any]:
        skip = ("latencies", "poison_reasons", "workflows", "submit_attempts")
        out = {k: v for k, v in self.__dict__.items() if k not in skip}
        out["workflows"] = len(self.workflows)
        out["resumed"] = len(self.resumed)
        out["failed"] = len(self.failed)
        return out


def _pool_map(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    if len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(_IO_THREADS, len(items)), thread_name_prefix="drain-io") as pool:
        return list(pool.map(fn, items))


class _Drain:
    def __init__(
        self,
        settings: Settings,
        *,
        queue: EventQueue,
        ledger: Ledger,
        backend: SubmitBackend,
        etag_of: Callable[[str, str], str | None],
        now: datetime,
        on_step: Callable[[str], None],
    ) -> None:
        self.s = settings
        self.queue = queue
        self.ledger = ledger
        self.backend = backend
        self.etag_of = etag_of
        self.now = now
        self.on_step = on_step
        self.report = DrainReport()
        self.book = ClaimBook(ledger, now=now, stale_after=timedelta(seconds=settings.claim_stale_seconds))
        self.deadline = time.monotonic() + settings.coalesce_deadline_seconds
        self.token = uuid.uuid4().hex[:16]  # salts this drain's batch names (see naming.workflow_name)
        self._accepted_members: list[Candidate] = []

    # ------------------------------------------------------------------ the steps

    def run(self) -> DrainReport:
        s = self.s
        in_flight = self.backend.count_in_flight(s.argo_workflow_template, s.coalesce_max_in_flight + 1)
        self.report.in_flight = in_flight
        self.report.budget = receive_budget(in_flight, s.coalesce_max_in_flight, s.coalesce_max_chunks)
        self.on_step("counted")
        if self.report.budget == 0:
            self.report.backpressure = True
            logger.warning(
                "drain: %d workflow(s) of %s in flight, the cap is %d (COALESCE_MAX_IN_FLIGHT): messages left queued",
                in_flight,
                s.argo_workflow_template,
                s.coalesce_max_in_flight,
            )
            return self.report
        messages = []
        # Rounded up: the settings check visibility > deadline, and hiding a message shorter than
        # the drain that holds it would hand it to the next drain while this one still works on it.
        visibility = max(1, math.ceil(s.coalesce_visibility_seconds))
        for m in self.queue.receive(self.report.budget, visibility_timeout=visibility):
            messages.append(m)
            if time.monotonic() > self.deadline:
                break
        self.report.received = len(messages)
        if not messages:
            return self.report
        self.on_step("received")

        sorted_ = sort_messages(messages, container=s.sensor_container, max_dequeue=s.coalesce_max_dequeue)
        _pool_map(lambda mr: self._poison(mr[0], mr[1]), sorted_.poison)
        for message, reason in sorted_.ignored:
            logger.info("drain: message %s needs no run: %s", message.id, reason)
        _pool_map(lambda mr: self.queue.delete(mr[0]), sorted_.ignored)
        self.report.ignored = len(sorted_.ignored)
        candidates = self._resolve_etags(sorted_.candidates)
        self.report.candidates = len(candidates)
        self.on_step("sorted")

        resume: dict[str, tuple[Claim, list[Candidate]]] = {}
        self._settle_over_dequeued(sorted_.over_dequeued, resume)
        batches = group_batches(candidates, max_chunks=s.coalesce_max_chunks, max_bytes=s.max_chunks_param_bytes)
        # The cap counts workflows, not messages: byte-bound or same-blob splits can cut more
        # batches than the budget's (K - in flight) x N messages suggest. The extra ones are
        # handed back to the queue at once, unclaimed.
        slots = s.coalesce_max_in_flight - in_flight
        for extra in batches[slots:]:
            _pool_map(self._release_all, extra)
            self.report.deferred += len(extra)
        planned: list[tuple[Submission, list[Claim], list[Candidate]]] = []
        for batch in batches[:slots]:
            if time.monotonic() > self.deadline:
                _pool_map(self._release_all, batch)
                continue
            plan = self._claim_batch(batch, resume)
            if plan is not None:
                planned.append(plan)
        self.on_step("claimed")
        for submission, owned, members in planned:
            if self._submit_batch(submission, owned, members):
                slots -= 1
        for owner, (claim, members) in resume.items():
            if slots <= 0:
                # No room left under the cap: back to the queue; resumed by a later drain.
                _pool_map(self._release_all, members)
                self.report.waiting += len(members)
                self.report.deferred += len(members)
                continue
            if self._resume(owner, claim, members):
                slots -= 1
        self._delete_accepted()
        return self.report

    def _poison(self, message: ReceivedMessage, reason: str) -> None:
        self.queue.poison(message, reason, now=self.now)
        self.report.poisoned += 1
        self.report.poison_reasons.append(reason)
        log_decision(trigger="coalesce", outcome="poisoned", message_id=message.id, reason=reason)

    def _resolve_etags(self, candidates: list[Candidate]) -> list[Candidate]:
        """Give events without an ETag the blob's current one; a blob gone since is nothing to run."""
        missing = [c for c in candidates if c.etag is None]

        def resolve(c: Candidate) -> None:
            etag = self.etag_of(c.container, c.name)
            if etag is None:
                logger.info("drain: %s no longer exists: its event needs no run", c.name)
                for m in c.messages:
                    self.queue.delete(m)
                self.report.ignored += len(c.messages)
                return
            try:
                c.etag = normalize_etag(etag)
            except InvalidETag as exc:
                for m in c.messages:
                    self._poison(m, f"data.eTag: absent, and the blob's own ETag is unusable: {exc}")

        _pool_map(resolve, missing)
        merged: dict[tuple[str, str], Candidate] = {}
        for c in candidates:
            if c.etag is None:
                continue
            key = (c.name, c.etag)
            if key in merged:  # an eTag-less event for the version another event named
                merged[key].messages.extend(c.messages)
            else:
                merged[key] = c
        return list(merged.values())

    def _settle_over_dequeued(
        self, items: list[tuple[ReceivedMessage, Any]], resume: dict[str, tuple[Claim, list[Candidate]]]
    ) -> None:
        limit = self.s.coalesce_max_dequeue
        for message, event in items:
            reason = (
                f"received {message.dequeue_count} times, more than COALESCE_MAX_DEQUEUE={limit}; "
                "left for the cron fallback"
            )
            if event.etag is None:
                self._poison(message, reason)
                continue
            version = ChunkVersion(event.container, event.name, event.etag)
            claim = self.ledger.latest(version)
            if claim is None:
                self._poison(message, reason + " (never claimed)")
                continue
            manifest = self.book.manifest(claim.owner) if claim.owner_kind == "batch" else None
            verdict = classify(claim, manifest, now=self.now, stale_after=self.book.stale_after)
            if verdict.kind == "duplicate":
                self.queue.delete(message)
                self.report.duplicates += 1
            elif verdict.kind == "resume":
                candidate = Candidate(event.container, event.name, event.etag, [message], event.event_time)
                candidate.over_dequeued = True
                resume.setdefault(claim.owner, (claim, []))[1].append(candidate)
            elif verdict.kind == "wait":
                self.report.waiting += 1  # another planner has it right now: look again next time
            else:
                self._poison(message, f"{reason}; its claim: {verdict.reason}")

    def _claim_batch(
        self, batch: list[Candidate], resume: dict[str, tuple[Claim, list[Candidate]]]
    ) -> tuple[Submission, list[Claim], list[Candidate]] | None:
        s = self.s
        versions = [c.version() for c in batch]
        name = _batch_name(s, versions, self.token)

        def settle(c: Candidate) -> Settled:
            return self.book.settle(c.version(), owner=name, owner_kind="batch", path="blob", event_time=c.event_time)

        results: list[Settled] = _pool_map(settle, batch)
        owned: list[Claim] = []
        members: list[Candidate] = []
        duplicates: list[Candidate] = []
        for c, r in zip(batch, results, strict=True):
            if r.outcome == "won":
                owned.append(r.claim)
                members.append(c)
            elif r.outcome == "duplicate":
                duplicates.append(c)
            elif r.outcome == "resume":
                resume.setdefault(r.claim.owner, (r.claim, []))[1].append(c)
            else:
                self.report.waiting += 1
        self.report.claimed += len(owned)
        self.report.duplicates += len(duplicates)
        _pool_map(self._delete_all, duplicates)
        if not owned:
            return None
        submission = self._submission(name, [c.version.name for c in owned], [c.version.etag for c in owned])
        if submission is None:
            return None
        return submission, owned, members

    def _submission(
        self, name: str, names: list[str], etags: list[str], token: str | None = None, *, force: bool = False
    ) -> Submission | None:
        decision = decide(
            trigger="coalesce",
            container=self.s.sensor_container,
            chunks=names,
            etags=etags,
            force=force,
            settings=self.s,
            request_id=uuid.uuid4().hex,
            batch_token=token or self.token,
            # A resumed plan may come from another path (an HTTP request, a backfill) with more
            # chunks than COALESCE_MAX_CHUNKS: it was valid when planned, so it is valid now.
            max_chunks=max(self.s.coalesce_max_chunks, self.s.max_chunks_per_request, len(names)),
            name=name,
        )
        if isinstance(decision, Rejection):  # cannot happen for decoded, allow-listed events; say so loudly
            logger.error("drain: batch %s rejected by decide(): %s", name, decision)
            return None
        return decision

    def _submit_batch(self, submission: Submission, owned: list[Claim], members: list[Candidate]) -> bool:
        """Submit one planned batch; True when it took a slot under the cap (a new workflow)."""
        name = submission.workflow_name
        try:
            self.on_step("manifest")
            result = submit_owned(
                self.ledger,
                _Stepped(self.backend, self.on_step),
                submission,
                owned,
                owner_kind="batch",
                path="blob",
                now=self.now,
                token=self.token,
            )
        except PlanFenced as exc:
            logger.warning("drain: %s", exc)
            self.report.failed.append(name)
            return False
        except AzureError as exc:
            # The ledger failed mid-plan (e.g. a reset on the manifest insert, which azure-core does
            # not retry). Nothing is lost: the messages stay, and the next drain finds the claims
            # (resume a "submitting" manifest, or fence a missing one once stale). The other
            # batches of this drain go on.
            logger.warning("drain: batch %s stopped by a storage error (%s); left for a later drain", name, exc)
            self.report.failed.append(name)
            self._failed_chunks(exc, len(members))
            return True
        except (SubmitError, InvalidSubmission) as exc:
            logger.warning("drain: batch %s of %d chunk(s) not submitted: %s", name, len(owned), exc)
            self.report.failed.append(name)
            self._failed_chunks(exc, len(members))
            if isinstance(exc, SubmitError):
                self.report.submit_attempts.append(int(getattr(exc, "attempts", 1)))
            return True  # it may have been created (an ambiguous failure): count it against the cap
        self.on_step("accepted")
        self.report.submit_attempts.append(result.attempts)
        self._accepted(name, members, duplicate=result.duplicate)
        return not result.duplicate

    def _resume(self, owner: str, claim: Claim, members: list[Candidate]) -> bool:
        """Submit ``owner`` again: a batch with its manifest's chunks, a single with its one version.

        True when it took a slot under the cap. A resume that cannot be carried out leaves the
        messages for a later drain — except over-dequeued ones, which are poisoned (their claim
        stays, and the fallback reclaims it after SENSOR_FALLBACK_RECLAIM_SECONDS).
        """
        manifest = self.book.manifest(owner) if claim.owner_kind == "batch" else None
        submission: Submission | None = None
        if manifest is not None and manifest.state == "submitting":
            names = [n for n, _ in manifest.chunks]
            etags = [e for _, e in manifest.chunks]
            submission = self._submission(owner, names, etags, token=manifest.token)
        elif claim.owner_kind == "single":
            # Rebuilt from the claim itself: its one version, its name (chunk-... or a forced
            # rerun-...) and its force flag, whatever the messages that led here say.
            decision = decide(
                trigger="blob",
                container=claim.version.container,
                chunks=[claim.version.name],
                etags=[claim.version.etag],
                force=claim.forced,
                settings=self.s,
                request_id=uuid.uuid4().hex,
                name=owner,
            )
            submission = None if isinstance(decision, Rejection) else decision
        if submission is None:
            self._cannot_resume(owner, members, "its plan cannot be rebuilt")
            return False
        try:
            if manifest is not None:
                result = self.backend.submit(submission)
                self.on_step("submitted")
                if self.ledger.set_manifest_state(manifest, "accepted") is None:
                    fresh = self.ledger.get_manifest(owner)
                    if fresh is not None and fresh.state == "submitting":
                        self.ledger.set_manifest_state(fresh, "accepted")
            else:
                current = self.ledger.latest(claim.version) or claim
                result = submit_owned(
                    self.ledger, _Stepped(self.backend, self.on_step), submission, [current], owner_kind="single",
                    path="blob", now=self.now,
                )  # fmt: skip
        except AzureError as exc:
            logger.warning("drain: resume of %s stopped by a storage error (%s); left for a later drain", owner, exc)
            self.report.failed.append(owner)
            self._failed_chunks(exc, len(members))
            return True
        except SubmitError as exc:
            logger.warning("drain: resume of %s failed: %s", owner, exc)
            self.report.failed.append(owner)
            self._failed_chunks(exc, sum(1 for c in members if not c.over_dequeued))
            self.report.submit_attempts.append(int(getattr(exc, "attempts", 1)))
            if manifest is not None and not getattr(exc, "maybe_created", True):
                # Certainly not created (a refusal): abandon the plan so its chunks can be taken.
                self.ledger.set_manifest_state(manifest, "abandoned")
            self._cannot_resume(owner, [c for c in members if c.over_dequeued], f"resume failed: {exc}")
            return True
        self.on_step("accepted")
        self.report.resumed.append(owner)
        self.report.submit_attempts.append(result.attempts)
        self._accepted(owner, members, count_chunks=False, duplicate=result.duplicate)
        return not result.duplicate

    def _failed_chunks(self, exc: Exception, n: int) -> None:
        if n:
            kind = type(exc).__name__
            self.report.failed_chunks[kind] = self.report.failed_chunks.get(kind, 0) + n

    def _cannot_resume(self, owner: str, members: list[Candidate], why: str) -> None:
        for c in members:
            if c.over_dequeued:
                for m in c.messages:
                    self._poison(
                        m,
                        f"received {m.dequeue_count} times, more than COALESCE_MAX_DEQUEUE="
                        f"{self.s.coalesce_max_dequeue}, and {owner} {why}; left for the cron fallback",
                    )
            else:
                self.report.waiting += 1

    def _accepted(
        self, name: str, members: list[Candidate], *, count_chunks: bool = True, duplicate: bool = False
    ) -> None:
        accepted_at = datetime.now(UTC)
        if count_chunks:
            self.report.workflows.append(name)
            self.report.chunks_submitted += len(members)
        if duplicate:
            self.report.argo_duplicates += len(members)
        else:
            self.report.created_workflows += 1
            self.report.created_chunks += len(members)
        self.report.latencies.extend((accepted_at - c.first_seen).total_seconds() for c in members)
        log_decision(trigger="coalesce", outcome="submitted", workflow=name, chunk_count=len(members))
        # Deleted after every batch is submitted (end of run): the 20th batch of a drain must not
        # wait for 19 batches' worth of deletes (one request per message, no batch delete).
        self._accepted_members.extend(members)

    def _release_all(self, c: Candidate) -> None:
        for m in c.messages:
            self.queue.release(m)

    def _delete_all(self, c: Candidate) -> None:
        from azure.core.exceptions import AzureError

        for m in c.messages:
            try:
                self.queue.delete(m)
            except AzureError as exc:
                # Not lost: it reappears after its visibility timeout, meets an accepted claim and
                # is deleted then as a duplicate.
                logger.warning("drain: deleting message %s failed (%s); it will come back as a duplicate", m.id, exc)
                continue
            self.report.deleted += 1

    def _delete_accepted(self) -> None:
        if self._accepted_members:
            _pool_map(self._delete_all, self._accepted_members)
            self._accepted_members = []
            self.on_step("deleted")


class _Stepped:
    """The backend, with the ``submitted`` step reported between the submit and the acceptance."""

    def __init__(self, backend: SubmitBackend, on_step: Callable[[str], None]) -> None:
        self._backend = backend
        self._on_step = on_step

    def submit(self, submission: Submission) -> Any:
        result = self._backend.submit(submission)
        self._on_step("submitted")
        return result

    def get_workflow(self, name: str) -> Any:
        return self._backend.get_workflow(name)

    def count_in_flight(self, template: str, limit: int) -> int:
        return self._backend.count_in_flight(template, limit)


def _batch_name(settings: Settings, versions: Sequence[ChunkVersion], token: str) -> str:
    from chunk_contract.naming import workflow_name

    return workflow_name(settings.sensor_container, [(v.name, v.etag) for v in versions], batch_token=token)


def drain_once(
    settings: Settings,
    *,
    queue: EventQueue,
    ledger: Ledger,
    backend: SubmitBackend,
    etag_of: Callable[[str, str], str | None],
    now: datetime | None = None,
    on_step: Callable[[str], None] = lambda step: None,
) -> DrainReport:
    """One drain (see the module docstring). Raises what counting in-flight workflows raises
    (``SubmitRejected`` for 401/403/404, ``SubmitUnavailable``) and storage errors: nothing is lost
    then, the messages stay queued for the next drain."""
    drain = _Drain(
        settings,
        queue=queue,
        ledger=ledger,
        backend=backend,
        etag_of=etag_of,
        now=now or datetime.now(UTC),
        on_step=on_step,
    )
    report = drain.run()
    logger.info("drain-report %s", report.summary())
    return report
