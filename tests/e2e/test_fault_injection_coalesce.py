"""Fault injection in coalesce mode, N = 1000 chunks: nothing lost, nothing run twice, the cap holds.

Real parts: Azurite's blob, queue and table services; the blob-trigger handler (coalesce mode: it
enqueues), the queue drainer with the real ledger, ArgoBackend and its retries; real Metaflow runs
of every created workflow and of the cron fallback. Stand-ins: the fake Argo Server (spec-following,
counting workflows in flight), made to execute what is created (``argo_executor``); Event Grid
(20 % duplicate deliveries, shuffled; some events straight to the queue in the CloudEvents schema,
as Event Grid's StorageQueue endpoint delivers them, and some garbage); the timer (the test ticks).

Faults, all seeded: 30 % of Argo calls fail (503, 429 + Retry-After, resets, 500 after create, and
503 on the in-flight count); the drainer is killed at every step boundary at least once; Argo is
unreachable for a stretch of ticks; a submit outage long enough that some messages exceed
``COALESCE_MAX_DEQUEUE`` and are poisoned; K = 3 so the cap binds.

Asserted: every chunk has exactly one up-to-date record; no chunk version was executed twice
(from each run's ``chunk_etags`` artifact, the fallback's included); in flight never exceeded K (the
fake measured it); every poisoned message carries a reason, and every chunk of a poisoned message
was processed (by the fallback, or by a run after all). The counts are printed.

``FAULT_INJECTION_COALESCE_N`` sets N (default 1000, in CI).
"""

from __future__ import annotations

import base64
import json
import os
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient

from chunk_contract.records import ERROR_SUFFIX, META_CHUNK_ETAG, RESULT_SUFFIX, chunk_of_record
from chunk_contract.versions import normalize_etag
from function_app.argo_backend import ArgoBackend
from function_app.blob_trigger import handle_blob
from function_app.drain import STEPS, DrainReport, drain_once
from function_app.queue_messages import decode_message
from function_app.settings import load_settings
from function_app.storage import blob_service_client, event_queue, ledger
from function_app.submission import SubmitError
from localdev.azurite import free_port
from localdev.event_source import EventSource
from localdev.events import DeliveryPlan
from localdev.local_backend import decode_parameters, run_flow
from localdev.synthetic import generate_chunks
from tests.e2e.argo_executor import WorkflowExecutor
from tests.fakes.argo_server import FakeArgoServer, Fault

N = int(os.environ.get("FAULT_INJECTION_COALESCE_N", "1000"))
K = 3
LATE = 4  # chunks uploaded after the rest, whose events meet a submit outage until poisoned
BATCH = 50  # N per workflow: small enough that the cap binds over many ticks
SEED = 20261201
FAILURE_RATE = 0.3
TOKEN = "fault-injection-token"
KILL_STEPS = ("received", "sorted", "claimed", "manifest", "submitted", "accepted", "deleted")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


class Killed(RuntimeError):
    """The drainer 'crashed' at a step boundary (raised from on_step)."""


def _faults(rng: random.Random, count: int, route: str) -> list[Fault]:
    kinds = (
        [lambda: Fault.unavailable(), lambda: Fault.rate_limited(1), Fault.reset, lambda: Fault.create_then_error(500)]
        if route == "submit"
        else [lambda: Fault.unavailable(route="list")]
    )
    plan: list[Fault] = []
    for block in range(0, count, 10):
        failing = set(rng.sample(range(10), round(10 * FAILURE_RATE)))
        for i in range(10):
            plan.append(kinds[(block + i) % len(kinds)]() if i in failing else Fault.slow(0, route=route))
    return plan


def _cloud_event(container: str, name: str, etag: str) -> str:
    event = {
        "specversion": "1.0",
        "type": "Microsoft.Storage.BlobCreated",
        "source": "/subscriptions/x/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/a",
        "id": f"ce-{name}",
        "time": datetime.now(UTC).isoformat(),
        "subject": f"/blobServices/default/containers/{container}/blobs/{name}",
        "data": {"api": "PutBlockList", "eTag": etag, "contentLength": 1, "blobType": "BlockBlob"},
    }
    return base64.b64encode(json.dumps(event).encode()).decode()


