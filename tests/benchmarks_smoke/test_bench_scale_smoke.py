"""Smoke test of ``benchmarks/bench_scale.py`` with a tiny fleet: structure only, never speed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import bench_scale

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # ~12 s; a loaded shared machine stretches it

K = 2


def test_bench_scale_runs_and_accounts_for_every_event(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    argv = [
        "--sensors", "50", "--rate", "40", "--seconds", "2", "--interval", "1", "--run-seconds", "0.5",
        "--max-in-flight", str(K), "--max-chunks", "10", "--producer-threads", "2",
        "--immediate-seconds", "1", "--immediate-threads", "4", "--quiet", "--json", str(out),
    ]  # fmt: skip
    assert bench_scale.main(argv) == 0
    result = json.loads(out.read_text())
    print("phase seconds:", result["phase_seconds"])  # shown with -s or on failure: where a slow run went

    c = result["coalesce"]
    sent = c["producer"]["sent"]
    assert sent == c["events_planned"] == 80
    assert c["drained_all"] and c["accounted"] == sent
    assert c["chunks_in_workflows"] == sent
    assert c["produced_chunks_missing_from_workflows"] == 0
    assert c["chunks_submitted_twice"] == 0
    assert c["visible_left_in_queue"] == 0 and c["poison_queue_depth"] == 0
    assert 0 < c["max_in_flight"] <= K
    assert max(c["batch_sizes"]["max"], 1) <= 10
    assert c["latency_s"]["count"] == sent and c["latency_s"]["p95"] is not None
    for key in ("workflows_per_1000_chunks", "cpu_ms_per_event", "cores_at_rate", "storage_requests_per_event_total"):
        assert isinstance(c[key], int | float), key
    assert c["storage_requests_per_event"]["queue"] > 0 and c["storage_requests_per_event"]["table"] > 0
    assert not c["tick_errors"]

    i = result["immediate"]
    assert i["submitted"] == i["events"] == 40 and i["error_count"] == 0
    assert i["workflows"] == i["events"] and i["chunks_submitted_twice"] == 0
    assert i["workflows_per_1000_chunks"] == 1000
    assert i["latency_s"]["count"] == i["events"]
    assert i["storage_requests_per_event"]["table"] > 0
