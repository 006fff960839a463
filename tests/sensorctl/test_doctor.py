"""``sensorctl doctor`` and ``sensorctl cron-forbid`` against the fake Argo Server serving the template
that Metaflow's REAL compiler produces for this flow (compiled once per module, ~5 s), and Azurite.

Every case also asserts the doctor is read-only: the fake's ``created`` log stays empty (the RBAC
check is a ``serverDryRun`` submit).
"""

from __future__ import annotations

import copy
import io
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from function_app.settings import load_settings
from sensorctl import cli
from sensorctl.doctor import (
    Finding,
    HttpProbe,
    Limits,
    Observations,
    StorageObservation,
    as_json,
    diagnose,
    dry_run_body,
)
from tests.fakes.argo_server import FakeArgoServer, Fault
from tests.flows.argo_compile import compile_template, compiler_env, https_azurite
from tests.flows.conftest import FLOW_FILE

TEMPLATE = "sensorprocessingflow"
TOKEN = "doctor-test-token"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The WorkflowTemplate JSON from Metaflow's real compiler (as tests/flows/test_argo_template.py)."""
    workdir = tmp_path_factory.mktemp("doctor-argo")
    with https_azurite(workdir) as (emulator, ca_path):
        env = compiler_env(emulator, ca_path, workdir, {"METAFLOW_KUBERNETES_SECRETS": "sensor-storage"})
        return compile_template(FLOW_FILE, env, workdir, "--with", "retry")


def metaflow_cron(template: dict[str, Any]) -> dict[str, Any]:
    """The CronWorkflow ``argo-workflows create`` makes (metaflow ArgoClient.schedule_workflow_template,
    2.19.x, without METAFLOW_ARGO_WORKFLOWS_USE_SCHEDULES), from the template's metaflow/cron annotation,
    as the Argo Server returns it: no concurrencyPolicy."""
    cron = json.loads(template["metadata"]["annotations"]["metaflow/cron"])
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {"name": TEMPLATE, "namespace": "argo", "resourceVersion": "7"},
        "spec": {
            "suspend": False,
            "schedule": cron["schedule"],
            "timezone": cron["tz"] or None,
            "failedJobsHistoryLimit": 10000,
            "successfulJobsHistoryLimit": 10000,
            "workflowSpec": {"workflowTemplateRef": {"name": TEMPLATE}},
            "startingDeadlineSeconds": 3540,
        },
        "status": {"active": None},
    }


@pytest.fixture(scope="module")
def storage_env(azurite: Any) -> dict[str, str]:
    """Containers, queues and ledger table of their own on the shared Azurite, for the 'all good' state."""
    suffix = uuid.uuid4().hex[:8]
    env = {
        "SENSOR_STORAGE": azurite.connection_string,
        "SENSOR_CONTAINER": f"doc-data-{suffix}",
        "SENSOR_RESULTS_CONTAINER": f"doc-features-{suffix}",
        "SENSOR_EVENTS_QUEUE": f"doc-events-{suffix}",
        "SENSOR_LEDGER_TABLE": f"docledger{suffix}",
    }
    blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
    blobs.create_container(env["SENSOR_CONTAINER"])
    blobs.create_container(env["SENSOR_RESULTS_CONTAINER"])
    queues = QueueServiceClient.from_connection_string(azurite.connection_string)
    queues.create_queue(env["SENSOR_EVENTS_QUEUE"])
    queues.create_queue(env["SENSOR_EVENTS_QUEUE"] + "-poison")
    TableServiceClient.from_connection_string(azurite.connection_string).create_table(env["SENSOR_LEDGER_TABLE"])
    return env


