"""What Metaflow's own ``argo-workflows trigger`` sends, captured without a cluster.

Run as a script (``python metaflow_trigger.py FLOW [trigger options]``), it runs the flow file's real
``argo-workflows trigger`` command: click parses the options with the flow's parameter types,
``argo_workflows_cli.trigger`` converts them (``_convert_value``), and
``argo_client.ArgoClient.trigger_workflow_template`` builds the Workflow with
``{"name": k, "value": json.dumps(v)}`` per parameter. Only the Kubernetes API underneath is a stub:
it answers the template lookup and prints the Workflow body it is asked to create.
:func:`metaflow_trigger_parameters` runs that in a subprocess and returns ``{name: value}``.
"""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_MARK = "METAFLOW-TRIGGER-BODY "


def metaflow_trigger_parameters(flow_file: Path, options: list[str], workdir: Path) -> dict[str, str]:
    """The ``spec.arguments.parameters`` of the Workflow Metaflow's trigger would create, as ``{name: value}``."""
    workdir.mkdir(parents=True, exist_ok=True)
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("METAFLOW_", "SENSOR_"))}
    env = {
        **keep,
        "USERNAME": "tester",
        "METAFLOW_USER": "tester",
        "METAFLOW_HOME": str(workdir / "mfhome"),
        "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(workdir / "datastore"),
        "METAFLOW_KUBERNETES_NAMESPACE": "argo",
    }
    proc = subprocess.run(
        [sys.executable, __file__, str(flow_file), *options],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    bodies = [line[len(_MARK) :] for line in proc.stdout.splitlines() if line.startswith(_MARK)]
    if proc.returncode != 0 or len(bodies) != 1:
        raise AssertionError(f"trigger failed ({proc.returncode}):\n{proc.stderr[-3000:]}\n{proc.stdout[-2000:]}")
    body = json.loads(bodies[0])
    return {p["name"]: p["value"] for p in body["spec"]["arguments"]["parameters"]}


def _run_trigger(flow_file: str, options: list[str]) -> None:
    from metaflow.plugins.kubernetes import kubernetes_client

    class _CustomObjectsApi:
        def get_namespaced_custom_object(self, **kw: Any) -> dict[str, Any]:
            # The template exists and was deployed by Metaflow (ArgoWorkflows.trigger checks the owner).
            return {"metadata": {"name": kw["name"], "annotations": {"metaflow/owner": "tester"}}}

        def create_namespaced_custom_object(self, **kw: Any) -> Mapping[str, Any]:
            print(_MARK + json.dumps(kw["body"]), flush=True)
            return {"metadata": {"name": "stub-workflow"}}

    class _Kubernetes:
        CustomObjectsApi = _CustomObjectsApi

        class rest:
            ApiException = Exception

    kubernetes_client.KubernetesClient.__init__ = lambda self, *a, **k: None  # type: ignore[method-assign]
    kubernetes_client.KubernetesClient.get = lambda self: _Kubernetes  # type: ignore[method-assign]
    sys.path.insert(0, os.path.dirname(os.path.abspath(flow_file)))  # the flow's helpers, as for `python FLOW`
    sys.argv = [flow_file, "argo-workflows", "trigger", *options]
    runpy.run_path(flow_file, run_name="__main__")


if __name__ == "__main__":
    _run_trigger(sys.argv[1], sys.argv[2:])
