"""``sensorctl.health``: the pure computation of the health report, with known answers and properties.

Times are built relative to one fixed ``NOW``; every expected number below is worked out by hand in
the comment next to it (the Azurite test checks the same definitions end to end).
"""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensorctl.health import (
    ArgoObservation,
    ChunkObservation,
    FeaturePoint,
    HealthReport,
    QueueObservation,
    RunObservation,
    backlog_bins,
    backlog_steps,
    build_report,
    drift_score,
    format_duration,
    format_table,
    latest_versions,
    parse_duration,
    percentile,
    select_records,
)
from sensorctl.health_html import render_page

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
M = timedelta(minutes=1)
S = timedelta(seconds=1)


def chunk(
    sensor: str,
    i: int,
    up: datetime,
    *,
    state: str = "processed",
    latency: float | None = 30.0,
    path: str = "blob",
    event_time: datetime | None = None,
    generation: int = 0,
    reason: str | None = None,
    outcome_latency_s: float | None = None,
    etag: str | None = None,
) -> ChunkObservation:
    """A chunk first seen at ``up`` (or uploaded at ``event_time``), done ``latency`` s after its upload."""
    upload = event_time or up
    done = state in ("processed", "failed")
    return ChunkObservation(
        sensor=sensor,
        chunk=f"{sensor}/2026/11/22/{i:04d}.csv",
        etag=etag or f"0x{i:04X}",
        state=state,
        path=path,
        first_seen=up,
        container="sensor-data",
        generation=generation,
        event_time=event_time,
        outcome_at=upload + timedelta(seconds=latency) if done and latency is not None else None,
        outcome_reason=reason,
        owner="wf",
        outcome_latency_s=outcome_latency_s,
    )


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("24h", 86400), ("7d", 604800), ("90m", 5400), ("1h30m", 5400), ("45s", 45), ("2w", 1209600), ("0.5h", 1800)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration("--window", text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "24", "h", "24x", "-1h", "0h", "1h 30m", "400d", "1h30"])
def test_parse_duration_refuses_and_names_the_option(text: str) -> None:
    with pytest.raises(ValueError, match=r"^--window "):
        parse_duration("--window", text)


def test_percentile_known_answers() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 95) == 7.0
    assert percentile([30, 60, 95, 120, 150], 50) == 95
    assert percentile([30, 60, 95, 120, 150], 95) == pytest.approx(144)  # rank 3.8: 120 + 0.8 × 30


@given(st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=60), st.floats(min_value=0, max_value=100))
def test_percentile_matches_numpy(values: list[float], q: float) -> None:
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-9, abs=1e-9)


def test_format_duration() -> None:
    assert [format_duration(v) for v in (None, 0, 4.5, 42, 89, 90, 600, 3599, 3600, 5400, 86400 * 3)] == [
        "-",
        "0s",
        "4.5s",
        "42s",
        "89s",
        "2m",
        "10m",
        "60m",
        "1h",
        "1.5h",
        "3d",
    ]


def test_latest_versions_keeps_the_highest_generation() -> None:
    dead = chunk("s1", 1, NOW - 40 * H, state="accepted", latency=None)
    rerun = chunk("s1", 1, NOW - 2 * H, generation=1)
    other = chunk("s1", 2, NOW - H)
    assert latest_versions([rerun, other, dead]) == [rerun, other]
    assert latest_versions([dead, rerun]) == [rerun]


# --------------------------------------------------------------------------- backlog


def test_backlog_steps_known_answer() -> None:
    start, end = NOW - 10 * M, NOW
    steps = backlog_steps(
        [
            (NOW - 20 * M, NOW - 5 * M),  # waiting at the start, done at -5m
            (NOW - 8 * M, None),  # pending from -8m on
            (NOW - 7 * M, NOW - 6 * M),
            (NOW - 30 * M, NOW - 15 * M),  # done before the window: never counts
        ],
        start,
        end,
    )
    assert steps == ((start, 1), (NOW - 8 * M, 2), (NOW - 7 * M, 3), (NOW - 6 * M, 2), (NOW - 5 * M, 1), (end, 1))


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(st.integers(0, 100), st.one_of(st.none(), st.integers(0, 100))),
        max_size=25,
    ),
    st.integers(0, 100),
)
def test_backlog_steps_counts_what_covers_each_moment(raw: list[tuple[int, int | None]], probe: int) -> None:
    base = NOW - 100 * M
    intervals = [(base + a * M, None if b is None else base + b * M) for a, b in raw]
    start, end = base + 20 * M, base + 80 * M
    steps = backlog_steps(intervals, start, end)
    t = min(max(base + probe * M, start), end)
    at = [v for m, v in steps if m <= t][-1]
    expected = sum(
        1 for up, done in intervals if up <= t and (done is None or t < done) and (done is None or done > up)
    )
    assert at == expected


