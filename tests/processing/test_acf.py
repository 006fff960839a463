"""autocorrelation against the direct formula, known answers, block feeding, drift."""

from __future__ import annotations

import numpy as np
import pytest

from processing.acf import LagAccumulator
from processing.features import autocorrelation


def direct(x: np.ndarray, max_lag: int) -> list[float]:
    """The issue's formula, written out: r_k = Σ d_t d_(t+k) / Σ d_t², d = x - mean(x)."""
    d = x - x.mean()
    den = float(np.dot(d, d))
    return [float(np.dot(d[: d.shape[0] - k], d[k:])) / den for k in range(1, max_lag + 1)]


@pytest.mark.parametrize(
    ("n", "max_lag"),
    [
        (10, 1),
        (10, 9),
        (31, 30),
        (100, 5),
        (1_000, 31),
        (1_000, 32),
        (1_000, 33),
        (70_000, 64),
        (5_000, 200),
        (300_001, 64),
    ],
)
def test_matches_the_direct_formula(n: int, max_lag: int) -> None:
    rng = np.random.default_rng(n + max_lag)
    x = np.cumsum(rng.normal(size=n)) + 5.0  # a random walk: strongly correlated
    np.testing.assert_allclose(autocorrelation(x, max_lag), direct(x, max_lag), rtol=0, atol=1e-9)


def test_drift_on_a_large_offset_stays_within_1e9() -> None:
    # Values 1e6 with a slow drift and small noise: one provisional offset would cancel badly.
    rng = np.random.default_rng(4)
    n = 600_000
    x = 1e6 + 50.0 * np.linspace(0, 1, n) ** 2 + rng.normal(0, 1e-3, n)
    np.testing.assert_allclose(autocorrelation(x, 64), direct(x, 64), rtol=0, atol=1e-9)


def test_known_answer_alternating_series() -> None:
    # x = +1, -1, …: mean 0 (n even), r_k = (-1)^k (n - k) / n.
    n = 1_000
    x = np.where(np.arange(n) % 2, -1.0, 1.0)
    expected = [(-1) ** k * (n - k) / n for k in range(1, 11)]
    np.testing.assert_allclose(autocorrelation(x, 10), expected, rtol=0, atol=1e-12)


def test_known_answer_short_hand_computed() -> None:
    # x = 1, 2, 3, 4: d = -1.5, -0.5, 0.5, 1.5; Σd² = 5; r1 = (0.75 - 0.25 + 0.75) / 5 = 0.25,
    # r2 = (-0.75 - 0.75) / 5 = -0.3, r3 = -2.25 / 5 = -0.45.
    np.testing.assert_allclose(
        autocorrelation(np.array([1.0, 2.0, 3.0, 4.0]), 3), [0.25, -0.3, -0.45], rtol=0, atol=1e-15
    )


def test_constant_series_gives_zeros() -> None:
    assert autocorrelation(np.full(100, 0.1), 5) == [0.0] * 5


def test_feeding_in_blocks_of_any_size_agrees() -> None:
    rng = np.random.default_rng(8)
    x = np.cumsum(rng.normal(size=20_000))
    acc = LagAccumulator(40)
    for part in np.split(x, np.sort(rng.integers(0, x.shape[0], 300))):
        acc.feed(part)
    np.testing.assert_allclose(acc.result(), direct(x, 40), rtol=0, atol=1e-9)
    mean, sum_sq = acc.finish()
    assert mean == pytest.approx(x.mean(), rel=1e-12)
    assert sum_sq == pytest.approx(float(((x - x.mean()) ** 2).sum()), rel=1e-10)


@pytest.mark.parametrize("max_lag", [0, 10, 11, -1, 2.0, True])
def test_invalid_max_lag_raises_naming_it(max_lag: object) -> None:
    with pytest.raises(ValueError, match=r"^max_lag must be an integer >= 1 and smaller than the series length 10"):
        autocorrelation(np.arange(10.0), max_lag)  # type: ignore[arg-type]


@pytest.mark.parametrize("max_lag", [1, 7, 63, 64, 65, 100, 300])
def test_chunk_boundaries_and_block_sizes_for_many_lags(max_lag: int) -> None:
    # The FFT chunks (1024+ samples), the wrap-around and cross-chunk corrections and the direct
    # tail sums all meet here: blocks of odd sizes below, at and far above one chunk.
    rng = np.random.default_rng(max_lag)
    x = np.cumsum(rng.normal(size=23_457)) + 3.0 * np.sin(np.arange(23_457) / 7.0)
    acc = LagAccumulator(max_lag)
    start = 0
    for size in [1, 2, max_lag, 1023, 1024, 1025, 5000, 3, 9_000, 777]:
        acc.feed(x[start : start + size])
        start += size
    acc.feed(x[start:])
    np.testing.assert_allclose(acc.result(), direct(x, max_lag), rtol=0, atol=1e-9)
    assert acc.count == x.shape[0]


@pytest.mark.parametrize("n", [1_023, 1_024, 1_025, 2_048, 4_095, 4_097])
def test_series_lengths_around_whole_chunks(n: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.normal(size=n) + np.linspace(0.0, 5.0, n)
    np.testing.assert_allclose(autocorrelation(x, 64), direct(x, 64), rtol=0, atol=1e-12)
