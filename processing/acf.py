"""Autocorrelation lags as a streaming accumulator.

``r_k = Σ d_t d_(t+k) / Σ d_t²`` with ``d = x - mean(x)``, for ``k = 1 … max_lag``.

The series is cut into rows of width ``W >= max_lag``. For a block of rows ``Y`` (offset by the
block's own mean ``c``), ``Yᵀ Y`` holds every product of two samples in the same row and
``Y[:-1]ᵀ Y[1:]`` every product with the next row; lag ``k`` is the sum of one diagonal of
``[YᵀY | Y[:-1]ᵀY[1:]]``. Two BLAS-3 products replace ``max_lag`` passes over the data. Each
block keeps its raw sums with its own offset; at the end they are shifted to the global mean
(``x - mean = (x - c) + (c - mean)``), which avoids the cancellation a single provisional
offset would suffer on drifting data.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

__all__ = ["LagAccumulator", "single_threaded_blas"]

_MIN_WIDTH = 32


@dataclass
class _BlockSums:
    offset: float  # c: every sum below is over y = x - c
    products: np.ndarray  # P[k-1] = Σ y_t y_(t+k) over pairs whose second element is in the block
    firsts: np.ndarray  # U[k-1] = Σ y_t over those pairs
    seconds: np.ndarray  # V[k-1] = Σ y_(t+k) over those pairs
    pairs: np.ndarray  # N[k-1] = number of those pairs
    sum_sq: float  # Σ y² over the block's samples
    total: float  # Σ y over the block's samples
    count: int


class LagAccumulator:
    """Accumulate autocorrelation sums over a series fed in blocks of any size.

    Parameters
    ----------
    max_lag : int
        Largest lag (>= 1).
    """

    def __init__(self, max_lag: int) -> None:
        if max_lag < 1:
            raise ValueError(f"max_lag must be an integer >= 1, got {max_lag!r}")
        self.max_lag = int(max_lag)
        self.width = max(self.max_lag, _MIN_WIDTH)
        self.count = 0
        self._blocks: list[_BlockSums] = []
        self._carry: np.ndarray | None = None  # last full row (raw), predecessor of the next block
        self._rest = np.empty(0)  # samples not yet forming a full row
        self._finished = False

    def feed(self, x: np.ndarray) -> None:
        """Add the next block of the series."""
        if self._finished:
            raise RuntimeError("feed() after result()")
        w = self.width
        x = np.asarray(x, dtype=np.float64)
        if self._rest.size:
            # Complete the pending partial row with the head of x, rather than copying all of x.
            need = w - self._rest.shape[0]
            if x.shape[0] < need:
                self._rest = np.concatenate((self._rest, x))
                return
            self._rows(np.concatenate((self._rest, x[:need])).reshape(1, w))
            x = x[need:]
        m = x.shape[0] // w
        if m:
            self._rows(x[: m * w].reshape(m, w))
        self._rest = x[m * w :].copy()

    def _rows(self, rows: np.ndarray) -> None:
        """Add ``m`` consecutive full rows (shape ``(m, width)``) following the carried row."""
        m, w = rows.shape
        c = float(rows.mean())
        y = rows - c
        both = np.empty((w, 2 * w))
        both[:, :w] = y.T @ y
        np.matmul(y[:-1].T, y[1:], out=both[:, w:])
        lags = np.arange(1, w + 1)
        colsum = y.sum(axis=0)
        total = float(colsum.sum())
        last_suffix = np.cumsum(y[-1, ::-1])  # [k-1] = sum of the last k samples
        if self._carry is not None:
            yc = self._carry - c
            both[:, w:] += np.outer(yc, y[0])
            firsts = total - last_suffix + np.cumsum(yc[::-1])
            seconds = np.full(w, total)
            pairs = np.full(w, m * w)
        else:
            firsts = total - last_suffix
            seconds = total - np.cumsum(y[0])
            pairs = m * w - lags
        self._blocks.append(
            _BlockSums(
                c,
                _diagonal_sums(both),
                firsts,
                seconds,
                pairs.astype(np.float64),
                float(np.trace(both[:, :w])),
                total,
                m * w,
            )
        )
        self._carry = rows[-1].copy()
        self.count += m * w

    def _flush_rest(self) -> None:
        """Account for the final partial row: pairs whose second element lies in it."""
        r = self._rest.shape[0]
        if r == 0:
            return
        w = self.width
        c = float(self._rest.mean())
        z = self._rest - c
        lags = np.arange(1, w + 1)
        if self._carry is not None:
            full = np.concatenate((self._carry - c, z))
            # firsts[k-1] = the r samples that start k before z
            firsts_m = np.lib.stride_tricks.sliding_window_view(full, r)[:w][::-1]
            products = firsts_m @ z
            firsts = firsts_m.sum(axis=1)
            seconds = np.full(w, float(z.sum()))
            pairs = np.full(w, float(r))
        else:
            products = np.array([float(z[: r - k] @ z[k:]) if k < r else 0.0 for k in lags])
            firsts = np.array([float(z[: r - k].sum()) if k < r else 0.0 for k in lags])
            seconds = np.array([float(z[k:].sum()) if k < r else 0.0 for k in lags])
            pairs = np.maximum(r - lags, 0).astype(np.float64)
        self._blocks.append(_BlockSums(c, products, firsts, seconds, pairs, float(z @ z), float(z.sum()), r))
        self.count += r
        self._rest = np.empty(0)

    def finish(self) -> tuple[float, float]:
        """Close the series; return ``(mean, Σ (x - mean)²)``."""
        if not self._finished:
            self._flush_rest()
            self._finished = True
        if not self.count:
            raise ValueError("no samples were fed")
        mean = sum(b.offset * b.count + b.total for b in self._blocks) / self.count
        sum_sq = sum(b.sum_sq + (b.offset - mean) * (2 * b.total + (b.offset - mean) * b.count) for b in self._blocks)
        return mean, sum_sq

    def result(self, *, constant: bool = False) -> list[float]:
        """Return ``[r_1, …, r_max_lag]``.

        Parameters
        ----------
        constant : bool
            The caller knows every sample is equal (``min == max``). ``r_k`` is then 0/0; it is
            reported as 0.0 so that the record stays valid JSON.
        """
        mean, denominator = self.finish()
        if constant or denominator <= 0.0:
            return [0.0] * self.max_lag
        numerator = np.zeros(self.width)
        for b in self._blocks:
            shift = b.offset - mean
            numerator += b.products + shift * (b.firsts + b.seconds) + b.pairs * (shift * shift)
        return [float(r) for r in numerator[: self.max_lag] / denominator]


def single_threaded_blas() -> contextlib.AbstractContextManager[object]:
    """Limit BLAS to one thread for the ``with`` block.

    The per-block products (``W x m`` by ``m x W``, ``W`` about 64) are too small to gain from
    threads: with OpenBLAS on two threads they took 2.5x the CPU time and more wall time
    (measured, see docs/processing.md). ``threadpoolctl`` is optional: without it the results
    are the same, only slower on multi-core machines.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _diagonal_sums(both: np.ndarray) -> np.ndarray:
    """``[Σ_i both[i, i + k] for k = 1 … w]`` for a (w, 2w) C-contiguous array."""
    w = both.shape[0]
    step = both.strides[1]
    shifted = np.lib.stride_tricks.as_strided(
        both, shape=(w, w + 1), strides=(both.strides[0] + step, step), writeable=False
    )
    return shifted[:, 1:].sum(axis=0)
