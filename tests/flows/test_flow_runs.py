"""SensorProcessingFlow end to end: real local Metaflow runs (metaflow.Runner) against Azurite.

One module-scoped scenario shares the runs between assertions (each run takes ~5 s):

1. event run ``chunks=[good, bad]``: the good chunk's result equals the processing CLI's output,
   the bad one gets an error record, the run succeeds, the card shows the chunk; the same event
   run again: both chunks are skipped (an up-to-date result, an up-to-date error record), nothing
   is read or written;
2. fallback run (grace 15 s, flood guard 2): takes the two oldest missing chunks, leaves the third
   to the next run, skips a just-uploaded chunk (grace), the done chunk, the failed chunk, and sets
   aside a blob whose name breaks the allow-list;
3. two chunks are overwritten (one processed, the failed one now fixed); fallback run (grace 0):
   takes the deferred chunk, the recent one and exactly the two overwritten ones;
4. fallback run with ``force=True``: nothing left to do, nothing rewritten (force has no effect
   in fallback mode);
5. one chunk overwritten after its result; event run ``chunks=[up to date, stale]``: the stale one
   is processed, the other skipped and counted; the same with ``force=True``: both processed.

Plus an event run with an invalid chunk name: fails in ``start``, names the rule, touches nothing.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient
from metaflow import Runner

from chunk_contract.records import error_blob_name, normalize_etag, result_blob_name
from chunk_contract.versions import ChunkVersion
from localdev.azurite import Azurite
from tests.flows.conftest import FLOW_FILE, REPO_ROOT

pytestmark = pytest.mark.slow

GRACE = 15.0  # seconds; generous, the machine is shared


def chunk_csv(seed: int, seconds: float = 30.0, rate: float = 50.0) -> bytes:
    """An irregularly sampled chunk (jittered times, a tone plus noise), epoch-second timestamps."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = 1_764_000_000.0 + np.cumsum((1.0 + rng.uniform(-0.3, 0.3, n)) / rate)
    x = 3.0 * np.sin(2 * np.pi * (1.0 + seed % 5) * t) + rng.normal(size=n)
    return ("timestamp,value\n" + "".join(f"{a:.6f},{b:.6f}\n" for a, b in zip(t, x, strict=True))).encode()


BAD_CSV = b"timestamp,value\n1764000000.0,1.0\n1764000000.1,not-a-number\n"


