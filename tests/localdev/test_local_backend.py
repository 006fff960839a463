"""LocalBackend on Azurite with real (tiny) Metaflow runs: parameters arrive intact, names are claimed once.

A two-step flow stands in for the real one so that these checks take seconds: it records the
parameter values Metaflow handed it (after Runner → CLI → JSONType parsing) and fails on demand.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from chunk_contract.ledger import open_ledger
from function_app.settings import Settings, load_settings
from function_app.submission import submit_chunks
from localdev.azurite import Azurite
from localdev.local_backend import LocalBackend

pytestmark = pytest.mark.slow

TINY_FLOW = """
import json, os
from metaflow import FlowSpec, JSONType, Parameter, step

class TinyFlow(FlowSpec):
    chunks = Parameter("chunks", type=JSONType, default="[]")
    container = Parameter("container", type=str, default="sensor-data")
    force = Parameter("force", type=bool, default=False)

    @step
    def start(self):
        if self.container == "boom-container":
            raise RuntimeError("boom: the container said so")
        out = os.path.join(os.environ["TINY_OUT"], f"{self.container}-{len(os.listdir(os.environ['TINY_OUT']))}.json")
        with open(out, "w") as f:
            json.dump({"chunks": self.chunks, "container": self.container}, f)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    TinyFlow()
"""

NAMES = ["a=b/c=d.csv", "ABC/xyz/0123456789/._-=.npy", "sensor-1/2026/11/22/080000.csv"]


@pytest.fixture
def tiny(tmp_path: Path, azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    flow = tmp_path / "tiny_flow.py"
    flow.write_text(TINY_FLOW)
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("TINY_OUT", str(out))
    monkeypatch.setenv("METAFLOW_DATASTORE_SYSROOT_LOCAL", str(tmp_path / "mf"))
    monkeypatch.setenv("METAFLOW_USER", "test")
    return flow, out


def _settings(azurite: Azurite) -> Settings:
    return load_settings({"SENSOR_STORAGE": azurite.connection_string, "SUBMIT_BACKEND": "local"})


def test_parameters_reach_the_flow_intact_and_a_name_runs_once(azurite: Azurite, tiny: tuple[Path, Path]) -> None:
    flow, out = tiny
    settings = _settings(azurite)
    backend = LocalBackend(settings, flow_file=flow, workflows_container="wf-local-backend-test")
    etags = [f'"0x{i}"' for i in range(len(NAMES))]
    first = submit_chunks(settings, "http", NAMES, etags, container="c-params", backend=backend)
    assert not first.duplicate and first.run_id.startswith("TinyFlow/")
    got = [json.loads(p.read_text()) for p in out.iterdir()]
    assert got == [{"chunks": sorted(NAMES), "container": "c-params"}]

    again = submit_chunks(
        settings, "blob", list(reversed(NAMES)), list(reversed(etags)), container="c-params", backend=backend
    )
    assert again.duplicate and again.run_id == first.run_id and again.workflow_name == first.workflow_name
    assert len(list(out.iterdir())) == 1  # not run a second time

    workflow = backend.get_workflow(first.workflow_name)
    assert workflow is not None and workflow["status"]["phase"] == "Succeeded"
    assert workflow["metadata"]["annotations"]["sensor-pipeline.io/run-id"] == first.run_id
    assert backend.get_workflow("chunk-never-submitted") is None


def test_concurrent_submissions_each_run_and_a_failure_is_recorded(azurite: Azurite, tiny: tuple[Path, Path]) -> None:
    flow, out = tiny
    settings = _settings(azurite)
    backend = LocalBackend(settings, flow_file=flow, workflows_container="wf-local-backend-test")
    results = {}

    def submit(container: str) -> None:
        results[container] = submit_chunks(
            settings, "blob", ["s/x.csv"], ['"0x9"'], container=container, backend=backend
        )

    threads = [threading.Thread(target=submit, args=(c,)) for c in ("c-one", "c-two", "boom-container")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(p.name.split("-")[1] for p in out.iterdir()) == ["one", "two"]
    failed = backend.get_workflow(results["boom-container"].workflow_name)
    assert failed is not None and failed["status"]["phase"] == "Failed"
    assert "boom: the container said so" in failed["status"]["message"]
    assert "/start/" in failed["status"]["message"]  # names the failing task


def test_storage_down_is_unavailable_not_a_crash(azurite: Azurite, tiny: tuple[Path, Path]) -> None:
    from function_app.submission import SubmitUnavailable
    from localdev.azurite import free_port
    from localdev.local_backend import LocalBackend as Backend

    conn = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        f"BlobEndpoint=http://127.0.0.1:{free_port()}/devstoreaccount1;"
    )
    settings = load_settings({"SENSOR_STORAGE": conn, "SUBMIT_BACKEND": "local"})
    service = BlobServiceClient.from_connection_string(conn, retry_total=0)
    backend = Backend(settings, flow_file=tiny[0])
    backend._container = service.get_container_client("wf")  # no retries: fail fast
    # The ledger answers (Azurite); the backend's own marker storage is what is down.
    ledger = open_ledger(azurite.connection_string, table_name="localbackenddown", auto_create=True)
    with pytest.raises(SubmitUnavailable, match="storage unreachable") as err:
        submit_chunks(settings, "blob", ["s/x.csv"], ['"0x1"'], container="c-x", backend=backend, ledger=ledger)
    assert "a2V5" not in str(err.value)