def test_backlog_bins_most_and_mean() -> None:
    start = NOW - 4 * M
    steps = ((start, 0), (start + 30 * S, 2), (start + 90 * S, 0), (NOW, 0))
    bins = backlog_bins(steps, start, NOW, 4)  # 1-minute bins
    assert [(b[2], round(b[3], 6)) for b in bins] == [(2, 1.0), (2, 1.0), (0, 0.0), (0, 0.0)]
    assert bins[0][0] == start and bins[-1][1] == NOW


# --------------------------------------------------------------------------- the report


def scenario() -> list[ChunkObservation]:
    """Four sensors: steady, one with a stuck chunk and a failure, one silent, one with a fallback chunk."""
    out = []
    # steady: every 10 min from -60m to -10m; the last pending (10 min: not stuck); latencies 30..150 s,
    # the first uploaded (event_time) a minute before it was first seen, the third with the flow's own latency.
    for k, lat in enumerate([30, 60, 90, 120, 150]):
        up = NOW - (60 - 10 * k) * M
        if k == 0:
            out.append(chunk("steady", k, up + M, event_time=up, latency=lat))
        elif k == 2:
            out.append(chunk("steady", k, up, latency=lat, outcome_latency_s=95.0))
        else:
            out.append(chunk("steady", k, up, latency=lat))
    out.append(chunk("steady", 5, NOW - 10 * M, state="accepted", latency=None))
    # stuck: hourly from -5h; -5h never finished (stuck, 5 h old), -2h failed
    out.append(chunk("stuck", 0, NOW - 5 * H, state="accepted", latency=None))
    out.append(chunk("stuck", 1, NOW - 4 * H, latency=60))
    out.append(chunk("stuck", 2, NOW - 3 * H, latency=60))
    out.append(chunk("stuck", 3, NOW - 2 * H, state="failed", latency=30, reason="line 3: <bad> & worse"))
    out.append(chunk("stuck", 4, NOW - 1 * H, latency=120))
    # silent: every 10 min from -20h to -19h, nothing since
    for k in range(7):
        out.append(chunk("silent", k, NOW - 20 * H + k * 10 * M, latency=45))
    # fallback: hourly, the middle one recovered by the fallback (first seen when the fallback claimed it)
    out.append(chunk("fallback", 0, NOW - 3 * H, latency=20))
    out.append(chunk("fallback", 1, NOW - 2 * H, latency=300, path="fallback"))
    out.append(chunk("fallback", 2, NOW - 1 * H, latency=20))
    # out of the report: done before the window; and a dead generation replaced by a finished one
    out.append(chunk("steady", 90, NOW - 30 * H, latency=10))
    out.append(chunk("steady", 91, NOW - 40 * H, state="accepted", latency=None))
    out.append(chunk("steady", 91, NOW - 39 * H, generation=1, latency=10))
    return out


def report(**changes: Any) -> HealthReport:
    options: dict[str, Any] = {
        "now": NOW,
        "window": 24 * H,
        "stuck_after": H,
        "silent_factor": 3.0,
        "known_sensors": ["ghost", "steady"],
    }
    options.update(changes)
    return build_report(scenario(), **options)