def test_coalesce_fault_injection_loses_nothing_and_runs_nothing_twice(
    e2e_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(SEED)
    container_name = e2e_env["SENSOR_CONTAINER"]
    service = BlobServiceClient.from_connection_string(e2e_env["SENSOR_STORAGE"])
    container = service.get_container_client(container_name)

    generated = generate_chunks(sensors=-(-(N + LATE) // 4), chunks_per_sensor=4, seconds_per_chunk=15, seed=SEED)
    good = [c for c in generated if not c.bad]
    chunks = good[:N] + [c for c in generated if c.bad]
    late_chunks = good[N : N + LATE]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda c: container.upload_blob(c.name, c.data), chunks))
    etags = {b.name: normalize_etag(b.etag) for b in container.list_blobs()}
    assert len(etags) == N + 1

    with FakeArgoServer(token=TOKEN) as fake:
        executor = WorkflowExecutor(fake, dict(os.environ), workers=2)
        fake.on_created = executor.on_created
        submit_faults = _faults(rng, 40 * (N // BATCH + 10), "submit")
        list_faults = _faults(rng, 2000, "list")
        fake.fail_next(*submit_faults, *list_faults)
        app_env = {
            **e2e_env,
            "SUBMIT_BACKEND": "argo",
            "SUBMIT_MODE": "coalesce",
            "ARGO_SERVER_URL": fake.url,
            "ARGO_TOKEN": TOKEN,
            "ARGO_READ_TIMEOUT": "2",
            "ARGO_MAX_ATTEMPTS": "3",
            "ARGO_RETRY_SECONDS": "3",
            "SENSOR_EVENTS_QUEUE": "events-" + container_name[2:14],
            "SENSOR_LEDGER_TABLE": "ledger" + container_name[2:14],
            "COALESCE_MAX_IN_FLIGHT": str(K),
            "COALESCE_MAX_CHUNKS": str(BATCH),
            "COALESCE_MAX_DEQUEUE": "20",  # the kills re-receive messages; phase B poisons on purpose
            "COALESCE_DEADLINE_SECONDS": "5",
            "COALESCE_VISIBILITY_SECONDS": "6",
            "SENSOR_CLAIM_STALE_SECONDS": "8",
        }
        settings = load_settings(app_env)
        # The pods of the fallback run read the ledger table from the environment, like the app.
        # monkeypatch: restored afterwards, so later tests' flow runs use their own ledger table.
        monkeypatch.setenv("SENSOR_LEDGER_TABLE", settings.ledger_table)
        queue, book = event_queue(settings), ledger(settings)
        backend = ArgoBackend(settings)
        down = ArgoBackend(load_settings({**app_env, "ARGO_SERVER_URL": f"http://127.0.0.1:{free_port()}"}))
        blobs = blob_service_client(settings)

        # 1. Events: 80 % through the blob trigger (which enqueues), delivered at least once, 20 %
        #    twice, shuffled; the other 20 % straight to the queue as Event Grid CloudEvents; garbage.
        source = EventSource(e2e_env["SENSOR_STORAGE"], container_name)
        events = source.poll()
        plan = source.plan(events, duplicate_rate=0.2, reorder=True, seed=SEED)
        direct = {e["subject"] for e in rng.sample(events, len(events) // 5)}
        raw = QueueClient.from_connection_string(e2e_env["SENSOR_STORAGE"], settings.events_queue)
        via_trigger = [d for d in plan.deliveries if d.event["subject"] not in direct]
        for d in plan.deliveries:
            if d.event["subject"] in direct:
                name = d.event["subject"].split("/blobs/", 1)[1]
                raw.send_message(_cloud_event(container_name, name, etags[name]), time_to_live=-1)
        report = source.deliver(
            DeliveryPlan(tuple(via_trigger), plan.duplicates, True),
            lambda client: handle_blob(client, settings=settings, queue=queue, service=blobs),
            workers=4,
        )
        assert report.poisoned == [] and report.errors == []
        garbage = ["not base64 at all!", base64.b64encode(b'{"eventType": "Microsoft.Storage.BlobDeleted"}').decode()]
        for g in garbage:
            raw.send_message(g, time_to_live=-1)

        # 2. Phase A, ticks until the queue is empty: a kill at each step boundary in turn (on the next
        #    drain that reaches it with work in hand), an Argo outage (nothing listening) for a stretch
        #    of ticks, and the 30 % of failing Argo calls throughout.
        pending_kills = list(KILL_STEPS)
        outage = set(range(3, 7))
        reports: list[DrainReport] = []
        counts: Counter[str] = Counter()
        killed_at: list[str] = []
        deadline = time.monotonic() + 1500
        tick = 0

        def on_step(step: str) -> None:
            if pending_kills and step == pending_kills[0]:
                killed_at.append(pending_kills.pop(0))
                raise Killed(step)

        def tick_once(current: Any, hook: Any = lambda step: None) -> None:
            nonlocal tick
            tick += 1
            try:
                got = drain_once(
                    current,
                    queue=queue,
                    ledger=book,
                    backend=down if tick in outage else backend,
                    etag_of=lambda c, n: str(blobs.get_blob_client(c, n).get_blob_properties().etag),
                    on_step=hook,
                )
                reports.append(got)
            except Killed:
                counts["drains killed"] += 1
            except SubmitError:
                counts["drains stopped by the in-flight count failing"] += 1

        while time.monotonic() < deadline:
            tick_once(settings, on_step)
            if not pending_kills and tick > max(outage) and queue.depth() == 0:
                break
            time.sleep(1.0)
        assert queue.depth() == 0, f"{queue.depth()} message(s) still queued after {tick} ticks"

        # Phase B: late chunks meet a submit outage (every attempt 503) until their messages exceed
        # COALESCE_MAX_DEQUEUE (1 here) and are poisoned, their claims left free for the fallback.
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda c: container.upload_blob(c.name, c.data), late_chunks))
        for c in late_chunks:
            etags[c.name] = normalize_etag(container.get_blob_client(c.name).get_blob_properties().etag)
            handle_blob(container.get_blob_client(c.name), settings=settings, queue=queue, service=blobs)
        strict = load_settings({**app_env, "COALESCE_MAX_DEQUEUE": "1"})
        while time.monotonic() < deadline and queue.depth() > 0:
            fake.fail_first(*[Fault.unavailable() for _ in range(3 * K)])
            tick_once(strict)
            time.sleep(1.0)
        assert queue.depth() == 0
        executor.wait()
        executor.shutdown()

        # 3. One cron fallback run: the chunks no workflow carried, the poisoned ones among them.
        cron = decode_parameters(
            [f"chunks={fake.templates['sensorprocessingflow']['chunks']}", f'container="{container_name}"']
        )
        fallback = run_flow(cron, dict(os.environ), artifacts=("chunk_etags", "summary"))
        assert fallback.successful, fallback.message
        max_in_flight = fake.max_in_flight("sensorprocessingflow")
        poison = QueueClient.from_connection_string(e2e_env["SENSOR_STORAGE"], settings.poison_queue)
        poisoned = [json.loads(m.content) for m in poison.receive_messages(messages_per_page=32, max_messages=5000)]
        assert fake.hook_errors == []

    # ------------------------------------------------------------------ the numbers
    recovered = dict(fallback.artifacts["chunk_etags"])
    created = [w["metadata"]["name"] for w in fake.created]
    numbers = {
        "chunks uploaded": N + 1 + LATE,
        "event deliveries (blob trigger)": len(via_trigger),
        "events straight to the queue (CloudEvents)": len(direct),
        "duplicate deliveries": plan.duplicates,
        "drain ticks": tick,
        **counts,
        "killed at": ", ".join(killed_at),
        "workflows created": len(created),
        "chunks per workflow (mean)": round(
            sum(len(e.params["chunks"]) for e in executor.executions) / max(1, len(executor.executions)), 1
        ),
        "most workflows in flight (K = 3)": max_in_flight,
        "duplicates suppressed by the ledger": sum(r.duplicates for r in reports),
        "resumed after a crash": sum(len(r.resumed) for r in reports),
        "drains held back by the cap": sum(r.backpressure for r in reports),
        "messages poisoned": len(poisoned),
        "chunks recovered by the fallback": len(recovered),
        "local Metaflow runs": len(executor.executions) + 1,
    }
    print(f"\ncoalesce fault injection, N = {N}")
    for key, value in numbers.items():
        print(f"  {key:<48} {value}")

    # ------------------------------------------------------------------ what must hold
    assert killed_at == list(KILL_STEPS), killed_at
    over = [p for p in poisoned if "COALESCE_MAX_DEQUEUE" in p["reason"]]
    assert {getattr(decode_message(p["original"], container=container_name), "name", None) for p in over} == {
        c.name for c in late_chunks
    }, [p["reason"] for p in poisoned]
    assert max_in_flight <= K
    assert all(e.run.successful for e in executor.executions), [e.run.message for e in executor.executions]
    executed = Counter(
        (name, normalize_etag(etag)) for e in executor.executions for name, etag in e.chunk_etags.items()
    )
    executed.update((name, normalize_etag(etag)) for name, etag in recovered.items())
    assert max(executed.values()) == 1, [k for k, v in executed.items() if v > 1][:10]
    assert set(executed) == set(etags.items())
    # Poison: every message has a reason; the garbage is there; every poisoned chunk was processed.
    assert all(p.get("reason") for p in poisoned)
    assert sum("base64" in p["reason"] or "eventType" in p["reason"] for p in poisoned) >= len(garbage)
    for p in poisoned:
        decoded = decode_message(p["original"], container=container_name)
        name = getattr(decoded, "name", None)
        if name is not None:
            assert (name, etags[name]) in executed, name
    # Every chunk has exactly one up-to-date record: a result, or (the bad one) an error record.
    records: dict[str, dict[str, Any]] = {}
    for blob in service.get_container_client(e2e_env["SENSOR_RESULTS_CONTAINER"]).list_blobs(include=["metadata"]):
        parsed = chunk_of_record(blob.name)
        assert parsed is not None, blob.name
        records[blob.name] = dict(blob.metadata)
    bad = chunks[-1].name
    assert sum(n.endswith(RESULT_SUFFIX) for n in records) == N + LATE
    assert sum(n.endswith(ERROR_SUFFIX) for n in records) == 1 and bad + ERROR_SUFFIX in records
    for name, meta in records.items():
        chunk, _ = chunk_of_record(name) or ("", "")
        assert normalize_etag(meta[META_CHUNK_ETAG]) == etags[chunk]
    assert STEPS  # the drainer's step names, which KILL_STEPS covers
