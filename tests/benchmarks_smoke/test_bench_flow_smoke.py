"""Smoke test of ``benchmarks/bench_flow.py`` on a tiny chunk and batch: structure only, never speed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import bench_flow

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # ~30 s; a loaded shared machine stretches it


def test_bench_flow_measures_every_step_and_matches_the_cli(tmp_path: Path) -> None:
    assert bench_flow.main(["--sizes", "20000", "--batches", "3", "--dir", str(tmp_path), "--options"]) == 0
    report = json.loads((tmp_path / "flow.json").read_text())
    (size,) = report["sizes"].values()
    assert size["result_equals_cli"] is True
    assert set(size["steps"]) == set(bench_flow.STEPS)  # every task process was seen and labelled
    for step in size["steps"].values():
        assert 30 < step["peak_mib"] < 2000 and step["wall_s"] > 0
    assert size["artifact_bytes"] > 0 and size["card_bytes"] > 0 and size["download_s"] > 0 and size["cli_s"] > 0
    (batch,) = report["batches"].values()
    assert batch["per_chunk_s"] == pytest.approx(batch["wall_s"] / 3)
    assert set(report["options"]) >= {"all_accumulators", "resample_envelope", "resample_welch", "resample_lags"}


def test_the_step_of_a_metaflow_task_command_line() -> None:
    assert (
        bench_flow._step_of(["python", "flows/f.py", "--quiet", "step", "filter_bank", "--run-id", "7"])
        == "filter_bank"
    )
    assert bench_flow._step_of(["python", "-m", "processing", "x.npy"]) is None