def test_per_sensor_numbers() -> None:
    r = report()
    N = NOW
    steady, stuck, silent, fallback, ghost = (r.sensor(n) for n in ("steady", "stuck", "silent", "fallback", "ghost"))

    assert (steady.processed, steady.failed, steady.pending, steady.stuck, steady.recovered) == (5, 0, 1, 0, 0)
    assert steady.oldest_pending_chunk == "steady/2026/11/22/0005.csv"
    assert steady.oldest_pending_age_s == 600
    # latencies 30 (from event_time, not first_seen), 60, 95 (the flow's), 120, 150
    assert steady.latency_p50_s == 95
    assert steady.latency_p95_s == pytest.approx(144)
    assert steady.latency_max_s == 150 and steady.latency_count == 5
    # the first chunk's latency runs from its event time (N-60m), not from when it was first seen (N-59m)
    assert r.series["steady"].latency[0] == (N - 60 * M + 30 * S, 30.0)
    assert steady.last_result_at == NOW - 20 * M + 150 * S
    assert steady.last_chunk_at == NOW - 10 * M
    assert steady.median_interval_s == 600 and steady.silent is False

    assert (stuck.processed, stuck.failed, stuck.pending, stuck.stuck) == (3, 1, 1, 1)
    assert stuck.oldest_pending_age_s == 5 * 3600
    assert stuck.latency_p50_s == 60  # 30, 60, 60, 120 (the failure's 30 s counts: an outcome)
    assert stuck.latency_p95_s == pytest.approx(111)  # rank 2.85: 60 + 0.85 × 60
    assert stuck.last_result_at == NOW - H + 120 * S  # processed results only
    assert stuck.silent is False  # last chunk 1 h ago, usually every hour: within 3×

    assert silent.silent is True
    assert silent.silent_for_s == 19 * 3600 and silent.median_interval_s == 600
    assert silent.latency_p50_s == 45 and silent.processed == 7
    assert "no chunk for 19h, usually every 10m" in silent.silent_note

    assert fallback.recovered == 1 and fallback.processed == 3
    assert fallback.latency_p95_s == pytest.approx(272)  # 20, 20, 300: rank 1.9 → 20 + 0.9 × 280

    assert ghost.silent is True and ghost.silent_note == "no chunk in the window"
    assert ghost.last_chunk_at is None and ghost.processed == 0


def test_fleet_totals_and_status() -> None:
    r = report(queue=QueueObservation("chunk-events", "ok", depth=2, oldest_age_s=30, poison_depth=1))
    f = r.fleet
    assert (f.sensors, f.processed, f.failed, f.pending, f.stuck, f.silent, f.recovered) == (5, 18, 1, 2, 1, 2, 1)
    # 19 latencies: 20 20 30 30 45×7 60 60 60 95 120 120 150 300
    assert f.latency_count == 19
    assert f.latency_p50_s == 45
    assert f.latency_p95_s == pytest.approx(165)  # rank 17.1: 150 + 0.1 × 150
    assert f.latency_max_s == 300
    assert f.oldest_pending_chunk == "stuck/2026/11/22/0000.csv" and f.oldest_pending_age_s == 5 * 3600
    assert f.last_result_at == NOW - 20 * M + 150 * S
    assert r.status == "attention"
    assert r.reasons == (
        "1 stuck chunk(s): pending for more than 1h",
        "1 chunk(s) failed in the window",
        "2 silent sensor(s): ghost, silent",
        "1 message(s) in chunk-events-poison",
    )
    # worst first: stuck, then silent (by name), then failed, then the rest
    assert [s.sensor for s in r.sensors] == ["stuck", "ghost", "silent", "steady", "fallback"]
    assert [c["chunk"] for c in r.stuck_chunks] == ["stuck/2026/11/22/0000.csv"]
    assert r.failures[0]["reason"] == "line 3: <bad> & worse"


def test_healthy_report_is_ok() -> None:
    chunks = [chunk("a", k, NOW - (50 - 10 * k) * M) for k in range(5)]
    r = build_report(chunks, now=NOW, argo=ArgoObservation("ok", in_flight=2, limit=1000))
    assert r.status == "ok" and r.reasons == ()
    assert r.sensors[0].flags == ("ok",)


def test_silent_needs_three_distinct_uploads() -> None:
    two = [chunk("a", 0, NOW - 10 * H), chunk("a", 1, NOW - 9 * H)]
    row = build_report(two, now=NOW).sensor("a")
    assert row.silent is None
    assert row.silent_note == "interval unknown: 2 distinct upload time(s), 3 needed"
    same = [chunk("a", k, NOW - 2 * H) for k in range(4)]  # one backfill claimed them all at once
    assert build_report(same, now=NOW).sensor("a").silent is None


