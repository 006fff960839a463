"""band_powers against scipy.signal.welch + the band summation, and known answers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from processing.features import ProcessingSettings, band_powers
from processing.welch import WelchAccumulator, band_edges


def scipy_band_powers(x: np.ndarray, fs: float, nperseg: int, n_bands: int) -> list[float]:
    """The independent reference: scipy's Welch, then the issue's band rule in plain Python."""
    f, pxx = scipy.signal.welch(
        x,
        fs=fs,
        window="hann",
        nperseg=nperseg,
        noverlap=nperseg // 2,
        detrend="constant",
        scaling="density",
        return_onesided=True,
    )
    width = fs / nperseg
    edges = [(nperseg / 2) ** (i / n_bands) for i in range(n_bands + 1)]  # in bins: 1 … nperseg/2
    out = [0.0] * n_bands
    for freq, p in zip(f, pxx, strict=True):
        j = round(freq / width)
        for b in range(n_bands):
            last = b == n_bands - 1
            if edges[b] - 1e-9 <= j and (j < edges[b + 1] - 1e-9 or (last and j <= nperseg / 2)):
                out[b] += p * width
                break
    return out


@pytest.mark.parametrize(
    ("n", "fs", "nperseg", "n_bands"),
    [
        (50_000, 100.0, 1024, 8),
        (4_096, 100.0, 1024, 8),
        (1_024, 100.0, 1024, 8),
        (9_999, 37.5, 256, 5),
        (3_001, 10.0, 9, 3),
        (777, 1.0, 8, 1),
        (20_000, 250.0, 1000, 12),
    ],
)
def test_matches_scipy_welch_within_1e9(n: int, fs: float, nperseg: int, n_bands: int) -> None:
    rng = np.random.default_rng(n)
    t = np.arange(n) / fs
    x = 50.0 + 0.01 * t + np.sin(2 * np.pi * 0.2 * fs * t) + rng.normal(0, 0.5, n)
    s = ProcessingSettings(fs=fs, nperseg=nperseg, n_bands=n_bands)
    edges, powers = band_powers(x, s)
    ref = scipy_band_powers(x, fs, nperseg, n_bands)
    assert len(edges) == n_bands + 1 and len(powers) == n_bands
    for ours, theirs in zip(powers, ref, strict=True):
        assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-300)


def test_edges_are_log_spaced_from_the_first_bin_to_nyquist() -> None:
    edges = band_edges(100.0, 1024, 8)
    assert edges[0] == 100.0 / 1024 and edges[-1] == 50.0
    ratios = edges[1:] / edges[:-1]
    np.testing.assert_allclose(ratios, 512 ** (1 / 8), rtol=1e-12)


def test_block_feeding_gives_the_same_psd() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=30_000)
    whole = WelchAccumulator(100.0, 512)
    whole.feed(x)
    pieces = WelchAccumulator(100.0, 512)
    cuts = np.sort(rng.integers(0, x.shape[0], 40))
    for part in np.split(x, cuts):
        pieces.feed(part)
    assert pieces.n_segments == whole.n_segments == (30_000 - 512) // 256 + 1
    np.testing.assert_allclose(pieces.psd()[1], whole.psd()[1], rtol=1e-12)


def test_known_answer_sine_power_lands_in_its_band() -> None:
    # A sine of amplitude 2 has power A²/2 = 2; with a bin-centred frequency, Hann leakage
    # stays within ±1 bin, so the band holding 10 Hz gets (nearly) all of it.
    fs, nperseg = 100.0, 1000
    t = np.arange(100_000) / fs
    x = 2.0 * np.sin(2 * np.pi * 10.0 * t)
    edges, powers = band_powers(x, ProcessingSettings(fs=fs, nperseg=nperseg, n_bands=4))
    band = int(np.searchsorted(edges, 10.0, side="right")) - 1
    assert powers[band] == pytest.approx(2.0, rel=1e-6)
    assert sum(powers) - powers[band] < 1e-12


def test_known_answer_white_noise_total_power_is_its_variance() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(0.0, 3.0, 400_000)
    _, powers = band_powers(x, ProcessingSettings(fs=100.0, nperseg=256, n_bands=6))
    # Bins 1 … 128 of 129 carry all but the DC bin's half-bin share: about 9 * (1 - 0.5/128).
    assert sum(powers) == pytest.approx(9.0 * (1 - 0.5 / 128), rel=0.01)


def test_too_short_and_bad_shapes_raise_naming_the_rule() -> None:
    with pytest.raises(ValueError, match=r"nperseg=1024 is larger than the series \(1000 samples\)"):
        band_powers(np.zeros(1000), ProcessingSettings())
    with pytest.raises(ValueError, match="1-D"):
        band_powers(np.zeros((2000, 2)), ProcessingSettings())
    with pytest.raises(ValueError, match="finite"):
        band_powers(np.full(2000, np.nan), ProcessingSettings())
