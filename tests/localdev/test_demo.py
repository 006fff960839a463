"""The main job runs end to end (small): Azurite up and down, table, status answer, cards."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from localdev import demo

pytestmark = pytest.mark.slow


def test_demo_runs_end_to_end_and_cleans_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in (
        "SENSOR_STORAGE",
        "SENSOR_CONTAINER",
        "SUBMIT_BACKEND",
        "SENSOR_RESULTS_CONTAINER",
        "SENSOR_FALLBACK_GRACE_SECONDS",
    ):
        monkeypatch.delenv(key, raising=False)  # the demo sets them itself; monkeypatch restores them
    for key in ("METAFLOW_DATASTORE_SYSROOT_LOCAL", "METAFLOW_CARD_LOCALROOT", "METAFLOW_USER", "USERNAME"):
        monkeypatch.delenv(key, raising=False)
    started = []
    from localdev import azurite as azurite_module

    original = azurite_module.Azurite.start

    def spying_start(self: azurite_module.Azurite) -> azurite_module.Azurite:
        started.append(self)
        return original(self)

    monkeypatch.setattr(azurite_module.Azurite, "start", spying_start)
    code = demo.main(
        [
            "--sensors",
            "1",
            "--chunks-per-sensor",
            "1",
            "--seconds-per-chunk",
            "15",
            "--duplicates",
            "1",
            "--workdir",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    rows = [line for line in out.splitlines() if line.startswith("sensor-001/")]
    assert len(rows) == 2
    assert re.search(r"sensor-001\s+\d+\s+\d+\.\d\d-\d+\.\d\d Hz\s+[+-]\d\.\d{3}\s+processed", rows[0]), rows[0]
    assert "failed: " in rows[1] and "ERR#42" in rows[1]
    # Coalescing: both chunk versions in one batch workflow, the duplicate messages merged, and a
    # late redelivery suppressed by the ledger without a new workflow.
    assert re.search(r"4 deliveries -> 2 chunk versions in 1 workflow\(s\) \(batch-2-[0-9a-f]{20}\)", out), out
    assert "1 duplicate suppressed by the ledger, 0 new workflow(s)" in out
    assert '"status": "failed"' in out  # the GET /api/chunks answer for the bad chunk
    assert '"state": "failed"' in out and '"path": "blob"' in out  # ... with its claim from the ledger
    cards = [line for line in out.splitlines() if line.strip().endswith(".html") and "health" not in line]
    assert len(cards) == 1 and all(Path(c.split(": ", 1)[1]).exists() for c in cards)
    # The fleet health page, from the demo's own ledger and results: one sensor, one processed, one failed.
    (health_line,) = [line for line in out.splitlines() if line.startswith("Fleet health page")]
    page = Path(health_line.split(": ", 1)[1]).read_text()
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64," in page and "sensor-001" in page
    assert "status: attention" in out and "failed" in out.split("status: attention", 1)[1].splitlines()[0]
    assert len(started) == 1 and started[0]._proc is None  # Azurite stopped
