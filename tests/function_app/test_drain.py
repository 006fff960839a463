"""The queue drainer (coalesce mode) on Azurite's queue and table services, with the fake Argo Server.

Messages come back after the visibility timeout either for real (``COALESCE_VISIBILITY_SECONDS=2``
and a sleep, in the tests that say so) or at once: :meth:`RecordingQueue.expire` sets the visibility
of every message a drain received and did not delete to 0 — what the timeout does, without waiting
— and the next drain runs with ``now`` past ``CLAIM_STALE_SECONDS``.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerClient
from azure.storage.queue import QueueClient

from chunk_contract.ledger import Ledger, classify
from chunk_contract.names import MAX_CHUNK_NAME_LENGTH
from chunk_contract.naming import chunks_param_bytes, workflow_name
from chunk_contract.versions import ChunkVersion, normalize_etag
from function_app import storage
from function_app.argo_backend import ArgoBackend
from function_app.drain import STEPS, DrainReport, drain_once
from function_app.event_queue import EventQueue, ReceivedMessage
from function_app.queue_messages import BLOB_CREATED, blob_created_message, encode_message
from function_app.settings import Settings, load_settings
from function_app.submission import SubmitRejected, SubmitUnavailable, submit_chunks
from tests.fakes import FakeArgoServer, Fault

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


class RecordingQueue(EventQueue):
    """The app's event queue (same clients), remembering what each receive handed out."""

    def __init__(self, inner: EventQueue) -> None:
        super().__init__(inner.queue, inner.poison_queue)
        self.received: list[ReceivedMessage] = []
        self.visibilities: list[int] = []

    def receive(self, limit: int, *, visibility_timeout: int) -> Iterator[ReceivedMessage]:
        self.visibilities.append(visibility_timeout)
        for m in super().receive(limit, visibility_timeout=visibility_timeout):
            self.received.append(m)
            yield m

    def expire(self) -> None:
        """Make every received, undeleted message visible now, as its visibility timeout would."""
        for m in self.received:
            try:
                self.queue.update_message(m.id, m.pop_receipt, visibility_timeout=0)
            except ResourceNotFoundError:
                pass  # deleted (or poisoned): it does not come back
        self.received.clear()

    def visible(self) -> int:
        return len(list(self.queue.peek_messages(max_messages=32)))


class Crash(Exception):
    """The drainer dies here (raised from on_step)."""


@dataclass
class Rig:
    settings: Settings
    queue: RecordingQueue
    ledger: Ledger
    backend: ArgoBackend
    fake: FakeArgoServer
    container: ContainerClient
    etags: dict[str, str] = field(default_factory=dict)  # name -> normalised ETag of the uploads

    def upload(self, name: str, data: bytes = b"timestamp,value\n0,1.0\n") -> str:
        result: dict[str, Any] = self.container.get_blob_client(name).upload_blob(data, overwrite=True)
        self.etags[name] = normalize_etag(str(result["etag"]))
        return self.etags[name]

    def etag_of(self, container: str, name: str) -> str | None:
        blob = storage.blob_service_client(self.settings).get_blob_client(container, name)
        try:
            return str(blob.get_blob_properties().etag)
        except ResourceNotFoundError:
            return None

    def send(self, name: str, etag: str | None = None, *, at: float = 0.0) -> None:
        etag = etag or self.etags.get(name) or self.upload(name)
        self.queue.send(
            blob_created_message(
                container=self.settings.sensor_container,
                name=name,
                etag=etag,
                event_time=T0 + timedelta(seconds=at),
            )
        )

    def drain(self, *, later: bool = False, on_step: Callable[[str], None] | None = None) -> DrainReport:
        """One drain; ``later``: as if run after CLAIM_STALE_SECONDS (claims of earlier drains are stale)."""
        kwargs: dict[str, Any] = {}
        if later:
            kwargs["now"] = datetime.now(UTC) + timedelta(seconds=self.settings.claim_stale_seconds + 1)
        if on_step is not None:
            kwargs["on_step"] = on_step
        return drain_once(
            self.settings, queue=self.queue, ledger=self.ledger, backend=self.backend, etag_of=self.etag_of, **kwargs
        )

    def poisoned(self) -> list[dict[str, Any]]:
        client = QueueClient.from_connection_string(self.settings.sensor_storage, self.settings.poison_queue)
        return [json.loads(m.content) for m in client.peek_messages(max_messages=32)]

    def version(self, name: str, etag: str | None = None) -> ChunkVersion:
        return ChunkVersion(self.settings.sensor_container, name, etag or self.etags[name])

    def created_names(self) -> list[str]:
        return [w["metadata"]["name"] for w in self.fake.created]

    def chunks_by_workflow(self) -> dict[str, list[str]]:
        """Every created workflow (the fake's log: deleted ones too) -> its ``chunks`` parameter."""
        out = {}
        for wf in self.fake.created:
            params = {p["name"]: p["value"] for p in wf["spec"]["arguments"]["parameters"]}
            out[wf["metadata"]["name"]] = json.loads(json.loads(params["chunks"]))
        return out


