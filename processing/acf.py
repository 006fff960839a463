"""Autocorrelation lags as a streaming accumulator.

``r_k = Σ d_t d_(t+k) / Σ d_t²`` with ``d = x - mean(x)``, for ``k = 1 … max_lag``.

Each fed block is offset by a constant ``c`` of its own (``y = x - c``) and cut into chunks of
``N`` samples (``N`` a power of two, at least 1024 and ``16 * max_lag``). One batched real FFT
gives every lag at once: ``Σ_chunks irfft(|rfft(chunk)|²)[k]`` is the sum of the chunks'
*circular* lag-k products. The pairs that wrap around (a chunk's end with its own start) are
subtracted and the pairs across chunk boundaries (and from the previous block's last samples)
added; both are diagonals of two small ``max_lag x max_lag`` products over the chunks' ends and
starts. The samples after the last full chunk are correlated directly with the ``max_lag``
samples before them. That is about 1.1 FFT samples and a few flops per sample, against
``2 * max_lag`` multiply-adds per sample for row-block matrix products.

Each block keeps its raw sums with its own offset; at the end they are shifted to the global
mean (``x - mean = (x - c) + (c - mean)``), which avoids the cancellation a single provisional
offset would suffer on drifting data.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

__all__ = ["LagAccumulator", "LagState", "single_threaded_blas"]

_MIN_CHUNK = 1024
# Chunks per FFT batch: the batch and its spectrum stay in the core's L2 cache.
_BATCH = 64
# Samples whose mean offsets a block: enough for a good offset, far fewer than a block.
_OFFSET_SAMPLES = 4096


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


def _chunk_length(width: int) -> int:
    n = _MIN_CHUNK
    while n < 16 * width:
        n *= 2
    return n


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
        self.width = self.max_lag
        self.chunk = _chunk_length(self.width)
        self.count = 0
        self._blocks: list[_BlockSums] = []
        self._carry: np.ndarray | None = None  # the last `width` samples (raw) before the next block
        self._pending: list[np.ndarray] = []  # small blocks, joined until they fill a chunk
        self._pending_n = 0
        self._finished = False

    def feed(self, x: np.ndarray) -> None:
        """Add the next block of the series."""
        if self._finished:
            raise RuntimeError("feed() after result()")
        x = np.asarray(x, dtype=np.float64)
        if x.shape[0] == 0:
            return
        if self._pending_n + x.shape[0] < self.chunk:
            self._pending.append(x.copy())
            self._pending_n += x.shape[0]
            return
        if self._pending:
            x = np.concatenate((*self._pending, x))
            self._pending, self._pending_n = [], 0
        self._add(x)

    def _add(self, x: np.ndarray) -> None:
        """Add the sums of pairs whose second element is in ``x`` (the next samples)."""
        w, n_fft = self.width, self.chunk
        n = x.shape[0]
        c = float(x[:_OFFSET_SAMPLES].mean())
        y = x - c
        prev = None if self._carry is None else self._carry - c
        n_chunks = n // n_fft
        main = n_chunks * n_fft
        lags = np.arange(1, w + 1)
        if n_chunks:
            chunks = y[:main].reshape(n_chunks, n_fft)
            power = np.zeros(n_fft + 2)
            total = 0.0
            spec_buf = np.empty((min(n_chunks, _BATCH), n_fft // 2 + 1), dtype=np.complex128)
            for start in range(0, n_chunks, _BATCH):
                batch = chunks[start : start + _BATCH]
                spec = np.fft.rfft(batch, axis=1, out=spec_buf[: batch.shape[0]])
                flat = spec.view(np.float64)
                power += np.einsum("ij,ij->j", flat, flat)
                total += float(spec[:, 0].real.sum())  # DC bins: the chunk sums
            circular = np.fft.irfft(power[0::2] + power[1::2], n=n_fft)
            heads, tails = chunks[:, :w], chunks[:, n_fft - w :]
            # Σ over chunk boundaries minus Σ over each chunk's own wrap-around: one diagonal each.
            ends = tails[:-1].T @ heads[1:] - tails.T @ heads
            if prev is not None:
                ends += np.outer(prev, heads[0])
            products = circular[1 : w + 1] + _lower_diagonal_sums(ends)
            sum_sq = float(circular[0])
            last_suffix = np.cumsum(y[main - w : main][::-1])  # [k-1] = sum of the last k samples
            if prev is not None:
                firsts = total - last_suffix + np.cumsum(prev[::-1])
                seconds = np.full(w, total)
                pairs = np.full(w, float(main))
            else:
                firsts = total - last_suffix
                seconds = total - np.cumsum(y[:w])
                pairs = (main - lags).astype(np.float64)
            before: np.ndarray | None = y[main - w : main]
        else:
            products, firsts, seconds, pairs = np.zeros(w), np.zeros(w), np.zeros(w), np.zeros(w)
            sum_sq = total = 0.0
            before = prev
        if main < n:
            z = y[main:]
            p2, f2, s2, q2 = _tail_sums(before, z, w)
            products += p2
            firsts += f2
            seconds += s2
            pairs += q2
            sum_sq += float(z @ z)
            total += float(z.sum())
        self._blocks.append(_BlockSums(c, products, firsts, seconds, pairs, sum_sq, total, n))
        if n >= w:
            self._carry = x[n - w :].copy()
        else:
            self._carry = np.concatenate((np.empty(0) if self._carry is None else self._carry, x))[-w:]
        self.count += n

    def finish(self) -> tuple[float, float]:
        """Close the series; return ``(mean, Σ (x - mean)²)``."""
        if not self._finished:
            if self._pending:
                x = np.concatenate(self._pending)
                self._pending, self._pending_n = [], 0
                self._add(x)
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
        return self.state().autocorrelation(constant=constant)

    def state(self) -> LagState:
        """Close the series; return its lag sums shifted to the global mean, O(max_lag) in size."""
        mean, denominator = self.finish()
        numerator = np.zeros(self.width)
        for b in self._blocks:
            shift = b.offset - mean
            numerator += b.products + shift * (b.firsts + b.seconds) + b.pairs * (shift * shift)
        return LagState(self.max_lag, self.count, mean, denominator, numerator[: self.max_lag])


@dataclass(frozen=True, eq=False)
class LagState:
    """A fed :class:`LagAccumulator` reduced to what the autocorrelation needs (small, picklable).

    Attributes
    ----------
    max_lag, count : int
        Largest lag; samples fed.
    mean, denominator : float
        The series mean and ``Σ (x - mean)²``.
    numerator : numpy.ndarray
        ``Σ (x_t - mean)(x_(t+k) - mean)`` for k = 1 … max_lag.
    """

    max_lag: int
    count: int
    mean: float
    denominator: float
    numerator: np.ndarray

    def autocorrelation(self, *, constant: bool = False) -> list[float]:
        """``[r_1, …, r_max_lag]``, as :meth:`LagAccumulator.result` (0.0 everywhere for a constant series)."""
        if constant or self.denominator <= 0.0:
            return [0.0] * self.max_lag
        return [float(r) for r in self.numerator / self.denominator]


def _tail_sums(
    before: np.ndarray | None, z: np.ndarray, w: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sums over the pairs whose second element is in ``z``, for lags 1 … w.

    ``before`` holds the ``w`` samples just before ``z`` (same offset), or is None at the start
    of the series. Returns ``(products, firsts, seconds, pairs)`` as in :class:`_BlockSums`.
    """
    r = z.shape[0]
    lags = np.arange(1, w + 1)
    if before is not None:
        full = np.concatenate((before, z))
        # corr[s] = Σ_i full[s + i] z[i]: lag k pairs start at s = w - k.
        corr = np.correlate(full, z, "valid")
        cs = np.concatenate(([0.0], np.cumsum(full)))
        firsts = cs[w - lags + r] - cs[w - lags]
        return corr[w - 1 :: -1][:w].copy(), firsts, np.full(w, float(z.sum())), np.full(w, float(r))
    # The first samples of the series: only pairs inside z, none for k >= r.
    corr = np.correlate(z, z, "full")  # corr[r - 1 + k] = Σ z[i + k] z[i]
    inside = lags < r
    ks = lags[inside]
    products = np.zeros(w)
    products[inside] = corr[r - 1 + ks]
    cs = np.concatenate(([0.0], np.cumsum(z)))
    firsts = np.zeros(w)
    seconds = np.zeros(w)
    firsts[inside] = cs[r - ks]
    seconds[inside] = cs[r] - cs[ks]
    return products, firsts, seconds, np.maximum(r - lags, 0).astype(np.float64)