def test_silent_factor_is_the_threshold() -> None:
    chunks = [chunk("a", k, NOW - (100 - 10 * k) * M) for k in range(5)]  # last upload 60 min ago, every 10
    assert build_report(chunks, now=NOW, silent_factor=5.9).sensor("a").silent is True
    assert build_report(chunks, now=NOW, silent_factor=6.0).sensor("a").silent is False


def test_stuck_after_is_the_threshold() -> None:
    chunks = [chunk("a", 0, NOW - 30 * M, state="claimed", latency=None)]
    assert build_report(chunks, now=NOW, stuck_after=29 * M).fleet.stuck == 1
    assert build_report(chunks, now=NOW, stuck_after=30 * M).fleet.stuck == 0
    released = [chunk("a", 0, NOW - 2 * H, state="released", latency=None)]
    assert build_report(released, now=NOW).fleet.stuck == 1  # released is still pending


def test_window_bounds_what_counts() -> None:
    chunks = [
        chunk("a", 0, NOW - 30 * H, latency=6 * 3600 + 60),  # uploaded before, done 6 h later: in the window
        chunk("a", 1, NOW - 30 * H, latency=60),  # done before the window: out
        chunk("a", 2, NOW - 50 * H, state="accepted", latency=None),  # pending: in, whatever its age
    ]
    r = build_report(chunks, now=NOW, window=24 * H)
    assert (r.fleet.processed, r.fleet.pending, r.fleet.stuck) == (1, 1, 1)
    assert r.fleet.latency_max_s == 6 * 3600 + 60


def test_runs_are_used_when_present() -> None:
    runs = [
        RunObservation.from_entity(
            {
                "kind": "run",
                "run_id": "1",
                "mode": "fallback",
                "started_at": NOW - 3 * H,
                "finished_at": NOW - 2 * H,
                "recovered": 4,
            }
        ),
        RunObservation.from_entity({"run_id": "2", "mode": "event", "finished_at": NOW - H, "processed": "x"}),
        RunObservation.from_entity({"run_id": "old", "mode": "fallback", "finished_at": NOW - 30 * H, "recovered": 9}),
    ]
    f = build_report([], now=NOW, runs=runs).fleet
    assert (f.runs, f.fallback_runs, f.recovered_by_fallback_runs) == (2, 1, 4)
    assert f.last_fallback_run_at == NOW - 2 * H and f.last_run_at == NOW - H
    assert runs[1].processed == 0  # mistyped counter: 0, not a crash


def test_queue_and_argo_problems_need_attention() -> None:
    old = QueueObservation("q", "ok", depth=5, oldest_age_s=7200, poison_depth=0)
    assert build_report([], now=NOW, queue=old).reasons == ("queue q: the oldest message waits for 2h",)
    assert build_report([], now=NOW, queue=QueueObservation("q", "absent")).status == "ok"
    argo = ArgoObservation("error", error="SubmitUnavailable: unreachable")
    assert build_report([], now=NOW, argo=argo).reasons == ("Argo Server: SubmitUnavailable: unreachable",)
    assert build_report([], now=NOW, argo=ArgoObservation("not configured")).status == "ok"


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_totals_are_sums_and_order_does_not_matter(data: st.DataObject) -> None:
    states = st.sampled_from(["claimed", "accepted", "released", "processed", "failed"])
    chunks = []
    for i in range(data.draw(st.integers(0, 30))):
        sensor = data.draw(st.sampled_from(["a", "b", "c"]))
        up = NOW - data.draw(st.integers(0, 48 * 60)) * M
        chunks.append(
            chunk(
                sensor,
                i,
                up,
                state=data.draw(states),
                latency=data.draw(st.integers(0, 7200)),
                path=data.draw(st.sampled_from(["blob", "fallback"])),
            )
        )
    r = build_report(chunks, now=NOW)
    for key in ("processed", "failed", "pending", "stuck", "recovered"):
        assert getattr(r.fleet, key) == sum(getattr(s, key) for s in r.sensors)
    assert r.fleet.latency_count == sum(s.latency_count for s in r.sensors)
    assert r.fleet.stuck <= r.fleet.pending
    shuffled = list(chunks)
    random.Random(1).shuffle(shuffled)
    assert build_report(shuffled, now=NOW).as_dict() == r.as_dict()


