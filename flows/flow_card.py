"""The end step's Metaflow card: one figure per chunk (signal, band powers, autocorrelation).

Figures are built by :func:`chunk_figure` (testable without Metaflow); :func:`render_card` appends
them, a summary, the set-aside chunks and the chunks skipped as already up to date to the card.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import matplotlib

matplotlib.use("Agg")  # pods and CI have no display

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

__all__ = ["MAX_SIGNAL_POINTS", "chunk_figure", "envelope", "render_card"]

# Above this many samples the signal panel shows a min/max envelope per bin instead of every
# sample: a stride would alias spikes away, an envelope keeps them visible.
MAX_SIGNAL_POINTS = 2000


def envelope(values: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split ``values`` into ``bins`` contiguous bins; return (first index, min, max) of each bin."""
    edges = np.linspace(0, len(values), bins + 1).astype(int)
    starts = edges[:-1]
    return starts, np.minimum.reduceat(values, starts), np.maximum.reduceat(values, starts)


def chunk_figure(
    name: str,
    values: np.ndarray,
    t0: float,
    fs: float,
    band_edges: Sequence[float] | None,
    band_powers: Sequence[float] | None,
    acf: Sequence[float] | None,
) -> Figure:
    """One figure for one chunk: resampled signal (or its envelope), band powers, autocorrelation."""
    fig, (ax_sig, ax_band, ax_acf) = plt.subplots(1, 3, figsize=(14, 3.2), gridspec_kw={"width_ratios": [2.2, 1, 1]})
    fig.suptitle(name, fontsize=10)
    n = len(values)
    if n > MAX_SIGNAL_POINTS:
        starts, lo, hi = envelope(values, MAX_SIGNAL_POINTS // 2)
        t = starts / fs
        ax_sig.fill_between(t, lo, hi, step="post", linewidth=0.6)
        ax_sig.set_title(
            f"resampled signal, min/max per {math.ceil(n / len(starts))} samples ({n} samples)", fontsize=9
        )
    else:
        ax_sig.plot(np.arange(n) / fs, values, linewidth=0.8)
        ax_sig.set_title(f"resampled signal ({n} samples at {fs:g} Hz)", fontsize=9)
    # Relative time: epoch seconds (~1.8e9) would make matplotlib print an unreadable axis offset.
    start = datetime.fromtimestamp(t0, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    ax_sig.set_xlabel(f"seconds since {start}")

    if band_powers:
        powers = np.asarray(band_powers, dtype=float)
        if band_edges is not None and len(band_edges) == len(powers) + 1:
            labels = [f"{lo:.3g}-{hi:.3g}" for lo, hi in itertools.pairwise(band_edges)]
        else:
            labels = [str(i) for i in range(len(powers))]
        ax_band.bar(range(len(powers)), powers)
        ax_band.set_xticks(range(len(powers)), labels, rotation=45, ha="right", fontsize=7)
        if np.all(powers > 0):
            ax_band.set_yscale("log")  # band powers span decades
        ax_band.set_xlabel("band [Hz]")
    ax_band.set_title("band power", fontsize=9)

    if acf:
        lags = np.arange(1, len(acf) + 1)
        ax_acf.vlines(lags / fs, 0, acf, linewidth=1.0)
        ax_acf.plot(lags / fs, acf, "o", markersize=2)
        ax_acf.axhline(0, color="black", linewidth=0.5)
        if n > 0:
            # ±1.96/√n: where lags of white noise would fall 95 % of the time.
            band = 1.96 / math.sqrt(n)
            ax_acf.axhspan(-band, band, alpha=0.15, color="grey")
        ax_acf.set_ylim(-1.05, 1.05)
        ax_acf.set_xlabel("lag [s]")
    ax_acf.set_title("autocorrelation", fontsize=9)
    fig.tight_layout()
    return fig


def render_card(
    card: Any,
    *,
    summary: Mapping[str, Any],
    preprocessed: Mapping[str, Any],
    bands: Mapping[str, tuple[list[float], list[float]]],
    acfs: Mapping[str, list[float]],
    failures: Mapping[str, Mapping[str, str]],
    max_plotted: int,
    skipped: Mapping[str, Mapping[str, str | None]] | None = None,
) -> None:
    """Append the summary, a table of all chunks, one figure per chunk (up to ``max_plotted``).

    ``skipped`` maps the chunks an event run left out (their record was already up to date) to
    that record's ``status`` (``processed``/``failed``), ``run_pathspec`` and ``reason``.
    """
    from metaflow.cards import Image, Markdown, Table

    skipped = skipped or {}
    title = f"# Sensor chunks: {summary.get('processed', 0)} processed, {len(failures)} set aside"
    if skipped:
        title += f", {len(skipped)} skipped (already up to date)"
    card.append(Markdown(title))
    card.append(
        Markdown(
            f"mode: **{summary.get('mode')}**"
            + (" (force: up-to-date chunks processed again)" if summary.get("forced") else "")
            + (f" — fallback: {summary['fallback']}" if "fallback" in summary else "")
        )
    )
    rows = [
        [name, pre.n_raw, pre.n_dropped, f"{pre.gap_fraction:.3f}", len(pre.values), "processed"]
        for name, pre in preprocessed.items()
        if name not in failures
    ]
    rows += [[name, "", "", "", "", f"set aside ({f['step']}): {f['reason']}"] for name, f in failures.items()]
    rows += [[name, "", "", "", "", _skipped_status(state)] for name, state in skipped.items()]
    if rows:
        card.append(Table(rows, headers=["chunk", "raw samples", "dropped", "gap fraction", "resampled", "status"]))
    plotted = 0
    for name, pre in preprocessed.items():
        if name in failures:
            continue
        if plotted >= max_plotted:
            card.append(
                Markdown(
                    f"{len(rows) - plotted - len(failures) - len(skipped)} more chunk(s) not plotted (SENSOR_CARD_MAX_CHUNKS)"
                )
            )
            break
        edges, powers = bands.get(name, (None, None))
        fig = chunk_figure(name, pre.values, pre.t0, pre.fs, edges, powers, acfs.get(name))
        card.append(Image.from_matplotlib(fig, label=name))
        plt.close(fig)
        plotted += 1


def _skipped_status(state: Mapping[str, str | None]) -> str:
    """The status cell of a chunk skipped because its record is up to date."""
    by = f" by {state['run_pathspec']}" if state.get("run_pathspec") else ""
    if state.get("status") == "failed":
        reason = f": {state['reason']}" if state.get("reason") else ""
        return f"skipped, up to date: failed{by}{reason} (force=true retries)"
    return f"skipped, up to date: processed{by}"
