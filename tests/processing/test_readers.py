"""Chunk formats and every bad-input rule of the readers (errors name the file, line and rule)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from processing import readers
from processing.features import ChunkError, ProcessingSettings, preprocess
from processing.readers import open_chunk
from tests.processing.helpers import csv_bytes, non_seekable, npy_bytes

SMALL = ProcessingSettings(fs=10.0, nperseg=8, max_lag=2)


def rows(source: object, name: str | None = None) -> np.ndarray:
    reader = open_chunk(source, name)  # type: ignore[arg-type]
    blocks = list(reader.blocks(reuse=False))
    return np.concatenate([np.column_stack(b) for b in blocks])


def chunk_error(source: object, name: str | None = "chunk.csv") -> ChunkError:
    with pytest.raises(ChunkError) as info:
        preprocess(source, SMALL, name=name)  # type: ignore[arg-type]
    err = info.value
    assert "\n" not in str(err)
    return err


# -- CSV ---------------------------------------------------------------------------------------


def test_csv_epoch_seconds() -> None:
    got = rows(b"timestamp,value\n1.5,2\n2.25,-3e-1\n", "a.csv")
    np.testing.assert_array_equal(got, [[1.5, 2.0], [2.25, -0.3]])


def test_csv_iso_8601_with_z_and_offsets() -> None:
    data = b"timestamp,value\n2026-11-22T10:00:00Z,1\n2026-11-22T11:00:00.5+01:00,2\n2026-11-22T09:00:01-01:00,3\n"
    got = rows(data, "a.csv")
    base = 1795341600.0  # 2026-11-22T10:00:00Z, from `date -u -d 2026-11-22T10:00:00Z +%s`
    np.testing.assert_array_equal(got[:, 0], [base, base + 0.5, base + 1.0])
    np.testing.assert_array_equal(got[:, 1], [1.0, 2.0, 3.0])


def test_csv_header_is_case_and_space_tolerant_and_crlf_and_bom_work() -> None:
    got = rows("\ufeff Timestamp , Value \r\n1,2\r\n\r\n3,4\r\n".encode(), "a.csv")
    np.testing.assert_array_equal(got, [[1.0, 2.0], [3.0, 4.0]])


def test_csv_blank_lines_are_skipped_not_counted() -> None:
    pre = preprocess(
        b"timestamp,value\n0,0\n\n0.5,1\n\n1.0,2\n", ProcessingSettings(fs=10.0, nperseg=8, max_lag=2), name="a.csv"
    )
    assert pre.n_raw == 3


def test_empty_file() -> None:
    err = chunk_error(b"")
    assert err.source == "chunk.csv" and err.line == 1
    assert "empty file" in err.reason


def test_header_only() -> None:
    err = chunk_error(b"timestamp,value\n")
    assert "no data rows" in err.reason


@pytest.mark.parametrize(
    "header", [b"time,value", b"timestamp", b"timestamp,value,extra", b"value,timestamp", b"1.0,2.0"]
)
def test_wrong_header(header: bytes) -> None:
    err = chunk_error(header + b"\n1,2\n")
    assert err.line == 1
    assert "header must be 'timestamp,value'" in err.reason


@pytest.mark.parametrize(("line", "fields"), [(b"1,2,3", 3), (b"1", 1)])
def test_wrong_number_of_columns_names_the_line(line: bytes, fields: int) -> None:
    err = chunk_error(b"timestamp,value\n0,1\n0.5,2\n" + line + b"\n")
    assert err.line == 4
    assert f"expected 2 fields 'timestamp,value', got {fields}" in err.reason
    assert str(err).startswith("chunk.csv: line 4: ")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"1.0,abc", "value 'abc' is not a number"),
        (b"1.0,", "value is empty"),
        (b"1.0,1_000", "value '1_000' is not a number"),
        (b"yesterday,1", "timestamp 'yesterday' is neither epoch seconds nor ISO 8601"),
        (b"2026-11-22T10:00:00,1", "has no UTC offset"),
        (b",1", "timestamp is empty"),
    ],
)
def test_non_numeric_values_name_the_line(line: bytes, reason: str) -> None:
    err = chunk_error(b"timestamp,value\n0,1\n\n" + line + b"\n2,3\n")
    assert err.line == 4
    assert reason in err.reason


def test_line_numbers_are_right_across_read_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "_CSV_BLOCK_BYTES", 7)
    body = b"".join(f"{i},{i}\n".encode() for i in range(50))
    err = chunk_error(b"timestamp,value\n" + body + b"50,oops\n")
    assert err.line == 52


def test_csv_read_in_small_blocks_equals_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    t, v = np.cumsum(rng.uniform(0.1, 1, 300)), rng.normal(size=300)
    data = csv_bytes(t, v)
    whole = rows(data, "a.csv")
    monkeypatch.setattr(readers, "_CSV_BLOCK_BYTES", 13)
    np.testing.assert_array_equal(rows(data, "a.csv"), whole)
    np.testing.assert_array_equal(whole, np.column_stack((t, v)))


@pytest.mark.parametrize(
    "garbage", [bytes(range(256)) * 4, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"timestamp,value\n1,2\n\xff\xfe3,4\n"]
)
def test_binary_garbage_named_csv(garbage: bytes) -> None:
    err = chunk_error(garbage)
    assert "binary" in err.reason or "UTF-8" in err.reason or "header" in err.reason
    assert err.line is not None


def test_binary_garbage_in_data_names_the_line() -> None:
    err = chunk_error(b"timestamp,value\n1,2\n3,\x00\x01\n")
    assert err.line == 3 and "binary data" in err.reason


# -- .npy --------------------------------------------------------------------------------------


def test_npy_round_trip_and_big_endian() -> None:
    arr = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, -6.0]])
    np.testing.assert_array_equal(rows(npy_bytes(arr), "a.npy"), arr)
    np.testing.assert_array_equal(rows(npy_bytes(arr.astype(">f8")), "a.npy"), arr)


def test_npy_in_small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "_NPY_BLOCK_ROWS", 7)
    arr = np.arange(200.0).reshape(100, 2)
    np.testing.assert_array_equal(rows(npy_bytes(arr), "a.npy"), arr)
    np.testing.assert_array_equal(rows(non_seekable(npy_bytes(arr)), "a.npy"), arr)


def test_truncated_npy() -> None:
    data = npy_bytes(np.arange(40.0).reshape(20, 2))
    err = chunk_error(data[:-5], "x.npy")
    assert "truncated .npy" in err.reason and err.line is None
    assert str(err).startswith("x.npy: ")


def test_truncated_npy_from_a_non_seekable_stream() -> None:
    data = npy_bytes(np.arange(40.0).reshape(20, 2))
    with pytest.raises(ChunkError, match=r"truncated \.npy"):
        preprocess(non_seekable(data[:-20]), SMALL, name="x.npy")


def test_npy_header_cut_short() -> None:
    err = chunk_error(npy_bytes(np.zeros((4, 2)))[:20], "x.npy")
    assert "not a valid .npy file" in err.reason


def test_npy_trailing_bytes() -> None:
    err = chunk_error(npy_bytes(np.zeros((4, 2))) + b"\x00" * 16, "x.npy")
    assert "unexpected bytes" in err.reason


@pytest.mark.parametrize("shape", [(10,), (10, 3), (10, 1), (5, 2, 2)])
def test_npy_wrong_shape(shape: tuple[int, ...]) -> None:
    err = chunk_error(npy_bytes(np.zeros(shape)), "x.npy")
    assert "shape must be (N, 2)" in err.reason


@pytest.mark.parametrize("dtype", ["<f4", "<i8", "<c16", "|b1"])
def test_npy_wrong_dtype(dtype: str) -> None:
    err = chunk_error(npy_bytes(np.zeros((10, 2), dtype=dtype)), "x.npy")
    assert "dtype must be float64" in err.reason


def test_npy_object_dtype_is_refused_without_unpickling() -> None:
    err = chunk_error(npy_bytes(np.array([[1, "a"]], dtype=object)), "x.npy")
    assert "dtype must be float64" in err.reason


def test_npy_empty_and_fortran_order() -> None:
    assert "no data rows" in chunk_error(npy_bytes(np.zeros((0, 2))), "x.npy").reason
    assert "Fortran-ordered" in chunk_error(npy_bytes(np.asfortranarray(np.zeros((5, 2)))), "x.npy").reason


# -- sources and format detection ----------------------------------------------------------------


def test_path_file_object_and_bytes_give_the_same_rows(tmp_path: Path) -> None:
    arr = np.array([[1.0, 2.0], [3.0, 4.0]])
    path = tmp_path / "c.npy"
    np.save(path, arr)
    for source, name in (
        (path, None),
        (str(path), None),
        (path.read_bytes(), "c.npy"),
        (io.BytesIO(path.read_bytes()), "c.npy"),
    ):
        np.testing.assert_array_equal(rows(source, name), arr)


def test_file_object_is_read_from_its_current_position_and_left_open() -> None:
    stream = io.BytesIO(b"junk" + b"timestamp,value\n1,2\n")
    stream.seek(4)
    np.testing.assert_array_equal(rows(stream, "a.csv"), [[1.0, 2.0]])
    assert not stream.closed


def test_unknown_suffix_is_sniffed(tmp_path: Path) -> None:
    arr = np.array([[1.0, 2.0]])
    assert open_chunk(npy_bytes(arr), "blob.bin").format == "npy"
    assert open_chunk(b"timestamp,value\n1,2\n", "blob").format == "csv"
    (tmp_path / "noext").write_bytes(npy_bytes(arr))
    assert open_chunk(tmp_path / "noext").format == "npy"


def test_suffix_wins_over_content() -> None:
    # A .npy named .csv is read as CSV, and fails as binary data, naming the file.
    err = chunk_error(npy_bytes(np.zeros((4, 2))), "wrong.csv")
    assert err.source == "wrong.csv"


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ChunkError, match=r"nope\.csv: cannot open"):
        preprocess(tmp_path / "nope.csv")


def test_endless_line_is_refused_without_holding_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "_MAX_LINE_BYTES", 1000)
    monkeypatch.setattr(readers, "_CSV_BLOCK_BYTES", 100)
    err = chunk_error(b"timestamp,value\n1,2\n" + b"7" * 5000)
    assert err.line == 3 and "line longer than" in err.reason


def test_text_streams_and_other_objects_are_refused_with_a_type_error(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("timestamp,value\n1,2\n")
    with open(path) as text, pytest.raises(TypeError, match="open the file in binary mode"):
        open_chunk(text)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="got int"):
        open_chunk(42)  # type: ignore[arg-type]
