"""Filter-bank band powers from Welch's PSD, as a streaming accumulator.

Welch as ``scipy.signal.welch(x, fs, window="hann", nperseg=N, noverlap=N // 2,
detrend="constant", scaling="density", return_onesided=True)``: segments start every
``N - N // 2`` samples, trailing samples that do not fill a segment are ignored. The segment
tail is carried across blocks, so feeding a series in any blocking gives the same segments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["WelchAccumulator", "WelchState", "band_edges", "band_powers_from_psd", "hann", "welch_psd"]

# Segments per FFT batch: big enough for batched FFT speed, small enough to stay in cache.
_BATCH = 128


def hann(n: int) -> np.ndarray:
    """The periodic ("DFT-even") Hann window of ``n`` points, bit for bit ``scipy.signal.get_window("hann", n)``.

    scipy builds it as the symmetric window of ``n + 1`` points without its last one, as
    ``0.5 + 0.5 cos(x)`` over ``linspace(-pi, pi, n + 1)``: the same operations here give the same
    floats, without importing scipy (~2 s of every task's start-up on a small pod).
    """
    if n < 1:
        raise ValueError(f"window length must be >= 1, got {n!r}")
    if n == 1:
        return np.ones(1)  # scipy's special case
    return (0.5 + 0.5 * np.cos(np.linspace(-np.pi, np.pi, n + 1)))[:-1]


class WelchAccumulator:
    """Accumulate Welch's PSD over a series fed in blocks of any size.

    Parameters
    ----------
    fs : float
        Sampling rate of the series, Hz.
    nperseg : int
        Segment length (>= 8). Overlap is ``nperseg // 2``.
    """

    def __init__(self, fs: float, nperseg: int) -> None:
        if nperseg < 8:
            raise ValueError(f"nperseg must be an integer >= 8, got {nperseg!r}")
        self.fs = float(fs)
        self.nperseg = int(nperseg)
        self.step = self.nperseg - self.nperseg // 2
        self.window = hann(self.nperseg)
        self.n_segments = 0
        self._power = np.zeros(2 * (self.nperseg // 2 + 1))
        self._work: np.ndarray | None = None  # reused batch buffers: windowed segments, spectra
        self._spec = np.empty((0, 0), dtype=np.complex128)
        self._tail = np.empty(0)

    def feed(self, x: np.ndarray) -> None:
        """Add the next block of the series."""
        x = np.asarray(x, dtype=np.float64)
        n_tail = self._tail.shape[0]
        if n_tail and x.shape[0] >= 2 * self.nperseg:
            # Segments starting in the carried tail get a small joined buffer; x itself is not copied.
            n_head = (n_tail + self.step - 1) // self.step
            self._segments(np.concatenate((self._tail, x[: self.nperseg - 1])), n_head)
            x = x[n_head * self.step - n_tail :]
            self._tail = np.empty(0)
        buf = np.concatenate((self._tail, x)) if self._tail.size else x
        n_seg = (buf.shape[0] - self.nperseg) // self.step + 1 if buf.shape[0] >= self.nperseg else 0
        self._segments(buf, n_seg)
        self._tail = buf[n_seg * self.step :].copy()

    def _segments(self, buf: np.ndarray, n_seg: int) -> None:
        """Add the first ``n_seg`` segments of ``buf`` (starting every ``step`` samples)."""
        if not n_seg:
            return
        segments = np.lib.stride_tricks.sliding_window_view(buf, self.nperseg)[:: self.step][:n_seg]
        if self._work is None:
            self._work = np.empty((_BATCH, self.nperseg))
            self._spec = np.empty((_BATCH, self.nperseg // 2 + 1), dtype=np.complex128)
        means = None
        if self.nperseg % 2 == 0:
            # Segments are two consecutive halves: sum each half once (pairwise summation splits
            # a segment's sum into the same two halves, so this is the segment mean to the bit).
            halves = buf[: (n_seg + 1) * self.step].reshape(n_seg + 1, self.step).sum(axis=1)
            means = (halves[:-1] + halves[1:]) / self.nperseg
        for start in range(0, n_seg, _BATCH):
            batch = segments[start : start + _BATCH]
            # Constant detrend per segment, then window: the same order as scipy, for the same
            # rounding. Segments and spectra go to reused buffers (no per-batch allocation).
            work = self._work[: batch.shape[0]]
            mean = batch.mean(axis=1, keepdims=True) if means is None else means[start : start + _BATCH, None]
            np.subtract(batch, mean, out=work)
            work *= self.window
            spec = np.fft.rfft(work, axis=1, out=self._spec[: batch.shape[0]])
            flat = spec.view(np.float64)
            self._power += np.einsum("ij,ij->j", flat, flat)  # real² and imaginary², interleaved
        self.n_segments += n_seg

    def psd(self) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(frequencies, psd)`` exactly as ``scipy.signal.welch`` defines them.

        Raises
        ------
        ValueError
            If fewer than ``nperseg`` samples were fed.
        """
        if not self.n_segments:
            raise ValueError(f"nperseg={self.nperseg} is larger than the series; need at least nperseg samples")
        return welch_psd(self._power, self.n_segments, self.fs, self.window)

    def state(self) -> WelchState:
        """The accumulated sums, O(nperseg) whatever the series length: enough for :meth:`WelchState.psd`."""
        return WelchState(self.fs, self.nperseg, self.n_segments, self._power.copy())


@dataclass(frozen=True, eq=False)
class WelchState:
    """What a :class:`WelchAccumulator` holds once fed: a small, picklable summary of a whole series.

    Attributes
    ----------
    fs, nperseg : float, int
        As given to the accumulator.
    n_segments : int
        Segments accumulated.
    power : numpy.ndarray
        Σ over segments of ``|rfft(segment)|²``, real and imaginary parts interleaved.
    """

    fs: float
    nperseg: int
    n_segments: int
    power: np.ndarray

    def psd(self) -> tuple[np.ndarray, np.ndarray]:
        """``(frequencies, psd)``, equal to :meth:`WelchAccumulator.psd` of the accumulator it came from."""
        if not self.n_segments:
            raise ValueError(f"nperseg={self.nperseg} is larger than the series; need at least nperseg samples")
        return welch_psd(self.power, self.n_segments, self.fs, hann(self.nperseg))


def welch_psd(power: np.ndarray, n_segments: int, fs: float, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Welch's one-sided density from the summed segment power spectra."""
    nperseg = window.shape[0]
    scale = 1.0 / (fs * float((window * window).sum()))
    psd = (power[0::2] + power[1::2]) * (scale / n_segments)
    # One-sided: double every bin but DC and (for even nperseg) Nyquist.
    if nperseg % 2:
        psd[1:] *= 2
    else:
        psd[1:-1] *= 2
    freqs = np.arange(psd.shape[0]) * (fs / nperseg)
    return freqs, psd


def band_edges(fs: float, nperseg: int, n_bands: int) -> np.ndarray:
    """Log-spaced band edges in Hz, from ``fs / nperseg`` to ``fs / 2`` (``n_bands + 1`` values).

    Edges are ``geomspace(1, nperseg / 2, n_bands + 1)`` in units of the bin width
    ``fs / nperseg``; membership of bin ``j`` is decided in those units, so float rounding of
    the Hz values cannot move a bin across an edge.
    """
    edges = np.geomspace(1.0, nperseg / 2, n_bands + 1) * (fs / nperseg)
    edges[0], edges[-1] = fs / nperseg, fs / 2
    return edges


def band_powers_from_psd(psd: np.ndarray, fs: float, nperseg: int, n_bands: int) -> np.ndarray:
    """Sum a one-sided PSD over the log-spaced bands, times the bin width.

    Bin ``j`` (frequency ``j * fs / nperseg``) belongs to band ``[lo, hi)``; the last band
    also includes ``fs / 2``. The DC bin lies below the first edge and is in no band.
    """
    in_bins = np.geomspace(1.0, nperseg / 2, n_bands + 1)
    j = np.arange(psd.shape[0])
    band = np.searchsorted(in_bins, j, side="right") - 1
    band[j == nperseg / 2] = n_bands - 1  # Nyquist closes the last band
    keep = (band >= 0) & (band < n_bands)
    powers = np.bincount(band[keep], weights=psd[keep], minlength=n_bands)
    return powers * (fs / nperseg)
