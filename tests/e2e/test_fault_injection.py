"""Fault injection: every chunk processed, once in effect, whatever fails.

Real parts: Azurite, the function app's blob-trigger handler with a real ``BlobClient``, the real
submission path and Argo backend (HTTP, retries, ambiguous-answer lookups), real Metaflow runs.
Stand-ins for what cannot run here, following the real contracts: the fake Argo Server
(``tests/fakes/argo_server.py``), made to *execute* each created workflow
(``tests/e2e/argo_executor.py``); Event Grid (``localdev.event_source``: at least once, 20 %
duplicates, shuffled); the Functions host's retries (``localdev.host_retry``, threshold from
``host.json``).

Scenario, N good chunks + 1 corrupted one (``FAULT_INJECTION_N``, default 30):

1. upload; the event source emits one ``BlobCreated`` per chunk; 20 % of them are delivered twice
   and the whole delivery sequence is shuffled;
2. the first few deliveries hit an Argo outage (connection refused): the host retries each up to
   the poison threshold, then poisons it — unless a duplicate delivery later succeeds;
3. the rest hit the fake Argo, which fails 30 % of submit requests: 503, 429 with Retry-After,
   connection resets, read timeouts (created, answer lost) and ambiguous 500s (created, then 500);
4. every created workflow runs (2 at a time); then the cron fallback runs once.

Asserted: each chunk has exactly one up-to-date record (results for the good ones, an error record
for the bad one), no chunk version was executed twice, the fallback took exactly the chunks no
workflow was created for, and the numbers are printed.

N = 1000 (not in CI; about 1000 local runs)::

    FAULT_INJECTION_N=1000 FAULT_INJECTION_WORKERS=4 .venv/bin/python -m pytest tests/e2e -k fault_injection -s
"""

from __future__ import annotations

import os
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from azure.storage.blob import BlobClient, BlobServiceClient

from chunk_contract.records import (
    ERROR_SUFFIX,
    META_CHUNK_ETAG,
    RESULT_SUFFIX,
    chunk_of_record,
    error_blob_name,
    normalize_etag,
    result_blob_name,
)
from function_app.argo_backend import ArgoBackend
from function_app.blob_trigger import handle_blob
from function_app.settings import load_settings
from function_app.submission import SubmitResult
from localdev.azurite import free_port
from localdev.event_source import EventSource
from localdev.events import DeliveryPlan
from localdev.host_retry import load_poison_threshold
from localdev.local_backend import decode_parameters, run_flow
from localdev.synthetic import generate_chunks
from tests.e2e.argo_executor import WorkflowExecutor
from tests.fakes.argo_server import FakeArgoServer, Fault

