"""The feature record: streaming pipeline == composition == the reference; JSON; names."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.bench_processing import reference_features
from chunk_contract.names import InvalidChunkName
from processing import readers, resample
from processing.features import (
    ChunkError,
    Preprocessed,
    ProcessingSettings,
    autocorrelation,
    band_powers,
    extract_features,
    feature_record,
    preprocess,
)
from tests.processing.helpers import csv_bytes, irregular, non_seekable, npy_bytes

KEYS = {
    "sensor_id",
    "chunk_name",
    "n_raw",
    "n_dropped",
    "n_resampled",
    "t_start",
    "t_end",
    "fs",
    "mean",
    "std",
    "min",
    "max",
    "gap_fraction",
    "band_edges",
    "band_powers",
    "acf",
    "settings",
}


def composed(source: Any, chunk_name: str, s: ProcessingSettings, name: str | None = None) -> dict[str, Any]:
    pre = preprocess(source, s, name=name)
    return feature_record(chunk_name, pre, *band_powers(pre.values, s), autocorrelation(pre.values, s.max_lag), s)


def assert_same_record(a: dict[str, Any], b: dict[str, Any], tol: float = 1e-12) -> None:
    assert a.keys() == b.keys() == KEYS
    for key in KEYS:
        if isinstance(a[key], float | list):
            np.testing.assert_allclose(a[key], b[key], rtol=tol, atol=tol, err_msg=key)
        else:
            assert a[key] == b[key], key


def test_streaming_equals_composition_and_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    t, v = irregular(60_000, seed=21)
    t[30_000:] += 3.0  # one gap longer than max_gap
    v[::777] = np.inf
    data = npy_bytes(np.column_stack((t, v)))
    s = ProcessingSettings(nperseg=512, n_bands=6, max_lag=40)
    # Small blocks so that every carry-over (segment tail, lag rows, pending sample) is exercised.
    monkeypatch.setattr(readers, "_NPY_BLOCK_ROWS", 1_000)
    monkeypatch.setattr(resample, "MAX_OUT_BLOCK", 700)
    streamed = extract_features(data, "sensor-3/2026/chunk.npy", s, name="chunk.npy")
    assert_same_record(streamed, composed(data, "sensor-3/2026/chunk.npy", s, name="chunk.npy"))
    ref = reference_features(t, v, fs=s.fs, nperseg=s.nperseg, n_bands=s.n_bands, max_lag=s.max_lag, max_gap=s.max_gap)
    assert streamed["n_resampled"] == ref["n_resampled"] and streamed["n_dropped"] == ref["n_dropped"] == 78
    for key in ("mean", "std", "min", "max", "gap_fraction"):
        assert streamed[key] == pytest.approx(ref[key], rel=1e-9), key
    np.testing.assert_allclose(streamed["band_powers"], ref["band_powers"], rtol=1e-9, atol=0)
    np.testing.assert_allclose(streamed["acf"], ref["acf"], rtol=0, atol=1e-9)
    assert streamed["gap_fraction"] > 0


def test_record_fields_and_json() -> None:
    data = b"timestamp,value\n2026-11-22T10:00:00Z,1\n2026-11-22T10:00:20Z,3\n2026-11-22T10:00:30.25Z,2\n"
    s = ProcessingSettings(fs=10.0, nperseg=64, n_bands=3, max_lag=4, max_gap=15.0)
    record = extract_features(data, "sensor-9/day/c.csv", s, name="c.csv")
    text = json.dumps(record, allow_nan=False)
    assert json.loads(text) == record
    assert record["sensor_id"] == "sensor-9" and record["chunk_name"] == "sensor-9/day/c.csv"
    assert (record["n_raw"], record["n_dropped"], record["n_resampled"]) == (3, 0, 303)
    assert record["t_start"] == "2026-11-22T10:00:00.000000Z"
    assert record["t_end"] == "2026-11-22T10:00:30.200000Z"
    assert record["fs"] == 10.0 and record["settings"] == s.as_dict()
    assert (record["min"], record["max"]) == (1.0, 3.0)
    # Grid points strictly inside (0 s, 20 s): 199 of 303.
    assert record["gap_fraction"] == pytest.approx(199 / 303, rel=1e-12)
    assert len(record["band_edges"]) == 4 and len(record["band_powers"]) == 3 and len(record["acf"]) == 4


def test_csv_and_npy_of_the_same_data_give_the_same_record(tmp_path: Path) -> None:
    t, v = irregular(5_000, seed=2)
    (tmp_path / "a.csv").write_bytes(csv_bytes(t, v))
    np.save(tmp_path / "a.npy", np.column_stack((t, v)))
    a = extract_features(tmp_path / "a.csv", "s/a")
    b = extract_features(tmp_path / "a.npy", "s/a")
    a.pop("n_raw"), b.pop("n_raw")
    assert a == b


def test_unsorted_chunk_through_the_streaming_pipeline() -> None:
    t, v = irregular(8_000, seed=6)
    order = np.random.default_rng(1).permutation(t.shape[0])
    s = ProcessingSettings(nperseg=256)
    ordered = extract_features(npy_bytes(np.column_stack((t, v))), "s/c", s, name="c.npy")
    shuffled = extract_features(non_seekable(npy_bytes(np.column_stack((t[order], v[order])))), "s/c", s, name="c.npy")
    assert_same_record(ordered, shuffled)


def test_constant_values_give_zero_acf_and_zero_power() -> None:
    t = np.arange(3_000) * 0.01
    record = extract_features(npy_bytes(np.column_stack((t, np.full_like(t, 0.1)))), "s/c", name="c.npy")
    assert record["acf"] == [0.0] * 64 and record["std"] == pytest.approx(0.0, abs=1e-15)
    assert max(record["band_powers"]) < 1e-25


def test_invalid_chunk_name_is_refused_before_reading() -> None:
    with pytest.raises(InvalidChunkName):
        extract_features(b"", "../etc/passwd", name="x.csv")
    pre = Preprocessed(np.zeros(8), 0.0, 0.7, 10.0, 8, 0, 0.0)
    with pytest.raises(InvalidChunkName):
        feature_record("a b", pre, [0.0, 1.0], [0.0], [0.0], ProcessingSettings(n_bands=1, max_lag=1))


def test_feature_record_checks_list_lengths_against_settings() -> None:
    pre = Preprocessed(np.zeros(8), 0.0, 0.7, 10.0, 8, 0, 0.0)
    with pytest.raises(ValueError, match="n_bands=8"):
        feature_record("s/c", pre, [0.0, 1.0], [0.0], [0.0] * 64, ProcessingSettings())
    with pytest.raises(ValueError, match="max_lag=64"):
        feature_record("s/c", pre, [0.0] * 9, [0.0] * 8, [0.0], ProcessingSettings())


def test_errors_from_streams_use_the_given_name() -> None:
    with pytest.raises(ChunkError) as info:
        extract_features(io.BytesIO(b"timestamp,value\n1,x\n"), "s/c", name="upload.csv")
    assert str(info.value) == "upload.csv: line 2: value 'x' is not a number"


@pytest.mark.parametrize("seed", range(6))
def test_random_chunks_and_block_sizes_match_the_reference(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Random rates, duplicates, NaNs, gaps and block sizes: every carry-over path against the reference.
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(3_000, 12_000))
    t = 1.6e9 + np.cumsum(rng.choice([0.0, 0.004, 0.011, 0.03, 2.0], size=n, p=[0.1, 0.4, 0.4, 0.099, 0.001]))
    v = np.cumsum(rng.normal(size=n)) + 10.0
    v[rng.random(n) < 0.01] = np.nan
    t[rng.random(n) < 0.005] = np.inf
    s = ProcessingSettings(
        fs=float(rng.choice([25.0, 100.0, 333.0])),
        nperseg=int(rng.choice([8, 100, 256])),
        n_bands=int(rng.integers(1, 7)),
        max_lag=int(rng.choice([1, 7, 33, 64])),
        max_gap=0.5,
    )
    monkeypatch.setattr(readers, "_NPY_BLOCK_ROWS", int(rng.integers(2, 2_000)))
    monkeypatch.setattr(resample, "MAX_OUT_BLOCK", int(rng.integers(2, 3_000)))
    record = extract_features(npy_bytes(np.column_stack((t, v))), "s/c", s, name="c.npy")
    ref = reference_features(t, v, fs=s.fs, nperseg=s.nperseg, n_bands=s.n_bands, max_lag=s.max_lag, max_gap=s.max_gap)
    assert (record["n_resampled"], record["n_dropped"]) == (ref["n_resampled"], ref["n_dropped"])
    for key in ("mean", "std", "min", "max", "gap_fraction"):
        assert record[key] == pytest.approx(ref[key], rel=1e-9, abs=1e-12), key
    np.testing.assert_allclose(record["band_powers"], ref["band_powers"], rtol=1e-9, atol=0)
    np.testing.assert_allclose(record["acf"], ref["acf"], rtol=0, atol=1e-9)


def test_two_threads_give_the_identical_record(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "_NPY_BLOCK_ROWS", 3_000)
    monkeypatch.setattr(resample, "MAX_OUT_BLOCK", 2_000)
    t, v = irregular(40_000, seed=31)
    data = npy_bytes(np.column_stack((t, v)))
    assert extract_features(data, "s/c", name="c.npy", threads=2) == extract_features(data, "s/c", name="c.npy")
    order = np.random.default_rng(2).permutation(t.shape[0])  # the restart path too
    shuffled = npy_bytes(np.column_stack((t[order], v[order])))
    assert extract_features(shuffled, "s/c", name="c.npy", threads=2) == extract_features(shuffled, "s/c", name="c.npy")


def test_errors_with_two_threads_leave_no_thread_behind() -> None:
    before = threading.active_count()
    with pytest.raises(ChunkError, match="fewer than nperseg=1024"):
        extract_features(b"timestamp,value\n0,1\n1,2\n", "s/c", name="c.csv", threads=2)
    with pytest.raises(ChunkError, match="line 3"):
        extract_features(b"timestamp,value\n0,1\n1,x\n", "s/c", name="c.csv", threads=2)
    assert threading.active_count() == before


@pytest.mark.parametrize("threads", [0, -1, 1.5, True])
def test_invalid_threads_is_named(threads: object) -> None:
    with pytest.raises(ValueError, match=r"^threads must be an integer >= 1"):
        extract_features(b"", "s/c", name="c.csv", threads=threads)  # type: ignore[arg-type]
