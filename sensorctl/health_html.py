"""``sensorctl health --html FILE``: one self-contained HTML page of a :class:`~sensorctl.health.HealthReport`.

Inline CSS, every plot a base64 PNG data URI, no script and no external resource: the page can be
mailed, attached to a ticket or opened from a CI artifact. Sections: the status and fleet totals;
the per-sensor table (worst first); stuck chunks and recent failures; the fleet over the window
(throughput, latency, backlog); latency and backlog of the worst ``plot_sensors`` sensors; the
features' drift across the fleet (a heatmap) and the trends of the ``plot_sensors`` most drifting
sensors (band powers, lag-1 autocorrelation, gap fraction).

Plots use matplotlib's object API (``matplotlib.figure.Figure``, saved through the Agg canvas), so
rendering touches no global pyplot state and needs no display.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sensorctl.health import (
    DRIFT_THRESHOLD,
    FLEET_BINS,
    MAX_LISTED,
    FeaturePoint,
    HealthReport,
    SensorHealth,
    backlog_bins,
    format_age,
    format_duration,
)

__all__ = ["DEFAULT_PLOT_SENSORS", "render_page", "write_page"]

DEFAULT_PLOT_SENSORS = 12
MAX_TABLE_ROWS = 500
MAX_HEATMAP_ROWS = 40
MAX_PAGE_LIST = 12  # stuck chunks and failures listed on the page (the JSON has up to 50, the counts are complete)
DPI = 110

# One palette for badges, tiles and plots.
GREEN = "#1a7f37"
RED = "#cf222e"
ORANGE = "#d4600f"
PURPLE = "#8250df"
BLUE = "#0969da"
AMBER = "#9a6700"
GREY = "#57606a"
INK = "#1f2328"
GRID = "#d8dee4"

BADGE = {
    "stuck": RED,
    "silent": PURPLE,
    "failed": ORANGE,
    "pending": BLUE,
    "ok": GREEN,
    "drift": AMBER,
}

_RC: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 8.5,
    "axes.titlesize": 9,
    "axes.titleweight": "bold",
    "axes.labelsize": 8.5,
    "axes.labelcolor": INK,
    "axes.edgecolor": "#8c959f",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": GRID,
    "grid.linewidth": 0.6,
    "xtick.color": GREY,
    "ytick.color": GREY,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "legend.fontsize": 7,
    "legend.frameon": False,
    "timezone": "UTC",
}


# --------------------------------------------------------------------------- plotting helpers


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _date_axis(ax: Any, start: datetime | None = None, end: datetime | None = None) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=3, maxticks=7)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, show_offset=True))
    if start is not None and end is not None:
        ax.set_xlim(start, end)


_NICE_SECONDS = (
    1,
    2,
    5,
    10,
    20,
    30,
    60,
    120,
    300,
    600,
    1200,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    86400,
    172800,
    604800,
)


def _short(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:g}s"
    if seconds < 3600:
        return f"{seconds / 60:g}m"
    if seconds < 86400:
        return f"{seconds / 3600:g}h"
    return f"{seconds / 86400:g}d"


def _plot_start(report: HealthReport) -> datetime:
    return report.plot_start or report.window_start


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color=GREY, fontsize=8)
    ax.set_yticks([])


class _Scale:
    """One latency axis for every latency plot of the page (same limits), so panels compare at a glance.

    Logarithmic with duration ticks (``30s``, ``5m``, ``1h``) when the values and the stuck threshold
    span more than a factor 30, else linear in s, min or h.
    """

    def __init__(self, report: HealthReport) -> None:
        values = [v for s in report.series.values() for _, v in s.latency]
        values += [v for b in report.fleet_bins for v in (b.latency_p50_s, b.latency_p95_s) if v is not None]
        self.stuck = report.stuck_after.total_seconds()
        top = max([*values, self.stuck])
        positive = [v for v in values if v > 0]
        self.log = bool(positive) and top / min(positive) > 30
        if self.log:
            self.divisor, self.unit = 1.0, ""
            self.limits = (min(positive) / 1.6, top * 1.6)
        else:
            self.divisor, self.unit = (3600.0, "h") if top >= 3 * 3600 else (60.0, "min") if top >= 180 else (1.0, "s")
            self.limits = (0.0, top * 1.12 / self.divisor)

    def label(self) -> str:
        return "latency (log scale)" if self.log else f"latency [{self.unit}]"

    def values(self, seconds: Sequence[float]) -> list[float]:
        return [max(v, self.limits[0]) if self.log else v / self.divisor for v in seconds]

    def apply(self, ax: Any) -> None:
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

        ax.axhline(self.stuck / self.divisor, color=RED, linestyle="--", linewidth=0.8)
        if self.log:
            ax.set_yscale("log")
            ticks = [t for t in _NICE_SECONDS if self.limits[0] <= t <= self.limits[1]]
            if len(ticks) > 6:  # keep about five readable ticks
                ticks = ticks[:: math.ceil(len(ticks) / 5)]
            ax.yaxis.set_major_locator(FixedLocator(ticks))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _short(v)))
            ax.yaxis.set_minor_locator(NullLocator())
        ax.set_ylim(*self.limits)
        ax.set_ylabel(self.label())


def _backlog(
    ax: Any, report: HealthReport, steps: Sequence[tuple[datetime, int]], *, label: str, legend: bool = False
) -> None:
    from matplotlib.ticker import MaxNLocator

    bins = backlog_bins(steps, _plot_start(report), report.generated_at, FLEET_BINS)
    if bins:
        xs = [lo for lo, _, _, _ in bins] + [bins[-1][1]]
        most = [m for _, _, m, _ in bins] + [bins[-1][2]]
        mean = [v for _, _, _, v in bins] + [bins[-1][3]]
        ax.step(xs, most, where="post", color=ORANGE, linewidth=0.8, alpha=0.55, label="most at once")
        ax.step(xs, mean, where="post", color=ORANGE, linewidth=1.4, label="mean")
        ax.fill_between(xs, mean, step="post", color=ORANGE, alpha=0.22)
        if legend:
            ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2)
    top = max((m for _, _, m, _ in bins), default=0)
    ax.set_ylim(0, max(1, top) * 1.15)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
    ax.set_ylabel(label)


def _fleet_figure(report: HealthReport, scale: _Scale) -> str:
    import matplotlib.dates as mdates
    from matplotlib.ticker import MaxNLocator

    with _rc():
        fig = _figure(13, 6.2)
        ax_tp, ax_lat, ax_bl = fig.subplots(3, 1, sharex=True)
        bins = report.fleet_bins
        if bins:
            width = (bins[0].end - bins[0].start).total_seconds() / 86400 * 0.85
            centres = [b.start + (b.end - b.start) / 2 for b in bins]
            x = mdates.date2num(centres)
            processed = [b.processed for b in bins]
            failed = [b.failed for b in bins]
            ax_tp.bar(x, processed, width=width, color=GREEN, label="processed")
            ax_tp.bar(x, failed, width=width, bottom=processed, color=RED, label="failed")
            ax_tp.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2)
            ax_tp.set_ylabel(f"results per {format_duration((bins[0].end - bins[0].start).total_seconds())}")
            ax_tp.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
            p50 = [(c, b.latency_p50_s) for c, b in zip(centres, bins, strict=True) if b.latency_p50_s is not None]
            p95 = [(c, b.latency_p95_s) for c, b in zip(centres, bins, strict=True) if b.latency_p95_s is not None]
            if p95:
                ax_lat.plot(
                    [t for t, _ in p95],
                    scale.values([v for _, v in p95]),
                    "-o",
                    color=ORANGE,
                    markersize=2.5,
                    linewidth=1.2,
                    label="p95",
                )
                ax_lat.plot(
                    [t for t, _ in p50],
                    scale.values([v for _, v in p50]),
                    "-o",
                    color=BLUE,
                    markersize=2.5,
                    linewidth=1.2,
                    label="p50",
                )
                ax_lat.plot(
                    [],
                    [],
                    "--",
                    color=RED,
                    linewidth=0.8,
                    label=f"stuck after {format_duration(report.stuck_after.total_seconds())}",
                )
                scale.apply(ax_lat)
                ax_lat.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=3)
            else:
                _empty(ax_lat, "no results in the window")
        ax_tp.set_title("results per interval (processed, failed)", loc="left")
        ax_lat.set_title("upload → result latency per interval", loc="left")
        ax_bl.set_title("backlog: chunks uploaded and not yet recorded, per interval", loc="left")
        _backlog(ax_bl, report, report.fleet_backlog, label="backlog [chunks]", legend=True)
        ax_bl.set_xlabel("time (UTC)")
        _date_axis(ax_bl, _plot_start(report), report.generated_at)
        return _png(fig)


def _sensor_ops_figure(report: HealthReport, sensor: SensorHealth, scale: _Scale) -> str:
    series = report.series.get(sensor.sensor)
    with _rc():
        fig = _figure(4.25, 3.1)
        ax_lat, ax_bl = fig.subplots(2, 1, sharex=True, height_ratios=[1.35, 1])
        if series is not None and series.latency:
            ax_lat.plot(
                [t for t, _ in series.latency],
                scale.values([v for _, v in series.latency]),
                "o",
                color=BLUE,
                markersize=3,
                alpha=0.7,
            )
            scale.apply(ax_lat)
        else:
            _empty(ax_lat, "no results in the window")
            ax_lat.set_ylabel(scale.label())
        _backlog(ax_bl, report, series.backlog if series is not None else (), label="backlog\n[chunks]")
        if sensor.silent:
            since = (
                _plot_start(report) if sensor.last_chunk_at is None else max(sensor.last_chunk_at, _plot_start(report))
            )
            for ax in (ax_lat, ax_bl):
                ax.axvspan(since, report.generated_at, color=PURPLE, alpha=0.08, linewidth=0)
            ax_bl.text(0.99, 0.92, "silent", transform=ax_bl.transAxes, ha="right", va="top", color=PURPLE, fontsize=8)
        ax_bl.set_xlabel("time (UTC)")
        _date_axis(ax_bl, _plot_start(report), report.generated_at)
        return _png(fig)


def _band_labels(points: Sequence[FeaturePoint]) -> list[str]:
    n = min((len(p.band_powers) for p in points), default=0)
    edges = points[-1].band_edges if points else ()
    if len(edges) >= n + 1:
        return [f"{edges[i]:.3g}–{edges[i + 1]:.3g} Hz" for i in range(n)]
    return [f"band {i}" for i in range(n)]


def _data_span(points: Sequence[FeaturePoint]) -> tuple[datetime, datetime]:
    """One time axis for every feature card: the plotted records' span, padded (at least 10 minutes)."""
    lo, hi = min(p.t for p in points), max(p.t for p in points)
    pad = max((hi - lo) * 0.03, timedelta(minutes=5))
    return lo - pad, hi + pad


