"""A min/max envelope of a series fed in blocks, in memory bounded by a bin count, not the series.

The card shows a chunk's resampled signal; plotting every sample of a 100M-sample chunk is neither
possible in a bounded task nor readable. The envelope keeps, per bin of ``width`` consecutive
samples, the smallest and largest value: unlike a stride, a spike stays visible.

The series length is not known in advance, so the width adapts: bins start one sample wide, and
whenever the series would need more than ``2 * max_bins`` bins, neighbouring bins are merged in
pairs and the width doubles. The result has between ``max_bins`` and ``2 * max_bins`` bins once the
series is longer than ``2 * max_bins`` samples, and is every sample (``width == 1``) before that.
The same series gives the same envelope in any blocking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Envelope", "EnvelopeAccumulator"]


@dataclass(frozen=True, eq=False)
class Envelope:
    """Bin ``i`` covers samples ``[i * width, min((i + 1) * width, count))``.

    Attributes
    ----------
    width : int
        Samples per bin (a power of two; 1 means ``lo == hi`` are the samples themselves).
    count : int
        Samples fed.
    lo, hi : numpy.ndarray
        Minimum and maximum of each bin (``ceil(count / width)`` values).
    """

    width: int
    count: int
    lo: np.ndarray
    hi: np.ndarray

    @property
    def starts(self) -> np.ndarray:
        """Index of the first sample of each bin."""
        return np.arange(self.lo.shape[0]) * self.width


class EnvelopeAccumulator:
    """Accumulate a min/max envelope of a series fed in blocks of any size.

    Parameters
    ----------
    max_bins : int
        At least this many bins are kept once the series is long enough, at most twice as many (>= 1).
    """

    def __init__(self, max_bins: int) -> None:
        if isinstance(max_bins, bool) or not isinstance(max_bins, int) or max_bins < 1:
            raise ValueError(f"max_bins must be an integer >= 1, got {max_bins!r}")
        self.max_bins = max_bins
        self.width = 1
        self.count = 0
        self._lo = np.empty(0)
        self._hi = np.empty(0)

    def feed(self, x: np.ndarray) -> None:
        """Add the next block of the series."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 1:
            raise ValueError(f"blocks must be 1-D, got shape {x.shape}")
        if not x.shape[0]:
            return
        total = self.count + x.shape[0]
        while -(-total // self.width) > 2 * self.max_bins:
            self._halve()
        w = self.width
        # Finish the last bin if it is partial, then whole bins of the block, then a partial one.
        head = (-self.count) % w
        if head:
            part = x[:head]
            self._lo[-1] = min(self._lo[-1], float(part.min()))
            self._hi[-1] = max(self._hi[-1], float(part.max()))
            x = x[head:]
        n_full = x.shape[0] // w
        los = [self._lo]
        his = [self._hi]
        if n_full:
            body = x[: n_full * w].reshape(n_full, w)
            los.append(body.min(axis=1))
            his.append(body.max(axis=1))
        rest = x[n_full * w :]
        if rest.shape[0]:
            los.append(np.array([rest.min()]))
            his.append(np.array([rest.max()]))
        self._lo = np.concatenate(los)
        self._hi = np.concatenate(his)
        self.count = total

    def _halve(self) -> None:
        """Merge bins in pairs (an odd last bin stays alone) and double the width."""
        n = self._lo.shape[0]
        if n:
            even = n - n % 2
            lo = np.minimum(self._lo[0:even:2], self._lo[1:even:2])
            hi = np.maximum(self._hi[0:even:2], self._hi[1:even:2])
            if n % 2:
                lo = np.append(lo, self._lo[-1])
                hi = np.append(hi, self._hi[-1])
            self._lo, self._hi = lo, hi
        self.width *= 2

    def result(self) -> Envelope:
        """The envelope so far (copies: feeding on does not change it)."""
        return Envelope(self.width, self.count, self._lo.copy(), self._hi.copy())
