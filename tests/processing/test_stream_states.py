"""The flow's O(1) states: streamed chunk summaries, Welch/lag states, the envelope, the numpy Hann window."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st

from processing.envelope import EnvelopeAccumulator
from processing.errors import ChunkError
from processing.features import (
    ProcessingSettings,
    autocorrelation,
    band_powers,
    extract_features,
    feature_record,
    preprocess,
    record_from_stream,
    stream_chunk,
)
from processing.welch import hann
from tests.processing.helpers import csv_bytes, irregular, npy_bytes

SETTINGS = ProcessingSettings(fs=50.0, nperseg=256, n_bands=6, max_lag=20, max_gap=1.0)


@pytest.mark.parametrize("n", [1, 2, 7, 8, 255, 256, 1000, 1024, 4097])
def test_hann_is_scipys_periodic_hann_bit_for_bit(n: int) -> None:
    assert np.array_equal(hann(n), scipy.signal.get_window("hann", n))


def test_hann_refuses_a_length_below_one() -> None:
    with pytest.raises(ValueError, match="window length must be >= 1"):
        hann(0)


def test_the_processing_core_does_not_import_scipy() -> None:
    # scipy is the tests' reference, not a run-time dependency: its import costs ~2 s per task.
    code = (
        "import sys; import processing.features, processing.cli; "
        "from processing.features import extract_features; "
        "print('scipy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _npy(n: int, seed: int = 0) -> bytes:
    t, v = irregular(n, seed=seed, rate=60.0)
    return npy_bytes(np.column_stack([t, v]))


def test_record_from_stream_is_extract_features_exactly() -> None:
    data = _npy(30_000)
    streamed = stream_chunk(data, SETTINGS, name="c.npy", envelope_bins=100)
    edges, powers = streamed.band_powers(SETTINGS)
    record = record_from_stream("s1/c.npy", streamed.summary, edges, powers, streamed.autocorrelation(), SETTINGS)
    assert record == extract_features(data, "s1/c.npy", SETTINGS, name="c.npy")


def test_streamed_states_match_the_in_memory_path() -> None:
    data = _npy(20_000, seed=3)
    pre = preprocess(data, SETTINGS, name="c.npy")
    reference = feature_record(
        "s1/c.npy", pre, *band_powers(pre.values, SETTINGS), autocorrelation(pre.values, SETTINGS.max_lag), SETTINGS
    )
    streamed = stream_chunk(data, SETTINGS, name="c.npy")
    record = record_from_stream(
        "s1/c.npy", streamed.summary, *streamed.band_powers(SETTINGS), streamed.autocorrelation(), SETTINGS
    )
    assert record.keys() == reference.keys()
    for key in ("n_raw", "n_dropped", "n_resampled", "t_start", "t_end", "chunk_name", "sensor_id"):
        assert record[key] == reference[key]
    for key in ("mean", "std", "min", "max", "gap_fraction"):
        assert record[key] == pytest.approx(reference[key], rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(record["band_powers"], reference["band_powers"], rtol=1e-9)
    np.testing.assert_allclose(record["acf"], reference["acf"], rtol=1e-9, atol=1e-12)


def test_the_states_do_not_grow_with_the_chunk() -> None:
    small = pickle.dumps(stream_chunk(_npy(5_000), SETTINGS, name="a.npy", envelope_bins=500))
    large = pickle.dumps(stream_chunk(_npy(400_000), SETTINGS, name="a.npy", envelope_bins=500))
    # Welch: nperseg bins; lags: max_lag sums; envelope: at most 2 x 500 bins. Not the 400k samples.
    assert len(large) < 40_000
    assert len(large) < 2 * len(small) + 20_000


def test_envelope_of_the_stream_matches_the_grid() -> None:
    data = _npy(50_000, seed=5)
    pre = preprocess(data, SETTINGS, name="c.npy")
    env = stream_chunk(data, SETTINGS, name="c.npy", envelope_bins=300).envelope
    assert env is not None
    assert env.count == len(pre.values)
    assert 300 <= len(env.lo) <= 600
    for i in (0, 1, len(env.lo) // 2, len(env.lo) - 1):
        part = pre.values[i * env.width : (i + 1) * env.width]
        assert env.lo[i] == part.min() and env.hi[i] == part.max()


def test_an_unsorted_chunk_above_the_row_limit_is_refused_with_the_rule() -> None:
    t, v = irregular(3_000, rate=60.0)
    t[[10, 11]] = t[[11, 10]]
    data = csv_bytes(t, v)
    with pytest.raises(ChunkError, match=r"c\.csv.*not in order.*more than 1000 rows"):
        stream_chunk(data, SETTINGS, name="c.csv", max_unsorted_rows=1000)
    ok = stream_chunk(data, SETTINGS, name="c.csv", max_unsorted_rows=3000)
    assert ok.summary.n_raw == 3000


def test_stream_chunk_validates_its_arguments() -> None:
    with pytest.raises(ValueError, match="envelope_bins"):
        stream_chunk(b"", SETTINGS, name="c.npy", envelope_bins=-1)
    with pytest.raises(ValueError, match="max_unsorted_rows"):
        stream_chunk(b"", SETTINGS, name="c.npy", max_unsorted_rows=-5)


def _reference_envelope(x: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    bins = [x[i : i + width] for i in range(0, len(x), width)]
    return np.array([b.min() for b in bins]), np.array([b.max() for b in bins])


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 3000),
    max_bins=st.integers(1, 64),
    cuts=st.lists(st.integers(0, 3000), max_size=12),
    seed=st.integers(0, 2**16),
)
def test_envelope_is_independent_of_the_blocking_and_bounded(n: int, max_bins: int, cuts: list[int], seed: int) -> None:
    x = np.random.default_rng(seed).normal(size=n)
    acc = EnvelopeAccumulator(max_bins)
    for block in np.split(x, sorted(c for c in cuts if c <= n)):
        acc.feed(block)
    env = acc.result()
    lo, hi = _reference_envelope(x, env.width)
    assert np.array_equal(env.lo, lo) and np.array_equal(env.hi, hi)
    assert env.count == n
    assert len(env.lo) <= 2 * max_bins
    if n > 2 * max_bins:
        assert len(env.lo) >= max_bins
    else:
        assert env.width == 1


@pytest.mark.parametrize("bad", [0, -3, 1.5, True, "10"])
def test_envelope_refuses_bad_bin_counts(bad: object) -> None:
    with pytest.raises(ValueError, match="max_bins must be an integer >= 1"):
        EnvelopeAccumulator(bad)  # type: ignore[arg-type]
