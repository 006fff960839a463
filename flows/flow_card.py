"""The end step's Metaflow card: a table of every chunk, one figure for each of the worst few.

Figures are built by :func:`chunk_figure` (testable without Metaflow) from a chunk's streamed
min/max envelope (``processing.envelope``), never from its samples: the run never holds those.
:func:`render_card` appends a summary, the table (processed, set aside, skipped as up to date)
and figures for at most ``SENSOR_CARD_MAX_CHUNKS`` chunks, the worst first (``card_selection``).
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

from processing.envelope import Envelope

__all__ = ["chunk_figure", "render_card"]


def chunk_figure(
    name: str,
    signal: Envelope | None,
    t0: float,
    fs: float,
    band_edges: Sequence[float] | None,
    band_powers: Sequence[float] | None,
    acf: Sequence[float] | None,
) -> Figure:
    """One figure for one chunk: resampled signal (every sample, or its min/max envelope), band powers, ACF.

    ``signal`` with ``width == 1`` holds every grid value and is drawn as a line; wider bins are
    drawn as a filled min/max band, so a spike stays visible however long the chunk.
    """
    fig, (ax_sig, ax_band, ax_acf) = plt.subplots(1, 3, figsize=(14, 3.2), gridspec_kw={"width_ratios": [2.2, 1, 1]})
    fig.suptitle(name, fontsize=10)
    n = signal.count if signal is not None else 0
    if signal is None:
        ax_sig.set_title("resampled signal (not kept)", fontsize=9)
    elif signal.width > 1:
        t = signal.starts / fs
        ax_sig.fill_between(t, signal.lo, signal.hi, step="post", linewidth=0.6)
        ax_sig.set_title(f"resampled signal, min/max per {signal.width} samples ({n} samples)", fontsize=9)
    else:
        ax_sig.plot(np.arange(n) / fs, signal.lo, linewidth=0.8)
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
    summaries: Mapping[str, Any],
    envelopes: Mapping[str, Envelope | None],
    bands: Mapping[str, tuple[list[float], list[float]]],
    acfs: Mapping[str, list[float]],
    failures: Mapping[str, Mapping[str, str]],
    max_plotted: int,
    skipped: Mapping[str, Mapping[str, str | None]] | None = None,
) -> None:
    """Append the summary, a table of all chunks, and figures of the chunks in ``envelopes``.

    ``summaries`` maps each streamed chunk to its ``processing.features.ChunkSummary``;
    ``envelopes`` holds the chunks to plot, the worst first (at most ``max_plotted`` are drawn).
    ``skipped`` maps the chunks an event run left out (their record was already up to date) to
    that record's ``status`` (``processed``/``failed``), ``run_pathspec`` and ``reason``.
    """
    from metaflow.cards import Image, Markdown, Table

    skipped = skipped or {}
    title = f"# Sensor chunks: {summary.get('processed', 0)} processed, {len(failures)} set aside"
    if skipped:
        title += f", {len(skipped)} skipped (already up to date)"
    card.append(Markdown(title))
    latency = summary.get("latency_s") or {}
    card.append(
        Markdown(
            f"mode: **{summary.get('mode')}**"
            + (" (force: up-to-date chunks processed again)" if summary.get("forced") else "")
            + (f" — fallback: {summary['fallback']}" if "fallback" in summary else "")
            + (
                f" — upload → result: p50 {latency['p50']:.1f} s, p95 {latency['p95']:.1f} s over {latency['count']} chunk(s)"
                if latency.get("count")
                else ""
            )
        )
    )
    processed = [name for name in summaries if name not in failures]
    rows = [
        [
            name,
            summaries[name].n_raw,
            summaries[name].n_dropped,
            f"{summaries[name].gap_fraction:.3f}",
            summaries[name].n_resampled,
            "processed",
        ]
        for name in processed
    ]
    rows += [[name, "", "", "", "", f"set aside ({f['step']}): {f['reason']}"] for name, f in failures.items()]
    rows += [[name, "", "", "", "", _skipped_status(state)] for name, state in skipped.items()]
    if rows:
        card.append(Table(rows, headers=["chunk", "raw samples", "dropped", "gap fraction", "resampled", "status"]))
    to_plot = [name for name in envelopes if name in summaries and name not in failures][: max(max_plotted, 0)]
    if to_plot:
        card.append(Markdown(f"## The {len(to_plot)} chunk(s) with the most missing data (gaps + dropped rows)"))
    for name in to_plot:
        chunk = summaries[name]
        edges, powers = bands.get(name, (None, None))
        fig = chunk_figure(name, envelopes[name], chunk.t0, chunk.fs, edges, powers, acfs.get(name))
        card.append(Image.from_matplotlib(fig, label=name))
        plt.close(fig)
    if len(processed) > len(to_plot):
        card.append(
            Markdown(f"{len(processed) - len(to_plot)} more processed chunk(s) not plotted (SENSOR_CARD_MAX_CHUNKS)")
        )


def _skipped_status(state: Mapping[str, str | None]) -> str:
    """The status cell of a chunk skipped because its record is up to date."""
    by = f" by {state['run_pathspec']}" if state.get("run_pathspec") else ""
    if state.get("status") == "failed":
        reason = f": {state['reason']}" if state.get("reason") else ""
        return f"skipped, up to date: failed{by}{reason} (force=true retries)"
    return f"skipped, up to date: processed{by}"
