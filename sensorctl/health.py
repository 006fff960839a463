"""``sensorctl health``: the pipeline's health, per sensor and for the fleet (pure computation).

:func:`build_report` turns plain inputs — the ledger's claims (:class:`ChunkObservation`), the flow's
run entities (:class:`RunObservation`), feature records (:class:`FeaturePoint`), the queue and the
Argo Server as observed (:class:`QueueObservation`, :class:`ArgoObservation`), ``now`` and the
window — into a :class:`HealthReport`. No I/O here: :mod:`sensorctl.health_sources` reads the
inputs, :mod:`sensorctl.health_html` renders the page, ``sensorctl/cli.py`` prints the table.

Definitions (docs/health.md has the operator's version):

- one *chunk* is one chunk version (container, blob name, ETag) at its latest claim generation;
- *upload time* = the claim's ``event_time`` when the event carried one, else ``first_seen`` (when
  the first path claimed it); *result time* = the claim's ``outcome_at``;
- *processed* / *failed* = the outcome was recorded in the window; *pending* = no outcome yet
  (``claimed``, ``accepted`` or ``released``), whatever its age; *stuck* = pending for longer than
  ``stuck_after`` since its upload;
- *latency* = the flow's own ``outcome_latency_s`` when it recorded one, else result time − upload
  time; p50/p95 interpolate linearly between order statistics (numpy's default);
- *recovered by the fallback* = the claim's path is ``fallback``: no event path had the chunk
  (no claim, or a released/abandoned/dead one), the cron fallback took it;
- *silent*: the time since the sensor's last upload exceeds ``silent_factor`` × its median
  inter-arrival interval, estimated from its uploads in the report (at least 3 distinct upload
  times needed, else unknown), and at least ``silent_min`` (default 10 min: a burst of uploads
  seconds apart, as in a backfill or the demo, must not make a sensor "silent" a minute later); a sensor known from the chunk container with no chunk in the report
  at all is silent too ("no chunk in the window").
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

# One percentile for the flow's run reports and this report: numpy's linear interpolation.
from chunk_contract.ledger import percentile

if TYPE_CHECKING:
    from chunk_contract.ledger import Claim

__all__ = [
    "DEFAULT_SILENT_FACTOR",
    "DEFAULT_SILENT_MIN",
    "DEFAULT_STUCK_AFTER",
    "DEFAULT_WINDOW",
    "DRIFT_THRESHOLD",
    "SCHEMA",
    "ArgoObservation",
    "ChunkObservation",
    "DriftScore",
    "FeaturePoint",
    "FleetBin",
    "FleetHealth",
    "HealthReport",
    "QueueObservation",
    "RunObservation",
    "SensorHealth",
    "SensorSeries",
    "backlog_bins",
    "backlog_steps",
    "build_report",
    "drift_score",
    "format_age",
    "format_duration",
    "format_table",
    "latest_versions",
    "parse_duration",
    "percentile",
    "select_records",
]

SCHEMA = "sensorctl.health/1"
DEFAULT_WINDOW = timedelta(hours=24)
DEFAULT_STUCK_AFTER = timedelta(hours=1)
DEFAULT_SILENT_FACTOR = 3.0
DEFAULT_SILENT_MIN = timedelta(minutes=10)
MIN_CHUNKS_FOR_INTERVAL = 3  # two intervals: the least that gives a median not set by one gap
DRIFT_THRESHOLD = 3.0  # |robust z| above which a feature is called drifting (heuristic, see drift_score)
MIN_POINTS_FOR_DRIFT = 6
FLEET_BINS = 48
PLOT_MIN_SPAN = timedelta(minutes=10)
MAX_LISTED = 50  # stuck chunks / failures listed in the report (the counts are complete)

PENDING_STATES = frozenset({"claimed", "accepted", "released"})
DONE_STATES = frozenset({"processed", "failed"})

# --------------------------------------------------------------------------- small helpers

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")
_UNIT_SECONDS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(option: str, text: str) -> timedelta:
    """``90s``, ``15m``, ``24h``, ``7d``, ``2w`` or combinations (``1h30m``); > 0, at most 366 days.

    Raises ``ValueError`` naming ``option`` and the rule.
    """
    value = (text or "").strip().lower()
    pos, total = 0, 0.0
    for match in _DURATION.finditer(value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not value or pos != len(value):
        raise ValueError(
            f"{option} {text!r} is not a duration: use a number and a unit s, m, h, d or w (e.g. 24h, 7d, 1h30m)"
        )
    if not 0 < total <= 366 * 86400:
        raise ValueError(f"{option} {text!r} must be more than 0 and at most 366d")
    return timedelta(seconds=total)


def format_duration(seconds: float | None) -> str:
    """``42s``, ``12m``, ``1h``, ``3.5h``, ``2.1d``; ``-`` for None."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    s = max(0.0, seconds)
    if s < 90:
        return f"{s:.0f}s" if s >= 10 or s == int(s) else f"{s:.1f}s"
    if s < 3600:
        return f"{s / 60:.0f}m"
    if s < 36 * 3600:
        return f"{s / 3600:.1f}".removesuffix(".0") + "h"
    return f"{s / 86400:.1f}".removesuffix(".0") + "d"