def test_as_dict_is_json() -> None:
    doc = json.loads(json.dumps(report().as_dict()))
    assert doc["schema"] == "sensorctl.health/1"
    assert doc["window"] == {"start": "2026-11-21T12:00:00Z", "end": "2026-11-22T12:00:00Z", "seconds": 86400.0}
    assert doc["silent_sensors"] == ["ghost", "silent"]
    assert doc["sensors"][0]["sensor"] == "stuck" and doc["sensors"][0]["flags"] == ["stuck", "failed"]
    assert doc["fleet"]["latency_p50_s"] == 45


def test_format_table() -> None:
    text = format_table(report())
    lines = text.splitlines()
    assert lines[0].startswith("health: ATTENTION  (window 24h: 2026-11-21T12:00:00Z .. 2026-11-22T12:00:00Z")
    header = next(i for i, line in enumerate(lines) if line.startswith("SENSOR"))
    assert [line.split()[0] for line in lines[header + 1 : header + 6]] == [
        "stuck",
        "ghost",
        "silent",
        "steady",
        "fallback",
    ]
    # columns line up: every row's DONE column ends where the header's does
    end = lines[header].index("DONE") + len("DONE")
    assert all(line[end - 1] != " " for line in lines[header + 1 : header + 6])
    assert "stuck/2026/11/22/0000.csv  accepted by wf (blob), 5h" in text


# --------------------------------------------------------------------------- features


def point(
    i: int, *, powers: list[float] | None = None, acf1: float = 0.9, gap: float = 0.02, sensor: str = "a"
) -> FeaturePoint:
    rng = random.Random(i)
    return FeaturePoint(
        sensor=sensor,
        chunk=f"{sensor}/{i}.csv",
        t=NOW - (100 - i) * M,
        band_powers=tuple(powers or [10 ** (-b + rng.gauss(0, 0.02)) for b in range(4)]),
        band_edges=(0.0, 12.5, 25.0, 37.5, 50.0),
        acf1=acf1 + rng.gauss(0, 0.005),
        gap_fraction=gap + abs(rng.gauss(0, 0.002)),
    )


def test_drift_score() -> None:
    assert drift_score([point(i) for i in range(5)]) is None
    flat = drift_score([point(i) for i in range(40)])
    assert flat is not None and not flat.drifting
    stepped = [point(i) for i in range(20)] + [point(i, acf1=0.5) for i in range(20, 40)]
    score = drift_score(stepped)
    assert score is not None and score.drifting and score.feature == "lag-1 autocorrelation"
    assert score.by_feature["lag-1 autocorrelation"] < -3  # it fell
    louder = [point(i) for i in range(20)]
    louder += [point(i, powers=[1.0, 0.1, 0.1, 0.001]) for i in range(20, 40)]  # band 2 rose ×10
    band = drift_score(louder)
    assert band is not None and band.feature == "band 25-37.5 Hz" and band.score > 10


def test_feature_point_from_record() -> None:
    record = {
        "sensor_id": "s1",
        "chunk_name": "s1/a.csv",
        "t_start": "2026-11-22T08:00:00.000000Z",
        "band_edges": [0, 1, 2],
        "band_powers": [1e-3, 2e-3],
        "acf": [0.8, 0.5],
        "gap_fraction": 0.25,
    }
    p = FeaturePoint.from_record(record)
    assert (p.sensor, p.t, p.band_powers, p.acf1, p.gap_fraction) == (
        "s1",
        datetime(2026, 11, 22, 8, tzinfo=UTC),
        (1e-3, 2e-3),
        0.8,
        0.25,
    )
    with pytest.raises(ValueError, match="t_start"):
        FeaturePoint.from_record({"sensor_id": "s1"})
    with pytest.raises(ValueError):
        FeaturePoint.from_record(["not", "an", "object"])  # type: ignore[arg-type]