def make_fake(
    compiled: dict[str, Any], *, template: dict[str, Any] | None = None, cron: bool = True, **kw: Any
) -> FakeArgoServer:
    body = copy.deepcopy(template if template is not None else compiled)
    defaults = {p["name"]: p["value"] for p in body["spec"]["arguments"]["parameters"]}
    crons = {TEMPLATE: metaflow_cron(compiled)} if cron else {}
    if cron:
        crons[TEMPLATE]["spec"]["concurrencyPolicy"] = "Forbid"
    return FakeArgoServer(
        token=TOKEN, templates={TEMPLATE: defaults}, template_json={TEMPLATE: body}, cron_workflows=crons, **kw
    )


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, storage_env: dict[str, str]) -> Iterator[Any]:
    started: list[FakeArgoServer] = []

    def _run(fake: FakeArgoServer, *argv: str, **env: str) -> tuple[int, str]:
        if fake._server is None and "ARGO_SERVER_URL" not in env:
            fake.start()
            started.append(fake)
        for key in list(os.environ):
            if key.startswith(("ARGO_", "SENSOR_", "SUBMIT_", "COALESCE_")):
                monkeypatch.delenv(key)
        values = {"ARGO_TOKEN": TOKEN, **storage_env, **env}
        if "ARGO_SERVER_URL" not in values:
            values["ARGO_SERVER_URL"] = fake.url
        for key, value in values.items():
            monkeypatch.setenv(key, value)
        out = io.StringIO()
        code = cli.main(list(argv), out=out)
        return code, out.getvalue()

    yield _run
    for fake in started:
        assert fake.created == [], "the doctor must never create a workflow"
        fake.stop()


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("ERROR")]


# --------------------------------------------------------------------------- live (fake Argo + Azurite)


def test_all_good_exits_0_and_only_dry_runs_the_apps_exact_body(compiled: dict[str, Any], run: Any) -> None:
    fake = make_fake(compiled)
    code, text = run(fake, "doctor")
    assert code == 0, text
    assert error_lines(text) == []
    assert "all checks passed" in text
    (submit,) = fake.submit_requests()
    assert submit.body["submitOptions"]["serverDryRun"] is True
    # Byte for byte what the app sends, plus serverDryRun.
    expected, _ = dry_run_body(load_settings(os.environ))  # the environment `run` set
    assert submit.body == expected
    (listing,) = fake.list_requests()
    assert listing.query["listOptions.labelSelector"] == [
        f"workflows.argoproj.io/workflow-template={TEMPLATE},workflows.argoproj.io/completed!=true"
    ]
    assert fake.created == []


def test_json_output_shape(compiled: dict[str, Any], run: Any) -> None:
    code, text = run(make_fake(compiled, cron=False), "doctor", "--json")
    assert code == 1
    doc = json.loads(text)
    assert set(doc) == {"ok", "errors", "warnings", "findings"}
    assert doc["ok"] is False and doc["errors"] == 1
    assert all(set(f) == {"check", "severity", "message", "fix"} for f in doc["findings"])
    assert {f["check"] for f in doc["findings"]} >= {
        "argo.reachable",
        "argo.tls",
        "argo.token",
        "argo.template",
        "argo.rbac.submit",
        "argo.rbac.list",
        "argo.cron",
        "storage.container",
        "storage.queue",
        "storage.table",
        "limits.queue_depth",
        "limits.poison",
        "limits.in_flight",
    }
    (cron,) = [f for f in doc["findings"] if f["severity"] == "error"]
    assert cron["check"] == "argo.cron" and "does not exist" in cron["message"]


def _without(compiled: dict[str, Any], name: str) -> dict[str, Any]:
    t = copy.deepcopy(compiled)
    declared = json.loads(t["metadata"]["annotations"]["metaflow/parameters"])
    del declared[name]
    t["metadata"]["annotations"]["metaflow/parameters"] = json.dumps(declared)
    t["spec"]["arguments"]["parameters"] = [p for p in t["spec"]["arguments"]["parameters"] if p["name"] != name]
    return t


def test_parameter_missing(compiled: dict[str, Any], run: Any) -> None:
    code, text = run(make_fake(compiled, template=_without(compiled, "force")), "doctor")
    assert code == 1
    (line,) = error_lines(text)
    assert "does not declare parameter 'force'" in line and "silently drops" in line


def test_parameter_of_the_wrong_type(compiled: dict[str, Any], run: Any) -> None:
    t = copy.deepcopy(compiled)
    declared = json.loads(t["metadata"]["annotations"]["metaflow/parameters"])
    declared["force"]["type"] = "str"
    t["metadata"]["annotations"]["metaflow/parameters"] = json.dumps(declared)
    code, text = run(make_fake(compiled, template=t), "doctor")
    assert code == 1
    (line,) = error_lines(text)
    assert "declares parameter 'force' as 'str', but the app encodes it as 'bool'" in line


def test_template_absent(compiled: dict[str, Any], run: Any) -> None:
    fake = make_fake(compiled)
    fake.templates.clear()
    code, text = run(fake, "doctor")
    assert code == 1
    (line,) = error_lines(text)
    assert "WorkflowTemplate 'sensorprocessingflow' in namespace 'argo' does not exist" in line
    assert "make deploy-flow" in line


