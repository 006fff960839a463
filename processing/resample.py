"""Streaming preprocessing: drop non-finite rows, average duplicate timestamps, resample linearly.

The grid is ``t0 + k / fs`` (computed exactly like that, in float64 epoch seconds), ``t0`` the
first finite timestamp, ``k = 0 … K`` with ``K`` the largest k whose grid point is ``<= t_last``
(that is ``floor((t_last - t0) * fs)``, decided by exact comparison so that float rounding of
the product cannot add or lose a point). Interpolation is ``np.interp`` itself, block by block,
so results are those of one ``np.interp`` call on the whole deduplicated chunk.

:class:`Resampler` takes sorted blocks and yields resampled blocks of bounded size, carrying
the last sample and a pending duplicate across block boundaries.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["EPOCH_MAX", "EPOCH_MIN", "MAX_OUT_BLOCK", "OutOfRange", "Resampler", "Unsorted"]

# Grid points per emitted block: bounds memory however sparse the raw samples are.
MAX_OUT_BLOCK = 1 << 18
# Free slots before a block in the resampler's buffers: the last emitted and the pending sample.
_HEAD = 2
# Up to this many non-finite rows in a block are cut out by slices (cheaper than a boolean mask).
_FEW_BAD_ROWS = 64


# datetime's range (years 1 … 9999) in epoch seconds: t_start/t_end must be printable, and a
# timestamp in milliseconds (or garbage) must fail before it spans an astronomically long grid.
EPOCH_MIN = -62135596800.0
EPOCH_MAX = 253402300799.0


class OutOfRange(ValueError):
    """A finite timestamp outside years 1-9999 (epoch seconds)."""

    def __init__(self, t: float) -> None:
        self.t = t
        super().__init__(f"timestamp {t!r} is outside years 1-9999 (timestamps are epoch seconds)")


class Unsorted(Exception):  # a signal, not an error: the caller falls back to sorting
    """Raised by :meth:`Resampler.feed` when timestamps decrease; the caller sorts in memory."""


class Resampler:
    """Streaming resampler onto the grid ``t0 + k / fs``.

    Parameters
    ----------
    fs : float
        Grid rate in Hz (> 0, validated by the caller's settings).
    max_gap : float
        Grid points strictly inside an interval between samples longer than this (seconds)
        are counted in :attr:`gap_points`.
    max_out : int, optional
        Largest emitted block, in grid points (default :data:`MAX_OUT_BLOCK`).

    Notes
    -----
    Feed blocks with :meth:`feed` (timestamps must be non-decreasing across all blocks, else
    :class:`Unsorted` is raised), then call :meth:`finish`. Both yield float64 arrays of
    consecutive grid values.
    """

    def __init__(self, fs: float, max_gap: float, max_out: int | None = None) -> None:
        self.fs = float(fs)
        self.max_gap = float(max_gap)
        self.max_out = int(MAX_OUT_BLOCK if max_out is None else max_out)
        self.n_in = 0
        self.n_dropped = 0
        self.n_out = 0
        self.gap_points = 0
        self.t0: float | None = None
        self.t_last: float | None = None
        # Last final sample (interpolation continues from it) and the first grid index not yet emitted.
        self._prev: tuple[float, float] | None = None
        self._prev_k = 0
        # Last timestamp seen: its value may still be averaged with a duplicate in the next block.
        self._pend_t = 0.0
        self._pend_sum = 0.0
        self._pend_n = 0
        # Reused block buffers (timestamps, values), the first _HEAD slots for carried samples.
        self._tbuf = np.empty(0)
        self._vbuf = np.empty(0)
        self._ks = np.empty(0)  # 0, 1, 2, … as float64: grid offsets

    def feed(self, t: np.ndarray, v: np.ndarray) -> Iterator[np.ndarray]:
        """Take one block of raw rows (timestamps ``t``, values ``v``); yield grid values."""
        n = t.shape[0]
        self.n_in += n
        finite = np.isfinite(t)
        finite &= np.isfinite(v)
        k = n if finite.all() else int(np.count_nonzero(finite))
        self.n_dropped += n - k
        if k == 0:
            return
        # The finite rows, copied (contiguous, as np.interp wants them) into reused buffers after
        # two free slots: the carried samples go there, so the block is never copied again.
        if self._tbuf.shape[0] < k + _HEAD:
            self._tbuf, self._vbuf = np.empty(k + _HEAD), np.empty(k + _HEAD)
        tk, vk = self._tbuf[_HEAD : _HEAD + k], self._vbuf[_HEAD : _HEAD + k]
        if k == n:
            np.copyto(tk, t)
            np.copyto(vk, v)
        else:
            _compact(tk, t, finite)
            _compact(vk, v, finite)
        # Final samples before this block: the last one already emitted from, and the pending one.
        head_t: list[float] = []
        head_v: list[float] = []
        if self._prev is not None:
            head_t.append(self._prev[0])
            head_v.append(self._prev[1])
        if self._pend_n:
            head_t.append(self._pend_t)
            head_v.append(self._pend_sum / self._pend_n)
        n_head = len(head_t)
        lo = _HEAD - n_head
        self._tbuf[lo:_HEAD] = head_t
        self._vbuf[lo:_HEAD] = head_v
        # One difference pass settles order, duplicates and gaps in the common case.
        steps = np.diff(self._tbuf[lo : _HEAD + k])
        if steps.shape[0] and steps.min() <= 0.0:
            # Duplicates (or a decrease: Unsorted) somewhere, maybe with the pending sample.
            yield from self._feed_general(tk, vk)
            return
        self._check_range(tk)
        # Strictly increasing, no duplicates, no merge: all but the last sample are final.
        self._pend_t, self._pend_sum, self._pend_n = float(tk[-1]), float(vk[-1]), 1
        yield from self._emit(self._tbuf[lo : _HEAD + k - 1], self._vbuf[lo : _HEAD + k - 1], steps[:-1])

    def _check_range(self, t: np.ndarray) -> None:
        if not EPOCH_MIN <= t[0] <= EPOCH_MAX:
            raise OutOfRange(float(t[0]))
        if not EPOCH_MIN <= t[-1] <= EPOCH_MAX:
            raise OutOfRange(float(t[-1]))
        if self.t0 is None:
            self.t0 = float(t[0])
            self._prev_k = 0

    def _feed_general(self, t: np.ndarray, v: np.ndarray) -> Iterator[np.ndarray]:
        """:meth:`feed` for finite rows with duplicate timestamps (or unsorted: raises)."""
        step = np.diff(t)
        flat_or_back = bool((step <= 0).any())
        if (self._pend_n and t[0] < self._pend_t) or (flat_or_back and (step < 0).any()):
            raise Unsorted
        self._check_range(t)
        merge = bool(self._pend_n) and t[0] == self._pend_t
        starts = np.flatnonzero(np.concatenate(([True], step != 0)))
        sums = np.add.reduceat(v, starts)
        counts = np.diff(np.append(starts, t.shape[0]))
        times = t[starts]
        if merge:
            sums[0] += self._pend_sum
            counts[0] += self._pend_n
        means = sums / counts
        last_sum, last_n = float(sums[-1]), int(counts[-1])
        # Final samples: the last one already emitted from, the previous pending one (unless it
        # merged into this block), and all but the last unique timestamp of this block, which
        # becomes pending (a duplicate of it may open the next block).
        head_t: list[float] = []
        head_v: list[float] = []
        if self._prev is not None:
            head_t.append(self._prev[0])
            head_v.append(self._prev[1])
        if self._pend_n and not merge:
            head_t.append(self._pend_t)
            head_v.append(self._pend_sum / self._pend_n)
        self._pend_t, self._pend_sum, self._pend_n = float(times[-1]), last_sum, last_n
        yield from self._emit(np.concatenate((head_t, times[:-1])), np.concatenate((head_v, means[:-1])))

    def finish(self) -> Iterator[np.ndarray]:
        """Finalize the pending sample and yield the rest of the grid (up to ``t_last``)."""
        if not self._pend_n:
            return
        t_last = self._pend_t
        v_last = self._pend_sum / self._pend_n
        self._pend_n = 0
        head = [] if self._prev is None else [self._prev]
        yield from self._emit(np.array([p[0] for p in head] + [t_last]), np.array([p[1] for p in head] + [v_last]))
        self.t_last = t_last
        assert self.t0 is not None
        # The grid point exactly at t_last (if any) is the last one: np.interp returns v_last there.
        if self.t0 + self._prev_k / self.fs == t_last:
            self.n_out += 1
            yield np.array([v_last])

    def _first_k(self, times: np.ndarray) -> np.ndarray:
        """Smallest k with ``t0 + k / fs >= t`` for each t (exact, not just up to rounding)."""
        t0, fs = self.t0, self.fs
        assert t0 is not None
        # k is kept as float64 (exact below 2**53) so that k / fs is the grid's own arithmetic.
        k = np.ceil((times - t0) * fs)
        # The product above may round across an integer; settle it by comparing grid points.
        k += (k / fs + t0) < times
        k -= ((k - 1.0) / fs + t0) >= times
        return k.astype(np.int64)

    def _emit(self, times: np.ndarray, values: np.ndarray, steps: np.ndarray | None = None) -> Iterator[np.ndarray]:
        """Yield the grid points in ``[times[0], times[-1])``; all of ``times`` are final samples.

        ``steps`` is ``np.diff(times)`` if the caller has it already.
        """
        if times.shape[0] == 0:
            return
        self._prev = (float(times[-1]), float(values[-1]))
        if times.shape[0] < 2:
            return
        t0 = self.t0
        assert t0 is not None
        k_begin = self._prev_k
        k_end = int(self._first_k(times[-1:])[0])
        self._prev_k = k_end
        if steps is None:
            steps = np.diff(times)
        if steps.max() > self.max_gap:
            gaps = np.flatnonzero(steps > self.max_gap)
            # Grid points strictly inside a long interval; one sitting exactly on t_i is data.
            lo, hi = self._first_k(times[gaps]), self._first_k(times[gaps + 1])
            on_sample = (lo / self.fs + t0) == times[gaps]
            self.gap_points += int((hi - lo).sum() - np.count_nonzero(on_sample))
        n_points = k_end - k_begin
        if n_points <= 0:
            return
        # Equal pieces of at most max_out points (no small remainder piece).
        pieces = -(-n_points // self.max_out)
        for i in range(pieces):
            a = k_begin + n_points * i // pieces
            b = k_begin + n_points * (i + 1) // pieces
            # k + a is exact (integers below 2**53), so this is np.arange(a, b) / fs + t0.
            if self._ks.shape[0] < b - a:
                # Grown rarely and in big steps: varying sizes would fragment the heap.
                self._ks = np.arange(min(max(2 * (b - a), 1 << 16), self.max_out), dtype=np.float64)
            grid = np.add(self._ks[: b - a], float(a))
            grid /= self.fs
            grid += t0
            if pieces == 1:
                xp, fp = times, values
            else:
                # Only the samples around this stretch of grid: np.interp prepares every interval it gets.
                i0 = max(int(np.searchsorted(times, grid[0], side="right")) - 1, 0)
                i1 = int(np.searchsorted(times, grid[-1], side="right")) + 1
                xp, fp = times[i0:i1], values[i0:i1]
            self.n_out += b - a
            yield np.interp(grid, xp, fp)


def _compact(dst: np.ndarray, src: np.ndarray, keep: np.ndarray) -> None:
    """``dst[:] = src[keep]`` (``dst`` has the right length), by slices when few rows go."""
    bad = np.flatnonzero(~keep)
    if bad.shape[0] > _FEW_BAD_ROWS:
        dst[:] = src[keep]
        return
    pos = start = 0
    for b in bad.tolist():
        dst[pos : pos + b - start] = src[start:b]
        pos += b - start
        start = b + 1
    dst[pos:] = src[start:]