def _band_colour(i: int, n: int) -> Any:
    from matplotlib import colormaps

    return colormaps["viridis"](i / max(1, n - 1) * 0.92)


def _band_legend(labels: Sequence[str]) -> str:
    """The band colours once for the whole section (every sensor's panel uses the same)."""
    from matplotlib.colors import to_hex

    items = "".join(
        f'<span class="sw"><i style="background:{to_hex(_band_colour(i, len(labels)))}"></i>{_e(label)}</span>'
        for i, label in enumerate(labels)
    )
    return f'<p class="legend">band power colours: {items}</p>'


def _feature_figure(points: Sequence[FeaturePoint], *, legend: bool, span: tuple[datetime, datetime]) -> str:
    with _rc():
        fig = _figure(13, 2.45)
        ax_band, ax_acf, ax_gap = fig.subplots(1, 3, width_ratios=[1.3, 1, 1])
        times = [p.t for p in points]
        labels = _band_labels(points)
        n = len(labels)
        if n:
            for i in range(n):
                ax_band.plot(
                    times,
                    [max(p.band_powers[i], 1e-300) for p in points],
                    "-o" if len(points) <= 30 else "-",
                    markersize=2.5,
                    color=_band_colour(i, n),
                    linewidth=1.1,
                    label=labels[i],
                )
            if all(p.band_powers[i] > 0 for p in points for i in range(n)):
                ax_band.set_yscale("log")
            if legend:  # this sensor's bands differ from the section's legend
                ax_band.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=6.5, handlelength=1.2)
        else:
            _empty(ax_band, "no band powers")
        ax_band.set_title("band power", loc="left")
        ax_band.set_ylabel("power [signal units² / Hz]")
        acf = [(p.t, p.acf1) for p in points if p.acf1 is not None]
        if acf:
            ax_acf.plot([t for t, _ in acf], [v for _, v in acf], "-o", color=PURPLE, markersize=2.5, linewidth=1.1)
            lo, hi = min(v for _, v in acf), max(v for _, v in acf)
            pad = max(0.05, (hi - lo) * 0.15)
            ax_acf.set_ylim(max(-1.05, lo - pad), min(1.05, hi + pad))
        else:
            _empty(ax_acf, "no autocorrelation")
        ax_acf.set_title("lag-1 autocorrelation", loc="left")
        ax_acf.set_ylabel("r(lag 1) [–]")
        gap = [(p.t, p.gap_fraction * 100) for p in points if p.gap_fraction is not None]
        if gap:
            ax_gap.plot([t for t, _ in gap], [v for _, v in gap], "-o", color=GREY, markersize=2.5, linewidth=1.1)
            ax_gap.fill_between([t for t, _ in gap], [v for _, v in gap], color=GREY, alpha=0.12)
            ax_gap.set_ylim(0, max(1.0, max(v for _, v in gap) * 1.25))
        else:
            _empty(ax_gap, "no gap fraction")
        ax_gap.set_title("gap fraction", loc="left")
        ax_gap.set_ylabel("grid points in gaps [%]")
        for ax in (ax_band, ax_acf, ax_gap):
            ax.set_xlabel("data time (UTC, chunk start)")
            _date_axis(ax, *span)
        return _png(fig)


