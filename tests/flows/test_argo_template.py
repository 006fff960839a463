"""The Argo contract, compiled by Metaflow's real compiler against Azurite (HTTPS + OAuth).

What cannot run here: ``--environment=conda argo-workflows create``. The conda environment
bootstraps micromamba from micro.mamba.pm at compile time, and this machine has no network besides
PyPI/npm. The template is compiled without conda; that the conda switch applies ``@conda_base``
under ``--environment=conda`` is checked on the flow class itself below.
"""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from types import ModuleType

import pytest
from azure.storage.blob import BlobServiceClient

from function_app.settings import Settings
from function_app.submission import Submission, decide
from localdev.local_backend import PARAMETER_TYPES, decode_parameters
from tests.flows.argo_compile import compile_template, compiler_env, https_azurite
from tests.flows.conftest import FLOW_FILE, REPO_ROOT
from tests.flows.metaflow_trigger import metaflow_trigger_parameters
from tests.flows.pod_decoding import init_command_reads, start_exports

pytestmark = pytest.mark.slow

# Distinctive, so a hit cannot be a coincidence (the template does contain words like SECRETS).
FAKE_KEY = "c2Vuc29yLXRlc3Qta2V5LW11c3Qtbm90LWxlYWs="
FAKE_CONNECTION_STRING = (
    f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={FAKE_KEY};EndpointSuffix=core.windows.net"
)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict, bytes]]:
    """One compile shared by the assertions (~4 s): the template and the code package it uploaded."""
    workdir = tmp_path_factory.mktemp("argo")
    with https_azurite(workdir) as (emulator, ca_path):
        env = compiler_env(
            emulator,
            ca_path,
            workdir,
            {
                # What docs/flow.md tells a deployer to set.
                "METAFLOW_KUBERNETES_SECRETS": "sensor-storage",
                "SENSOR_RESULTS_CONTAINER": "sensor-features-test",
                "SENSOR_FALLBACK_MAX_CHUNKS": "25",
                # A connection string in the deploying shell must still never reach the template.
                "SENSOR_STORAGE": FAKE_CONNECTION_STRING,
            },
        )
        template = compile_template(FLOW_FILE, env, workdir, "--with", "retry")
        code_url = next(
            e["value"]
            for t in template["spec"]["templates"]
            if t["name"] == "start"
            for e in t["container"]["env"]
            if e["name"] == "METAFLOW_CODE_URL"
        )
        container, blob = code_url.split("/", 1)
        service = BlobServiceClient.from_connection_string(emulator.connection_string, connection_verify=str(ca_path))
        package = service.get_blob_client(container, blob).download_blob().readall()
        yield template, package


def step_templates(template: dict) -> dict[str, dict]:
    names = {"start", "preprocess", "filter-bank", "lags", "join", "end"}
    return {t["name"]: t for t in template["spec"]["templates"] if t["name"] in names}


def test_name_entrypoint_and_graph(compiled: tuple[dict, bytes]) -> None:
    template, _ = compiled
    assert template["kind"] == "WorkflowTemplate"
    assert template["metadata"]["name"] == "sensorprocessingflow"
    entry = template["spec"]["entrypoint"]
    dag = next(t for t in template["spec"]["templates"] if t["name"] == entry)["dag"]["tasks"]
    assert {t["name"]: t["depends"] for t in dag} == {
        "start": "",
        "preprocess": "start.Succeeded",
        "filter-bank": "preprocess.Succeeded",
        "lags": "preprocess.Succeeded",
        "join": "filter-bank.Succeeded && lags.Succeeded",
        "end": "join.Succeeded",
    }
    graph = json.loads(template["metadata"]["annotations"]["metaflow/dag"])["graph_structure"]
    assert graph == ["start", "preprocess", [["filter_bank"], ["lags"]], "join", "end"]


def test_parameters_and_their_encodings(compiled: tuple[dict, bytes]) -> None:
    template, _ = compiled
    params = {p["name"]: p["value"] for p in template["spec"]["arguments"]["parameters"]}
    # The function app submits exactly these encodings: JSONType twice, str once, bool as a bare
    # JSON literal (json.dumps(False) = "false", not the JSON string "\"false\"").
    assert params == {
        "chunks": json.dumps(json.dumps([])),
        "container": json.dumps("sensor-data"),
        "force": json.dumps(False),
    }
    assert params["force"] == "false"
    declared = json.loads(template["metadata"]["annotations"]["metaflow/parameters"])
    assert {k: (v["type"], v["is_required"], v["value"]) for k, v in declared.items()} == {
        "chunks": ("JSON", False, params["chunks"]),
        "container": ("str", False, params["container"]),
        "force": ("bool", False, "false"),
    }
    # The local backend decodes by these very type names.
    assert {k: v["type"] for k, v in declared.items()} == PARAMETER_TYPES
    # The start pod exports every parameter through set_parameters, force included.
    start = next(t for t in template["spec"]["templates"] if t["name"] == "start")
    assert "force,f,{{=toBase64(workflow.parameters['force'])}}" in start["container"]["command"][-1]