def format_age(moment: datetime | None, now: datetime) -> str:
    """``5m ago``; ``-`` for None."""
    if moment is None:
        return "-"
    return f"{format_duration((now - moment).total_seconds())} ago"


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    out = float(value)
    return out if math.isfinite(out) else None


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class ChunkObservation:
    """One chunk version's claim, as the report needs it (see the module docstring for the times)."""

    sensor: str
    chunk: str
    etag: str
    state: str
    path: str
    first_seen: datetime
    container: str = ""
    generation: int = 0
    event_time: datetime | None = None
    outcome_at: datetime | None = None
    outcome_run: str | None = None
    outcome_reason: str | None = None
    owner: str = ""
    duplicates: int = 0
    outcome_latency_s: float | None = None  # the flow's own event -> result measurement, when recorded

    @classmethod
    def from_claim(cls, claim: Claim, *, outcome_latency_s: Any = None) -> ChunkObservation:
        """From a :class:`chunk_contract.ledger.Claim`; ``outcome_latency_s`` is the raw entity property
        (the Claim dataclass does not carry it), ignored unless a finite number >= 0."""
        latency = _finite(outcome_latency_s)
        return cls(
            sensor=claim.version.sensor,
            chunk=claim.version.name,
            etag=claim.version.etag,
            state=claim.state,
            path=claim.path,
            first_seen=claim.first_seen,
            container=claim.version.container,
            generation=claim.generation,
            event_time=claim.event_time,
            outcome_at=claim.outcome_at,
            outcome_run=claim.outcome_run,
            outcome_reason=claim.outcome_reason,
            owner=claim.owner,
            duplicates=claim.duplicates,
            outcome_latency_s=latency if latency is not None and latency >= 0 else None,
        )

    @property
    def uploaded_at(self) -> datetime:
        return self.event_time if self.event_time is not None else self.first_seen

    @property
    def pending(self) -> bool:
        return self.state not in DONE_STATES

    @property
    def latency_s(self) -> float | None:
        """Upload -> result in seconds (the flow's measurement if recorded), None while pending."""
        if self.pending or self.outcome_at is None:
            return None
        if self.outcome_latency_s is not None:
            return self.outcome_latency_s
        return max(0.0, (self.outcome_at - self.uploaded_at).total_seconds())

    @property
    def version_key(self) -> tuple[str, str, str]:
        return (self.container, self.chunk, self.etag)


@dataclass(frozen=True)
class RunObservation:
    """One flow run's ``kind == "run"`` ledger entity (written by flows that know how; optional)."""

    flow_name: str
    run_id: str
    mode: str  # event | fallback
    started_at: datetime | None
    finished_at: datetime | None
    processed: int = 0
    failed: int = 0
    skipped_up_to_date: int = 0
    set_aside: int = 0
    recovered: int = 0
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    latency_max_s: float | None = None
    latency_count: int = 0

    @classmethod
    def from_entity(cls, entity: Mapping[str, Any]) -> RunObservation:
        """Tolerant: missing or mistyped counters are 0, missing times None (a run still running)."""

        def count(key: str) -> int:
            value = _finite(entity.get(key))
            return int(value) if value is not None and value >= 0 else 0

        def moment(key: str) -> datetime | None:
            value = entity.get(key)
            if isinstance(value, datetime):
                return _aware(value)
            if isinstance(value, str):
                try:
                    return _aware(datetime.fromisoformat(value))
                except ValueError:
                    return None
            return None

        return cls(
            flow_name=str(entity.get("flow_name") or ""),
            run_id=str(entity.get("run_id") or entity.get("RowKey") or ""),
            mode=str(entity.get("mode") or ""),
            started_at=moment("started_at"),
            finished_at=moment("finished_at"),
            processed=count("processed"),
            failed=count("failed"),
            skipped_up_to_date=count("skipped_up_to_date"),
            set_aside=count("set_aside"),
            recovered=count("recovered"),
            latency_p50_s=_finite(entity.get("latency_p50_s")),
            latency_p95_s=_finite(entity.get("latency_p95_s")),
            latency_max_s=_finite(entity.get("latency_max_s")),
            latency_count=count("latency_count"),
        )

    @property
    def at(self) -> datetime | None:
        return self.finished_at or self.started_at


@dataclass(frozen=True)
class FeaturePoint:
    """The trend-relevant part of one feature record (``<chunk>.features.json``)."""

    sensor: str
    chunk: str
    t: datetime  # the chunk's t_start: when the data was measured
    band_powers: tuple[float, ...]
    band_edges: tuple[float, ...]
    acf1: float | None  # acf[0] is lag 1
    gap_fraction: float | None

    @classmethod
    def from_record(cls, record: Mapping[str, Any], chunk: str | None = None) -> FeaturePoint:
        """Raises ``ValueError`` when the record lacks a parseable ``t_start`` or a sensor."""
        if not isinstance(record, Mapping):
            raise ValueError("a feature record must be a JSON object")
        name = str(record.get("chunk_name") or chunk or "")
        sensor = str(record.get("sensor_id") or (name.split("/", 1)[0] if "/" in name else ""))
        if not sensor:
            raise ValueError("the record names no sensor (sensor_id)")
        try:
            t = _aware(datetime.fromisoformat(str(record["t_start"])))
        except (KeyError, ValueError):
            raise ValueError("the record has no ISO 8601 t_start") from None

        def floats(key: str) -> tuple[float, ...]:
            values = record.get(key)
            if not isinstance(values, list):
                return ()
            out = tuple(_finite(v) for v in values)
            return () if any(v is None for v in out) else tuple(v for v in out if v is not None)

        acf = record.get("acf")
        return cls(
            sensor=sensor,
            chunk=name,
            t=t,
            band_powers=floats("band_powers"),
            band_edges=floats("band_edges"),
            acf1=_finite(acf[0]) if isinstance(acf, list) and acf else None,
            gap_fraction=_finite(record.get("gap_fraction")),
        )