@pytest.fixture
def make_rig(base_env: dict[str, str], fake_argo: FakeArgoServer, container: ContainerClient) -> Callable[..., Rig]:
    def make(**env: str) -> Rig:
        hexid = uuid.uuid4().hex[:20]
        settings = load_settings(
            {
                **base_env,
                "SUBMIT_MODE": "coalesce",
                "SENSOR_EVENTS_QUEUE": f"q-{hexid}",
                "SENSOR_LEDGER_TABLE": f"t{hexid}",
                "COALESCE_MAX_CHUNKS": "4",
                "COALESCE_MAX_IN_FLIGHT": "3",
                "COALESCE_DEADLINE_SECONDS": "20",
                "COALESCE_VISIBILITY_SECONDS": "30",
                "ARGO_RETRY_SECONDS": "2",
                "ARGO_MAX_ATTEMPTS": "2",
                **stale_after(env.pop("CLAIM_STALE_SECONDS", "25")),
                **env,
            }
        )
        queue = RecordingQueue(storage.event_queue(settings))
        return Rig(settings, queue, storage.ledger(settings), ArgoBackend(settings), fake_argo, container)

    return make


def stale_after(seconds: str) -> dict[str, str]:
    # The setting was renamed while these tests were written (CLAIM_STALE_SECONDS ->
    # SENSOR_CLAIM_STALE_SECONDS); unknown names are ignored, so both spellings are set.
    return {"CLAIM_STALE_SECONDS": seconds, "SENSOR_CLAIM_STALE_SECONDS": seconds}


def raw_event(subject: str, **data: Any) -> str:
    return encode_message(
        {
            "id": uuid.uuid4().hex,
            "eventType": BLOB_CREATED,
            "subject": subject,
            "eventTime": "2026-11-22T08:00:00Z",
            "data": {"api": "PutBlob", "blobType": "BlockBlob", **data},
        }
    )


def subject(container: str, name: str) -> str:
    return f"/blobServices/default/containers/{container}/blobs/{name}"


def fake_max(rig: Rig) -> int:
    return rig.fake.max_in_flight(rig.settings.argo_workflow_template)


def require(condition: bool, what: str) -> None:
    """A set-up check of an xfail test: pytest.fail, not assert, so that with ``raises=AssertionError``
    only the final assertions (the bug) can make the test xfail."""
    if not condition:
        pytest.fail(f"set-up did not go as planned: {what}")


def assert_each_version_in_exactly_one_workflow(rig: Rig, names: list[str]) -> None:
    by_wf = rig.chunks_by_workflow()
    created = rig.created_names()
    assert len(created) == len(set(created)), f"a workflow was created twice: {created}"
    counts = Counter(n for chunks in by_wf.values() for n in chunks)
    assert {n: counts[n] for n in names} == dict.fromkeys(names, 1), by_wf
    assert set(counts) == set(names)
    for wf, chunks in by_wf.items():
        manifest = rig.ledger.get_manifest(wf)
        assert manifest is not None and manifest.state == "accepted", (wf, manifest)
        assert [n for n, _ in manifest.chunks] == chunks
        for n in chunks:
            claim = rig.ledger.latest(rig.version(n))
            assert claim is not None and claim.owner == wf


# --------------------------------------------------------------------------- the happy path