@dataclass
class Scenario:
    service: BlobServiceClient
    chunks: ContainerClient
    results: ContainerClient
    workdir: Path
    env: dict[str, str]
    runs: dict[str, Any] = field(default_factory=dict)
    uploads: dict[str, bytes] = field(default_factory=dict)
    # After each run: every record blob -> (JSON body, metadata, blob ETag); the chunk contents.
    snapshots: dict[str, dict[str, tuple[Any, dict[str, str], str]]] = field(default_factory=dict)
    contents: dict[str, dict[str, bytes]] = field(default_factory=dict)

    def upload(self, name: str, data: bytes) -> None:
        self.chunks.get_blob_client(name).upload_blob(data, overwrite=True)
        self.uploads[name] = data

    def run(self, label: str, chunks: list[str], force: bool | None = None, **settings: str) -> Any:
        env = {**self.env, **settings}
        runner = Runner(str(FLOW_FILE), show_output=False, env=env, cwd=str(REPO_ROOT))
        # Runner JSON-encodes a JSONType value itself: pass the list, not json.dumps(list).
        params: dict[str, Any] = {"chunks": chunks, "container": self.chunks.container_name}
        if force is not None:
            params["force"] = force
        executing = runner.run(**params)
        self.runs[label] = executing
        self.snapshots[label] = self.snapshot()
        self.contents[label] = dict(self.uploads)
        return executing

    def snapshot(self) -> dict[str, tuple[Any, dict[str, str], str]]:
        if not self.results.exists():
            return {}
        out = {}
        for b in self.results.list_blobs(include=["metadata"]):
            body = json.loads(self.results.get_blob_client(b.name).download_blob().readall())
            out[b.name] = (body, dict(b.metadata), b.etag)
        return out

    def cli(self, name: str, label: str) -> dict:
        """What `python -m processing FILE --chunk-name NAME` prints for the content run `label` saw."""
        path = self.workdir / ("cli-" + name.replace("/", "_"))
        path.write_bytes(self.contents[label][name])
        out = subprocess.run(
            [sys.executable, "-m", "processing", str(path), "--chunk-name", name],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        return json.loads(out.stdout)


def assert_close(got: Any, want: Any, where: str = "") -> None:
    """Equal JSON, numbers within 1e-9 (relative), recursively."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), where
        for k in want:
            assert_close(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_close(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(want, bool):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12), where
    else:
        assert got == want, where


def succeeded(executing: Any) -> Any:
    assert executing.status == "successful", executing.stderr[-3000:]
    return executing.run


@pytest.fixture(scope="module")
def scenario(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    workdir = tmp_path_factory.mktemp("flow")
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    suffix = str(time.time_ns())[-10:]
    chunks = service.create_container(f"chunks-{suffix}")
    results = service.get_container_client(f"results-{suffix}")  # the flow creates it
    env = {
        "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(workdir / "datastore"),
        # Without it, local cards land in <cwd>/.metaflow/mf.cards: here, the repository.
        "METAFLOW_CARD_LOCALROOT": str(workdir / "datastore" / ".metaflow" / "mf.cards"),
        "METAFLOW_HOME": str(workdir / "mfhome"),
        "USERNAME": "tester",
        "METAFLOW_USER": "tester",
        "SENSOR_STORAGE": azurite.connection_string,
        "SENSOR_RESULTS_CONTAINER": results.container_name,
        "SENSOR_FALLBACK_GRACE_SECONDS": str(GRACE),
        "SENSOR_FALLBACK_MAX_CHUNKS": "2",
        "SENSOR_LEDGER_TABLE": f"ledger{suffix}",  # its own table: other tests' runs never mix in
    }
    s = Scenario(service, chunks, results, workdir, env)
    # The Metaflow client in this process (Runner's run objects) needs a user name too.
    mp = pytest.MonkeyPatch()
    mp.setenv("USERNAME", "tester")
    mp.setenv("METAFLOW_USER", "tester")

    t0 = time.monotonic()
    s.upload("sensor-1/a.csv", chunk_csv(1))
    s.upload("sensor-1/bad.csv", BAD_CSV)
    for name, seed in [("sensor-2/b.csv", 2), ("sensor-2/c.csv", 3), ("sensor-2/d.csv", 4)]:
        s.upload(name, chunk_csv(seed))
    s.upload("sensor-9/$(id).csv", chunk_csv(9))  # a name the allow-list refuses

    s.run("event", ["sensor-1/a.csv", "sensor-1/bad.csv"])
    s.run("event_again", ["sensor-1/a.csv", "sensor-1/bad.csv"])  # within the wait below: costs no time
    # The chunks above must be past the grace period, the next one inside it.
    time.sleep(max(0.0, GRACE + 1.5 - (time.monotonic() - t0)))
    s.upload("sensor-3/recent.csv", chunk_csv(5))
    s.run("fallback1", [])
    s.upload("sensor-2/b.csv", chunk_csv(22))  # overwritten after it was processed
    s.upload("sensor-1/bad.csv", chunk_csv(11))  # fixed by its sensor
    s.etags_before_fallback2 = {n: s.chunks.get_blob_client(n).get_blob_properties().etag for n in s.uploads}  # type: ignore[attr-defined]
    s.run("fallback2", [], SENSOR_FALLBACK_GRACE_SECONDS="0", SENSOR_FALLBACK_MAX_CHUNKS="10")
    s.run("fallback3", [], force=True, SENSOR_FALLBACK_GRACE_SECONDS="0", SENSOR_FALLBACK_MAX_CHUNKS="10")
    s.upload("sensor-2/c.csv", chunk_csv(33))  # overwritten after its result: the record is stale
    s.run("event_mixed", ["sensor-1/a.csv", "sensor-2/c.csv"], force=False)
    s.run("event_forced", ["sensor-1/a.csv", "sensor-2/c.csv"], force=True)
    # A chunk layout: the fallback lists only the lookback window's day prefixes, by the name's date.
    today = datetime.now(UTC)
    s.upload(f"sensor-4/{today:%Y/%m/%d}/0800.csv", chunk_csv(44))
    s.upload("sensor-4/2020/01/01/0800.csv", chunk_csv(45))  # years outside the window: not listed
    s.run(
        "fallback_layout",
        [],
        SENSOR_CHUNK_LAYOUT="{sensor}/{yyyy}/{mm}/{dd}/",
        SENSOR_FALLBACK_LOOKBACK_HOURS="24",
        SENSOR_FALLBACK_GRACE_SECONDS="0",
    )
    yield s
    mp.undo()


def test_event_run_writes_the_cli_result_and_an_error_record(scenario: Scenario) -> None:
    run = succeeded(scenario.runs["event"])
    records = scenario.snapshots["event"]
    assert set(records) == {result_blob_name("sensor-1/a.csv"), error_blob_name("sensor-1/bad.csv")}
    body, meta, _ = records[result_blob_name("sensor-1/a.csv")]
    assert_close(body, scenario.cli("sensor-1/a.csv", "event"))
    current = scenario.chunks.get_blob_client("sensor-1/a.csv").get_blob_properties().etag  # never overwritten
    assert meta["chunk_etag"] == normalize_etag(current)
    assert meta["run_pathspec"] == run.pathspec and meta["run_id"] == run.id
    assert meta["chunk_container"] == scenario.chunks.container_name

    error, error_meta, _ = records[error_blob_name("sensor-1/bad.csv")]
    assert error["step"] == "preprocess" and error["chunk"] == "sensor-1/bad.csv"
    assert error["reason"].startswith("sensor-1/bad.csv: line 3:") and "not-a-number" in error["reason"]
    assert error_meta["record_kind"] == "error" and error_meta["run_id"] == run.id
    end = run["end"].task.data
    assert counts(end.summary) == {
        "mode": "event",
        "processed": 1,
        "failed": 1,
        "skipped_up_to_date": 0,
        "forced": False,
    }
    assert end.skipped == {} and set(end.chunk_etags) == {"sensor-1/a.csv", "sensor-1/bad.csv"}


def counts(summary: dict[str, Any]) -> dict[str, Any]:
    """The run summary without its latency figures (checked in test_every_run_reports_...)."""
    return {k: v for k, v in summary.items() if k != "latency_s"}


def etag_of(scenario: Scenario, name: str) -> str:
    return normalize_etag(scenario.chunks.get_blob_client(name).get_blob_properties().etag)


def test_an_event_run_skips_chunks_whose_result_or_error_record_is_up_to_date(scenario: Scenario) -> None:
    executing = scenario.runs["event_again"]
    run = succeeded(executing)
    first = scenario.runs["event"].run
    assert run["start"].task.data.targets == []
    end = run["end"].task.data
    a, bad = "sensor-1/a.csv", "sensor-1/bad.csv"
    # bad.csv is skipped too: an up-to-date error record means "failed for this content", as in
    # the fallback (the same bytes would fail the same way).
    assert end.skipped == {
        a: etag_of(scenario, a),
        bad: scenario.snapshots["event"][error_blob_name(bad)][1]["chunk_etag"],
    }
    assert end.skipped_states[a] == {"status": "processed", "run_pathspec": first.pathspec, "reason": None}
    assert end.skipped_states[bad]["status"] == "failed"
    assert end.skipped_states[bad]["reason"].startswith("sensor-1/bad.csv: line 3:")
    assert counts(end.summary) == {
        "mode": "event",
        "processed": 0,
        "failed": 0,
        "skipped_up_to_date": 2,
        "forced": False,
    }
    assert end.chunk_etags == {}  # nothing was processed: no chunk version ran twice
    assert "skipped 2 chunk(s) already up to date" in executing.stdout + executing.stderr
    # Nothing rewritten (blob ETags of every record unchanged).
    assert {k: v[2] for k, v in scenario.snapshots["event_again"].items()} == {
        k: v[2] for k, v in scenario.snapshots["event"].items()
    }


def test_an_event_run_processes_the_stale_chunk_and_skips_the_up_to_date_one(scenario: Scenario) -> None:
    executing = scenario.runs["event_mixed"]
    run = succeeded(executing)
    a, c = "sensor-1/a.csv", "sensor-2/c.csv"
    assert run["start"].task.data.targets == [c]
    end = run["end"].task.data
    assert end.skipped == {a: etag_of(scenario, a)}
    assert counts(end.summary) == {
        "mode": "event",
        "processed": 1,
        "failed": 0,
        "skipped_up_to_date": 1,
        "forced": False,
    }
    assert {k: normalize_etag(v) for k, v in end.chunk_etags.items()} == {c: etag_of(scenario, c)}
    before, after = scenario.snapshots["fallback3"], scenario.snapshots["event_mixed"]
    assert before[result_blob_name(c)][1]["chunk_etag"] != etag_of(scenario, c)  # it was stale
    body, meta, _ = after[result_blob_name(c)]
    assert meta["chunk_etag"] == etag_of(scenario, c) and meta["run_id"] == run.id
    assert_close(body, scenario.cli(c, "event_mixed"))
    assert after[result_blob_name(a)][2] == before[result_blob_name(a)][2]  # the skipped one: untouched


def test_force_processes_up_to_date_chunks_again(scenario: Scenario) -> None:
    executing = scenario.runs["event_forced"]
    run = succeeded(executing)
    a, c = "sensor-1/a.csv", "sensor-2/c.csv"
    # Both had an up-to-date result (a.csv since the first event run, c.csv since event_mixed).
    assert run["start"].task.data.targets == [a, c]
    end = run["end"].task.data
    assert end.skipped == {}
    assert counts(end.summary) == {
        "mode": "event",
        "processed": 2,
        "failed": 0,
        "skipped_up_to_date": 0,
        "forced": True,
    }
    assert {k: normalize_etag(v) for k, v in end.chunk_etags.items()} == {
        a: etag_of(scenario, a),
        c: etag_of(scenario, c),
    }
    after = scenario.snapshots["event_forced"]
    for name in (a, c):
        body, meta, _ = after[result_blob_name(name)]
        assert meta["run_id"] == run.id and meta["chunk_etag"] == etag_of(scenario, name)
        assert body == scenario.snapshots["event_mixed"][result_blob_name(name)][0]  # same content, same result
    assert "force: processing all 2 chunk(s)" in executing.stdout + executing.stderr


def test_event_run_card_plots_the_chunk(scenario: Scenario) -> None:
    run = succeeded(scenario.runs["event"])
    end_task = run["end"].task
    card_file = scenario.workdir / "card.html"
    # The `card get` command, with the run's settings, is what docs/flow.md tells a user to run.
    # (Metaflow 2.19's in-process client, metaflow.cards.get_cards, does not find local cards
    # stored under METAFLOW_CARD_LOCALROOT.)
    got = subprocess.run(
        [
            sys.executable,
            str(FLOW_FILE),
            "card",
            "get",
            end_task.pathspec.split("/", 1)[1],
            "--id",
            "chunks",
            str(card_file),
        ],
        env={**os.environ, **scenario.env},
        cwd=scenario.workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert got.returncode == 0, got.stderr[-2000:]
    components = card_components(card_file.read_text())
    table = next(c for c in components if c["type"] == "table")
    assert [row[0] for row in table["data"]] == ["sensor-1/a.csv", "sensor-1/bad.csv"]
    assert table["data"][1][-1].startswith("set aside (preprocess): sensor-1/bad.csv: line 3")
    images = [c for c in components if c["type"] == "image"]
    assert [i["label"] for i in images] == ["sensor-1/a.csv"]  # one figure: the good chunk
    png = base64.b64decode(images[0]["src"].split(",", 1)[1])
    assert png.startswith(b"\x89PNG") and len(png) > 20_000  # a real plot, not an empty canvas


def card_components(html: str) -> list[dict]:
    """The components of a Metaflow card: its data is base64 JSON inside the HTML."""
    encoded = re.search(r'__MF_DATA__\["[^"]+"\] = "([^"]+)"', html)
    assert encoded, "no card data in the HTML"
    found: list[dict] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "type" in node:
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(base64.b64decode(encoded.group(1))))
    return found


def test_fallback_takes_the_oldest_missing_within_the_flood_guard(scenario: Scenario) -> None:
    executing = scenario.runs["fallback1"]
    start = succeeded(executing)["start"].task.data
    assert start.mode == "fallback"
    assert start.targets == ["sensor-2/b.csv", "sensor-2/c.csv"]  # same second: by name
    assert start.fallback_summary == {
        "missing": 3,
        "taken": 2,
        "deferred_by_flood_guard": 1,
        "deferred_by_byte_guard": 0,
        "in_grace_period": 1,
        "invalid_names": 1,
        "already_processed": 1,
        "already_failed": 1,
        "claimed": 2,  # in the ledger, for this run: nothing else held them
        "held_by_another_claim": 0,
        "never_claimed": 2,  # no event path had claimed them: recovered by the fallback
    }
    assert "fallback: 3 chunk(s) found missing" in executing.stdout + executing.stderr
    new = scenario.snapshots["fallback1"].keys() - scenario.snapshots["event"].keys()
    assert new == {
        result_blob_name("sensor-2/b.csv"),
        result_blob_name("sensor-2/c.csv"),
        error_blob_name("sensor-9/$(id).csv"),
    }
    invalid = scenario.snapshots["fallback1"][error_blob_name("sensor-9/$(id).csv")][0]
    assert invalid["step"] == "start" and "character '$' is not allowed" in invalid["reason"]
    body = scenario.snapshots["fallback1"][result_blob_name("sensor-2/c.csv")][0]
    assert_close(body, scenario.cli("sensor-2/c.csv", "fallback1"))
    # The failed chunk was not retried: its error record is the event run's.
    bad = error_blob_name("sensor-1/bad.csv")
    assert scenario.snapshots["fallback1"][bad][2] == scenario.snapshots["event"][bad][2]


def test_next_fallback_takes_the_deferred_recent_and_overwritten_chunks(scenario: Scenario) -> None:
    run = succeeded(scenario.runs["fallback2"])
    start = run["start"].task.data
    # Oldest first: the fixed and the overwritten chunk are now the newest.
    assert start.targets[:2] == ["sensor-2/d.csv", "sensor-3/recent.csv"]
    assert sorted(start.targets[2:]) == ["sensor-1/bad.csv", "sensor-2/b.csv"]
    assert start.fallback_summary["already_processed"] == 2  # a.csv and c.csv
    after = scenario.snapshots["fallback2"]
    for name in ["sensor-1/bad.csv", "sensor-2/b.csv", "sensor-2/d.csv", "sensor-3/recent.csv"]:
        body, meta, _ = after[result_blob_name(name)]
        assert_close(body, scenario.cli(name, "fallback2"))
        assert meta["run_id"] == run.id
        assert meta["chunk_etag"] == normalize_etag(scenario.etags_before_fallback2[name])  # type: ignore[attr-defined]
    assert error_blob_name("sensor-1/bad.csv") not in after  # the fix replaced the error record
    assert error_blob_name("sensor-9/$(id).csv") in after  # set aside, not retried
    # Results of unchanged chunks were not rewritten.
    for name in ["sensor-1/a.csv", "sensor-2/c.csv"]:
        assert after[result_blob_name(name)][2] == scenario.snapshots["fallback1"][result_blob_name(name)][2]


def test_a_second_fallback_run_does_nothing_even_with_force(scenario: Scenario) -> None:
    executing = scenario.runs["fallback3"]
    run = succeeded(executing)
    assert "force=true has no effect in fallback mode" in executing.stdout + executing.stderr
    assert run["start"].task.data.targets == []
    assert run["start"].task.data.fallback_summary == {
        "missing": 0,
        "taken": 0,
        "deferred_by_flood_guard": 0,
        "deferred_by_byte_guard": 0,
        "in_grace_period": 0,
        "invalid_names": 0,
        "already_processed": 6,
        "already_failed": 1,
        "claimed": 0,
        "held_by_another_claim": 0,
        "never_claimed": 0,
    }
    assert run["end"].task.data.summary["processed"] == 0
    assert {k: v[2] for k, v in scenario.snapshots["fallback3"].items()} == {
        k: v[2] for k, v in scenario.snapshots["fallback2"].items()
    }


def test_every_run_reports_its_counts_and_latency_in_artifacts_and_the_ledger(scenario: Scenario) -> None:
    from datetime import timedelta

    from chunk_contract.ledger import open_ledger

    ledger = open_ledger(scenario.env["SENSOR_STORAGE"], table_name=scenario.env["SENSOR_LEDGER_TABLE"])
    reports = {r.run_id: r for r in ledger.runs(datetime.now(UTC) - timedelta(hours=2))}
    expected = {
        # label: (mode, processed, failed, skipped, set_aside, recovered)
        "event": ("event", 1, 1, 0, 1, 0),
        "event_again": ("event", 0, 0, 2, 0, 0),
        "fallback1": ("fallback", 2, 1, 0, 1, 2),
        "fallback2": ("fallback", 4, 0, 0, 0, 4),
        "fallback3": ("fallback", 0, 0, 0, 0, 0),
        "event_mixed": ("event", 1, 0, 1, 0, 0),
    }
    for label, (mode, processed, failed, skipped, set_aside, recovered) in expected.items():
        run = succeeded(scenario.runs[label])
        end = run["end"].task.data
        report = reports[run.id]
        got = (report.mode, report.processed, report.failed, report.skipped_up_to_date, report.set_aside)
        assert (*got, report.recovered) == (mode, processed, failed, skipped, set_aside, recovered), label
        assert end.report == report.as_dict(), label
        # Upload -> result per recorded chunk version (not for the stray name set aside in start).
        recorded = {n for n in end.records} | {n for n, f in end.failures.items() if f["step"] != "start"}
        assert set(end.latencies) == recorded, label
        assert report.latency_count == len(recorded), label
        if recorded:
            assert report.finished_at > report.started_at
            age = (report.finished_at - datetime.now(UTC)).total_seconds()
            for name, seconds in end.latencies.items():
                # A chunk was uploaded before its run, and no chunk here is older than the scenario.
                assert 0.0 <= seconds <= 600.0 + abs(age), (label, name)
            assert report.latency_max_s == max(end.latencies.values())
            assert report.latency_p50_s is not None and report.latency_p50_s <= report.latency_max_s
            assert end.summary["latency_s"]["count"] == len(recorded)
        for name in end.records if label == "fallback2" else ():  # chunks no later run processed again
            claim = ledger.latest(ChunkVersion.of(scenario.chunks.container_name, name, end.chunk_etags[name]))
            assert claim is not None and claim.outcome_run == run.pathspec, (label, name)
            assert claim.outcome_latency_s == pytest.approx(end.latencies[name]), (label, name)


def test_a_fallback_with_a_layout_lists_only_the_window(scenario: Scenario) -> None:
    executing = scenario.runs["fallback_layout"]
    run = succeeded(executing)
    start = run["start"].task.data
    today = datetime.now(UTC)
    inside = f"sensor-4/{today:%Y/%m/%d}/0800.csv"
    assert start.targets == [inside]
    listing = start.fallback_listing
    assert listing["mode"] == "layout" and listing["sensors"] == 5  # the top-level prefixes sensor-1 .. -4 and -9
    # Only the window's prefixes: the 2020 chunk and every chunk outside the layout are never listed.
    assert listing["chunks_listed"] == 1
    assert result_blob_name(inside) in scenario.snapshots["fallback_layout"]
    assert result_blob_name("sensor-4/2020/01/01/0800.csv") not in scenario.snapshots["fallback_layout"]
    assert "fallback listing: {'mode': 'layout'" in executing.stdout + executing.stderr


def test_no_run_prints_the_connection_string(scenario: Scenario) -> None:
    key = scenario.env["SENSOR_STORAGE"].split("AccountKey=")[1].split(";")[0]
    for label, executing in scenario.runs.items():
        assert key not in executing.stdout + executing.stderr, label


def test_invalid_chunk_name_fails_in_start_and_touches_nothing(scenario: Scenario) -> None:
    before = scenario.snapshot()
    executing = scenario.run("invalid", ["sensor-1/a.csv", "raw/$HOME/x.csv"])
    assert executing.status == "failed"
    log = executing.stdout + executing.stderr
    assert "parameter 'chunks', item 1: invalid chunk name 'raw/$HOME/x.csv': character '$' is not allowed" in log
    assert "AccountKey" not in log
    run = executing.run
    assert [s.id for s in run] == ["start"] and not run["start"].task.successful
    assert scenario.snapshots["invalid"] == before