N = int(os.environ.get("FAULT_INJECTION_N", "30"))
WORKERS = int(os.environ.get("FAULT_INJECTION_WORKERS", "2"))
# About one local Metaflow run per chunk, each ~5-15 s on a 2-core machine, WORKERS at a time.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(max(900, 30 * (N + 2) // WORKERS))]
SEED = int(os.environ.get("FAULT_INJECTION_SEED", "20261122"))
FAILURE_RATE = 0.3
DUPLICATE_RATE = 0.2
OUTAGE_DELIVERIES = max(2, N // 15)
TOKEN = "fault-injection-token"


def fault_plan(rng: random.Random, count: int) -> list[Fault]:
    """``count`` submit outcomes: in every block of 10 requests, 3 fail; the rest are answered normally.

    The failing positions are random; the kinds rotate (503, 429 + Retry-After, reset, read
    timeout, ambiguous 500) so that every kind occurs. ``Fault.slow(0)`` is "no fault" (handled at
    once): the fake consumes faults in order, one per submit request, so the plan decides the fate
    of each request as it arrives.
    """
    kinds = [
        lambda: Fault.unavailable(),
        lambda: Fault.rate_limited(1),
        lambda: Fault.reset(),
        lambda: Fault.slow(1.5),  # > ARGO_READ_TIMEOUT: the client times out, the workflow is created
        lambda: Fault.create_then_error(500),
    ]
    plan: list[Fault] = []
    failures = 0
    for _ in range(0, count, 10):
        failing = set(rng.sample(range(10), round(10 * FAILURE_RATE)))
        for i in range(10):
            if i in failing:
                plan.append(kinds[failures % len(kinds)]())
                failures += 1
            else:
                plan.append(Fault.slow(0))
    return plan


def _is_failure(f: Fault) -> bool:
    return not (f.kind == "slow" and f.delay == 0)


FAULT_LABELS = {
    ("status", 503): "503",
    ("status", 429): "429 + Retry-After",
    ("reset", 503): "connection reset",
    ("slow", 503): "read timeout (created)",
    ("create_then_error", 500): "500 (created)",
}


def _label(f: Fault) -> str:
    return FAULT_LABELS[(f.kind, f.status)]


def test_fault_injection_loses_nothing(e2e_env: dict[str, str]) -> None:
    rng = random.Random(SEED)
    container_name = e2e_env["SENSOR_CONTAINER"]
    service = BlobServiceClient.from_connection_string(e2e_env["SENSOR_STORAGE"])
    container = service.get_container_client(container_name)

    # 1. N good chunks + the corrupted one, uploaded.
    generated = generate_chunks(sensors=-(-N // 3), chunks_per_sensor=3, seconds_per_chunk=15, seed=SEED)
    chunks = [c for c in generated if not c.bad][:N] + [c for c in generated if c.bad]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda c: container.upload_blob(c.name, c.data), chunks))
    etags = {b.name: normalize_etag(b.etag) for b in container.list_blobs()}
    bad = chunks[-1].name

    plan_of_faults = fault_plan(rng, 20 * (N + 1))
    with FakeArgoServer(token=TOKEN) as fake:
        executor = WorkflowExecutor(fake, dict(os.environ), workers=WORKERS)
        fake.on_created = executor.on_created
        fake.fail_next(*plan_of_faults)
        app_env = {
            **e2e_env,
            "SUBMIT_BACKEND": "argo",
            "ARGO_SERVER_URL": fake.url,
            "ARGO_TOKEN": TOKEN,
            "ARGO_READ_TIMEOUT": "0.5",
            "ARGO_MAX_ATTEMPTS": "3",
            "ARGO_RETRY_SECONDS": "5",
        }
        settings = load_settings(app_env)
        backend = ArgoBackend(settings)
        # The outage: nothing listens on this port (connection refused), as when Argo is down.
        down = load_settings(
            {**app_env, "ARGO_SERVER_URL": f"http://127.0.0.1:{free_port()}", "ARGO_RETRY_SECONDS": "1"}
        )
        down_backend = ArgoBackend(down)

        results: list[SubmitResult] = []

        def handler(client: BlobClient) -> None:
            got = handle_blob(client, settings=settings, backend=backend)
            if got is not None:
                results.append(got)

        def outage_handler(client: BlobClient) -> None:
            handle_blob(client, settings=down, backend=down_backend)

        # 2.-3. Deliveries: at least once, 20 % twice, shuffled; the first few during the outage.
        threshold = load_poison_threshold()
        source = EventSource(e2e_env["SENSOR_STORAGE"], container_name, poison_threshold=threshold)
        events = source.poll()
        assert len(events) == N + 1
        plan = source.plan(events, duplicate_rate=DUPLICATE_RATE, reorder=True, seed=SEED)
        first = DeliveryPlan(plan.deliveries[:OUTAGE_DELIVERIES], 0, True)
        rest = DeliveryPlan(plan.deliveries[OUTAGE_DELIVERIES:], plan.duplicates, True)
        during_outage = source.deliver(first, outage_handler)
        after = source.deliver(rest, handler, workers=4)

        # 4. Every created workflow runs to its end; then the cron fallback, once.
        executor.wait()
        executor.shutdown()
        cron = decode_parameters(
            [f"chunks={fake.templates['sensorprocessingflow']['chunks']}", f'container="{container_name}"']
        )
        fallback = run_flow(cron, dict(os.environ), artifacts=("chunk_etags", "summary"))
        assert fallback.successful, fallback.message
        consumed = len(plan_of_faults) - len(fake.pending_faults())
        assert fake.hook_errors == []

    # ---------------------------------------------------------------- the numbers
    injected = Counter(_label(f) for f in plan_of_faults[:consumed] if _is_failure(f))
    created = {w["metadata"]["name"] for w in fake.created}
    poisoned = during_outage.poisoned + after.poisoned
    recovered = dict(fallback.artifacts["chunk_etags"])
    numbers = {
        "chunks uploaded": N + 1,
        "event deliveries": during_outage.deliveries + after.deliveries,
        "duplicate deliveries": plan.duplicates,
        "submit requests seen by Argo": consumed,
        "  of which failed (injected)": sum(injected.values()),
        "  failures by kind": dict(injected),
        "workflows submitted (created)": len(created),
        "duplicates suppressed (409 / found by name)": sum(r.duplicate for r in results),
        "deliveries retried by the host": during_outage.retried + after.retried,
        "submits retried inside the backend": sum(r.attempts - 1 for r in results),
        "deliveries poisoned": len(poisoned),
        "chunks recovered by the fallback": len(recovered),
        "local Metaflow runs": len(executor.executions) + 1,
    }
    print("\nfault injection, N =", N)
    for key, value in numbers.items():
        print(f"  {key:<45} {value}")

    # ---------------------------------------------------------------- what must hold
    # Faults really happened, of every kind, at about the rate asked for.
    assert set(injected) == set(FAULT_LABELS.values()) or N < 30
    assert abs(sum(injected.values()) / consumed - FAILURE_RATE) <= 0.1 or consumed < 20
    # The outage poisoned deliveries; the host tried each one `threshold` times first.
    assert len(during_outage.poisoned) == OUTAGE_DELIVERIES
    assert during_outage.invocations == OUTAGE_DELIVERIES * threshold
    # Every workflow ran, successfully (the bad chunk fails inside the run, not the run itself).
    assert sorted(e.workflow_name for e in executor.executions) == sorted(created)
    assert all(e.run.successful for e in executor.executions), [e.run.message for e in executor.executions]

    # No chunk version executed twice — across event runs and the fallback.
    executed = Counter(
        (name, normalize_etag(etag)) for e in executor.executions for name, etag in e.chunk_etags.items()
    )
    executed.update((name, normalize_etag(etag)) for name, etag in recovered.items())
    assert max(executed.values()) == 1, [k for k, v in executed.items() if v > 1]
    assert set(executed) == set(etags.items())  # ... and every one executed once

    # The fallback took exactly the chunks for which no workflow was created.
    submitted_chunks = {c for e in executor.executions for c in e.params["chunks"]}
    assert set(recovered) == set(etags) - submitted_chunks
    assert {name for name, _ in poisoned} - submitted_chunks <= set(recovered)

    # Every chunk has exactly one up-to-date record: a result, or (the bad one) an error record.
    records: dict[str, dict[str, Any]] = {}
    for blob in service.get_container_client(e2e_env["SENSOR_RESULTS_CONTAINER"]).list_blobs(include=["metadata"]):
        parsed = chunk_of_record(blob.name)
        assert parsed is not None, f"unexpected blob {blob.name!r} in the results container"
        records[blob.name] = dict(blob.metadata)
    good = [c.name for c in chunks if not c.bad]
    assert set(records) == {result_blob_name(n) for n in good} | {error_blob_name(bad)}
    for name in good:
        assert normalize_etag(records[result_blob_name(name)][META_CHUNK_ETAG]) == etags[name]
    assert normalize_etag(records[error_blob_name(bad)][META_CHUNK_ETAG]) == etags[bad]
    assert sum(n.endswith(RESULT_SUFFIX) for n in records) == N and sum(n.endswith(ERROR_SUFFIX) for n in records) == 1