@dataclass(frozen=True)
class QueueObservation:
    """The chunk-event queue: ``state`` is ``ok``, ``absent`` (immediate mode needs none) or ``error``."""

    name: str
    state: Literal["ok", "absent", "error"]
    depth: int | None = None
    oldest_age_s: float | None = None
    poison_depth: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class ArgoObservation:
    """Workflows in flight: ``state`` is ``not configured`` (``SUBMIT_BACKEND`` is not argo), ``ok`` or ``error``."""

    state: Literal["not configured", "ok", "error"]
    in_flight: int | None = None
    capped: bool = False  # counted up to ``limit`` only: at least that many
    limit: int | None = None
    error: str | None = None


# --------------------------------------------------------------------------- outputs


@dataclass(frozen=True)
class DriftScore:
    """How far a sensor's recent features moved from its own earlier ones (see :func:`drift_score`)."""

    score: float  # the largest |robust z| over the features
    feature: str  # which feature it was
    points: int
    by_feature: dict[str, float] = field(default_factory=dict)

    @property
    def drifting(self) -> bool:
        return self.score > DRIFT_THRESHOLD


@dataclass(frozen=True)
class SensorSeries:
    """What the page plots for one sensor."""

    latency: tuple[tuple[datetime, float], ...] = ()  # (result time, seconds)
    backlog: tuple[tuple[datetime, int], ...] = ()  # step function: value from this time on


@dataclass(frozen=True)
class FleetBin:
    start: datetime
    end: datetime
    processed: int
    failed: int
    latency_p50_s: float | None
    latency_p95_s: float | None


@dataclass(frozen=True)
class SensorHealth:
    sensor: str
    processed: int = 0
    failed: int = 0
    pending: int = 0
    stuck: int = 0
    recovered: int = 0
    duplicates: int = 0
    oldest_pending_chunk: str | None = None
    oldest_pending_age_s: float | None = None
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    latency_max_s: float | None = None
    latency_count: int = 0
    last_result_at: datetime | None = None
    last_chunk_at: datetime | None = None
    chunks_seen: int = 0  # distinct upload times used for the interval
    median_interval_s: float | None = None
    silent_for_s: float | None = None
    silent: bool | None = None  # None: not enough chunks to tell
    silent_note: str = ""
    drift: DriftScore | None = None

    @property
    def flags(self) -> tuple[str, ...]:
        """Badges, worst first: stuck, silent, failed; ``pending`` (informational) or ``ok``."""
        out = []
        if self.stuck:
            out.append("stuck")
        if self.silent:
            out.append("silent")
        if self.failed:
            out.append("failed")
        if not out:
            out.append("pending" if self.pending else "ok")
        return tuple(out)

    @property
    def attention(self) -> bool:
        return bool(self.stuck or self.silent or self.failed)

    def sort_key(self) -> tuple[Any, ...]:
        return (
            -int(bool(self.stuck)),
            -int(bool(self.silent)),
            -int(bool(self.failed)),
            -self.stuck,
            -self.failed,
            -(self.oldest_pending_age_s or 0.0),
            -self.pending,
            self.sensor,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "sensor": self.sensor,
            "flags": list(self.flags),
            "processed": self.processed,
            "failed": self.failed,
            "pending": self.pending,
            "stuck": self.stuck,
            "recovered_by_fallback": self.recovered,
            "duplicates_suppressed": self.duplicates,
            "oldest_pending_chunk": self.oldest_pending_chunk,
            "oldest_pending_age_s": self.oldest_pending_age_s,
            "latency_p50_s": self.latency_p50_s,
            "latency_p95_s": self.latency_p95_s,
            "latency_max_s": self.latency_max_s,
            "latency_count": self.latency_count,
            "last_result_at": _iso(self.last_result_at),
            "last_chunk_at": _iso(self.last_chunk_at),
            "median_interval_s": self.median_interval_s,
            "silent_for_s": self.silent_for_s,
            "silent": self.silent,
            "silent_note": self.silent_note,
            "drift": None
            if self.drift is None
            else {
                "score": self.drift.score,
                "feature": self.drift.feature,
                "points": self.drift.points,
                "drifting": self.drift.drifting,
            },
        }


@dataclass(frozen=True)
class FleetHealth:
    sensors: int = 0
    processed: int = 0
    failed: int = 0
    pending: int = 0
    stuck: int = 0
    silent: int = 0
    recovered: int = 0
    duplicates: int = 0
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    latency_max_s: float | None = None
    latency_count: int = 0
    oldest_pending_chunk: str | None = None
    oldest_pending_age_s: float | None = None
    last_result_at: datetime | None = None
    runs: int = 0  # flow runs in the window (run entities; 0 when the flow writes none)
    fallback_runs: int = 0
    recovered_by_fallback_runs: int = 0  # sum of the fallback runs' own ``recovered`` counters
    last_run_at: datetime | None = None
    last_fallback_run_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "sensors": self.sensors,
            "processed": self.processed,
            "failed": self.failed,
            "pending": self.pending,
            "stuck": self.stuck,
            "silent": self.silent,
            "recovered_by_fallback": self.recovered,
            "duplicates_suppressed": self.duplicates,
            "latency_p50_s": self.latency_p50_s,
            "latency_p95_s": self.latency_p95_s,
            "latency_max_s": self.latency_max_s,
            "latency_count": self.latency_count,
            "oldest_pending_chunk": self.oldest_pending_chunk,
            "oldest_pending_age_s": self.oldest_pending_age_s,
            "last_result_at": _iso(self.last_result_at),
            "runs": self.runs,
            "fallback_runs": self.fallback_runs,
            "recovered_by_fallback_runs": self.recovered_by_fallback_runs,
            "last_run_at": _iso(self.last_run_at),
            "last_fallback_run_at": _iso(self.last_fallback_run_at),
        }


