"""The demo's results table (pure): one row per chunk from its status and feature record."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ResultRow", "dominant_band", "format_table", "result_row"]


@dataclass(frozen=True)
class ResultRow:
    """What the demo prints for one chunk."""

    chunk: str
    sensor: str
    samples: str
    dominant_band: str
    lag1: str
    status: str
    run: str


def dominant_band(band_edges: Sequence[float], band_powers: Sequence[float]) -> str:
    """``"lo-hi Hz"`` of the band with the largest power.

    >>> dominant_band([0.1, 1.0, 10.0], [0.5, 2.0])
    '1.00-10.00 Hz'
    """
    if not band_powers or len(band_edges) != len(band_powers) + 1:
        raise ValueError(f"need n band powers and n+1 edges, got {len(band_powers)} powers and {len(band_edges)} edges")
    i = max(range(len(band_powers)), key=lambda k: band_powers[k])
    return f"{band_edges[i]:.2f}-{band_edges[i + 1]:.2f} Hz"


def result_row(status: Mapping[str, Any], record: Mapping[str, Any] | None) -> ResultRow:
    """One table row from a status answer (``ChunkStatus.as_dict()``) and the result record, if any."""
    chunk = str(status["chunk"])
    text = str(status["status"])
    if status.get("status") == "failed" and status.get("reason"):
        reason = str(status["reason"])
        text += ": " + (reason if len(reason) <= 60 else reason[:57] + "...")
    if record is None:
        return ResultRow(chunk, chunk.split("/", 1)[0], "-", "-", "-", text, str(status.get("run_id") or "-"))
    acf = record.get("acf") or []
    return ResultRow(
        chunk=chunk,
        sensor=str(record.get("sensor_id", chunk.split("/", 1)[0])),
        samples=str(record.get("n_raw", "-")),
        dominant_band=dominant_band(record["band_edges"], record["band_powers"]),
        lag1=f"{acf[0]:+.3f}" if acf else "-",
        status=text,
        run=str(status.get("run_id") or "-"),
    )


_HEADERS = ("chunk", "sensor", "samples", "dominant band", "lag-1 acf", "status", "run")


def format_table(rows: Iterable[ResultRow]) -> str:
    """A plain fixed-width table (what a terminal and a CI log both show well)."""
    cells = [_HEADERS] + [(r.chunk, r.sensor, r.samples, r.dominant_band, r.lag1, r.status, r.run) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(_HEADERS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