def test_cron_missing(compiled: dict[str, Any], run: Any) -> None:
    code, text = run(make_fake(compiled, cron=False), "doctor")
    assert code == 1
    (line,) = error_lines(text)
    assert "CronWorkflow 'sensorprocessingflow' does not exist" in line


def test_cron_without_forbid_then_cron_forbid_fixes_it(compiled: dict[str, Any], run: Any) -> None:
    fake = make_fake(compiled)
    del fake.cron_workflows[TEMPLATE]["spec"]["concurrencyPolicy"]  # what Metaflow creates
    code, text = run(fake, "doctor")
    assert code == 1
    (line,) = error_lines(text)
    assert "concurrencyPolicy Allow (default)" in line and "sensorctl cron-forbid" in line

    code, text = run(fake, "cron-forbid")
    assert code == 0, text
    assert "Allow (default) -> Forbid" in text
    stored = fake.cron_workflows[TEMPLATE]
    assert stored["spec"]["concurrencyPolicy"] == "Forbid"
    assert stored["spec"]["schedule"] == "0 * * * *"  # the rest of the spec kept
    assert stored["metadata"]["resourceVersion"] == "8"
    (put,) = [r for r in fake.requests if r.route == "cron-update"]
    assert put.body["cronWorkflow"]["metadata"]["resourceVersion"] == "7"  # optimistic concurrency

    code, text = run(fake, "cron-forbid")
    assert code == 0 and "already has concurrencyPolicy Forbid" in text
    code, text = run(fake, "doctor")
    assert code == 0, text