def _decision(force: bool, chunks: list[str]) -> Submission:
    decision = decide(
        trigger="http",
        container="sensor-data",
        chunks=chunks,
        etags=[f'"0x8DC{i:04d}"' for i in range(len(chunks))],
        force=force,
        settings=Settings(sensor_storage="UseDevelopmentStorage=true"),
        request_id="r1",
    )
    assert isinstance(decision, Submission), decision
    return decision


@pytest.mark.parametrize("force", [False, True])
def test_a_submitted_body_decodes_to_what_the_flow_expects(
    compiled: tuple[dict, bytes], tmp_path_factory: pytest.TempPathFactory, force: bool
) -> None:
    template, _ = compiled
    chunks = ["sensor-2/b=1/x.csv", "sensor-1/2026/11/22/080000.csv"]
    submitted = _decision(force, chunks).parameters
    defaults = {p["name"]: p["value"] for p in template["spec"]["arguments"]["parameters"]}
    # Argo ignores a name the template lacks without a word: every submitted name must be declared.
    assert set(submitted) == set(defaults)
    # Metaflow's own `argo-workflows trigger` (its real CLI, only the Kubernetes API stubbed) sends
    # byte for byte the same values for the same inputs.
    trigger_options = ["--chunks", json.dumps(sorted(chunks)), "--container", "sensor-data", "--force", str(force)]
    assert metaflow_trigger_parameters(FLOW_FILE, trigger_options, tmp_path_factory.mktemp("trigger")) == submitted
    # The workflow's parameters: the template's, overridden by the submit (what Argo does).
    workflow = {**defaults, **submitted}
    expected = {"chunks": sorted(chunks), "container": "sensor-data", "force": force}
    assert decode_parameters(f"{k}={v}" for k, v in workflow.items()) == expected
    # ... and the compiled start template's own export (set_parameters + bash) then the flow's click options.
    assert init_command_reads(start_exports(template, workflow, tmp_path_factory.mktemp("pod"))) == expected


def test_the_cron_defaults_decode_to_fallback_mode_without_force(
    compiled: tuple[dict, bytes], tmp_path_factory: pytest.TempPathFactory
) -> None:
    template, _ = compiled
    # The CronWorkflow submits the template with its defaults, and so does Metaflow's trigger
    # without options: force is sent as "false" too.
    defaults = {p["name"]: p["value"] for p in template["spec"]["arguments"]["parameters"]}
    assert metaflow_trigger_parameters(FLOW_FILE, [], tmp_path_factory.mktemp("trigger")) == defaults
    expected = {"chunks": [], "container": "sensor-data", "force": False}
    assert decode_parameters(f"{k}={v}" for k, v in defaults.items()) == expected
    assert init_command_reads(start_exports(template, defaults, tmp_path_factory.mktemp("pod"))) == expected


def test_schedule_is_hourly_by_default(compiled: tuple[dict, bytes]) -> None:
    template, _ = compiled
    assert json.loads(template["metadata"]["annotations"]["metaflow/cron"]) == {"schedule": "0 * * * *", "tz": ""}


def test_settings_reach_the_pods_and_secrets_do_not(compiled: tuple[dict, bytes]) -> None:
    template, _ = compiled
    for name, t in step_templates(template).items():
        env = {e["name"]: e.get("value") for e in t["container"]["env"]}
        assert env["SENSOR_RESULTS_CONTAINER"] == "sensor-features-test", name
        assert env["SENSOR_FALLBACK_MAX_CHUNKS"] == "25", name
        assert "SENSOR_STORAGE" not in env, name
        # The connection string comes from the Kubernetes secret instead.
        assert {"name": "sensor-storage", "optional": None} in [
            ref["secretRef"] for ref in t["container"]["envFrom"] if ref.get("secretRef")
        ], name
        assert t["retryStrategy"]["limit"] >= 1, name
    assert FAKE_KEY not in json.dumps(template)


