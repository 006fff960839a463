"""Synthetic chunks are realistic (irregular, gappy, duplicated) and parse with the real reader."""

from __future__ import annotations

import numpy as np
import pytest

from chunk_contract.names import validate_chunk_name
from localdev.synthetic import generate_chunks


def _parse(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    from datetime import datetime

    rows = [line.split(",") for line in data.decode().splitlines()[1:]]
    t = np.array([datetime.fromisoformat(r[0]).timestamp() for r in rows])
    x = np.array([float(r[1]) for r in rows])
    return t, x


def test_same_seed_same_bytes_and_valid_names() -> None:
    a = generate_chunks(sensors=2, chunks_per_sensor=2, seconds_per_chunk=10)
    b = generate_chunks(sensors=2, chunks_per_sensor=2, seconds_per_chunk=10)
    assert [c.data for c in a] == [c.data for c in b]
    assert len(a) == 5 and sum(c.bad for c in a) == 1
    for c in a:
        validate_chunk_name(c.name)
    assert len({c.name for c in a}) == len(a)


def test_good_chunks_are_irregular_with_gaps_and_duplicates() -> None:
    chunk = generate_chunks(sensors=1, chunks_per_sensor=1, seconds_per_chunk=60, bad_chunk=False)[0]
    assert chunk.data.startswith(b"timestamp,value\n")
    t, _ = _parse(chunk.data)
    assert t.size == chunk.samples
    dt = np.diff(t)
    nominal = 1 / 50.0
    assert np.count_nonzero(dt == 0) >= 1  # duplicated rows
    assert dt.max() > 10 * nominal  # at least one gap
    regular = dt[(dt > 0) & (dt < 2 * nominal)]
    assert regular.std() > 0.1 * nominal  # jittered, not a uniform grid


def test_bad_chunk_is_rejected_by_the_real_reader() -> None:
    pytest.importorskip("processing.features")
    from processing.errors import ChunkError
    from processing.readers import ChunkReader

    bad = next(c for c in generate_chunks(sensors=1, chunks_per_sensor=1, seconds_per_chunk=5) if c.bad)
    with pytest.raises(ChunkError, match="ERR#42"):
        for _ in ChunkReader(bad.data, name=bad.name).blocks():
            pass


def test_good_chunk_is_read_by_the_real_reader() -> None:
    from processing.readers import ChunkReader

    good = generate_chunks(sensors=1, chunks_per_sensor=1, seconds_per_chunk=5, bad_chunk=False)[0]
    reader = ChunkReader(good.data, name=good.name)
    total = sum(block[0].size for block in reader.blocks())
    assert total == good.samples


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="chunks_per_sensor"):
        generate_chunks(chunks_per_sensor=0)
    with pytest.raises(ValueError, match="sensor count"):
        generate_chunks(sensors=0)