def single_threaded_blas() -> contextlib.AbstractContextManager[object]:
    """Limit BLAS to one thread for the ``with`` block.

    The per-block products (``max_lag x chunks`` by ``chunks x max_lag``, a few per cent of the
    lag work) are far too small to gain from threads; with more BLAS threads they only cost CPU
    time (with the earlier row-block products, OpenBLAS on two threads took 2.5x the CPU time).
    ``threadpoolctl`` is optional: without it the results are the same.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _lower_diagonal_sums(ends: np.ndarray) -> np.ndarray:
    """``[Σ_(i<k) ends[w - k + i, i] for k = 1 … w]`` for a (w, w) array: pairs ``w - p + q`` apart."""
    w = ends.shape[0]
    both = np.zeros((w, 2 * w))
    both[:, w:] = ends
    return _diagonal_sums(both)


def _diagonal_sums(both: np.ndarray) -> np.ndarray:
    """``[Σ_i both[i, i + k] for k = 1 … w]`` for a (w, 2w) C-contiguous array."""
    w = both.shape[0]
    step = both.strides[1]
    shifted = np.lib.stride_tricks.as_strided(
        both, shape=(w, w + 1), strides=(both.strides[0] + step, step), writeable=False
    )
    return shifted[:, 1:].sum(axis=0)
