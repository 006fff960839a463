"""Offline checks of deploy/argo: Kubernetes schema validation of the built-in kinds
(``kubernetes-validate``, skipped with a message when it is not installed) and plain assertions on
what matters to the pipeline: the RBAC verbs, the token Secret, the workflowDefaults TTL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "argo"
KUBERNETES_VERSION = "1.30.0"  # the oldest minor AKS still supports (Nov 2026): validate against it
SA = "sensor-pipeline-submitter"


def docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def kustomization() -> dict[str, Any]:
    (k,) = docs("kustomization.yaml")
    return k


def resources() -> dict[str, dict[str, Any]]:
    """kind -> the one document of that kind among the kustomization's resources."""
    found: dict[str, dict[str, Any]] = {}
    for name in kustomization()["resources"]:
        for doc in docs(name):
            assert doc["kind"] not in found, f"two {doc['kind']}s"
            found[doc["kind"]] = doc
    return found


def all_manifests() -> list[tuple[str, dict[str, Any]]]:
    names = [*kustomization()["resources"], "sensor-storage-secret.template.yaml"]
    return [(name, doc) for name in names for doc in docs(name)]


def test_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    k = kustomization()
    assert k["namespace"] == "argo"
    listed = set(k["resources"])
    on_disk = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}
    assert on_disk - listed == {"sensor-storage-secret.template.yaml"}
    assert listed <= on_disk


@pytest.mark.parametrize("name, doc", all_manifests(), ids=lambda v: v if isinstance(v, str) else v["kind"])
def test_schema_valid(name: str, doc: dict[str, Any]) -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate",
        reason="kubernetes-validate is not installed: pip install kubernetes-validate==1.37.0 (CI installs it)",
    )
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_role_grants_exactly_what_the_app_and_sensorctl_call() -> None:
    role = resources()["Role"]
    rules = {(tuple(r["apiGroups"]), res): sorted(r["verbs"]) for r in role["rules"] for res in r["resources"]}
    assert rules == {
        (("argoproj.io",), "workflows"): ["create", "get", "list"],
        (("argoproj.io",), "workflowtemplates"): ["get"],
        (("argoproj.io",), "cronworkflows"): ["get", "update"],
    }
    assert not any("*" in r["verbs"] or "*" in r["resources"] for r in role["rules"])


def test_binding_and_token_belong_to_the_service_account() -> None:
    found = resources()
    assert found["ServiceAccount"]["metadata"]["name"] == SA
    binding = found["RoleBinding"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SA}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": SA}]
    secret = found["Secret"]
    assert secret["type"] == "kubernetes.io/service-account-token"
    assert secret["metadata"]["annotations"]["kubernetes.io/service-account.name"] == SA


def test_storage_secret_template_is_a_placeholder() -> None:
    (secret,) = docs("sensor-storage-secret.template.yaml")
    assert secret["metadata"]["name"] == "sensor-storage"  # METAFLOW_KUBERNETES_SECRETS in docs/flow.md
    assert set(secret["stringData"]) == {"SENSOR_STORAGE"}
    assert secret["stringData"]["SENSOR_STORAGE"].startswith("<")
    assert "AccountKey=" not in secret["stringData"]["SENSOR_STORAGE"].replace("AccountKey=...", "")
    assert "identity-based" in (DEPLOY / "sensor-storage-secret.template.yaml").read_text()


def test_workflow_defaults_outlive_event_grid_retries() -> None:
    cm = resources()["ConfigMap"]
    assert cm["metadata"]["name"] == "workflow-controller-configmap"
    defaults = yaml.safe_load(cm["data"]["workflowDefaults"])
    spec = defaults["spec"]
    assert spec["podGC"] == {"strategy": "OnPodSuccess"}
    # A succeeded workflow's name is the dedup key (409): it must exist through Event Grid's 24 h of retries.
    assert spec["ttlStrategy"]["secondsAfterSuccess"] >= 86400
    assert spec["ttlStrategy"]["secondsAfterSuccess"] == 90000
    assert spec["ttlStrategy"]["secondsAfterFailure"] == 604800
    assert spec["activeDeadlineSeconds"] == 7200
    assert set(defaults) == {"spec"}