def test_ten_events_two_duplicated_become_three_workflows(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(COALESCE_MAX_CHUNKS="4", COALESCE_MAX_IN_FLIGHT="3")
    names = [f"sensor-{i % 3}/2026/11/22/chunk-{i:04d}.csv" for i in range(10)]
    for i, n in enumerate(names):
        rig.send(n, at=i)
    rig.send(names[1], at=50)  # duplicates (Event Grid delivers at least once), later
    rig.send(names[7], at=60)

    report = rig.drain()

    assert (report.in_flight, report.budget, report.received, report.candidates) == (0, 12, 12, 10)
    assert (report.claimed, report.duplicates, report.waiting, report.poisoned) == (10, 0, 0, 0)
    assert len(report.workflows) == 3 and report.chunks_submitted == 10 and report.failed == []
    assert report.deleted == 12
    assert rig.queue.depth() == 0 and rig.poisoned() == []
    by_wf = rig.chunks_by_workflow()
    assert list(by_wf) == report.workflows
    # Oldest events first, N per workflow; the parameter is sorted.
    assert list(by_wf.values()) == [sorted(names[0:4]), sorted(names[4:8]), sorted(names[8:10])]
    for wf, chunks in by_wf.items():
        assert wf.startswith(f"batch-{len(chunks)}-")
        manifest = rig.ledger.get_manifest(wf)
        assert manifest is not None and manifest.state == "accepted"
        assert manifest.chunks == tuple(sorted((n, rig.etags[n]) for n in chunks))
        for n in chunks:
            claim = rig.ledger.latest(rig.version(n))
            assert claim is not None
            assert (claim.owner, claim.owner_kind, claim.path, claim.generation) == (wf, "batch", "blob", 0)
    assert fake_max(rig) <= 3


# --------------------------------------------------------------------------- backpressure and the count


def test_backpressure_holds_messages_until_workflows_finish(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(COALESCE_MAX_CHUNKS="2", COALESCE_MAX_IN_FLIGHT="2")
    names = [f"sensor-1/2026/chunk-{i}.csv" for i in range(6)]
    for i, n in enumerate(names):
        rig.send(n, at=i)

    first = rig.drain()
    assert (first.in_flight, first.budget, len(first.workflows)) == (0, 4, 2)
    assert rig.queue.depth() == 2 and fake_max(rig) <= 2

    held = rig.drain()  # 2 in flight = K: nothing received, nothing deleted
    assert held.backpressure and (held.in_flight, held.budget, held.received, held.deleted) == (2, 0, 0, 0)
    assert held.workflows == [] and len(rig.fake.created) == 2
    assert rig.queue.depth() == 2 and rig.queue.visible() == 2  # not even hidden

    rig.fake.set_phase(first.workflows[0], "Running")
    assert rig.drain().backpressure  # running is still in flight
    rig.fake.set_phase(first.workflows[0], "Succeeded")
    third = rig.drain()
    assert not third.backpressure and (third.in_flight, third.budget) == (1, 2)
    assert len(third.workflows) == 1 and rig.chunks_by_workflow()[third.workflows[0]] == sorted(names[4:6])
    assert rig.queue.depth() == 0
    assert rig.drain().backpressure  # two in flight again
    assert fake_max(rig) <= 2
    assert_each_version_in_exactly_one_workflow(rig, names)


@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_refused_in_flight_count_stops_the_drain(make_rig: Callable[..., Rig], status: int) -> None:
    rig = make_rig()
    rig.send("sensor-1/2026/a.csv")
    rig.send("sensor-1/2026/b.csv")
    rig.fake.fail_next(Fault.status_code(status, route="list"))
    with pytest.raises(SubmitRejected) as info:
        rig.drain()
    assert info.value.status == status
    assert rig.queue.received == [] and rig.queue.visible() == 2 and rig.queue.depth() == 2
    assert rig.fake.submit_requests() == [] and len(rig.fake.list_requests()) == 1
    assert rig.ledger.latest(rig.version("sensor-1/2026/a.csv")) is None
    assert len(rig.drain().workflows) == 1  # fixed: the next drain takes them


def test_an_unavailable_in_flight_count_stops_the_drain(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.send("sensor-1/2026/a.csv")
    rig.fake.fail_next(Fault.unavailable(route="list"))
    with pytest.raises(SubmitUnavailable):
        rig.drain()
    assert rig.queue.received == [] and rig.queue.visible() == 1
    assert rig.fake.submit_requests() == []
    assert len(rig.drain().workflows) == 1


@pytest.mark.parametrize("split_by", ["two-versions", "byte-bound"])
def test_a_drain_never_puts_more_than_k_workflows_in_flight(make_rig: Callable[..., Rig], split_by: str) -> None:
    if split_by == "two-versions":
        rig = make_rig(COALESCE_MAX_CHUNKS="2", COALESCE_MAX_IN_FLIGHT="1")
        v1 = rig.upload("sensor-1/2026/a.csv", b"first")
        rig.send("sensor-1/2026/a.csv", v1, at=0)
        v2 = rig.upload("sensor-1/2026/a.csv", b"second upload")
        rig.send("sensor-1/2026/a.csv", v2, at=1)
    else:
        rig = make_rig(COALESCE_MAX_CHUNKS="2", COALESCE_MAX_IN_FLIGHT="1", MAX_CHUNKS_PARAM_BYTES="1024")
        for i in range(2):  # 2 + 2 * (600 + 6) > 1024: the two cannot share a chunks parameter
            rig.send(f"sensor-{i}/" + "x" * 591, at=i)
    report = rig.drain()
    require(report.budget == 2 and report.received == 2, f"budget {report.budget}, received {report.received}")
    assert fake_max(rig) <= 1, f"{len(report.workflows)} workflows started with K=1: {report.workflows}"


# --------------------------------------------------------------------------- what is not a chunk to run


def test_unusable_messages_go_to_the_poison_queue_with_the_field_named(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    container = rig.settings.sensor_container
    bad = {
        "garbage": (base64.b64encode(b"\x00 not json").decode(), "content: not JSON"),
        "not-base64": ("this is not base64 ***", "content: not base64"),
        "not-blob-created": (
            encode_message(
                {"eventType": "Microsoft.Storage.BlobDeleted", "subject": subject(container, "s/a.csv"), "data": {}}
            ),
            "eventType:",
        ),
        "other-container": (raw_event(subject("someone-else", "s/a.csv"), eTag="0x1"), "subject: event for container"),
        "dotdot": (raw_event(subject(container, "sensor-1/../../etc/passwd"), eTag="0x1"), "subject: blob name"),
        "dollar": (raw_event(subject(container, "sensor-1/$(reboot).csv"), eTag="0x1"), "subject: blob name"),
        "bad-etag": (raw_event(subject(container, "sensor-1/a.csv"), eTag='"'), "data.eTag:"),
    }
    for content, _ in bad.values():
        rig.queue.send(content)
    rig.send("sensor-1/2026/good.csv")

    report = rig.drain()

    assert report.poisoned == len(bad) and len(report.workflows) == 1
    assert rig.chunks_by_workflow()[report.workflows[0]] == ["sensor-1/2026/good.csv"]
    assert rig.queue.depth() == 0  # the originals are deleted
    envelopes = {e["original"]: e for e in rig.poisoned()}
    assert len(envelopes) == len(bad)
    for label, (content, reason_start) in bad.items():
        envelope = envelopes[content]
        assert envelope["reason"].startswith(reason_start), (label, envelope["reason"])
        assert envelope["dequeue_count"] == 1 and envelope["message_id"] and envelope["poisoned_at"]
    assert sorted(report.poison_reasons) == sorted(e["reason"] for e in envelopes.values())


def test_an_incomplete_upload_event_is_deleted_without_a_run(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    etag = rig.upload("sensor-1/2026/a.csv")
    rig.queue.send(
        raw_event(subject(rig.settings.sensor_container, "sensor-1/2026/a.csv"), api="CreateFile", eTag=etag)
    )
    report = rig.drain()
    assert report.ignored == 1 and report.workflows == [] and rig.fake.submit_requests() == []
    assert rig.queue.depth() == 0 and rig.poisoned() == []


def test_an_event_without_etag_gets_the_blobs_current_one(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    container = rig.settings.sensor_container
    etag = rig.upload("sensor-1/2026/a.csv")
    rig.queue.send(raw_event(subject(container, "sensor-1/2026/a.csv")))  # no eTag
    rig.send("sensor-1/2026/a.csv")  # the same version with its eTag: one chunk, two messages
    rig.queue.send(raw_event(subject(container, "sensor-1/2026/gone.csv")))  # no eTag, no blob

    report = rig.drain()

    assert (report.candidates, report.ignored, report.deleted) == (1, 1, 2)
    (wf,) = report.workflows
    assert rig.chunks_by_workflow() == {wf: ["sensor-1/2026/a.csv"]}
    manifest = rig.ledger.get_manifest(wf)
    assert manifest is not None and manifest.chunks == (("sensor-1/2026/a.csv", etag),)
    claim = rig.ledger.latest(rig.version("sensor-1/2026/a.csv", etag))
    assert claim is not None and claim.owner == wf
    assert rig.queue.depth() == 0 and rig.poisoned() == []


# --------------------------------------------------------------------------- crashes and failures


@pytest.mark.parametrize("step", STEPS)
def test_a_crash_at_any_step_loses_and_repeats_nothing(make_rig: Callable[..., Rig], step: str) -> None:
    rig = make_rig(COALESCE_MAX_CHUNKS="2", COALESCE_MAX_IN_FLIGHT="5")
    names = [f"sensor-{i % 2}/2026/chunk-{i}.csv" for i in range(5)]
    for i, n in enumerate(names):
        rig.send(n, at=i)
    rig.send(names[0], at=9)  # and one duplicate

    def crash(at: str) -> None:
        if at == step:
            raise Crash(at)

    with pytest.raises(Crash):
        rig.drain(on_step=crash)
    rig.queue.expire()  # the crashed drain's messages come back, its claims are stale
    report = rig.drain(later=True)

    assert report.failed == [] and report.waiting == 0, report
    assert rig.queue.depth() == 0 and rig.poisoned() == []
    assert_each_version_in_exactly_one_workflow(rig, names)


def test_a_crash_after_the_submit_is_resumed_under_the_same_name(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(COALESCE_MAX_CHUNKS="2")
    names = ["sensor-1/2026/a.csv", "sensor-1/2026/b.csv"]
    for i, n in enumerate(names):
        rig.send(n, at=i)

    def crash(at: str) -> None:
        if at == "submitted":
            raise Crash(at)

    with pytest.raises(Crash):
        rig.drain(on_step=crash)
    (first,) = rig.created_names()
    rig.queue.expire()
    report = rig.drain()  # not even stale: a manifest in "submitting" is resumed at once
    assert report.resumed == [first] and report.workflows == []
    assert [r.status for r in rig.fake.submit_requests()] == [200, 409]
    assert rig.created_names() == [first] and rig.queue.depth() == 0
    assert_each_version_in_exactly_one_workflow(rig, names)


@pytest.mark.parametrize(
    ("faults", "maybe_created"),
    [((Fault.unavailable(), Fault.unavailable()), False), ((Fault.reset(), Fault.reset()), True)],
    ids=["503-nothing-created", "reset-maybe-created"],
)
def test_a_failed_submit_keeps_the_messages_and_the_next_drain_submits_them(
    make_rig: Callable[..., Rig], faults: tuple[Fault, ...], maybe_created: bool
) -> None:
    # Real timeouts here: a 1.9 s drain deadline, messages hidden for 2 s, claims stale after 2 s.
    rig = make_rig(COALESCE_DEADLINE_SECONDS="1.9", COALESCE_VISIBILITY_SECONDS="2", CLAIM_STALE_SECONDS="2")
    names = ["sensor-1/2026/a.csv", "sensor-1/2026/b.csv", "sensor-2/2026/c.csv"]
    for i, n in enumerate(names):
        rig.send(n, at=i)
    rig.fake.fail_next(*faults)

    first = rig.drain()

    (planned,) = first.failed
    assert first.workflows == [] and first.deleted == 0 and rig.fake.created == []
    assert rig.queue.depth() == 3 and rig.queue.visible() == 0
    manifest = rig.ledger.get_manifest(planned)
    assert manifest is not None and manifest.state == ("submitting" if maybe_created else "abandoned")
    for n in names:
        claim = rig.ledger.latest(rig.version(n))
        assert claim is not None and (claim.owner, claim.state) == (planned, "claimed")

    time.sleep(2.2)  # the visibility timeout
    second = rig.drain()

    assert rig.queue.depth() == 0 and rig.poisoned() == []
    if maybe_created:
        assert second.resumed == [planned] and rig.created_names() == [planned]  # the same plan, resumed
    else:
        (taken,) = second.workflows
        assert taken != planned and rig.created_names() == [taken]  # a new plan took the chunks over
    (chunks,) = rig.chunks_by_workflow().values()
    assert chunks == sorted(names)
    assert_each_version_in_exactly_one_workflow(rig, names)


def test_a_redelivery_after_argo_forgot_the_workflow_is_a_duplicate(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.send("sensor-1/2026/a.csv")
    (wf,) = rig.drain().workflows
    rig.fake.set_phase(wf, "Succeeded")
    rig.fake.delete_workflow(wf)  # Argo's TTL/GC: a resubmit would create it anew
    requests_before = len(rig.fake.submit_requests())

    rig.send("sensor-1/2026/a.csv", at=5)  # Event Grid redelivers
    report = rig.drain()

    assert (report.duplicates, report.deleted, report.workflows, report.resumed) == (1, 1, [], [])
    assert len(rig.fake.submit_requests()) == requests_before and rig.created_names() == [wf]
    assert rig.queue.depth() == 0
    claim = rig.ledger.latest(rig.version("sensor-1/2026/a.csv"))
    assert claim is not None and claim.owner == wf and claim.duplicates == 1


def test_over_dequeued_messages_are_poisoned_and_their_chunk_left_free(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(COALESCE_MAX_DEQUEUE="1")
    claimed, unclaimed = "sensor-1/2026/a.csv", "sensor-1/2026/b.csv"
    rig.send(unclaimed)
    (seen,) = list(rig.queue.receive(1, visibility_timeout=30))  # someone received it and died
    rig.send(claimed)
    rig.fake.fail_next(Fault.unavailable(), Fault.unavailable())
    first = rig.drain()  # delivery 1 of `claimed`: its submit fails, nothing created
    assert len(first.failed) == 1 and rig.fake.created == []
    assert seen.dequeue_count == 1

    rig.queue.expire()
    second = rig.drain()  # delivery 2 of both: over COALESCE_MAX_DEQUEUE=1

    assert second.poisoned == 2 and second.workflows == [] and second.claimed == 0
    assert rig.queue.depth() == 0 and rig.fake.created == []
    envelopes = {
        json.loads(base64.b64decode(e["original"]))["subject"].rsplit("/blobs/", 1)[1]: e for e in rig.poisoned()
    }
    assert set(envelopes) == {claimed, unclaimed}
    for e in envelopes.values():
        assert "COALESCE_MAX_DEQUEUE=1" in e["reason"] and e["dequeue_count"] == 2
    assert "never claimed" in envelopes[unclaimed]["reason"]
    assert rig.ledger.latest(rig.version(unclaimed)) is None
    claim = rig.ledger.latest(rig.version(claimed))
    assert claim is not None
    manifest = rig.ledger.get_manifest(claim.owner)
    assert classify(claim, manifest, now=datetime.now(UTC), stale_after=timedelta(seconds=25)).kind in ("take", "fence")
    assert "abandoned" in envelopes[claimed]["reason"]


def test_the_longest_name_fits_the_smallest_chunks_parameter(make_rig: Callable[..., Rig]) -> None:
    # group_batches emits a too-long name alone, and decide() would then refuse the batch after its chunk was
    # claimed (an orphaned claim): it must never happen with settings the app accepts.
    rig = make_rig(MAX_CHUNKS_PARAM_BYTES="1024")
    name = "sensor-1/" + "x" * (MAX_CHUNK_NAME_LENGTH - len("sensor-1/"))
    rig.send(name, "0x8DC1")
    report = rig.drain()
    (wf,) = report.workflows
    assert rig.chunks_by_workflow() == {wf: [name]}
    assert chunks_param_bytes([name]) <= rig.settings.max_chunks_param_bytes
    claim = rig.ledger.latest(rig.version(name, "0x8DC1"))
    assert claim is not None and claim.owner == wf
    assert rig.queue.depth() == 0


# --------------------------------------------------------------------------- bugs (xfail, strict)


def test_messages_stay_hidden_longer_than_the_drain_deadline(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(COALESCE_DEADLINE_SECONDS="1", COALESCE_VISIBILITY_SECONDS="1.5", CLAIM_STALE_SECONDS="2")
    rig.send("sensor-1/2026/a.csv")
    rig.drain()
    assert rig.queue.visibilities and all(v > rig.settings.coalesce_deadline_seconds for v in rig.queue.visibilities)


def test_duplicate_over_dequeued_messages_of_an_unaccepted_single_are_resolved(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(COALESCE_MAX_DEQUEUE="1")
    name = "sensor-1/2026/a.csv"
    etag = rig.upload(name)
    # The HTTP trigger (immediate) claimed it; its submit was cut off: the claim stays "claimed".
    owner = workflow_name(rig.settings.sensor_container, [(name, etag)])
    require(
        rig.ledger.claim(rig.version(name), owner=owner, owner_kind="single", path="http", now=datetime.now(UTC)).won,
        "claimed",
    )
    rig.send(name)
    rig.send(name, at=1)  # Event Grid's duplicate
    rig.fake.fail_next(Fault.reset(), Fault.reset())
    first = rig.drain()  # resume attempted, Argo unreachable (maybe created): nothing released
    require(first.failed == [owner] and rig.fake.created == [], f"first drain: {first}")

    reports = []
    for _ in range(2):  # Argo is back; the two messages are over COALESCE_MAX_DEQUEUE from now on
        rig.queue.expire()
        reports.append(rig.drain())
    assert rig.queue.depth() == 0, (
        f"still queued: waiting={[r.waiting for r in reports]}, created={rig.created_names()}"
    )
    assert rig.created_names() == [owner] or len(rig.poisoned()) == 2


def _drain_past_the_dequeue_limit(rig: Rig, times: int = 3) -> list[DrainReport]:
    reports = []
    for _ in range(times):
        rig.queue.expire()
        reports.append(rig.drain())
    return reports


def test_an_event_meeting_an_unaccepted_forced_rerun_is_not_redelivered_forever(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(COALESCE_MAX_DEQUEUE="1")
    name = "sensor-1/2026/a.csv"
    etag = rig.upload(name)
    first = submit_chunks(rig.settings, "blob", [name], [etag], backend=rig.backend, ledger=rig.ledger)
    rig.fake.fail_next(Fault.reset(), Fault.reset())
    with pytest.raises(SubmitUnavailable):  # POST /api/trigger {"force": true}: cut off, outcome unknown
        submit_chunks(rig.settings, "http", [name], [etag], force=True, backend=rig.backend, ledger=rig.ledger)
    latest = rig.ledger.latest(rig.version(name))
    require(latest is not None and (latest.generation, latest.state) == (1, "claimed"), f"latest claim {latest}")
    rig.send(name)  # Event Grid redelivers the original event

    reports = [rig.drain(), *_drain_past_the_dequeue_limit(rig)]

    assert rig.created_names() == [first.workflow_name]
    assert rig.queue.depth() == 0, f"still queued: waiting={[r.waiting for r in reports]}"


def test_a_larger_plan_of_another_path_is_resumed(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(COALESCE_MAX_CHUNKS="2", COALESCE_MAX_DEQUEUE="1")
    names = [f"sensor-{i}/2026/a.csv" for i in range(3)]
    etags = [rig.upload(n) for n in names]
    rig.fake.fail_next(Fault.reset(), Fault.reset())
    with pytest.raises(SubmitUnavailable):  # the HTTP trigger's 3-chunk plan: manifest "submitting"
        submit_chunks(rig.settings, "http", names, etags, backend=rig.backend, ledger=rig.ledger)
    claim = rig.ledger.latest(rig.version(names[0]))
    plan = claim.owner if claim is not None else ""
    manifest = rig.ledger.get_manifest(plan) if plan else None
    require(
        manifest is not None and manifest.state == "submitting" and len(manifest.chunks) == 3, f"manifest {manifest}"
    )
    rig.send(names[0])

    reports = [rig.drain(), *_drain_past_the_dequeue_limit(rig)]

    assert rig.created_names() == [plan], f"waiting={[r.waiting for r in reports]}"
    assert rig.queue.depth() == 0
