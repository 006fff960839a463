"""Small builders shared by the processing tests."""

from __future__ import annotations

import io
from typing import BinaryIO, cast

import numpy as np


def npy_bytes(arr: np.ndarray) -> bytes:
    """``arr`` saved as ``.npy``, in memory."""
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def csv_bytes(t: np.ndarray, v: np.ndarray) -> bytes:
    """A ``timestamp,value`` CSV with full float precision."""
    lines = ["timestamp,value"] + [f"{a!r},{b!r}" for a, b in zip(t.tolist(), v.tolist(), strict=True)]
    return ("\n".join(lines) + "\n").encode()


def irregular(n: int, seed: int = 0, rate: float = 100.0, t0: float = 1.7e9) -> tuple[np.ndarray, np.ndarray]:
    """``n`` irregular samples (intervals uniform in [0.5, 1.5] / rate) of a noisy two-tone signal."""
    rng = np.random.default_rng(seed)
    t = t0 + np.cumsum(rng.uniform(0.5, 1.5, n) / rate)
    rel = t - t0
    v = 3.0 + np.sin(2 * np.pi * 1.7 * rel) + 0.4 * np.sin(2 * np.pi * 11.0 * rel) + rng.normal(0.0, 0.3, n)
    return t, v


class NonSeekable(io.RawIOBase):
    """A read-only stream that cannot seek (like a network download)."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def non_seekable(data: bytes) -> BinaryIO:
    """``data`` behind a :class:`NonSeekable` stream, typed as the API's ``BinaryIO``."""
    return cast(BinaryIO, NonSeekable(data))