@dataclass(frozen=True)
class HealthReport:
    generated_at: datetime
    window_start: datetime
    window: timedelta
    stuck_after: timedelta
    silent_factor: float
    status: Literal["ok", "attention"]
    reasons: tuple[str, ...]
    fleet: FleetHealth
    sensors: tuple[SensorHealth, ...]  # worst first
    queue: QueueObservation | None = None
    argo: ArgoObservation | None = None
    stuck_chunks: tuple[dict[str, Any], ...] = ()  # the oldest first, at most MAX_LISTED
    failures: tuple[dict[str, Any], ...] = ()  # the latest first, at most MAX_LISTED
    series: dict[str, SensorSeries] = field(default_factory=dict)
    fleet_backlog: tuple[tuple[datetime, int], ...] = ()
    fleet_bins: tuple[FleetBin, ...] = ()  # FLEET_BINS equal intervals of [plot_start, generated_at]
    plot_start: datetime | None = None  # where the plots start: the window's start, or its first activity
    features: dict[str, tuple[FeaturePoint, ...]] = field(default_factory=dict)
    features_read: bool = False
    notes: tuple[str, ...] = ()
    container: str = ""
    results_container: str = ""

    @property
    def silent_sensors(self) -> tuple[str, ...]:
        return tuple(s.sensor for s in self.sensors if s.silent)

    def sensor(self, name: str) -> SensorHealth:
        """The row of sensor ``name`` (``KeyError`` if the report has none)."""
        for row in self.sensors:
            if row.sensor == name:
                return row
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` document (schema :data:`SCHEMA`); the plots' time series are left out."""
        queue = argo = None
        if self.queue is not None:
            q = self.queue
            queue = {
                "name": q.name,
                "state": q.state,
                "depth": q.depth,
                "oldest_age_s": q.oldest_age_s,
                "poison_depth": q.poison_depth,
                "error": q.error,
            }
        if self.argo is not None:
            a = self.argo
            argo = {"state": a.state, "in_flight": a.in_flight, "capped": a.capped, "limit": a.limit, "error": a.error}
        return {
            "schema": SCHEMA,
            "generated_at": _iso(self.generated_at),
            "window": {
                "start": _iso(self.window_start),
                "end": _iso(self.generated_at),
                "seconds": self.window.total_seconds(),
            },
            "container": self.container,
            "results_container": self.results_container,
            "stuck_after_s": self.stuck_after.total_seconds(),
            "silent_factor": self.silent_factor,
            "status": self.status,
            "reasons": list(self.reasons),
            "fleet": self.fleet.as_dict(),
            "silent_sensors": list(self.silent_sensors),
            "queue": queue,
            "argo": argo,
            "sensors": [s.as_dict() for s in self.sensors],
            "stuck_chunks": list(self.stuck_chunks),
            "failures": list(self.failures),
            "features_read": self.features_read,
            "notes": list(self.notes),
        }


# --------------------------------------------------------------------------- computation


def latest_versions(chunks: Iterable[ChunkObservation]) -> list[ChunkObservation]:
    """One observation per chunk version: its highest claim generation (an older generation's
    ``accepted`` without outcome is a dead workflow that a newer generation replaced)."""
    best: dict[tuple[str, str, str], ChunkObservation] = {}
    for c in chunks:
        key = c.version_key
        if key not in best or c.generation > best[key].generation:
            best[key] = c
    return sorted(best.values(), key=lambda c: (c.sensor, c.uploaded_at, c.chunk, c.etag))


def in_report(chunk: ChunkObservation, window_start: datetime) -> bool:
    """Whether a chunk belongs in a report from ``window_start``: pending (any age), an outcome in the
    window, or first seen in the window — what :mod:`sensorctl.health_sources` queries."""
    if chunk.pending:
        return True
    if chunk.outcome_at is not None and chunk.outcome_at >= window_start:
        return True
    return chunk.first_seen >= window_start


def backlog_steps(
    intervals: Iterable[tuple[datetime, datetime | None]], start: datetime, end: datetime
) -> tuple[tuple[datetime, int], ...]:
    """The backlog over ``[start, end]`` as a step function.

    Each interval ``(uploaded, done)`` counts from ``uploaded`` up to (excluding) ``done``; ``None``
    means still pending. Returns ``(time, count)`` pairs: ``count`` holds from ``time`` to the next
    pair; the first pair is at ``start``, the last at ``end`` (repeating the final count).
    """
    deltas: dict[datetime, int] = {}
    initial = 0
    for up, done in intervals:
        if done is not None and done <= up:
            continue  # recorded before (or as) it was seen: never in the backlog
        if done is not None and done <= start:
            continue
        if up > end:
            continue
        if up <= start:
            initial += 1
        else:
            deltas[up] = deltas.get(up, 0) + 1
        if done is not None and done <= end:
            deltas[done] = deltas.get(done, 0) - 1
    steps = [(start, initial)]
    level = initial
    for moment in sorted(deltas):
        if deltas[moment] == 0:
            continue
        level += deltas[moment]
        steps.append((moment, level))
    steps.append((end, level))
    return tuple(steps)


def backlog_bins(
    steps: Sequence[tuple[datetime, int]], start: datetime, end: datetime, bins: int
) -> tuple[tuple[datetime, datetime, int, float], ...]:
    """Per each of ``bins`` equal intervals of ``[start, end]``: ``(from, to, most, mean)`` — the most
    chunks waiting at once and the time-weighted mean. For plots: a chunk waits seconds, so at the
    scale of a day the raw step function of :func:`backlog_steps` is mostly spikes."""
    width = (end - start) / bins if bins > 0 else timedelta(0)
    if width <= timedelta(0) or not steps:
        return ()
    times = [m for m, _ in steps]
    out = []
    for i in range(bins):
        lo, hi = start + i * width, start + (i + 1) * width
        at = bisect.bisect_right(times, lo) - 1  # the step holding at lo
        level = steps[at][1] if at >= 0 else 0
        inside = steps[max(at + 1, 0) : bisect.bisect_left(times, hi)]
        area, since, most = 0.0, lo, level
        for moment, value in inside:
            area += level * (moment - since).total_seconds()
            level, since, most = value, moment, max(most, value)
        area += level * (hi - since).total_seconds()
        out.append((lo, hi, most, area / width.total_seconds()))
    return tuple(out)


def _noise_scale(values: Sequence[float]) -> float:
    """Record-to-record noise: 1.4826 × median |first difference| / √2 (a trend barely moves it)."""
    diffs = [abs(b - a) for a, b in itertools.pairwise(values)]
    return 1.4826 * statistics.median(diffs) / math.sqrt(2) if diffs else 0.0


# Floors of the noise scale per feature kind, so that a sensor whose feature barely moves does not
# turn a tiny change into a huge z: 0.05 decades of band power, 0.02 of autocorrelation, 1 % of gaps.
_DRIFT_FLOOR = {"band": 0.05, "acf1": 0.02, "gap": 0.01}


def _band_label(edges: Sequence[float], i: int) -> str:
    if len(edges) > i + 1:
        return f"band {edges[i]:.3g}-{edges[i + 1]:.3g} Hz"
    return f"band {i}"


def drift_score(points: Sequence[FeaturePoint]) -> DriftScore | None:
    """A heuristic drift score of one sensor's feature trends; None below 6 points.

    The points (sorted by time) are split in halves; for each feature — log10 of each band power,
    the lag-1 autocorrelation, the gap fraction — z = (median of the recent half − median of the
    earlier half) / the feature's record-to-record noise (from first differences, so a trend does not
    inflate it; floored per feature kind). So z = 3 means the recent median moved by three times the
    usual difference between consecutive records. The score is the largest |z|; above
    :data:`DRIFT_THRESHOLD` the sensor is called drifting.
    """
    ordered = sorted(points, key=lambda p: p.t)
    if len(ordered) < MIN_POINTS_FOR_DRIFT:
        return None
    half = len(ordered) // 2
    early, recent = ordered[:half], ordered[len(ordered) - half :]
    # feature name -> (kind, every value in time order, the earlier half, the recent half)
    series: dict[str, tuple[str, list[float], list[float], list[float]]] = {}
    n_bands = min(len(p.band_powers) for p in ordered)
    edges = ordered[-1].band_edges
    for i in range(n_bands):

        def logs(ps: Sequence[FeaturePoint], i: int = i) -> list[float]:
            return [math.log10(max(p.band_powers[i], 1e-300)) for p in ps]

        series[_band_label(edges, i)] = ("band", logs(ordered), logs(early), logs(recent))
    for key, kind, attr in (("lag-1 autocorrelation", "acf1", "acf1"), ("gap fraction", "gap", "gap_fraction")):
        every = [getattr(p, attr) for p in ordered if getattr(p, attr) is not None]
        a = [getattr(p, attr) for p in early if getattr(p, attr) is not None]
        b = [getattr(p, attr) for p in recent if getattr(p, attr) is not None]
        if len(a) >= 3 and len(b) >= 3:
            series[key] = (kind, every, a, b)
    by_feature: dict[str, float] = {}
    for name, (kind, every, a, b) in series.items():
        scale = max(_noise_scale(every), _DRIFT_FLOOR[kind])
        by_feature[name] = (statistics.median(b) - statistics.median(a)) / scale
    if not by_feature:
        return None
    worst = max(by_feature, key=lambda k: abs(by_feature[k]))
    return DriftScore(abs(by_feature[worst]), worst, len(ordered), by_feature)


def select_records(
    chunks: Iterable[ChunkObservation], window_start: datetime, max_per_sensor: int
) -> dict[str, list[str]]:
    """Which result records to read for the trends: per sensor, the chunks processed in the window,
    newest result first, at most ``max_per_sensor`` (each chunk name once: a record is per name)."""
    out: dict[str, list[str]] = {}
    if max_per_sensor <= 0:
        return out
    done = [
        c
        for c in latest_versions(chunks)
        if c.state == "processed" and c.outcome_at is not None and c.outcome_at >= window_start
    ]
    done.sort(key=lambda c: (c.outcome_at, c.chunk), reverse=True)
    for c in done:
        names = out.setdefault(c.sensor, [])
        if c.chunk not in names and len(names) < max_per_sensor:
            names.append(c.chunk)
    return out


def _sensor_health(
    sensor: str,
    chunks: Sequence[ChunkObservation],
    *,
    now: datetime,
    window_start: datetime,
    stuck_after: timedelta,
    silent_factor: float,
    silent_min: timedelta = timedelta(0),
) -> SensorHealth:
    done = [c for c in chunks if not c.pending and c.outcome_at is not None and c.outcome_at >= window_start]
    pending = [c for c in chunks if c.pending]
    stuck = [c for c in pending if now - c.uploaded_at > stuck_after]
    latencies = [lat for c in done if (lat := c.latency_s) is not None]
    oldest = min(pending, key=lambda c: (c.uploaded_at, c.chunk), default=None)
    results = [c.outcome_at for c in done if c.state == "processed" and c.outcome_at is not None]
    uploads = sorted({c.uploaded_at for c in chunks})
    last_chunk = uploads[-1] if uploads else None
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(uploads)]
    median_interval = statistics.median(gaps) if len(uploads) >= MIN_CHUNKS_FOR_INTERVAL else None
    silent_for = max(0.0, (now - last_chunk).total_seconds()) if last_chunk is not None else None
    silent: bool | None
    if last_chunk is None:
        silent, note = True, "no chunk in the window"
    elif median_interval is None or median_interval <= 0:
        silent = None
        note = f"interval unknown: {len(uploads)} distinct upload time(s), {MIN_CHUNKS_FOR_INTERVAL} needed"
    else:
        assert silent_for is not None
        silent = silent_for > max(silent_factor * median_interval, silent_min.total_seconds())
        note = (
            f"no chunk for {format_duration(silent_for)}, usually every {format_duration(median_interval)}"
            if silent
            else ""
        )
    return SensorHealth(
        sensor=sensor,
        processed=sum(1 for c in done if c.state == "processed"),
        failed=sum(1 for c in done if c.state == "failed"),
        pending=len(pending),
        stuck=len(stuck),
        recovered=sum(1 for c in chunks if c.path == "fallback"),
        duplicates=sum(c.duplicates for c in chunks),
        oldest_pending_chunk=oldest.chunk if oldest else None,
        oldest_pending_age_s=max(0.0, (now - oldest.uploaded_at).total_seconds()) if oldest else None,
        latency_p50_s=percentile(latencies, 50),
        latency_p95_s=percentile(latencies, 95),
        latency_max_s=max(latencies) if latencies else None,
        latency_count=len(latencies),
        last_result_at=max(results) if results else None,
        last_chunk_at=last_chunk,
        chunks_seen=len(uploads),
        median_interval_s=median_interval,
        silent_for_s=silent_for,
        silent=silent,
        silent_note=note,
    )


def _fleet_bins(chunks: Sequence[ChunkObservation], start: datetime, end: datetime, bins: int) -> tuple[FleetBin, ...]:
    width = (end - start) / bins
    if width <= timedelta(0):
        return ()
    buckets: list[list[ChunkObservation]] = [[] for _ in range(bins)]
    for c in chunks:
        if c.pending or c.outcome_at is None or not start <= c.outcome_at <= end:
            continue
        i = min(bins - 1, int((c.outcome_at - start) / width))
        buckets[i].append(c)
    out = []
    for i, bucket in enumerate(buckets):
        lat = [v for c in bucket if (v := c.latency_s) is not None]
        out.append(
            FleetBin(
                start=start + i * width,
                end=start + (i + 1) * width,
                processed=sum(1 for c in bucket if c.state == "processed"),
                failed=sum(1 for c in bucket if c.state == "failed"),
                latency_p50_s=percentile(lat, 50),
                latency_p95_s=percentile(lat, 95),
            )
        )
    return tuple(out)


def build_report(
    chunks: Iterable[ChunkObservation],
    *,
    now: datetime,
    window: timedelta = DEFAULT_WINDOW,
    stuck_after: timedelta = DEFAULT_STUCK_AFTER,
    silent_factor: float = DEFAULT_SILENT_FACTOR,
    silent_min: timedelta = DEFAULT_SILENT_MIN,
    known_sensors: Iterable[str] = (),
    runs: Iterable[RunObservation] = (),
    queue: QueueObservation | None = None,
    argo: ArgoObservation | None = None,
    features: Iterable[FeaturePoint] | None = None,
    notes: Iterable[str] = (),
    container: str = "",
    results_container: str = "",
) -> HealthReport:
    """The health report (pure). See the module docstring for every definition.

    Parameters
    ----------
    chunks : iterable of ChunkObservation
        Claims from the ledger: any generations (the latest per version is used), any superset of
        what :func:`in_report` keeps.
    now : datetime
        The report's time (aware); the window is ``[now - window, now]``.
    known_sensors : iterable of str
        Sensors known to exist (the chunk container's top-level prefixes): one without any chunk
        in the report is silent.
    runs : iterable of RunObservation
        The flow's run entities, when it writes them; those started or finished in the window count.
    features : iterable of FeaturePoint or None
        Feature records for the trends; ``None`` when they were not read.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if window <= timedelta(0):
        raise ValueError("the window must be positive")
    if not silent_factor > 0:
        raise ValueError("silent_factor must be positive")
    start = now - window
    kept = [c for c in latest_versions(chunks) if in_report(c, start)]
    by_sensor: dict[str, list[ChunkObservation]] = {}
    for c in kept:
        by_sensor.setdefault(c.sensor, []).append(c)
    for sensor in known_sensors:
        by_sensor.setdefault(sensor, [])

    feature_map: dict[str, list[FeaturePoint]] = {}
    for p in features or ():
        feature_map.setdefault(p.sensor, []).append(p)
    feature_sorted = {k: tuple(sorted(v, key=lambda p: (p.t, p.chunk))) for k, v in feature_map.items()}

    rows = []
    series: dict[str, SensorSeries] = {}
    for sensor, items in by_sensor.items():
        row = _sensor_health(
            sensor,
            items,
            now=now,
            window_start=start,
            stuck_after=stuck_after,
            silent_factor=silent_factor,
            silent_min=silent_min,
        )
        if sensor in feature_sorted:
            row = replace(row, drift=drift_score(feature_sorted[sensor]))
        rows.append(row)
        latency = sorted(
            (c.outcome_at, lat)
            for c in items
            if c.outcome_at is not None and c.outcome_at >= start and (lat := c.latency_s) is not None
        )
        series[sensor] = SensorSeries(
            latency=tuple(latency),
            backlog=backlog_steps(((c.uploaded_at, None if c.pending else c.outcome_at) for c in items), start, now),
        )
    rows.sort(key=SensorHealth.sort_key)

    all_latencies = [
        lat for c in kept if c.outcome_at is not None and c.outcome_at >= start and (lat := c.latency_s) is not None
    ]
    pending = [c for c in kept if c.pending]
    oldest = min(pending, key=lambda c: (c.uploaded_at, c.chunk), default=None)
    results = [r.last_result_at for r in rows if r.last_result_at is not None]

    run_list = [r for r in runs if r.at is not None and r.at >= start]
    fallback_runs = [r for r in run_list if r.mode == "fallback"]
    fleet = FleetHealth(
        sensors=len(rows),
        processed=sum(r.processed for r in rows),
        failed=sum(r.failed for r in rows),
        pending=sum(r.pending for r in rows),
        stuck=sum(r.stuck for r in rows),
        silent=sum(1 for r in rows if r.silent),
        recovered=sum(r.recovered for r in rows),
        duplicates=sum(r.duplicates for r in rows),
        latency_p50_s=percentile(all_latencies, 50),
        latency_p95_s=percentile(all_latencies, 95),
        latency_max_s=max(all_latencies) if all_latencies else None,
        latency_count=len(all_latencies),
        oldest_pending_chunk=oldest.chunk if oldest else None,
        oldest_pending_age_s=max(0.0, (now - oldest.uploaded_at).total_seconds()) if oldest else None,
        last_result_at=max(results) if results else None,
        runs=len(run_list),
        fallback_runs=len(fallback_runs),
        recovered_by_fallback_runs=sum(r.recovered for r in fallback_runs),
        last_run_at=max((r.at for r in run_list if r.at is not None), default=None),
        last_fallback_run_at=max((r.at for r in fallback_runs if r.at is not None), default=None),
    )

    # The plots cover the window, or only its active part when everything happened late in it (a
    # fresh deployment, a demo): from 5 % of the active span before the first upload, at least 10 min.
    first = min((max(c.uploaded_at, start) for c in kept), default=start)
    plot_start = max(start, min(first - (now - first) * 0.05, now - PLOT_MIN_SPAN))

    stuck_chunks = sorted(
        (c for c in pending if now - c.uploaded_at > stuck_after), key=lambda c: (c.uploaded_at, c.chunk)
    )
    failures = sorted(
        (c for c in kept if c.state == "failed" and c.outcome_at is not None and c.outcome_at >= start),
        key=lambda c: (c.outcome_at, c.chunk),
        reverse=True,
    )

    reasons = []
    if fleet.stuck:
        reasons.append(
            f"{fleet.stuck} stuck chunk(s): pending for more than {format_duration(stuck_after.total_seconds())}"
        )
    if fleet.failed:
        reasons.append(f"{fleet.failed} chunk(s) failed in the window")
    if fleet.silent:
        names = [r.sensor for r in rows if r.silent]
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        reasons.append(f"{fleet.silent} silent sensor(s): {shown}")
    if queue is not None:
        if queue.state == "error":
            reasons.append(f"queue {queue.name} could not be read: {queue.error}")
        if queue.oldest_age_s is not None and queue.oldest_age_s > stuck_after.total_seconds():
            reasons.append(f"queue {queue.name}: the oldest message waits for {format_duration(queue.oldest_age_s)}")
        if queue.poison_depth:
            reasons.append(f"{queue.poison_depth} message(s) in {queue.name}-poison")
    if argo is not None and argo.state == "error":
        reasons.append(f"Argo Server: {argo.error}")

    return HealthReport(
        generated_at=now,
        window_start=start,
        window=window,
        stuck_after=stuck_after,
        silent_factor=silent_factor,
        status="attention" if reasons else "ok",
        reasons=tuple(reasons),
        fleet=fleet,
        sensors=tuple(rows),
        queue=queue,
        argo=argo,
        stuck_chunks=tuple(
            {
                "sensor": c.sensor,
                "chunk": c.chunk,
                "etag": c.etag,
                "state": c.state,
                "owner": c.owner,
                "path": c.path,
                "uploaded_at": _iso(c.uploaded_at),
                "age_s": max(0.0, (now - c.uploaded_at).total_seconds()),
            }
            for c in stuck_chunks[:MAX_LISTED]
        ),
        failures=tuple(
            {
                "sensor": c.sensor,
                "chunk": c.chunk,
                "etag": c.etag,
                "at": _iso(c.outcome_at),
                "run": c.outcome_run,
                "reason": c.outcome_reason,
            }
            for c in failures[:MAX_LISTED]
        ),
        series=series,
        fleet_backlog=backlog_steps(((c.uploaded_at, None if c.pending else c.outcome_at) for c in kept), start, now),
        fleet_bins=_fleet_bins(kept, plot_start, now, FLEET_BINS),
        plot_start=plot_start,
        features=feature_sorted,
        features_read=features is not None,
        notes=tuple(notes),
        container=container,
        results_container=results_container,
    )


# --------------------------------------------------------------------------- the terminal table

_COLUMNS = (
    ("SENSOR", "l"),
    ("STATUS", "l"),
    ("DONE", "r"),
    ("FAILED", "r"),
    ("PENDING", "r"),
    ("STUCK", "r"),
    ("OLDEST", "r"),
    ("P50", "r"),
    ("P95", "r"),
    ("LAST RESULT", "r"),
    ("LAST CHUNK", "r"),
    ("INTERVAL", "r"),
    ("RECOVERED", "r"),
)
MAX_TERMINAL_LIST = 10


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, (h, _) in enumerate(_COLUMNS)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.ljust(w) if align == "l" else c.rjust(w) for c, w, (_, align) in zip(cells, widths, _COLUMNS, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return [line([h for h, _ in _COLUMNS])] + [line(r) for r in rows]


def format_table(report: HealthReport) -> str:
    """The default terminal output: status and reasons, fleet totals, queue and Argo, one line per
    sensor (worst first), then the stuck chunks and failures (first ten of each) and notes."""
    now = report.generated_at
    f = report.fleet
    state = "OK" if report.status == "ok" else "ATTENTION"
    window = format_duration(report.window.total_seconds())
    out = [
        f"health: {state}  (window {window}: {_iso(report.window_start)} .. {_iso(now)}; "
        f"container {report.container or '-'}; stuck after {format_duration(report.stuck_after.total_seconds())}, "
        f"silent after {report.silent_factor:g}x the usual interval)"
    ]
    out += [f"  - {r}" for r in report.reasons]
    oldest = (
        f"oldest pending {format_duration(f.oldest_pending_age_s)} ({f.oldest_pending_chunk})"
        if f.oldest_pending_chunk
        else "nothing pending"
    )
    out.append(
        f"fleet: {f.sensors} sensor(s) ({f.silent} silent); {f.processed} processed, {f.failed} failed, "
        f"{f.pending} pending ({f.stuck} stuck); {f.recovered} recovered by the fallback; latency p50 "
        f"{format_duration(f.latency_p50_s)}, p95 {format_duration(f.latency_p95_s)} ({f.latency_count} chunks); "
        f"{oldest}; last result {format_age(f.last_result_at, now)}"
    )
    q, a = report.queue, report.argo
    parts = []
    if q is not None:
        if q.state == "ok":
            parts.append(
                f"queue {q.name}: {q.depth} queued, oldest {format_duration(q.oldest_age_s)}, "
                f"poison {q.poison_depth if q.poison_depth is not None else '-'}"
            )
        elif q.state == "absent":
            parts.append(f"queue {q.name}: does not exist (immediate mode)")
        else:
            parts.append(f"queue {q.name}: ERROR {q.error}")
    if a is not None:
        if a.state == "ok":
            parts.append(f"Argo: {a.in_flight}{'+' if a.capped else ''} workflow(s) in flight")
        elif a.state == "not configured":
            parts.append("Argo: not configured (SUBMIT_BACKEND is not argo)")
        else:
            parts.append(f"Argo: ERROR {a.error}")
    if parts:
        out.append("; ".join(parts))
    if f.runs:
        out.append(
            f"flow runs: {f.runs} in the window, {f.fallback_runs} fallback (last {format_age(f.last_fallback_run_at, now)}, "
            f"{f.recovered_by_fallback_runs} recovered by them)"
        )
    out.append("")
    rows = [
        [
            s.sensor,
            ",".join(s.flags),
            str(s.processed),
            str(s.failed),
            str(s.pending),
            str(s.stuck),
            format_duration(s.oldest_pending_age_s),
            format_duration(s.latency_p50_s),
            format_duration(s.latency_p95_s),
            format_age(s.last_result_at, now),
            format_age(s.last_chunk_at, now),
            format_duration(s.median_interval_s),
            str(s.recovered),
        ]
        for s in report.sensors
    ]
    if rows:
        out += _table(rows)
    else:
        out.append("no chunk in the window, and no sensor in the chunk container")
    for title, items, render, total in (
        (
            "stuck chunks (oldest first)",
            report.stuck_chunks,
            lambda c: f"{c['chunk']}  {c['state']} by {c['owner'] or '-'} ({c['path']}), {format_duration(c['age_s'])}",
            f.stuck,
        ),
        (
            "failures (latest first)",
            report.failures,
            lambda c: f"{c['chunk']}  {c['reason'] or '-'}",
            f.failed,
        ),
    ):
        if items:
            out.append("")
            out.append(f"{title}:")
            out += [f"  {render(c)}" for c in items[:MAX_TERMINAL_LIST]]
            if total > MAX_TERMINAL_LIST:
                out.append(f"  ... and {total - MAX_TERMINAL_LIST} more (--json lists {MAX_LISTED})")
    if report.notes:
        out.append("")
        out += [f"note: {n}" for n in report.notes]
    return "\n".join(out)
