"""The card's figures: what a user sees per chunk (signal or its envelope, band powers, autocorrelation)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from flow_card import MAX_SIGNAL_POINTS, chunk_figure, envelope


def test_envelope_keeps_every_spike() -> None:
    values = np.zeros(10_000)
    values[1234] = 50.0
    values[8765] = -40.0
    starts, lo, hi = envelope(values, 100)
    assert len(starts) == 100 and hi.max() == 50.0 and lo.min() == -40.0
    assert hi[12] == 50.0 and lo[87] == -40.0  # in the bin that holds the sample


def test_short_signal_is_plotted_whole() -> None:
    values = np.sin(np.arange(500) / 10)
    fig = chunk_figure("s/a.csv", values, 100.0, 50.0, [1, 2, 4], [0.5, 0.25], [0.9, 0.5, 0.1])
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


def test_long_signal_is_shown_as_an_envelope() -> None:
    values = np.random.default_rng(0).normal(size=50 * MAX_SIGNAL_POINTS)
    values[77_777] = 99.0
    fig = chunk_figure("s/long.csv", values, 0.0, 100.0, None, [1.0, 2.0], [0.1])
    sig = fig.axes[0]
    assert sig.get_lines() == [] and len(sig.collections) == 1  # fill_between, not 100k points
    assert sig.collections[0].get_paths()[0].vertices[:, 1].max() == 99.0
    assert "min/max per" in sig.get_title()
    plt.close(fig)
