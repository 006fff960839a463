"""``sensorctl health`` end to end on Azurite: a hand-built ledger, results container, queue and the
fake Argo Server, with every number of the report checked against what the fixture was built to
hold — a steady sensor, a stuck chunk, a failure, a silent sensor, a chunk recovered by the fallback,
a sensor known only from the chunk container, and decoys that must not count (another container,
results from before the window, a dead claim generation replaced by a finished one, a manifest).

Also: the HTML page rendered from this data (always), screenshotted in headless Chromium when
``chromium`` is on PATH; the command line's ``--json`` schema and exit codes.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.data.tables import TableClient
from azure.storage.blob import BlobServiceClient, ContainerClient
from azure.storage.queue import QueueClient

from chunk_contract.ledger import Claim, Manifest, claim_entity, manifest_entity
from chunk_contract.records import RunInfo, write_result
from chunk_contract.versions import ChunkVersion
from function_app.settings import Settings, get_settings, load_settings
from function_app.storage import blob_service_client, ledger
from function_app.submission import get_backend
from localdev.azurite import Azurite
from sensorctl.cli import main
from sensorctl.health_sources import collect_report, write_health_page
from tests.fakes.argo_server import FakeArgoServer

TOKEN = "health-test-token-never-printed"
H = timedelta(hours=1)
M = timedelta(minutes=1)
S = timedelta(seconds=1)


def _clear() -> None:
    get_settings.cache_clear()
    get_backend.cache_clear()
    blob_service_client.cache_clear()
    ledger.cache_clear()


@dataclass
class World:
    now: datetime
    settings: Settings
    table: TableClient
    chunks: ContainerClient
    results: ContainerClient
    queue: QueueClient
    fake: FakeArgoServer
    connection: str


def _record(name: str, t: datetime, k: int) -> dict[str, Any]:
    """A feature record as the flow writes it (the fields the page plots)."""
    return {
        "sensor_id": name.split("/", 1)[0],
        "chunk_name": name,
        "t_start": t.isoformat().replace("+00:00", "Z"),
        "t_end": (t + 10 * M).isoformat().replace("+00:00", "Z"),
        "fs": 100.0,
        "gap_fraction": 0.01 * k,
        "band_edges": [0.0, 12.5, 25.0, 37.5, 50.0],
        "band_powers": [1.0, 0.1 * (1 + k), 0.01, 0.001],
        "acf": [0.9 - 0.05 * k, 0.5],
    }


class Builder:
    """Writes claims exactly as ``chunk_contract.ledger`` lays them out, with hand-chosen times."""

    def __init__(self, world: World) -> None:
        self.w = world
        self.etag_counter = 0

    def claim(
        self,
        name: str,
        *,
        first_seen: datetime,
        state: str = "processed",
        latency: float | None = None,
        path: str = "blob",
        event_time: datetime | None = None,
        generation: int = 0,
        reason: str | None = None,
        container: str | None = None,
        extra: dict[str, Any] | None = None,
        etag: str | None = None,
        record: bool = True,
    ) -> ChunkVersion:
        self.etag_counter += 1
        version = ChunkVersion.of(
            container or self.w.chunks.container_name, name, etag or f'"0x8DE{self.etag_counter:012X}"'
        )
        upload = event_time or first_seen
        outcome_at = upload + timedelta(seconds=latency) if latency is not None else None
        claim = Claim(
            version=version,
            owner=f"batch-{self.etag_counter}",
            owner_kind="run" if path == "fallback" else "batch",
            state=state,
            path=path,
            first_seen=first_seen,
            claimed_at=first_seen,
            generation=generation,
            event_time=event_time,
            outcome_run="SensorProcessingFlow/argo-x" if outcome_at else None,
            outcome_reason=reason,
            outcome_at=outcome_at,
        )
        entity = claim_entity(claim)
        entity.update(extra or {})
        self.w.table.create_entity(entity)
        if state == "processed" and record and container is None:
            write_result(
                self.w.results,
                name,
                _record(name, upload - 10 * M, self.etag_counter % 5),
                chunk_container=version.container,
                chunk_etag=version.etag,
                run=RunInfo("SensorProcessingFlow", "argo-x"),
            )
        return version


def build(world: World) -> None:
    """The fixture (N = now). Expected numbers are in test_every_number."""
    N = world.now
    b = Builder(world)
    # steady: every 10 min from N-60m to N-10m; the last pending (10 min old: not stuck). Latencies 30, 60,
    # 95 (the flow's outcome_latency_s; computed would be 90), 120, 150; the first carries its event time.
    for k, lat in enumerate([30, 60, 90, 120, 150]):
        up = N - (60 - 10 * k) * M
        if k == 0:
            b.claim(f"steady/2026/11/22/{k:04d}.csv", first_seen=up + M, event_time=up, latency=lat)
        elif k == 2:
            b.claim(f"steady/2026/11/22/{k:04d}.csv", first_seen=up, latency=lat, extra={"outcome_latency_s": 95.0})
        elif k == 4:
            b.claim(f"steady/2026/11/22/{k:04d}.csv", first_seen=up, latency=lat, record=False)  # record lost
        else:
            b.claim(f"steady/2026/11/22/{k:04d}.csv", first_seen=up, latency=lat)
    b.claim("steady/2026/11/22/0005.csv", first_seen=N - 10 * M, state="accepted")
    # stuck: hourly from N-5h; the N-5h chunk was never recorded (stuck, 5 h); N-2h failed after 30 s
    b.claim("stuck/2026/11/22/0000.csv", first_seen=N - 5 * H, state="accepted")
    b.claim("stuck/2026/11/22/0001.csv", first_seen=N - 4 * H, latency=60)
    b.claim("stuck/2026/11/22/0002.csv", first_seen=N - 3 * H, latency=60)
    b.claim("stuck/2026/11/22/0003.csv", first_seen=N - 2 * H, state="failed", latency=30, reason="line 3: bad row")
    b.claim("stuck/2026/11/22/0004.csv", first_seen=N - 1 * H, latency=120)
    # silent: every 10 minutes from N-20h to N-19h, nothing since
    for k in range(7):
        b.claim(f"silent/2026/11/21/{k:04d}.csv", first_seen=N - 20 * H + k * 10 * M, latency=45)
    # fallback: hourly; the N-2h chunk had no claim until the cron fallback took it (path fallback)
    b.claim("fallback/2026/11/22/0000.csv", first_seen=N - 3 * H, latency=20)
    b.claim("fallback/2026/11/22/0001.csv", first_seen=N - 2 * H, latency=300, path="fallback")
    b.claim("fallback/2026/11/22/0002.csv", first_seen=N - 1 * H, latency=20)
    # decoys: another container; done before the window; a dead generation 0 (accepted 40 h ago, no
    # outcome) replaced by generation 1 that finished 38 h ago; a manifest
    b.claim("steady/2026/11/22/0000.csv", first_seen=N - 30 * M, state="accepted", container="other-container")
    b.claim("steady/2026/11/20/0090.csv", first_seen=N - 30 * H, latency=10)
    dead = '"0x8DEDEAD00000001"'
    b.claim("steady/2026/11/20/0091.csv", first_seen=N - 40 * H, state="accepted", etag=dead)
    b.claim("steady/2026/11/20/0091.csv", first_seen=N - 39 * H, latency=3600, generation=1, etag=dead)
    world.table.create_entity(
        manifest_entity(
            Manifest("batch-abc", world.chunks.container_name, (("x/1.csv", "0x1"),), "accepted", "blob", N - H)
        )
    )
    # two flow runs of the window (the flow's "run" entities) and one from before it
    for key, mode, start, recovered in (
        ("r1", "fallback", N - 2 * H - 10 * M, 1),
        ("r2", "event", N - H, 0),
        ("r0", "fallback", N - 30 * H, 7),
    ):
        world.table.create_entity(
            {
                "PartitionKey": "run",
                "RowKey": key,
                "kind": "run",
                "flow_name": "SensorProcessingFlow",
                "run_id": key,
                "mode": mode,
                "started_at": start,
                "finished_at": start + 10 * M,
                "processed": 3,
                "failed": 0,
                "recovered": recovered,
            }
        )
    # the chunk container: every sensor above has a blob, "ghost" too (it never sent anything lately)
    for sensor in ("steady", "stuck", "silent", "fallback", "ghost"):
        world.chunks.upload_blob(f"{sensor}/2026/11/01/old.csv", b"timestamp,value\n0,1\n")
    world.chunks.upload_blob("README.txt", b"not a sensor")
    # the queue: two events waiting, one poisoned
    world.queue.send_message("event-1")
    world.queue.send_message("event-2")
    QueueClient.from_connection_string(world.connection, world.settings.poison_queue).send_message("bad")
    # Argo: three workflows of the template, one finished -> 2 in flight
    for name in ("wf-1", "wf-2", "wf-3"):
        response = requests.post(
            f"{world.fake.url}/api/v1/workflows/argo/submit",
            json={
                "resourceKind": "WorkflowTemplate",
                "resourceName": "sensorprocessingflow",
                "submitOptions": {"name": name},
            },
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=5,
        )
        response.raise_for_status()
    world.fake.set_phase("wf-3", "Succeeded")


def _env(azurite: Azurite, fake: FakeArgoServer) -> dict[str, str]:
    tag = uuid.uuid4().hex[:12]
    return {
        "SENSOR_STORAGE": azurite.connection_string,
        "SENSOR_CONTAINER": f"c-{tag}",
        "SENSOR_RESULTS_CONTAINER": f"r-{tag}",
        "SENSOR_LEDGER_TABLE": f"ledger{tag}",
        "SENSOR_EVENTS_QUEUE": f"events-{tag}",
        "SUBMIT_BACKEND": "argo",
        "ARGO_SERVER_URL": fake.url,
        "ARGO_TOKEN": TOKEN,
        "ARGO_READ_TIMEOUT": "2",
        "ARGO_RETRY_SECONDS": "1",
    }


@pytest.fixture
def world(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with FakeArgoServer(token=TOKEN) as fake:
        env = _env(azurite, fake)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        _clear()
        settings = load_settings(env)
        service = BlobServiceClient.from_connection_string(azurite.connection_string)
        table = TableClient.from_connection_string(azurite.connection_string, settings.ledger_table)
        table.create_table()
        queue = QueueClient.from_connection_string(azurite.connection_string, settings.events_queue)
        queue.create_queue()
        QueueClient.from_connection_string(azurite.connection_string, settings.poison_queue).create_queue()
        w = World(
            now=datetime.now(UTC).replace(microsecond=0),
            settings=settings,
            table=table,
            chunks=service.create_container(settings.sensor_container),
            results=service.create_container(settings.sensor_results_container),
            queue=queue,
            fake=fake,
            connection=azurite.connection_string,
        )
        build(w)
        yield w
        _clear()


def test_every_number(world: World) -> None:
    N = world.now
    r = collect_report(world.settings, now=N, window=24 * H, stuck_after=H, silent_factor=3.0)
    by = {s.sensor: s for s in r.sensors}
    assert sorted(by) == ["fallback", "ghost", "silent", "steady", "stuck"]  # README.txt is no sensor

    steady = by["steady"]
    assert (steady.processed, steady.failed, steady.pending, steady.stuck, steady.recovered) == (5, 0, 1, 0, 0)
    assert steady.oldest_pending_chunk == "steady/2026/11/22/0005.csv" and steady.oldest_pending_age_s == 600
    assert steady.latency_p50_s == 95  # 30 (event time, not first seen), 60, 95 (outcome_latency_s), 120, 150
    assert steady.latency_p95_s == pytest.approx(144)
    # the first chunk's latency runs from its event time (N-60m), not from when it was first seen (N-59m)
    assert r.series["steady"].latency[0] == (N - 60 * M + 30 * S, 30.0)
    assert steady.last_result_at == N - 20 * M + 150 * S
    assert steady.last_chunk_at == N - 10 * M and steady.median_interval_s == 600 and steady.silent is False

    stuck = by["stuck"]
    assert (stuck.processed, stuck.failed, stuck.pending, stuck.stuck) == (3, 1, 1, 1)
    assert stuck.oldest_pending_chunk == "stuck/2026/11/22/0000.csv" and stuck.oldest_pending_age_s == 5 * 3600
    assert stuck.latency_p50_s == 60 and stuck.latency_p95_s == pytest.approx(111)  # 30 60 60 120
    assert stuck.last_result_at == N - H + 120 * S and stuck.silent is False

    silent = by["silent"]
    assert silent.silent is True and silent.silent_for_s == 19 * 3600 and silent.median_interval_s == 600
    assert (silent.processed, silent.latency_p50_s, silent.latency_p95_s) == (7, 45, 45)
    assert silent.last_result_at == N - 19 * H + 45 * S

    fallback = by["fallback"]
    assert (fallback.processed, fallback.recovered, fallback.pending) == (3, 1, 0)
    assert fallback.latency_p50_s == 20 and fallback.latency_p95_s == pytest.approx(272)  # 20 20 300

    ghost = by["ghost"]
    assert ghost.silent is True and ghost.silent_note == "no chunk in the window" and ghost.processed == 0

    f = r.fleet
    assert (f.sensors, f.processed, f.failed, f.pending, f.stuck, f.silent, f.recovered) == (5, 18, 1, 2, 1, 2, 1)
    assert (f.latency_count, f.latency_p50_s, f.latency_max_s) == (19, 45, 300)
    assert f.latency_p95_s == pytest.approx(165)
    assert f.oldest_pending_chunk == "stuck/2026/11/22/0000.csv" and f.oldest_pending_age_s == 5 * 3600
    assert f.last_result_at == N - 20 * M + 150 * S
    assert (f.runs, f.fallback_runs, f.recovered_by_fallback_runs) == (2, 1, 1)
    assert f.last_fallback_run_at == N - 2 * H and f.last_run_at == N - 50 * M

    assert r.queue is not None and (r.queue.state, r.queue.depth, r.queue.poison_depth) == ("ok", 2, 1)
    assert r.queue.oldest_age_s is not None and 0 <= r.queue.oldest_age_s < 300
    assert r.argo is not None and (r.argo.state, r.argo.in_flight, r.argo.capped) == ("ok", 2, False)

    assert r.status == "attention"
    assert r.reasons == (
        "1 stuck chunk(s): pending for more than 1h",
        "1 chunk(s) failed in the window",
        "2 silent sensor(s): ghost, silent",
        f"1 message(s) in {world.settings.events_queue}-poison",
    )
    assert [s.sensor for s in r.sensors] == ["stuck", "ghost", "silent", "steady", "fallback"]
    assert [c["chunk"] for c in r.stuck_chunks] == ["stuck/2026/11/22/0000.csv"]
    assert [(c["chunk"], c["reason"]) for c in r.failures] == [("stuck/2026/11/22/0003.csv", "line 3: bad row")]

    # the trends: one record per processed chunk of the window (18), less the one whose record is gone
    assert r.features_read and sum(len(v) for v in r.features.values()) == 17
    assert len(r.features["silent"]) == 7 and len(r.features["steady"]) == 4
    assert r.notes == ("1 feature record(s) the ledger calls processed were not found (deleted or renamed?)",)


def test_records_are_bounded_per_sensor_and_optional(world: World) -> None:
    r = collect_report(world.settings, now=world.now, max_records_per_sensor=2)
    # steady's two newest are 0004 (its record is lost) and 0003
    assert {k: len(v) for k, v in r.features.items()} == {"silent": 2, "fallback": 2, "stuck": 2, "steady": 1}
    # newest first: silent's last two chunks (the records carry t_start = upload - 10 min)
    assert [p.chunk for p in r.features["silent"]] == ["silent/2026/11/21/0005.csv", "silent/2026/11/21/0006.csv"]
    none = collect_report(world.settings, now=world.now, read_records=False)
    assert not none.features_read and none.features == {}


def test_missing_queue_and_argo_errors_are_shown_not_fatal(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    env = _env_of(world)
    env["SENSOR_EVENTS_QUEUE"] = "no-such-queue"
    env["ARGO_SERVER_URL"] = f"http://127.0.0.1:{_closed_port()}"
    settings = load_settings(env)
    r = collect_report(settings, now=world.now, read_records=False)
    assert r.queue is not None and r.queue.state == "absent"
    assert r.argo is not None and r.argo.state == "error" and "SubmitUnavailable" in (r.argo.error or "")
    assert TOKEN not in (r.argo.error or "")
    assert any(reason.startswith("Argo Server: ") for reason in r.reasons)
    local = load_settings({**env, "SUBMIT_BACKEND": "local"})
    assert collect_report(local, now=world.now, read_records=False).argo.state == "not configured"  # type: ignore[union-attr]


def _env_of(world: World) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(("SENSOR_", "ARGO_", "SUBMIT_"))}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- the page


def test_page_from_azurite(world: World, tmp_path: Path) -> None:
    page = tmp_path / "health.html"
    report = write_health_page(page, world.settings, now=world.now, plot_sensors=12)
    text = page.read_text(encoding="utf-8")
    assert report.status == "attention"
    assert text.count('src="data:image/png;base64,') == 1 + 5 + 1 + 4  # fleet, 5 sensors, heatmap, 4 with records
    assert re.findall(r'(?:src|href)="(?!data:)', text) == []
    for sensor in ("steady", "stuck", "silent", "fallback", "ghost"):
        assert f">{sensor}<" in text
    assert "stuck/2026/11/22/0000.csv" in text and "line 3: bad row" in text
    assert 100_000 < len(text) < 5_000_000


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not on PATH (apt-get install chromium)")
def test_page_screenshot_in_headless_chromium(world: World, tmp_path: Path) -> None:
    from PIL import Image, ImageStat

    page = tmp_path / "health.html"
    write_health_page(page, world.settings, now=world.now)
    shot = tmp_path / "health.png"
    subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--screenshot={shot}",
            "--window-size=1400,2400",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    with Image.open(shot) as image:
        assert image.size == (1400, 2400)
        rgb = image.convert("RGB")
        # not blank: varied pixels, and the red ATTENTION banner is there (#cf222e)
        assert max(ImageStat.Stat(rgb).stddev) > 20
        colours: list[tuple[int, tuple[int, int, int]]] = rgb.getcolors(maxcolors=1 << 22) or []  # type: ignore[assignment]
        assert sum(n for n, c in colours if c == (0xCF, 0x22, 0x2E)) > 500
        dark = sum(n for n, c in colours if c[0] + c[1] + c[2] < 200)
        assert dark > 5000  # text was drawn


# --------------------------------------------------------------------------- the command line


def _run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def test_cli_json(world: World) -> None:
    code, out = _run("health", "--json", "--no-progress")
    assert code == 0  # attention, but no --fail-on-attention
    doc = json.loads(out)
    assert set(doc) >= {"schema", "generated_at", "window", "status", "reasons", "fleet", "sensors", "queue", "argo"}
    assert doc["schema"] == "sensorctl.health/1" and doc["status"] == "attention"
    assert (
        doc["fleet"]["processed"] == 18 and doc["fleet"]["stuck"] == 1 and doc["silent_sensors"] == ["ghost", "silent"]
    )
    assert [s["sensor"] for s in doc["sensors"]][:3] == ["stuck", "ghost", "silent"]
    assert set(doc["sensors"][0]) >= {
        "sensor",
        "flags",
        "processed",
        "failed",
        "pending",
        "stuck",
        "oldest_pending_age_s",
        "latency_p50_s",
        "latency_p95_s",
        "last_result_at",
        "silent",
        "recovered_by_fallback",
    }
    assert doc["features_read"] is False  # no --html: no record is read


def test_cli_table_html_and_fail_on_attention(world: World, tmp_path: Path) -> None:
    code, out = _run("health", "--no-progress", "--html", str(tmp_path / "h.html"), "--fail-on-attention")
    assert code == 3
    assert out.startswith("health: ATTENTION")
    assert re.search(r"^stuck\s+stuck,failed\s+3\s+1\s+1\s+1\s+5h\s+60s\s+2m\s", out, re.M)
    assert (tmp_path / "h.html").stat().st_size > 100_000
    code, _ = _run("health", "--no-progress", "--window", "30m", "--fail-on-attention", "--silent-factor", "1000")
    # 30 minutes: steady's pending chunk is 10 min old, the stuck chunk still pending (any age): attention
    assert code == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--window", "yesterday"], "--window 'yesterday' is not a duration"),
        (["--stuck-after", "0m"], "--stuck-after '0m' must be more than 0"),
        (["--silent-factor", "1"], "--silent-factor 1 must be more than 1"),
        (["--plot-sensors", "0"], "--plot-sensors 0 must be between 1 and 200"),
        (["--max-records-per-sensor", "-1"], "--max-records-per-sensor -1 must be between 0 and 10000"),
        (
            ["--html", "/no/such/dir/h.html"],
            "--html '/no/such/dir/h.html': the directory '/no/such/dir' does not exist",
        ),
        (["--container", "Bad_Name"], "invalid chunk container (--container) name 'Bad_Name'"),
    ],
)
def test_cli_bad_input_exits_2(world: World, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, _ = _run("health", "--no-progress", *argv)
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("sensorctl health: ") and message in err


def test_cli_storage_error_exits_1_without_secrets(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = _closed_port()
    key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
    broken = (
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={key};"
        f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;QueueEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
        f"TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )
    monkeypatch.setenv("SENSOR_STORAGE", broken)
    _clear()
    code, out = _run("health", "--no-progress")
    err = capsys.readouterr().err
    assert code == 1 and out == ""
    assert err.startswith(f"sensorctl health: could not read the ledger table '{world.settings.ledger_table}': ")
    assert len(err.strip().splitlines()) == 1
    assert key not in err and "AccountKey" not in err


def test_cli_missing_ledger_table_exits_1(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SENSOR_LEDGER_TABLE", "nosuchtable" + uuid.uuid4().hex[:8])
    _clear()
    code, _ = _run("health", "--no-progress")
    assert code == 1
    assert (
        "does not exist: nothing has been claimed yet, or SENSOR_LEDGER_TABLE names another table"
        in capsys.readouterr().err
    )