def test_code_package_carries_the_flow_helpers_and_the_processing_library(compiled: tuple[dict, bytes]) -> None:
    _, package = compiled
    with tarfile.open(fileobj=io.BytesIO(package)) as tar:
        names = set(tar.getnames())
    for expected in [
        "sensor_processing_flow.py",
        "flow_settings.py",
        "fallback.py",
        "chunk_store.py",
        "flow_card.py",
        "flow_parameters.py",
        "processing/__init__.py",
        "chunk_contract/__init__.py",
        "chunk_contract/names.py",
        "chunk_contract/records.py",
        "chunk_contract/versions.py",
        "chunk_contract/naming.py",
        "chunk_contract/ledger.py",
        "card_selection.py",
        "ledger_io.py",
    ]:
        assert expected in names, f"{expected} missing from the code package: {sorted(names)[:40]}"
    if (FLOW_FILE.parent / "processing" / "features.py").exists():
        assert "processing/features.py" in names


def _import_flow(monkeypatch: pytest.MonkeyPatch, argv: list[str], env: dict[str, str]) -> ModuleType:
    monkeypatch.setattr(sys, "argv", argv)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    spec = importlib.util.spec_from_file_location(f"flow_under_test_{len(argv)}_{len(env)}", FLOW_FILE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _flow_decorators(module: ModuleType) -> dict:
    from metaflow.flowspec import FlowStateItems  # internal, but the only way to see flow decorators

    return module.SensorProcessingFlow._flow_state[FlowStateItems.FLOW_DECORATORS]


def test_conda_base_only_under_environment_conda(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = _flow_decorators(_import_flow(monkeypatch, ["flow.py", "run"], {}))
    assert "conda_base" not in plain and "schedule" in plain
    conda = _flow_decorators(
        _import_flow(
            monkeypatch, ["flow.py", "--environment=conda", "argo-workflows", "create"], {"SENSOR_CONDA_NUMPY": "2.4.6"}
        )
    )
    (deco,) = conda["conda_base"]
    assert deco.attributes["python"].startswith("3.11")
    # The base holds what every step needs (the Azure SDKs, which Metaflow's Azure datastore uses too);
    # numpy only where chunks are processed, matplotlib only where the card is drawn, scipy nowhere.
    assert set(deco.attributes["libraries"]) == {"azure-storage-blob", "azure-identity", "azure-data-tables"}


def _step_libraries(module: ModuleType) -> dict[str, dict[str, str] | None]:
    flow = module.SensorProcessingFlow
    out: dict[str, dict[str, str] | None] = {}
    for name in ("start", "preprocess", "filter_bank", "lags", "join", "end"):
        decos = [d for d in getattr(flow, name).decorators if d.name == "conda"]
        out[name] = decos[0].attributes["libraries"] if decos else None
    return out


def test_each_step_gets_only_the_libraries_it_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = _step_libraries(_import_flow(monkeypatch, ["flow.py", "run"], {}))
    assert set(plain.values()) == {None}  # no @conda without --environment=conda (Metaflow would refuse)
    steps = _step_libraries(
        _import_flow(
            monkeypatch, ["flow.py", "--environment=conda", "argo-workflows", "create"], {"SENSOR_CONDA_NUMPY": "2.4.6"}
        )
    )
    assert steps["start"] is None
    for name in ("preprocess", "filter_bank", "lags", "join"):
        assert steps[name] == {"numpy": "2.4.6"}, name
    assert steps["end"] == {"numpy": "2.4.6", "matplotlib-base": "3.11.2"}


def test_no_step_imports_scipy_or_matplotlib_it_does_not_need() -> None:
    """Each step's imports, run in a fresh interpreter as a pod would: scipy never, matplotlib only in end."""
    code = """
import sys
sys.path.append("flows")
sys.argv = ["flow.py", "run"]
import importlib.util
spec = importlib.util.spec_from_file_location("f", "flows/sensor_processing_flow.py")
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
import chunk_store, card_selection, fallback, flow_parameters, ledger_io  # what start .. join import
import processing.features, processing.allocator, chunk_contract.ledger, chunk_contract.records
print(sorted(k for k in ("scipy", "matplotlib") if k in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_cron_comes_from_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    flow = _flow_decorators(_import_flow(monkeypatch, ["flow.py", "run"], {"SENSOR_SCHEDULE_CRON": "*/20 * * * *"}))
    (deco,) = flow["schedule"]
    assert deco.attributes["cron"] == "*/20 * * * *"
