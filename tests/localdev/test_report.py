"""The demo's table: dominant band, lag-1 autocorrelation, status text."""

from __future__ import annotations

import pytest

from localdev.report import ResultRow, dominant_band, format_table, result_row

RECORD = {
    "sensor_id": "sensor-002",
    "n_raw": 5901,
    "band_edges": [0.1, 1.0, 10.0, 50.0],
    "band_powers": [0.2, 3.0, 0.5],
    "acf": [0.72, 0.4],
}


def test_dominant_band_and_its_rule() -> None:
    assert dominant_band([0.1, 1.0, 10.0, 50.0], [0.2, 3.0, 0.5]) == "1.00-10.00 Hz"
    with pytest.raises(ValueError, match="n band powers and n\\+1 edges"):
        dominant_band([0.1, 1.0], [1.0, 2.0])


def test_rows_for_processed_and_failed_chunks() -> None:
    ok = result_row({"chunk": "sensor-002/a.csv", "status": "processed", "run_id": "F/1"}, RECORD)
    assert ok == ResultRow("sensor-002/a.csv", "sensor-002", "5901", "1.00-10.00 Hz", "+0.720", "processed", "F/1")
    bad = result_row({"chunk": "sensor-001/b.csv", "status": "failed", "reason": "x" * 100}, None)
    assert bad.sensor == "sensor-001" and bad.samples == "-" and bad.status == "failed: " + "x" * 57 + "..."


def test_table_aligns_columns() -> None:
    rows = [
        result_row({"chunk": "s/a.csv", "status": "pending"}, None),
        result_row({"chunk": "s/long-name.csv", "status": "processed"}, RECORD),
    ]
    lines = format_table(rows).splitlines()
    assert lines[0].startswith("chunk") and set(lines[1]) <= {"-", " "}
    assert len(lines) == 4
    assert [line.index("pending" if "pending" in line else "processed") for line in lines[2:]] == [
        lines[0].index("status")
    ] * 2