def test_select_records_newest_first_bounded() -> None:
    chunks = [chunk("a", k, NOW - (10 - k) * H) for k in range(5)] + [
        chunk("a", 9, NOW - 2 * H, state="failed"),
        chunk("a", 8, NOW - 30 * H),  # done before the window
        chunk("b", 0, NOW - H),
        chunk("b", 0, NOW - H / 2, etag="0xNEW"),  # a newer version of the same name: one record
    ]
    picked = select_records(chunks, NOW - 24 * H, 3)
    assert picked == {
        "a": ["a/2026/11/22/0004.csv", "a/2026/11/22/0003.csv", "a/2026/11/22/0002.csv"],
        "b": ["b/2026/11/22/0000.csv"],
    }
    assert select_records(chunks, NOW - 24 * H, 0) == {}


# --------------------------------------------------------------------------- the page


def test_page_is_self_contained_escaped_and_bounded() -> None:
    features = [point(i, sensor="stuck") for i in range(12)] + [point(i, sensor="silent") for i in range(3)]
    features.append(FeaturePoint("steady", "steady/x", NOW - H, (1.0,), (0.0, 1.0), 0.5, 0.0))
    features.append(point(1, sensor="not-in-the-ledger"))  # ignored: the page shows the report's sensors
    r = report(features=features)
    page = render_page(r, plot_sensors=2)
    assert page.startswith("<!DOCTYPE html>")
    # nothing fetched from anywhere: every src is a data URI, no stylesheet links, no script
    assert re.findall(r'src="(?!data:image/png;base64,)', page) == []
    assert "<link" not in page and "<script" not in page and "@import" not in page
    assert "<bad>" not in page and "line 3: &lt;bad&gt; &amp; worse" in page
    images = page.count('src="data:image/png;base64,')
    # fleet + the 2 worst sensors' latency/backlog + the drift heatmap (only "stuck" has ≥ 6 points)
    # + 2 feature cards (of 3 sensors with records: --plot-sensors bounds them too)
    assert images == 1 + 2 + 1 + 2
    assert "ATTENTION" in page and "worst 2 of 5" in page
    assert "1 more sensor(s) with records not plotted" in page
    assert "not-in-the-ledger" not in page


def test_page_of_an_empty_report() -> None:
    page = render_page(build_report([], now=NOW, features=[]))
    assert "OK" in page and "No chunk in the window" in page and "No feature record in the window" in page


def test_plots_start_where_the_window_gets_active() -> None:
    late = [chunk("a", k, NOW - (3 - k) * M) for k in range(3)]  # a fresh deployment: 3 chunks in 3 min
    r = build_report(late, now=NOW)
    assert r.plot_start == NOW - 10 * M  # at least 10 minutes
    assert r.fleet_bins[0].start == NOW - 10 * M and r.fleet_bins[-1].end == NOW
    assert sum(b.processed for b in r.fleet_bins) == 3
    busy = [chunk("a", 0, NOW - 20 * H), chunk("a", 1, NOW - H)]
    assert build_report(busy, now=NOW).plot_start == NOW - 20 * H - timedelta(hours=1)  # 5 % of 20 h before
    assert report().plot_start == NOW - 21 * H  # the first upload is silent's, 20 h ago (+ 5 %)
    old = [chunk("a", 0, NOW - 40 * H, state="accepted", latency=None), *busy]
    assert build_report(old, now=NOW).plot_start == NOW - 24 * H  # a pending chunk from before the window


def test_a_burst_of_uploads_is_not_silent_within_the_floor() -> None:
    """Uploads seconds apart (a backfill, the demo) give a seconds-long interval: the 10-minute floor holds."""
    from datetime import UTC, datetime, timedelta

    from sensorctl.health import ChunkObservation, build_report

    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    burst = [
        ChunkObservation(
            sensor="s1",
            chunk=f"s1/{i}.csv",
            etag=f"e{i}",
            state="processed",
            path="blob",
            first_seen=now - timedelta(minutes=5, seconds=3 - i),
            outcome_at=now - timedelta(minutes=4),
        )
        for i in range(4)
    ]
    (row,) = build_report(burst, now=now).sensors
    assert row.silent is False
    (row,) = build_report(burst, now=now, silent_min=timedelta(minutes=2)).sensors
    assert row.silent is True and "usually every 1s" in row.silent_note
