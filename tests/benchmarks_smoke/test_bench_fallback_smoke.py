"""Smoke test of ``benchmarks/bench_fallback.py`` at a tiny size: structure and correctness, never speed."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from benchmarks import bench_fallback

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # ~10 s; a loaded shared machine stretches it


def test_bench_fallback_seeds_history_and_the_sweep_cost_does_not_follow_it(tmp_path: Path) -> None:
    out = tmp_path / "fallback.json"
    argv = ["--sizes", "40,400", "--sensors", "4", "--in-window", "12", "--repeat", "1", "--json", str(out)]
    assert bench_fallback.main(argv) == 0
    result = json.loads(out.read_text())
    assert list(result["sizes"]) == ["40", "400"]
    for size, m in result["sizes"].items():
        (run,) = m["layout"]["runs"]
        # 1 discovery + (4 sensors x 3 days) chunk listings + the same in the results container.
        assert run["requests"] == {"list-delimiter": 1, "list": 24} and run["list_pages"] == 25
        assert run["sensors"] == 4 and run["prefixes"] == 12
        assert run["chunks_listed"] == 12 and run["records_listed"] == 0
        assert run["taken"] == 12 and run["plan_is_the_window"] and not run["warning"]
        full = m["full"]
        # The seeded history (chunks + records) and the two templates are all listed in full mode.
        assert full["chunks_listed"] == int(size) + 12 + 1 and full["records_listed"] == int(size) + 1
        assert full["plan_is_the_window"] and full["requests"] == {"list": 2}
        assert m["floor_ms"] > 0
    summary = result["summary"]
    assert summary["requests_flat"] and summary["layout_requests"] == 25 and summary["plans_correct"]
    assert {"layout_ratio", "layout_flat", "full_ratio", "floor_ratio", "per_request_ms"} <= summary.keys()


def test_history_is_outside_the_window_and_in_window_chunks_inside() -> None:
    bench_fallback._flows_on_path()
    assert str(bench_fallback.FLOWS) in sys.path
    from chunk_layout import parse_layout

    layout = parse_layout(bench_fallback.DEFAULT_LAYOUT)
    now = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)
    fleet = bench_fallback.Fleet(layout, 3, now)
    first_slot = layout.time_slots(now - bench_fallback.LOOKBACK, now)[0]
    history = fleet.history(0, 300)
    assert len({n for n, _ in history}) == 300 and all(when < first_slot for _, when in history)
    window = fleet.in_window(10)
    assert all(now - timedelta(hours=48) <= when <= now for _, when in window)
    assert {n.split("/")[0] for n, _ in window} == {"sensor-000", "sensor-001", "sensor-002"}
