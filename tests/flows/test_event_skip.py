"""Event mode's "skip what is already done": the start step's check on Azurite, and the card.

The check (``up_to_date_states`` in the flow file) is run here directly against Azurite, so every
kind of chunk is covered without a Metaflow run per case; tests/flows/test_flow_runs.py runs the
whole flow on the main cases.
"""

from __future__ import annotations

import importlib.util
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient

from chunk_contract.records import RunInfo, normalize_etag, write_error, write_result
from localdev.azurite import Azurite
from tests.flows.conftest import FLOW_FILE


def _flow_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sensor_flow_for_skip_tests", FLOW_FILE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Requests:
    """Every HTTP request the Blob client sends, by method (the client's ``raw_request_hook``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.methods: Counter[str] = Counter()

    def __call__(self, request: Any) -> None:
        with self._lock:
            self.methods[request.http_request.method] += 1


@pytest.fixture
def world(azurite: Azurite) -> Iterator[tuple[BlobServiceClient, str, str, dict[str, str]]]:
    """A chunk container with one chunk of each kind, and a results container with their records."""
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    suffix = uuid.uuid4().hex[:12]
    chunks = service.create_container(f"skip-chunks-{suffix}")
    results = service.create_container(f"skip-results-{suffix}")
    run = RunInfo("SensorProcessingFlow", "123")
    etags = {}
    for name in ["s/fresh.csv", "s/done.csv", "s/failed.csv", "s/stale.csv", "s/stale-error.csv"]:
        etags[name] = normalize_etag(chunks.get_blob_client(name).upload_blob(b"timestamp,value\n")["etag"])
    cc = chunks.container_name
    write_result(results, "s/done.csv", {"x": 1}, chunk_container=cc, chunk_etag=etags["s/done.csv"], run=run)
    write_error(
        results,
        "s/failed.csv",
        "bad row",
        chunk_container=cc,
        chunk_etag=etags["s/failed.csv"],
        step="preprocess",
        run=run,
    )
    write_result(results, "s/stale.csv", {"x": 1}, chunk_container=cc, chunk_etag=etags["s/stale.csv"], run=run)
    write_error(
        results,
        "s/stale-error.csv",
        "bad",
        chunk_container=cc,
        chunk_etag=etags["s/stale-error.csv"],
        step="preprocess",
        run=run,
    )
    for name in ["s/stale.csv", "s/stale-error.csv"]:  # overwritten after their record
        etags[name] = normalize_etag(
            chunks.get_blob_client(name).upload_blob(b"timestamp,value\n1,2\n", overwrite=True)["etag"]
        )
    yield service, chunks.container_name, results.container_name, etags
    chunks.delete_container()
    results.delete_container()


def test_only_up_to_date_results_and_error_records_count_as_done(
    azurite: Azurite, world: tuple[BlobServiceClient, str, str, dict[str, str]]
) -> None:
    _, chunk_container, results_container, etags = world
    requests = Requests()
    service = BlobServiceClient.from_connection_string(azurite.connection_string, raw_request_hook=requests)
    names = ["s/fresh.csv", "s/done.csv", "s/failed.csv", "s/stale.csv", "s/stale-error.csv", "s/gone.csv"]
    done = _flow_module().up_to_date_states(
        service, names, chunk_container=chunk_container, results_container=results_container
    )
    assert {name: state.status for name, state in done.items()} == {"s/done.csv": "processed", "s/failed.csv": "failed"}
    assert done["s/done.csv"].chunk_etag == etags["s/done.csv"]
    assert done["s/done.csv"].run_pathspec == "SensorProcessingFlow/123"
    assert done["s/failed.csv"].reason == "bad row"
    # A missing chunk is not "done": it stays a target, and preprocess records that it does not exist.
    assert "s/gone.csv" not in done
    # Cheap: a HEAD per chunk and one per record name (none after a missing chunk), plus a single
    # small GET for the reason of the one up-to-date error record. No listing, no download of a chunk.
    assert requests.methods == Counter({"HEAD": 5 * 3 + 1, "GET": 1})


def test_an_empty_results_container_skips_nothing(
    azurite: Azurite, world: tuple[BlobServiceClient, str, str, dict[str, str]]
) -> None:
    service, chunk_container, _, _ = world
    missing_results = f"skip-none-{uuid.uuid4().hex[:12]}"  # never created: a fresh account
    done = _flow_module().up_to_date_states(
        service, ["s/done.csv", "s/failed.csv"], chunk_container=chunk_container, results_container=missing_results
    )
    assert done == {}


class FakeCard:
    def __init__(self) -> None:
        self.components: list[Any] = []

    def append(self, component: Any) -> None:
        self.components.append(component)


def test_the_card_lists_skipped_chunks_with_their_record() -> None:
    from flow_card import render_card
    from metaflow.cards import Markdown, Table

    card = FakeCard()
    render_card(
        card,
        summary={"mode": "event", "processed": 0, "failed": 0, "skipped_up_to_date": 2, "forced": False},
        summaries={},
        envelopes={},
        bands={},
        acfs={},
        failures={},
        skipped={
            "s/done.csv": {"status": "processed", "run_pathspec": "SensorProcessingFlow/7", "reason": None},
            "s/failed.csv": {"status": "failed", "run_pathspec": "SensorProcessingFlow/8", "reason": "line 3: bad"},
        },
        max_plotted=5,
    )
    texts = [c._text for c in card.components if isinstance(c, Markdown)]
    assert texts[0] == "# Sensor chunks: 0 processed, 0 set aside, 2 skipped (already up to date)"
    (table,) = [c for c in card.components if isinstance(c, Table)]
    rows = table._data
    assert [row[0] for row in rows] == ["s/done.csv", "s/failed.csv"]
    assert rows[0][-1] == "skipped, up to date: processed by SensorProcessingFlow/7"
    assert rows[1][-1] == "skipped, up to date: failed by SensorProcessingFlow/8: line 3: bad (force=true retries)"


def test_the_card_says_when_force_was_used() -> None:
    from flow_card import render_card
    from metaflow.cards import Markdown

    card = FakeCard()
    render_card(
        card,
        summary={"mode": "event", "processed": 0, "failed": 0, "skipped_up_to_date": 0, "forced": True},
        summaries={},
        envelopes={},
        bands={},
        acfs={},
        failures={},
        max_plotted=5,
    )
    texts = [c._text for c in card.components if isinstance(c, Markdown)]
    assert texts[0] == "# Sensor chunks: 0 processed, 0 set aside"
    assert "force" in texts[1]