def test_cron_forbid_on_a_missing_cron_exits_1(
    compiled: dict[str, Any], run: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run(make_fake(compiled, cron=False), "cron-forbid")
    assert code == 1
    assert "404" in capsys.readouterr().err


def test_token_refused(compiled: dict[str, Any], run: Any) -> None:
    code, text = run(make_fake(compiled), "doctor", ARGO_TOKEN="wrong-token")
    assert code == 1
    (line,) = error_lines(text)
    assert "refused the token (401" in line and "ARGO_TOKEN" in line
    assert "wrong-token" not in text


def test_rbac_forbidden_on_the_dry_run_submit(compiled: dict[str, Any], run: Any) -> None:
    fake = make_fake(compiled)
    fake.fail_next(
        Fault.status_code(403, 'workflows.argoproj.io is forbidden: User "system:serviceaccount:argo:x" cannot create')
    )
    code, text = run(fake, "doctor")
    assert code == 1
    (line,) = error_lines(text)
    assert "RBAC: the token may not create workflows in 'argo'" in line and "deploy/argo" in line


def test_rbac_forbidden_on_the_list(compiled: dict[str, Any], run: Any) -> None:
    fake = make_fake(compiled)
    fake.fail_next(Fault.status_code(403, "cannot list resource workflows", route="list"))
    code, text = run(fake, "doctor")
    assert code == 1
    (line,) = error_lines(text)
    assert "RBAC: the token may not list workflows in 'argo'" in line


def test_tls_mismatch(compiled: dict[str, Any], run: Any) -> None:
    code, text = run(make_fake(compiled, tls=True), "doctor")
    assert code == 1
    (line,) = error_lines(text)
    assert line.startswith("ERROR   argo.tls: TLS verification of https://127.0.0.1:")
    assert "ARGO_CA_BUNDLE" in line


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_with_the_ca_bundle_passes_and_skip_verify_is_a_named_risk(compiled: dict[str, Any], run: Any) -> None:
    fake = make_fake(compiled, tls=True)
    fake.start()
    code, text = run(fake, "doctor", ARGO_CA_BUNDLE=str(fake.ca_bundle))
    assert code == 0, text
    assert "certificate verified" in text
    code, text = run(fake, "doctor", ARGO_INSECURE_SKIP_VERIFY="true")
    assert code == 0, text
    assert "WARNING argo.tls: ARGO_INSECURE_SKIP_VERIFY=true" in text


def test_argo_unreachable(compiled: dict[str, Any], run: Any) -> None:
    fake = make_fake(compiled)
    with fake:
        url = fake.url  # a port nobody listens on once stopped
    code, text = run(fake, "doctor", ARGO_SERVER_URL=url, ARGO_CONNECT_TIMEOUT="0.5")
    assert code == 1
    (line,) = error_lines(text)
    assert "did not answer GET /api/v1/version" in line


def test_missing_storage_resources(compiled: dict[str, Any], run: Any) -> None:
    code, text = run(
        make_fake(compiled), "doctor", SENSOR_LEDGER_TABLE="nosuchtable", SENSOR_EVENTS_QUEUE="no-such-queue"
    )
    assert code == 1
    errors = error_lines(text)
    assert "ERROR   storage.queue: queue 'no-such-queue' does not exist" in errors[0]
    assert any("queue 'no-such-queue-poison' does not exist" in e for e in errors)
    assert any("table 'nosuchtable' does not exist" in e for e in errors)
    assert len(errors) == 3


# --------------------------------------------------------------------------- diagnose (pure)


def _good(**changes: Any) -> Observations:
    obs = Observations(
        server_url="https://argo:2746",
        namespace="argo",
        template=TEMPLATE,
        insecure_skip_verify=False,
        ca_bundle=None,
        dry_run_parameters={"chunks": "x", "container": "y", "force": "false"},
        version=HttpProbe(200, body={"version": "v4.1.2"}),
        template_get=HttpProbe(
            200,
            body={
                "metadata": {
                    "annotations": {
                        "metaflow/parameters": json.dumps(
                            {
                                "chunks": {"type": "JSON", "is_required": False},
                                "container": {"type": "str", "is_required": False},
                                "force": {"type": "bool", "is_required": False},
                            }
                        )
                    }
                },
                "spec": {"arguments": {"parameters": [{"name": n} for n in ("chunks", "container", "force")]}},
            },
        ),
        dry_run=HttpProbe(200, body={}),
        in_flight=HttpProbe(200, body={"items": None}),
        cron=HttpProbe(
            200,
            body={
                "spec": {
                    "schedules": ["0 * * * *"],
                    "concurrencyPolicy": "Forbid",
                    "workflowSpec": {"workflowTemplateRef": {"name": TEMPLATE}},
                }
            },
        ),
        storage=StorageObservation(
            containers={"a": True},
            queues={"q": True},
            table={"t": True},
            queue_depth=0,
            oldest_seconds=0.0,
            poison_count=0,
        ),
        limits=Limits(max_queue_depth=10, max_oldest_seconds=60, max_poison=0, max_in_flight=2),
    )
    for key, value in changes.items():
        setattr(obs, key, value)
    return obs


def _errors(findings: list[Finding]) -> list[str]:
    return [f"{f.check}: {f.message}" for f in findings if f.severity == "error"]


def test_diagnose_all_good() -> None:
    assert _errors(diagnose(_good())) == []
    assert as_json(diagnose(_good()))["ok"] is True


def test_diagnose_limits() -> None:
    storage = StorageObservation(queue_depth=11, oldest_seconds=61, poison_count=1)
    inflight = HttpProbe(200, body={"items": [{"metadata": {"name": str(i)}} for i in range(3)]})
    errors = _errors(diagnose(_good(storage=storage, in_flight=inflight)))
    assert errors == [
        "limits.in_flight: more than 2 workflows of 'sensorprocessingflow' are in flight",
        "limits.queue_depth: about 11 message(s) queued (limit 10)",
        "limits.oldest_message: oldest visible message is 61 s old (limit 60 s)",
        "limits.poison: 1 message(s) in the poison queue (limit 0)",
    ]


def test_diagnose_required_parameter_the_app_never_sends_and_a_suspended_cron() -> None:
    obs = _good()
    assert obs.template_get is not None and obs.cron is not None
    ann = obs.template_get.body["metadata"]["annotations"]
    declared = json.loads(ann["metaflow/parameters"])
    declared["region"] = {"type": "str", "is_required": True}
    ann["metaflow/parameters"] = json.dumps(declared)
    obs.cron.body["spec"]["suspend"] = True
    findings = diagnose(obs)
    assert _errors(findings) == [
        "argo.template: WorkflowTemplate 'sensorprocessingflow' in namespace 'argo' requires parameter 'region', "
        "which the app never sends: every submit would fail"
    ]
    assert [f.message for f in findings if f.severity == "warning"] == [
        "CronWorkflow 'sensorprocessingflow' is suspended"
    ]
