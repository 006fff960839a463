"""The card: what a user sees per chunk (signal or its envelope, band powers, autocorrelation), bounded per batch."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pytest
from card_selection import WorstChunks, badness
from flow_card import chunk_figure, render_card

from processing.envelope import Envelope, EnvelopeAccumulator
from processing.features import ChunkSummary


def _envelope(values: np.ndarray, max_bins: int = 1000) -> Envelope:
    acc = EnvelopeAccumulator(max_bins)
    for block in np.array_split(values, 7):
        acc.feed(block)
    return acc.result()


def test_short_signal_is_plotted_whole() -> None:
    values = np.sin(np.arange(500) / 10)
    fig = chunk_figure("s/a.csv", _envelope(values), 100.0, 50.0, [1, 2, 4], [0.5, 0.25], [0.9, 0.5, 0.1])
    sig, band, acf = fig.axes
    (line,) = sig.get_lines()
    np.testing.assert_array_equal(line.get_ydata(), values)
    # Seconds since the chunk's start, which the axis label names (no 1.8e9 offset on the axis).
    np.testing.assert_allclose(line.get_xdata()[[0, -1]], [0.0, 499 / 50.0])
    assert sig.get_xlabel() == "seconds since 1970-01-01T00:01:40Z"
    assert [p.get_height() for p in band.patches] == [0.5, 0.25]
    assert [t.get_text() for t in band.get_xticklabels()] == ["1-2", "2-4"]
    np.testing.assert_allclose(acf.get_lines()[0].get_ydata(), [0.9, 0.5, 0.1])
    assert fig.texts[0].get_text() == "s/a.csv"
    plt.close(fig)


def test_long_signal_is_shown_as_an_envelope_that_keeps_spikes() -> None:
    values = np.random.default_rng(0).normal(size=100_000)
    values[77_777] = 99.0
    values[1_234] = -80.0
    fig = chunk_figure("s/long.csv", _envelope(values), 0.0, 100.0, None, [1.0, 2.0], [0.1])
    sig = fig.axes[0]
    assert sig.get_lines() == [] and len(sig.collections) == 1  # fill_between, not 100k points
    ys = sig.collections[0].get_paths()[0].vertices[:, 1]
    assert ys.max() == 99.0 and ys.min() == -80.0
    assert "min/max per 64 samples (100000 samples)" in sig.get_title()
    plt.close(fig)


class _Card:
    def __init__(self) -> None:
        self.parts: list[Any] = []

    def append(self, part: Any) -> None:
        self.parts.append(part)


def _summary(name: str, gap: float) -> ChunkSummary:
    return ChunkSummary(name, 1.8e9, 1.8e9 + 99, 10.0, 1000, 0, 1000, gap, 0.0, 1.0, -2.0, 2.0)


def test_a_200_chunk_batch_lists_all_and_plots_the_worst_few_first() -> None:
    from metaflow.cards import Image, Table

    names = [f"s{i % 7}/chunk-{i:03d}.csv" for i in range(200)]
    gaps = {name: (i * 37 % 200) / 400 for i, name in enumerate(names)}
    worst = WorstChunks(5)
    env = _envelope(np.sin(np.arange(1000) / 5.0))
    for name in names:
        worst.offer(name, badness(gap_fraction=gaps[name], n_dropped=0, n_raw=1000), env)
    envelopes = worst.worst_first()
    card = _Card()
    render_card(
        card,
        summary={"mode": "event", "processed": 200, "latency_s": {"count": 200, "p50": 12.0, "p95": 40.5}},
        summaries={name: _summary(name, gaps[name]) for name in names},
        envelopes=envelopes,
        bands={name: ([1.0, 2.0, 4.0], [0.5, 0.25]) for name in names},
        acfs={name: [0.5, 0.2] for name in names},
        failures={"bad/x.csv": {"step": "preprocess", "reason": "line 3: not a number", "etag": '"1"'}},
        max_plotted=5,
        skipped={"old/y.csv": {"status": "processed", "run_pathspec": "F/1", "reason": None}},
    )
    (table,) = [p for p in card.parts if isinstance(p, Table)]
    rows = table._data  # metaflow 2.19 keeps a Table's rows here
    assert len(rows) == 202
    images = [p for p in card.parts if isinstance(p, Image)]
    assert len(images) == 5
    expected = sorted(names, key=lambda n: gaps[n], reverse=True)[:5]
    assert list(envelopes) == expected
    texts = " ".join(str(getattr(p, "_text", "")) for p in card.parts)
    assert "195 more processed chunk(s) not plotted" in texts
    assert "p95 40.5 s" in texts


def test_worst_chunks_keeps_the_limit_and_breaks_ties_by_arrival() -> None:
    worst = WorstChunks(2)
    for name, score in [("a", 0.1), ("b", 0.5), ("c", 0.5), ("d", 0.0), ("e", 0.9)]:
        worst.offer(name, score, name.upper())
    assert worst.worst_first() == {"e": "E", "b": "B"}
    none = WorstChunks(0)
    none.offer("a", 1.0, None)
    assert none.worst_first() == {}
    with pytest.raises(ValueError, match="limit must be an integer >= 0"):
        WorstChunks(-1)


def test_badness_counts_gaps_and_dropped_rows() -> None:
    assert badness(gap_fraction=0.25, n_dropped=50, n_raw=200) == pytest.approx(0.5)
    assert badness(gap_fraction=0.0, n_dropped=0, n_raw=0) == 0.0
