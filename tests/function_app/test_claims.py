"""Claim, then submit (function_app.claims) and submit_chunks with the ledger, on Azurite's Table service."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from chunk_contract.ledger import Claim, Ledger, Manifest, classify
from chunk_contract.naming import workflow_name
from chunk_contract.versions import ChunkVersion
from function_app import storage
from function_app.argo_backend import ArgoBackend
from function_app.claims import ClaimBook, PlanFenced, submit_owned
from function_app.settings import Settings, load_settings
from function_app.submission import (
    Submission,
    SubmitRejected,
    SubmitUnavailable,
    decide,
    submit_chunks,
)
from tests.fakes import FakeArgoServer, Fault

STALE = timedelta(seconds=60)


@dataclass
class Rig:
    settings: Settings
    ledger: Ledger
    backend: ArgoBackend
    fake: FakeArgoServer
    now: datetime

    @property
    def container(self) -> str:
        return self.settings.sensor_container

    def version(self, name: str, etag: str = "0x8DC1") -> ChunkVersion:
        return ChunkVersion(self.container, name, etag)

    def book(self, now: datetime | None = None) -> ClaimBook:
        return ClaimBook(self.ledger, now=now or self.now, stale_after=STALE)

    def submission(
        self, versions: list[ChunkVersion], *, token: str | None = None, name: str | None = None
    ) -> Submission:
        decision = decide(
            trigger="blob" if len(versions) == 1 and token is None else "coalesce",
            container=self.container,
            chunks=[v.name for v in versions],
            etags=[v.etag for v in versions],
            force=False,
            settings=self.settings,
            request_id=uuid.uuid4().hex,
            batch_token=token,
            max_chunks=100,
            name=name,
        )
        assert isinstance(decision, Submission), decision
        return decision

    def claim(
        self, version: ChunkVersion, owner: str, kind: str, *, age: timedelta = timedelta(0), state: str = "claimed"
    ) -> Claim:
        attempt = self.ledger.claim(version, owner=owner, owner_kind=kind, path="blob", now=self.now - age, state=state)
        assert attempt.won
        return attempt.claim

    def chunks_of(self, workflow: str) -> list[str]:
        wf = self.fake.workflow(workflow)
        assert wf is not None, f"{workflow} was not created"
        params = {p["name"]: p["value"] for p in wf["spec"]["arguments"]["parameters"]}
        chunks: list[str] = json.loads(json.loads(params["chunks"]))
        return chunks


@pytest.fixture
def rig(base_env: dict[str, str], fake_argo: FakeArgoServer) -> Rig:
    settings = load_settings(
        {
            **base_env,
            "SENSOR_LEDGER_TABLE": f"t{uuid.uuid4().hex}",
            "ARGO_RETRY_SECONDS": "2",
            "ARGO_MAX_ATTEMPTS": "2",
        }
    )
    return Rig(settings, storage.ledger(settings), ArgoBackend(settings), fake_argo, datetime.now(UTC))


# --------------------------------------------------------------------------- ClaimBook.settle


def test_settle_wins_a_fresh_version_and_records_the_claim(rig: Rig) -> None:
    v = rig.version("sensor-1/2026/a.csv")
    settled = rig.book().settle(v, owner="batch-1-aaaa", owner_kind="batch", path="blob", event_time=rig.now)
    assert settled.outcome == "won"
    stored = rig.ledger.latest(v)
    assert stored is not None
    assert (stored.owner, stored.owner_kind, stored.state, stored.path, stored.generation) == (
        "batch-1-aaaa",
        "batch",
        "claimed",
        "blob",
        0,
    )
    assert stored.event_time is not None and abs(stored.event_time - rig.now) < timedelta(milliseconds=1)


def test_settle_by_the_same_owner_again_carries_on_as_owner(rig: Rig) -> None:
    v = rig.version("sensor-1/2026/a.csv")
    rig.claim(v, "chunk-sensor-1-x", "single")
    settled = rig.book().settle(v, owner="chunk-sensor-1-x", owner_kind="single", path="blob")
    assert settled.outcome == "won" and "earlier attempt" in settled.reason


@pytest.mark.parametrize("state", ["accepted", "processed"])
def test_settle_of_a_handled_version_is_a_counted_duplicate(rig: Rig, state: str) -> None:
    v = rig.version("sensor-1/2026/a.csv")
    rig.claim(v, "chunk-sensor-1-x", "single", state="accepted")
    if state == "processed":
        rig.ledger.record_outcome(v, state="processed", run="argo-chunk-sensor-1-x", reason=None, now=rig.now)
    settled = rig.book().settle(v, owner="batch-2-bbbb", owner_kind="batch", path="http")
    assert settled.outcome == "duplicate"
    stored = rig.ledger.latest(v)
    assert stored is not None
    assert stored.owner == "chunk-sensor-1-x" and stored.state == state  # nothing was taken
    assert stored.duplicates == 1 and stored.last_duplicate_path == "http"


def test_settle_of_a_batch_whose_manifest_is_accepted_is_a_duplicate(rig: Rig) -> None:
    v = rig.version("sensor-1/2026/a.csv")
    rig.claim(v, "batch-1-aaaa", "batch")
    rig.ledger.create_manifest(
        Manifest("batch-1-aaaa", rig.container, ((v.name, v.etag),), "accepted", "blob", rig.now)
    )
    assert rig.book().settle(v, owner="batch-1-bbbb", owner_kind="batch", path="blob").outcome == "duplicate"


def test_settle_resumes_an_owner_not_known_to_be_accepted(rig: Rig) -> None:
    single = rig.version("sensor-1/2026/a.csv")
    rig.claim(single, "chunk-sensor-1-x", "single")
    batched = rig.version("sensor-1/2026/b.csv")
    rig.claim(batched, "batch-1-aaaa", "batch")
    rig.ledger.create_manifest(
        Manifest("batch-1-aaaa", rig.container, ((batched.name, batched.etag),), "submitting", "blob", rig.now)
    )
    book = rig.book()
    first = book.settle(single, owner="batch-2-bbbb", owner_kind="batch", path="blob")
    second = book.settle(batched, owner="batch-2-bbbb", owner_kind="batch", path="blob")
    assert (first.outcome, first.claim.owner) == ("resume", "chunk-sensor-1-x")
    assert (second.outcome, second.claim.owner) == ("resume", "batch-1-aaaa")
    for v in (single, batched):
        stored = rig.ledger.latest(v)
        assert stored is not None and stored.owner != "batch-2-bbbb"


def test_settle_waits_for_a_young_batch_claim_without_manifest(rig: Rig) -> None:
    v = rig.version("sensor-1/2026/a.csv")
    rig.claim(v, "batch-1-aaaa", "batch", age=STALE / 2)
    settled = rig.book().settle(v, owner="batch-1-bbbb", owner_kind="batch", path="blob")
    assert settled.outcome == "wait" and settled.claim.owner == "batch-1-aaaa"
    assert rig.ledger.get_manifest("batch-1-aaaa") is None  # no tombstone while its planner may be writing


def test_settle_takes_over_a_released_single_claim(rig: Rig) -> None:
    v = rig.version("sensor-1/2026/a.csv")
    claim = rig.claim(v, "chunk-sensor-1-x", "single")
    assert rig.ledger.update(claim, state="released") is not None
    settled = rig.book().settle(v, owner="batch-1-bbbb", owner_kind="batch", path="blob")
    assert settled.outcome == "won" and settled.reason.startswith("taken over")
    stored = rig.ledger.latest(v)
    assert stored is not None
    assert (stored.owner, stored.owner_kind, stored.state) == ("batch-1-bbbb", "batch", "claimed")


def test_settle_takes_over_an_abandoned_batch(rig: Rig) -> None:
    v = rig.version("sensor-1/2026/a.csv")
    rig.claim(v, "batch-1-aaaa", "batch")
    made = rig.ledger.create_manifest(
        Manifest("batch-1-aaaa", rig.container, ((v.name, v.etag),), "submitting", "blob", rig.now)
    )
    assert made is not None and rig.ledger.set_manifest_state(made, "abandoned") is not None
    settled = rig.book().settle(v, owner="batch-1-bbbb", owner_kind="batch", path="blob")
    assert settled.outcome == "won"
    stored = rig.ledger.latest(v)
    assert stored is not None and stored.owner == "batch-1-bbbb"


def test_settle_fences_a_stale_batch_without_manifest_and_its_planner_is_then_refused(rig: Rig) -> None:
    a, b = rig.version("sensor-1/2026/a.csv"), rig.version("sensor-1/2026/b.csv")
    old_plan = rig.submission([a, b], token="old-plan")
    old_claims = [rig.claim(v, old_plan.workflow_name, "batch", age=STALE * 2) for v in (a, b)]

    settled = rig.book().settle(a, owner="batch-1-newplan", owner_kind="batch", path="blob")
    assert settled.outcome == "won" and "no manifest" in settled.reason
    tomb = rig.ledger.get_manifest(old_plan.workflow_name)
    assert tomb is not None and (tomb.state, tomb.path, tomb.chunks) == ("abandoned", "fence", ())
    stored = rig.ledger.latest(a)
    assert stored is not None and stored.owner == "batch-1-newplan"
    # b is still held by the old plan, which can no longer be submitted: its manifest key is fenced.
    b_claim = rig.ledger.latest(b)
    assert b_claim is not None
    assert classify(b_claim, tomb, now=rig.now, stale_after=STALE).kind == "take"

    # The old planner wakes up and carries on: its manifest insert loses, nothing reaches Argo.
    with pytest.raises(PlanFenced):
        submit_owned(
            rig.ledger,
            rig.backend,
            old_plan,
            old_claims,
            owner_kind="batch",
            path="blob",
            now=rig.now,
            token="old-plan",
        )
    assert rig.fake.submit_requests() == []
    assert rig.ledger.get_manifest(old_plan.workflow_name) == tomb


def test_settle_fence_that_finds_the_manifest_after_all_classifies_again(rig: Rig) -> None:
    v = rig.version("sensor-1/2026/a.csv")
    rig.claim(v, "batch-1-aaaa", "batch", age=STALE * 2)
    book = rig.book()
    assert book.manifest("batch-1-aaaa") is None  # read (and remembered) before its planner writes it
    rig.ledger.create_manifest(
        Manifest("batch-1-aaaa", rig.container, ((v.name, v.etag),), "submitting", "blob", rig.now)
    )
    settled = book.settle(v, owner="batch-1-bbbb", owner_kind="batch", path="blob")
    assert settled.outcome == "resume" and settled.claim.owner == "batch-1-aaaa"
    manifest = rig.ledger.get_manifest("batch-1-aaaa")
    assert manifest is not None and manifest.state == "submitting"  # the tombstone lost: no harm done


# --------------------------------------------------------------------------- submit_owned


def _won(rig: Rig, versions: list[ChunkVersion], owner: str, kind: str) -> list[Claim]:
    book = rig.book()
    settled = [book.settle(v, owner=owner, owner_kind=kind, path="blob") for v in versions]
    assert [s.outcome for s in settled] == ["won"] * len(versions)
    return [s.claim for s in settled]


def test_submit_owned_single_marks_the_claim_accepted(rig: Rig) -> None:
    v = rig.version("sensor-1/2026/a.csv")
    sub = rig.submission([v])
    owned = _won(rig, [v], sub.workflow_name, "single")
    result = submit_owned(rig.ledger, rig.backend, sub, owned, owner_kind="single", path="blob", now=rig.now)
    assert result.workflow_name == sub.workflow_name and not result.duplicate
    assert rig.chunks_of(sub.workflow_name) == [v.name]
    stored = rig.ledger.latest(v)
    assert stored is not None and stored.state == "accepted"
    assert rig.ledger.get_manifest(sub.workflow_name) is None  # singles have no manifest


def test_submit_owned_batch_writes_and_accepts_its_manifest(rig: Rig) -> None:
    vs = [rig.version("sensor-2/2026/b.csv", "0x2"), rig.version("sensor-1/2026/a.csv", "0x1")]
    sub = rig.submission(vs, token="tok1")
    owned = _won(rig, vs, sub.workflow_name, "batch")
    submit_owned(rig.ledger, rig.backend, sub, owned, owner_kind="batch", path="blob", now=rig.now, token="tok1")
    manifest = rig.ledger.get_manifest(sub.workflow_name)
    assert manifest is not None
    assert manifest.state == "accepted" and manifest.token == "tok1" and manifest.container == rig.container
    assert manifest.chunks == (("sensor-1/2026/a.csv", "0x1"), ("sensor-2/2026/b.csv", "0x2"))
    assert rig.chunks_of(sub.workflow_name) == [n for n, _ in manifest.chunks]
    for v in vs:  # one write per batch: the claims stay "claimed", the manifest says accepted
        stored = rig.ledger.latest(v)
        assert stored is not None and stored.state == "claimed"
        manifest_now = rig.ledger.get_manifest(stored.owner)
        assert classify(stored, manifest_now, now=rig.now, stale_after=STALE).kind == "duplicate"


@pytest.mark.parametrize("status", [400, 403])
def test_submit_rejected_releases_a_single_claim(rig: Rig, status: int) -> None:
    v = rig.version("sensor-1/2026/a.csv")
    sub = rig.submission([v])
    owned = _won(rig, [v], sub.workflow_name, "single")
    rig.fake.fail_next(Fault.status_code(status))
    with pytest.raises(SubmitRejected) as info:
        submit_owned(rig.ledger, rig.backend, sub, owned, owner_kind="single", path="blob", now=rig.now)
    assert info.value.status == status
    stored = rig.ledger.latest(v)
    assert stored is not None and (stored.state, stored.owner) == ("released", sub.workflow_name)
    assert rig.book().settle(v, owner="batch-1-bbbb", owner_kind="batch", path="blob").outcome == "won"


@pytest.mark.parametrize("status", [400, 403])
def test_submit_rejected_abandons_a_batch_manifest(rig: Rig, status: int) -> None:
    vs = [rig.version("sensor-1/2026/a.csv"), rig.version("sensor-1/2026/b.csv")]
    sub = rig.submission(vs, token="tok1")
    owned = _won(rig, vs, sub.workflow_name, "batch")
    rig.fake.fail_next(Fault.status_code(status))
    with pytest.raises(SubmitRejected):
        submit_owned(rig.ledger, rig.backend, sub, owned, owner_kind="batch", path="blob", now=rig.now, token="tok1")
    manifest = rig.ledger.get_manifest(sub.workflow_name)
    assert manifest is not None and manifest.state == "abandoned"
    assert manifest.chunks == tuple(sorted((v.name, v.etag) for v in vs))
    assert rig.fake.created == []
    settled = rig.book().settle(vs[0], owner="batch-1-bbbb", owner_kind="batch", path="blob")
    assert settled.outcome == "won"


def test_submit_unavailable_with_nothing_created_releases(rig: Rig) -> None:
    v = rig.version("sensor-1/2026/a.csv")
    sub = rig.submission([v])
    owned = _won(rig, [v], sub.workflow_name, "single")
    rig.fake.fail_next(Fault.unavailable(), Fault.unavailable())
    with pytest.raises(SubmitUnavailable) as info:
        submit_owned(rig.ledger, rig.backend, sub, owned, owner_kind="single", path="blob", now=rig.now)
    assert info.value.maybe_created is False and info.value.attempts == 2
    stored = rig.ledger.latest(v)
    assert stored is not None and stored.state == "released"


@pytest.mark.parametrize("kind", ["single", "batch"])
def test_submit_unavailable_that_may_have_created_releases_nothing(rig: Rig, kind: str) -> None:
    vs = [rig.version("sensor-1/2026/a.csv")] + ([rig.version("sensor-1/2026/b.csv")] if kind == "batch" else [])
    token = "tok1" if kind == "batch" else None
    sub = rig.submission(vs, token=token)
    owned = _won(rig, vs, sub.workflow_name, kind)
    rig.fake.fail_next(Fault.reset(), Fault.reset())  # connection reset on every attempt: outcome unknown
    with pytest.raises(SubmitUnavailable) as info:
        submit_owned(rig.ledger, rig.backend, sub, owned, owner_kind=kind, path="blob", now=rig.now, token=token or "")
    assert info.value.maybe_created is True
    for v in vs:
        stored = rig.ledger.latest(v)
        assert stored is not None and (stored.state, stored.owner) == ("claimed", sub.workflow_name)
    manifest = rig.ledger.get_manifest(sub.workflow_name)
    if kind == "batch":
        assert manifest is not None and manifest.state == "submitting"  # a later planner resumes it
        other = rig.book().settle(vs[0], owner="batch-9-cccc", owner_kind="batch", path="blob")
        assert other.outcome == "resume" and other.claim.owner == sub.workflow_name
    else:
        assert manifest is None
        again = rig.book().settle(vs[0], owner=sub.workflow_name, owner_kind="single", path="blob")
        assert again.outcome == "won"  # the same plan carries on (Argo's 409 makes a repeat harmless)


def test_submit_owned_ambiguous_error_that_did_create_is_accepted(rig: Rig) -> None:
    v = rig.version("sensor-1/2026/a.csv")
    sub = rig.submission([v])
    owned = _won(rig, [v], sub.workflow_name, "single")
    rig.fake.fail_next(Fault.create_then_error(500))
    submit_owned(rig.ledger, rig.backend, sub, owned, owner_kind="single", path="blob", now=rig.now)
    assert [w["metadata"]["name"] for w in rig.fake.created] == [sub.workflow_name]
    stored = rig.ledger.latest(v)
    assert stored is not None and stored.state == "accepted"


# --------------------------------------------------------------------------- submit_chunks with the ledger


def test_submit_chunks_second_call_is_suppressed_by_the_ledger_even_after_argo_forgets(
    rig: Rig, upload: Callable[..., str]
) -> None:
    name = "sensor-1/2026/11/22/chunk-0001.csv"
    etag = upload(name)
    first = submit_chunks(rig.settings, "blob", [name], [etag], backend=rig.backend, ledger=rig.ledger)
    assert not first.duplicate and first.chunks == (name,)
    assert len(rig.fake.submit_requests()) == 1

    again = submit_chunks(rig.settings, "http", [name], [etag], backend=rig.backend, ledger=rig.ledger)
    assert again.duplicate and again.attempts == 0 and again.workflow_name == first.workflow_name
    assert again.suppressed == {name: first.workflow_name}

    rig.fake.set_phase(first.workflow_name, "Succeeded")
    rig.fake.delete_workflow(first.workflow_name)  # Argo's TTL/GC: a 409 can no longer deduplicate
    late = submit_chunks(rig.settings, "blob", [name], [etag], backend=rig.backend, ledger=rig.ledger)
    assert late.duplicate and late.workflow_name == first.workflow_name
    assert len(rig.fake.submit_requests()) == 1  # neither duplicate reached Argo
    assert len(rig.fake.created) == 1
    stored = rig.ledger.latest(ChunkVersion(rig.container, name, etag.strip('"')))
    assert stored is not None and stored.state == "accepted" and stored.duplicates == 2


def test_submit_chunks_force_opens_generation_one_and_submits_a_rerun(rig: Rig, upload: Callable[..., str]) -> None:
    name = "sensor-1/2026/11/22/chunk-0001.csv"
    etag = upload(name)
    first = submit_chunks(rig.settings, "blob", [name], [etag], backend=rig.backend, ledger=rig.ledger)
    forced = submit_chunks(rig.settings, "http", [name], [etag], force=True, backend=rig.backend, ledger=rig.ledger)
    assert forced.workflow_name.startswith("rerun-") and forced.workflow_name != first.workflow_name
    assert not forced.duplicate and forced.suppressed == {}
    assert [w["metadata"]["name"] for w in rig.fake.created] == [first.workflow_name, forced.workflow_name]
    params = {p["name"]: p["value"] for p in rig.fake.created[1]["spec"]["arguments"]["parameters"]}
    assert params["force"] == "true"
    latest = rig.ledger.latest(ChunkVersion(rig.container, name, etag.strip('"')))
    assert latest is not None
    assert (latest.generation, latest.forced, latest.owner, latest.state) == (1, True, forced.workflow_name, "accepted")
    # An unforced duplicate afterwards is still suppressed, without a request.
    requests_before = len(rig.fake.submit_requests())
    dup = submit_chunks(rig.settings, "blob", [name], [etag], backend=rig.backend, ledger=rig.ledger)
    assert dup.duplicate and len(rig.fake.submit_requests()) == requests_before


def test_submit_chunks_multi_chunk_submits_only_the_unclaimed(rig: Rig, upload: Callable[..., str]) -> None:
    names = [f"sensor-{i}/2026/11/22/chunk-0001.csv" for i in range(3)]
    etags = [upload(n) for n in names]
    single = submit_chunks(rig.settings, "blob", [names[1]], [etags[1]], backend=rig.backend, ledger=rig.ledger)

    result = submit_chunks(rig.settings, "http", names, etags, backend=rig.backend, ledger=rig.ledger)
    assert result.suppressed == {names[1]: single.workflow_name}
    assert result.chunks == (names[0], names[2]) and not result.duplicate
    assert result.workflow_name.startswith("batch-") and result.workflow_name != single.workflow_name
    assert rig.chunks_of(result.workflow_name) == [names[0], names[2]]
    assert len(rig.fake.created) == 2
    manifest = rig.ledger.get_manifest(result.workflow_name)
    assert manifest is not None and manifest.state == "accepted"
    assert [n for n, _ in manifest.chunks] == [names[0], names[2]]

    # The same request again: everything is claimed now, nothing is submitted.
    before = len(rig.fake.submit_requests())
    again = submit_chunks(rig.settings, "http", names, etags, backend=rig.backend, ledger=rig.ledger)
    assert again.duplicate and set(again.suppressed) == set(names)
    assert len(rig.fake.submit_requests()) == before


def test_single_chunk_name_is_the_deterministic_one(rig: Rig) -> None:
    v = rig.version("sensor-1/2026/a.csv")
    assert rig.submission([v]).workflow_name == workflow_name(rig.container, [(v.name, v.etag)])