def _drift_heatmap(rows: Sequence[SensorHealth]) -> str | None:
    import numpy as np

    scored = [r for r in rows if r.drift is not None][:MAX_HEATMAP_ROWS]
    if not scored:
        return None
    columns: list[str] = []
    for r in scored:
        assert r.drift is not None
        for name in r.drift.by_feature:
            if name not in columns:
                columns.append(name)
    values = np.full((len(scored), len(columns)), np.nan)
    for i, r in enumerate(scored):
        assert r.drift is not None
        for j, name in enumerate(columns):
            if name in r.drift.by_feature:
                values[i, j] = r.drift.by_feature[name]
    limit = 6.0
    with _rc():
        fig = _figure(13, 1.5 + 0.3 * len(scored))
        ax = fig.subplots()
        image = ax.imshow(np.clip(values, -limit, limit), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
        ax.set_xticks(range(len(columns)), [c.replace("band ", "") for c in columns], rotation=30, ha="right")
        ax.set_yticks(range(len(scored)), [r.sensor for r in scored])
        ax.grid(False)
        ax.tick_params(length=0)
        for i in range(len(scored)):
            for j in range(len(columns)):
                v = values[i, j]
                if not math.isnan(v):
                    ax.text(
                        j, i, f"{v:+.1f}", ha="center", va="center", fontsize=7, color="white" if abs(v) > 3.5 else INK
                    )
        bar = fig.colorbar(image, ax=ax, shrink=0.9, pad=0.01)
        bar.set_label(f"robust z (|z| > {DRIFT_THRESHOLD:g}: drifting)")
        return _png(fig)


def _rc() -> Any:
    import matplotlib

    rc: Any = _RC  # matplotlib's stubs type the keys as a Literal of every rcParam
    return matplotlib.rc_context(rc)


# --------------------------------------------------------------------------- HTML

_CSS = """
:root { --ink:#1f2328; --muted:#57606a; --line:#d0d7de; --bg:#f6f8fa; --card:#ffffff; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
       font: 14px/1.45 -apple-system, "Segoe UI", "DejaVu Sans", "Liberation Sans", Roboto, Arial, sans-serif; }
main { max-width: 1360px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; letter-spacing: -0.01em; }
h2 { font-size: 18px; margin: 34px 0 10px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
h2 small { font-weight: normal; color: var(--muted); font-size: 13px; margin-left: 8px; }
.sub { color: var(--muted); margin: 0 0 18px; }
.banner { display: flex; gap: 18px; align-items: flex-start; background: var(--card); border: 1px solid var(--line);
          border-left: 8px solid var(--status); border-radius: 8px; padding: 14px 18px; }
.banner .state { font-size: 22px; font-weight: 700; color: var(--status); min-width: 150px; }
.banner ul { margin: 2px 0 0; padding-left: 18px; }
.banner p { margin: 2px 0 0; color: var(--muted); }
.tiles { display: grid; grid-template-columns: repeat(6, 1fr); gap: 10px; margin-top: 14px; }
.tile { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.tile .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: 0.04em; }
.tile .v { font-size: 22px; font-weight: 650; margin-top: 2px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.tile .d { color: var(--muted); font-size: 12px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.tile.bad { border-color: #f4b8bc; background: #fff8f8; } .tile.bad .v { color: #cf222e; }
.tile.warn .v { color: #9a6700; }
table { width: 100%; border-collapse: collapse; background: var(--card); border: 1px solid var(--line); border-radius: 8px;
        overflow: hidden; font-size: 13px; }
th, td { padding: 6px 9px; text-align: right; border-bottom: 1px solid #eaeef2; white-space: nowrap; }
th { background: #f6f8fa; color: var(--muted); font-weight: 600; font-size: 12px; position: sticky; top: 0; }
td.l, th.l { text-align: left; } td.wrap { white-space: normal; word-break: break-word; text-align: left; }
tr.attention td { background: #fffaf0; }
td.mono, .mono { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12px; }
.muted { color: var(--muted); }
.badge { display: inline-block; padding: 1px 8px; margin-right: 4px; border-radius: 999px; color: #fff; font-size: 11.5px;
         font-weight: 600; line-height: 18px; }
.grid { display: grid; grid-template-columns: repeat(3, 1fr); gap: 12px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px 6px; }
.card h3 { margin: 0 0 4px; font-size: 14px; display: flex; gap: 8px; align-items: center; flex-wrap: wrap; }
.card h3 .muted { font-weight: normal; font-size: 12px; }
.card img { width: 100%; height: auto; display: block; }
.wide { margin-bottom: 12px; }
.notes { color: var(--muted); font-size: 13px; }
.two { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
.legend { color: var(--muted); font-size: 12.5px; margin: 4px 0 10px; }
.sw { margin-right: 12px; white-space: nowrap; } .sw i { display: inline-block; width: 14px; height: 4px; margin: 0 5px 3px 0;
  vertical-align: middle; border-radius: 2px; }
footer { margin-top: 36px; color: var(--muted); font-size: 12px; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _badge(flag: str) -> str:
    return f'<span class="badge" style="background:{BADGE.get(flag, GREY)}">{_e(flag)}</span>'


def _badges(s: SensorHealth) -> str:
    """The operational flags, then ``drift`` (which replaces a lone ``ok``: ok operationally, but drifting)."""
    flags = list(s.flags)
    if s.drift is not None and s.drift.drifting:
        flags = [f for f in flags if f != "ok"] + ["drift"]
    return "".join(_badge(f) for f in flags)


def _tile(key: str, value: str, detail: str = "", kind: str = "") -> str:
    return (
        f'<div class="tile {kind}"><div class="k">{_e(key)}</div><div class="v" title="{_e(value)}">{_e(value)}</div>'
        f'<div class="d" title="{_e(detail)}">{_e(detail) or "&nbsp;"}</div></div>'
    )


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "-"


def _tiles(report: HealthReport) -> str:
    f = report.fleet
    now = report.generated_at
    tiles = [
        _tile(
            "sensors", str(f.sensors), f"{f.silent} silent" if f.silent else "none silent", "bad" if f.silent else ""
        ),
        _tile("processed", str(f.processed), f"in the last {format_duration(report.window.total_seconds())}"),
        _tile("failed", str(f.failed), "error records in the window", "bad" if f.failed else ""),
        _tile(
            "pending",
            str(f.pending),
            f"{f.stuck} stuck (> {format_duration(report.stuck_after.total_seconds())})",
            "bad" if f.stuck else "",
        ),
        _tile(
            "latency p50 / p95",
            f"{format_duration(f.latency_p50_s)} / {format_duration(f.latency_p95_s)}",
            f"upload → result, {f.latency_count} chunk(s)",
        ),
        _tile(
            "oldest pending",
            format_duration(f.oldest_pending_age_s),
            f.oldest_pending_chunk or "nothing pending",
            "bad" if f.stuck else "",
        ),
        _tile(
            "recovered by fallback", str(f.recovered), "chunks the cron fallback took", "warn" if f.recovered else ""
        ),
        _tile("last result", format_age(f.last_result_at, now), _when(f.last_result_at)),
    ]
    q = report.queue
    if q is None or q.state == "absent":
        tiles.append(_tile("event queue", "none", f"{q.name} does not exist (immediate mode)" if q else "not read"))
    elif q.state == "error":
        tiles.append(_tile("event queue", "error", q.error or "", "bad"))
    else:
        old = q.oldest_age_s is not None and q.oldest_age_s > report.stuck_after.total_seconds()
        tiles.append(
            _tile("event queue", f"{q.depth} queued", f"oldest {format_duration(q.oldest_age_s)}", "bad" if old else "")
        )
        tiles.append(
            _tile(
                "poison queue",
                str(q.poison_depth if q.poison_depth is not None else "-"),
                f"{q.name}-poison",
                "bad" if q.poison_depth else "",
            )
        )
    a = report.argo
    if a is None or a.state == "not configured":
        tiles.append(_tile("Argo in flight", "n/a", "SUBMIT_BACKEND is not argo"))
    elif a.state == "error":
        tiles.append(_tile("Argo in flight", "error", a.error or "", "bad"))
    else:
        tiles.append(_tile("Argo in flight", f"{a.in_flight}{'+' if a.capped else ''}", "workflows not completed"))
    if f.runs:
        tiles.append(
            _tile(
                "fallback runs",
                str(f.fallback_runs),
                f"last {format_age(f.last_fallback_run_at, now)}; {f.recovered_by_fallback_runs} recovered",
            )
        )
    return '<div class="tiles">' + "".join(tiles) + "</div>"


def _banner(report: HealthReport) -> str:
    colour = GREEN if report.status == "ok" else RED
    if report.reasons:
        body = "<ul>" + "".join(f"<li>{_e(r)}</li>" for r in report.reasons) + "</ul>"
    else:
        body = "<p>Nothing stuck, nothing failed, no sensor silent, queue and Argo fine.</p>"
    state = "OK" if report.status == "ok" else "ATTENTION"
    return f'<div class="banner" style="--status:{colour}"><div class="state">{state}</div><div>{body}</div></div>'


def _sensor_table(report: HealthReport) -> str:
    now = report.generated_at
    head = (
        "<tr><th class=l>sensor</th><th class=l>status</th><th>processed</th><th>failed</th><th>pending</th>"
        "<th>stuck</th><th>oldest pending</th><th>p50</th><th>p95</th><th>last result</th><th>last chunk</th>"
        "<th>usual interval</th><th>recovered</th><th>drift</th></tr>"
    )
    rows = []
    for s in report.sensors[:MAX_TABLE_ROWS]:
        flags = _badges(s)
        drift = "-" if s.drift is None else f"{s.drift.score:.1f}"
        drift_title = "" if s.drift is None else f"largest: {s.drift.feature} over {s.drift.points} records"
        interval_title = s.silent_note or ""
        rows.append(
            f'<tr class="{"attention" if s.attention else ""}"><td class="l mono">{_e(s.sensor)}</td><td class=l>{flags}</td>'
            f"<td>{s.processed}</td><td>{s.failed or ''}</td><td>{s.pending or ''}</td><td>{s.stuck or ''}</td>"
            f'<td title="{_e(s.oldest_pending_chunk or "")}">{format_duration(s.oldest_pending_age_s)}</td>'
            f"<td>{format_duration(s.latency_p50_s)}</td><td>{format_duration(s.latency_p95_s)}</td>"
            f'<td title="{_e(_when(s.last_result_at))}">{format_age(s.last_result_at, now)}</td>'
            f'<td title="{_e(_when(s.last_chunk_at))}">{format_age(s.last_chunk_at, now)}</td>'
            f'<td title="{_e(interval_title)}">{format_duration(s.median_interval_s)}</td>'
            f'<td>{s.recovered or ""}</td><td title="{_e(drift_title)}">{drift}</td></tr>'
        )
    more = ""
    if len(report.sensors) > MAX_TABLE_ROWS:
        more = f'<p class="notes">{len(report.sensors) - MAX_TABLE_ROWS} more (healthier) sensors not shown: sensorctl health --json lists all.</p>'
    if not rows:
        return '<p class="notes">No chunk in the window, and no sensor found in the chunk container.</p>'
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>{more}"


def _more(shown: int, total: int) -> str:
    if total <= shown:
        return ""
    return f'<p class="notes">… and {total - shown} more (sensorctl health --json lists up to {MAX_LISTED}).</p>'


def _attention_tables(report: HealthReport) -> str:
    parts = []
    if report.stuck_chunks:
        shown = report.stuck_chunks[:MAX_PAGE_LIST]
        rows = "".join(
            f'<tr><td class="l mono">{_e(c["chunk"])}</td><td class=l>{_e(c["state"])}</td>'
            f'<td class="l mono">{_e(c["owner"])}</td><td class=l>{_e(c["path"])}</td><td>{format_duration(c["age_s"])}</td></tr>'
            for c in shown
        )
        parts.append(
            "<div><h3>Stuck chunks <small class=muted>oldest first</small></h3><table><thead><tr><th class=l>chunk</th>"
            "<th class=l>state</th><th class=l>owner</th><th class=l>path</th><th>age</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>{_more(len(shown), report.fleet.stuck)}</div>"
        )
    if report.failures:
        shown = report.failures[:MAX_PAGE_LIST]
        rows = "".join(
            f'<tr><td class="l mono">{_e(c["chunk"])}</td><td class="wrap">{_e(c["reason"] or "-")}</td>'
            f"<td>{_e((c['at'] or '-').replace('T', ' '))}</td></tr>"
            for c in shown
        )
        parts.append(
            "<div><h3>Failures <small class=muted>latest first</small></h3><table><thead><tr><th class=l>chunk</th>"
            f"<th class=l>reason</th><th>at</th></tr></thead><tbody>{rows}</tbody></table>"
            f"{_more(len(shown), report.fleet.failed)}</div>"
        )
    if not parts:
        return ""
    return "<h2>Needs attention</h2><div class=two>" + "".join(parts) + "</div>"


def _span_note(report: HealthReport, window: str) -> str:
    start = _plot_start(report)
    intervals = f"{len(report.fleet_bins)} intervals of {format_duration((report.generated_at - start).total_seconds() / FLEET_BINS)}"
    if start > report.window_start:
        return f"the active part of the {window} window, from {_when(start)}: {intervals}"
    return f"{window}: {intervals}"


def _card_title(s: SensorHealth, extra: str = "") -> str:
    badges = _badges(s)
    return f'<h3><span class="mono">{_e(s.sensor)}</span>{badges}<span class="muted">{_e(extra)}</span></h3>'


def render_page(report: HealthReport, *, plot_sensors: int = 12) -> str:
    """The page as one HTML string (see the module docstring)."""
    if plot_sensors < 1:
        raise ValueError(f"plot_sensors must be at least 1, got {plot_sensors}")
    scale = _Scale(report)
    window = format_duration(report.window.total_seconds())
    sub = (
        f"chunk container <b>{_e(report.container or '-')}</b> · results <b>{_e(report.results_container or '-')}</b> · "
        f"window {window}: {_when(report.window_start)} → {_when(report.generated_at)} · stuck after "
        f"{format_duration(report.stuck_after.total_seconds())} · silent after {report.silent_factor:g}× the usual interval"
    )
    body = [
        "<h1>Sensor pipeline health</h1>",
        f'<p class="sub">{sub}</p>',
        _banner(report),
        _tiles(report),
        f"<h2>Sensors<small>worst first: stuck, silent, failed, then the oldest backlog ({len(report.sensors)} sensors)</small></h2>",
        _sensor_table(report),
        _attention_tables(report),
        f"<h2>Fleet over the window<small>{_span_note(report, window)}</small></h2>",
        f'<div class="card wide"><img alt="fleet throughput, latency and backlog" src="{_fleet_figure(report, scale)}"></div>',
    ]
    worst = list(report.sensors[:plot_sensors])
    if worst:
        cards = []
        for s in worst:
            extra = (
                f"p50 {format_duration(s.latency_p50_s)} · p95 {format_duration(s.latency_p95_s)} · {s.pending} pending"
            )
            cards.append(
                f'<div class="card">{_card_title(s, extra)}<img alt="latency and backlog of {_e(s.sensor)}" '
                f'src="{_sensor_ops_figure(report, s, scale)}"></div>'
            )
        shown = (
            f"the worst {len(worst)} of {len(report.sensors)}" if len(report.sensors) > len(worst) else "every sensor"
        )
        body.append(
            f"<h2>Latency and backlog per sensor<small>{shown}; dots: one chunk's upload → result latency; "
            "dashed: the stuck threshold; orange: chunks waiting (mean per interval, thin: the most at once); purple: silent</small></h2>"
        )
        body.append('<div class="grid">' + "".join(cards) + "</div>")

    body.append("<h2>Features over time<small>from the feature records of chunks processed in the window</small></h2>")
    if not report.features_read:
        body.append('<p class="notes">Feature records were not read (--max-records-per-sensor 0).</p>')
    elif not report.features:
        body.append('<p class="notes">No feature record in the window.</p>')
    else:
        by_drift = sorted(
            (s for s in report.sensors if report.features.get(s.sensor)),
            key=lambda s: (-(s.drift.score if s.drift is not None else -1.0), s.sort_key()),
        )
        heatmap = _drift_heatmap(by_drift)
        if heatmap is not None:
            body.append(
                '<div class="card wide"><h3>Drift across the fleet <span class="muted">per sensor and feature: '
                "(median of the recent half − median of the earlier half) / the record-to-record noise; band powers "
                "in log10; red: rose, blue: fell</span></h3>"
                f'<img alt="feature drift heatmap" src="{heatmap}"></div>'
            )
        chosen = by_drift[:plot_sensors]
        common = _band_labels(report.features[chosen[0].sensor]) if chosen else []
        span = _data_span([p for s in chosen for p in report.features[s.sensor]])
        if common:
            body.append(_band_legend(common))
        for s in chosen:
            points = report.features[s.sensor]
            extra = f"{len(points)} records"
            if s.drift is not None:
                extra += f" · drift {s.drift.score:.1f} ({s.drift.feature})"
            title = _card_title(s, extra)
            body.append(
                f'<div class="card wide">{title}<img alt="feature trends of {_e(s.sensor)}" src="{_feature_figure(points, legend=_band_labels(points) != common, span=span)}"></div>'
            )
        if len(by_drift) > len(chosen):
            body.append(
                f'<p class="notes">{len(by_drift) - len(chosen)} more sensor(s) with records not plotted (--plot-sensors).</p>'
            )
    if report.notes:
        body.append("<h2>Notes</h2><ul class=notes>" + "".join(f"<li>{_e(n)}</li>" for n in report.notes) + "</ul>")
    body.append(
        f"<footer>sensorctl health · generated {_when(report.generated_at)} · latency = the flow's recorded "
        "outcome_latency_s, else result time − (event time or first seen) · docs/health.md</footer>"
    )
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Sensor pipeline health: {report.status.upper()}</title><style>{_CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )


def write_page(report: HealthReport, path: str | Path, *, plot_sensors: int = 12) -> Path:
    """Render the page and write it to ``path`` (UTF-8); returns the path."""
    target = Path(path)
    target.write_text(render_page(report, plot_sensors=plot_sensors), encoding="utf-8")
    return target
