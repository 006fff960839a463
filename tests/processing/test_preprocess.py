"""preprocess: hand-computed cases, np.interp as reference, streaming blocks, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.bench_processing import reference_preprocess
from processing import readers, resample
from processing.features import ChunkError, ProcessingSettings, preprocess
from tests.processing.helpers import csv_bytes, irregular, non_seekable, npy_bytes

# Small enough that hand-computed chunks pass the length checks.
TINY = ProcessingSettings(fs=2.0, nperseg=8, max_lag=1, max_gap=1.0)


def csv(text: str) -> bytes:
    return ("timestamp,value\n" + text.strip() + "\n").encode()


def test_hand_computed_linear_interpolation() -> None:
    # Samples at t = 0, 1, 4 (values 0, 10, 40); grid 0, 0.5, …, 4.0 at fs = 2 Hz.
    pre = preprocess(csv("0,0\n1,10\n4,40"), TINY, name="a.csv")
    np.testing.assert_allclose(pre.values, [0, 5, 10, 15, 20, 25, 30, 35, 40], rtol=0, atol=1e-12)
    assert (pre.t0, pre.t_end, pre.fs, pre.n_raw, pre.n_dropped) == (0.0, 4.0, 2.0, 3, 0)
    # One gap longer than 1 s: (1, 4); grid points strictly inside: 1.5 … 3.5 → 5 of 9.
    assert pre.gap_fraction == pytest.approx(5 / 9, abs=1e-15)


def test_hand_computed_grid_stops_at_the_last_sample() -> None:
    # t_last - t0 = 3.7 s at 2 Hz: k = 0 … floor(7.4) = 7, last grid point 3.5 s.
    pre = preprocess(csv("10,1\n10.9,1\n11.8,1\n12.7,2\n13.7,2"), TINY, name="a.csv")
    assert pre.values.shape == (8,)
    assert (pre.t0, pre.t_end) == (10.0, 13.5)
    assert pre.gap_fraction == 0.0


def test_non_finite_rows_are_dropped_and_counted() -> None:
    pre = preprocess(csv("0,0\nnan,5\n1,nan\n2,inf\n-inf,1\n4,40\n8,80"), TINY, name="a.csv")
    assert (pre.n_raw, pre.n_dropped) == (7, 4)
    np.testing.assert_allclose(pre.values, np.arange(17) * 5.0, rtol=0, atol=1e-12)


def test_duplicates_are_averaged_and_unsorted_rows_sorted() -> None:
    # Sorted: (0, 0), (1, 10), (1, 20) -> 15, (2, 0), (2, 2), (2, 4) -> 2, (4, 2)
    pre = preprocess(csv("2,0\n1,10\n0,0\n2,2\n4,2\n1,20\n2,4"), TINY, name="a.csv")
    np.testing.assert_allclose(pre.values, [0, 7.5, 15, 8.5, 2, 2, 2, 2, 2], rtol=0, atol=1e-12)
    assert pre.n_raw == 7 and pre.n_dropped == 0


def test_gap_points_on_a_sample_are_not_inside_the_gap() -> None:
    # Gap (0, 2] longer than max_gap=1: grid 0.5, 1.0, 1.5 inside; 0 and 2 are samples.
    pre = preprocess(csv("0,0\n2,2\n2.5,2\n3,3\n4,4"), TINY, name="a.csv")
    assert pre.gap_fraction == pytest.approx(3 / 9, abs=1e-15)


def test_all_timestamps_equal() -> None:
    with pytest.raises(ChunkError, match="all 3 finite rows have the same timestamp") as info:
        preprocess(csv("5,1\n5,2\n5,3"), TINY, name="same.csv")
    assert info.value.source == "same.csv"


def test_no_finite_rows() -> None:
    with pytest.raises(ChunkError, match="no finite rows: all 2 rows"):
        preprocess(csv("nan,1\n1,inf"), TINY, name="a.csv")


def test_fewer_samples_than_nperseg_is_an_error_naming_nperseg() -> None:
    with pytest.raises(ChunkError, match=r"only 3 samples after resampling at fs=2 Hz, fewer than nperseg=8") as info:
        preprocess(csv("0,0\n1,1"), TINY, name="short.csv")
    assert str(info.value).startswith("short.csv: ")


def test_max_lag_not_below_the_length_is_an_error_naming_max_lag() -> None:
    with pytest.raises(ChunkError, match="max_lag=9 must be smaller than the 9 resampled samples"):
        preprocess(csv("0,0\n4,1"), ProcessingSettings(fs=2.0, nperseg=8, max_lag=9), name="a.csv")


def test_timestamps_outside_datetime_range() -> None:
    with pytest.raises(ChunkError, match="outside years 1-9999"):
        preprocess(csv("1e12,0\n1.0000001e12,1"), ProcessingSettings(fs=1.0, nperseg=8, max_lag=1), name="a.csv")


@pytest.mark.parametrize("fs", [100.0, 37.3, 250.0])
def test_matches_np_interp_reference_on_irregular_data(fs: float) -> None:
    t, v = irregular(20_000, seed=int(fs))
    t[::97] = t[1::97][: t[::97].shape[0]]  # exact duplicate timestamps
    v[5::1013] = np.nan
    settings = ProcessingSettings(fs=fs, max_gap=0.012)
    pre = preprocess(npy_bytes(np.column_stack((t, v))), settings, name="a.npy")
    x, t0, n_dropped, gap_fraction = reference_preprocess(t, v, fs, 0.012)
    assert pre.t0 == t0 and pre.n_dropped == n_dropped and pre.n_raw == t.shape[0]
    assert pre.values.shape == x.shape
    np.testing.assert_allclose(pre.values, x, rtol=1e-12, atol=1e-12)
    assert pre.gap_fraction == pytest.approx(gap_fraction, rel=1e-12)
    assert 0.0 < pre.gap_fraction < 1.0
    assert pre.t_end == pytest.approx(t0 + (x.shape[0] - 1) / fs, abs=1e-6)


def test_tiny_blocks_give_the_same_result_as_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    t, v = irregular(5_000, seed=7)
    t = np.repeat(t, 3)[:5_000]  # runs of duplicates that straddle block boundaries
    v[::50] = np.nan
    data = npy_bytes(np.column_stack((t, v)))
    settings = ProcessingSettings(fs=150.0, max_gap=0.02)
    whole = preprocess(data, settings, name="a.npy")
    monkeypatch.setattr(readers, "_NPY_BLOCK_ROWS", 4)
    monkeypatch.setattr(resample, "MAX_OUT_BLOCK", 3)
    small = preprocess(data, settings, name="a.npy")
    # Duplicate sums split across blocks add in another order: equal to rounding, not bitwise.
    np.testing.assert_allclose(small.values, whole.values, rtol=1e-15, atol=0)
    assert (small.gap_fraction, small.n_dropped, small.t_end) == (whole.gap_fraction, whole.n_dropped, whole.t_end)
    x, *_ = reference_preprocess(t, v, 150.0, 0.02)
    np.testing.assert_allclose(whole.values, x, rtol=1e-12, atol=1e-12)


def test_sparse_samples_on_a_dense_grid_are_emitted_in_bounded_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    # 1 sample per 10 s resampled at 100 Hz: 1000 grid points per interval, emitted 64 at a time.
    monkeypatch.setattr(resample, "MAX_OUT_BLOCK", 64)
    t = np.arange(30) * 10.0
    v = np.cos(t)
    pre = preprocess(npy_bytes(np.column_stack((t, v))), ProcessingSettings(max_gap=20.0), name="a.npy")
    grid = np.arange(29 * 1000 + 1) / 100.0
    np.testing.assert_allclose(pre.values, np.interp(grid, t, v), rtol=0, atol=1e-13)


def test_unsorted_chunk_is_sorted_for_every_source_kind() -> None:
    t, v = irregular(3_000, seed=11)
    order = np.random.default_rng(0).permutation(t.shape[0])
    sorted_pre = preprocess(npy_bytes(np.column_stack((t, v))), name="a.npy")
    for source in (npy_bytes(np.column_stack((t[order], v[order]))), non_seekable(csv_bytes(t[order], v[order]))):
        pre = preprocess(source, name="u.npy" if isinstance(source, bytes) else "u.csv")
        np.testing.assert_allclose(pre.values, sorted_pre.values, rtol=1e-12, atol=1e-12)
        assert pre.n_raw == t.shape[0]


def test_unsorted_late_in_the_stream_restarts_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "_NPY_BLOCK_ROWS", 100)
    t, v = irregular(2_000, seed=5)
    t[1500], t[1501] = t[1501], t[1500]
    v[1500], v[1501] = v[1501], v[1500]
    pre = preprocess(npy_bytes(np.column_stack((t, v))), name="a.npy")
    x, *_ = reference_preprocess(t, v, 100.0, 1.0)
    np.testing.assert_allclose(pre.values, x, rtol=1e-12, atol=1e-12)


def test_grid_count_uses_exact_comparison() -> None:
    # 4.1 s at 100 Hz is 410 steps, but (4.1 - 0) * 100 evaluates to 409.99999999999994: the grid
    # point 0 + 410 / 100 == 4.1 exactly is kept (it is the last sample, value 41).
    assert math.floor(4.1 * 100.0) == 409 and 410 / 100.0 == 4.1
    pre = preprocess(
        csv("0,0\n1,10\n2,20\n3,30\n4.1,41"), ProcessingSettings(fs=100.0, nperseg=8, max_lag=1), name="a.csv"
    )
    assert pre.values.shape == (411,)
    assert pre.values[-1] == 41.0 and pre.t_end == 4.1
    np.testing.assert_allclose(pre.values[:401], np.arange(401) / 10.0, rtol=0, atol=1e-12)


def test_millisecond_timestamps_fail_early_naming_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    # Epoch milliseconds (1.7e12) read as seconds are year ~55 000: refused at the first block,
    # before a grid spanning millennia is built.
    monkeypatch.setattr(readers, "_NPY_BLOCK_ROWS", 2)
    t = 1.7e12 + np.arange(10) * 10.0
    with pytest.raises(ChunkError, match=r"a\.npy: timestamp 1700000000000\.0 is outside years 1-9999"):
        preprocess(npy_bytes(np.column_stack((t, t))), name="a.npy")


@pytest.mark.parametrize("nan_every", [3, 997])
def test_many_and_few_dropped_rows_per_block_give_the_reference(
    nan_every: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Few non-finite rows in a block are cut out by slices, many by a mask: both must agree.
    monkeypatch.setattr(readers, "_NPY_BLOCK_ROWS", 5_000)
    t, v = irregular(40_000, seed=nan_every)
    v[::nan_every] = np.nan
    t[5 :: nan_every * 2] = -np.inf
    pre = preprocess(npy_bytes(np.column_stack((t, v))), name="a.npy")
    x, t0, n_dropped, gap_fraction = reference_preprocess(t, v, 100.0, 1.0)
    assert pre.n_dropped == n_dropped and pre.t0 == t0
    np.testing.assert_allclose(pre.values, x, rtol=0, atol=1e-13)
    assert pre.gap_fraction == pytest.approx(gap_fraction, rel=1e-12)


def test_duplicate_blocks_between_strictly_increasing_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Blocks without duplicates take the fast path, blocks with them the general one; the
    # carried samples must pass between the two in both directions.
    monkeypatch.setattr(readers, "_NPY_BLOCK_ROWS", 1_000)
    t, v = irregular(12_000, seed=9)
    for lo in (2_000, 5_999, 9_000):  # duplicates inside a block and across a block boundary
        t[lo + 1 : lo + 4] = t[lo]
    pre = preprocess(npy_bytes(np.column_stack((t, v))), name="a.npy")
    x, *_ = reference_preprocess(t, v, 100.0, 1.0)
    np.testing.assert_allclose(pre.values, x, rtol=0, atol=1e-12)
