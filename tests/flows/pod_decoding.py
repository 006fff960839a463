"""How Metaflow's Argo start pod turns workflow parameters into flow parameter values, run for real.

metaflow 2.19's start pod (``plugins/argo/argo_workflows.py``, the ``set_parameters`` command line
of the start template) runs::

    python -m metaflow.plugins.argo.set_parameters FILE NAME,f,{{=toBase64(workflow.parameters['NAME'])}} ...
    && . `pwd`/FILE

``set_parameters`` base64-decodes each value, ``json.loads`` it (falling back to the raw text) and
writes ``export METAFLOW_INIT_<NAME>=<json.dumps(result)>``; bash sources that file; then
``python flow.py ... init`` reads ``METAFLOW_INIT_<NAME>`` through the click option that
``metaflow.parameters.add_custom_parameters`` builds from the flow's ``Parameter`` (the vendored
click 7.1.2: ``JSONType`` for a JSON parameter, ``BOOL`` for ``type=bool``).

The helpers below run exactly these pieces: Metaflow's ``export_parameters``, real bash, and a
click command with the real flow's options. Nothing is re-implemented.
"""

from __future__ import annotations

import base64
import functools
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from metaflow import Parameter
from metaflow._vendor import click
from metaflow.plugins.argo.set_parameters import export_parameters

from tests.flows.conftest import FLOW_FILE

__all__ = ["PodDecodeFailed", "flow_parameters", "init_command_reads", "pod_values", "source_exports", "start_exports"]

_DUMP = 'import json, os; print(json.dumps({k: v for k, v in os.environ.items() if k.startswith("METAFLOW_INIT_")}))'
# The start template's parameter export, e.g.
#   python -m metaflow.plugins.argo.set_parameters abcdefghij chunks,f,{{=toBase64(workflow.parameters['chunks'])}} ... && . `pwd`/abcdefghij
_SET_PARAMETERS = re.compile(
    r"python -m metaflow\.plugins\.argo\.set_parameters (?P<file>\w+) "
    r"(?P<csv>(?:[\w-]+,[tf],\{\{=toBase64\(workflow\.parameters\['[\w-]+'\]\)\}\} ?)+)"
    r" && \. `pwd`/(?P=file)"
)
_ARGO_EXPR = re.compile(r"\{\{=toBase64\(workflow\.parameters\['([\w-]+)'\]\)\}\}")


class PodDecodeFailed(Exception):
    """The pod would fail on these parameters (bash or click refused them); the message says where."""


@functools.cache
def flow_parameters() -> dict[str, Parameter]:
    """The real flow's ``Parameter`` objects, initialised (the flow file imported as Metaflow's CLI does)."""
    spec = importlib.util.spec_from_file_location("sensor_flow_for_pod_decoding", FLOW_FILE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = {}
    for _, p in module.SensorProcessingFlow._get_parameters():
        p.init()
        found[p.name] = p
    return found


def _bash(script: str, cwd: Path) -> dict[str, str]:
    # A fresh working directory and no inherited METAFLOW_INIT_*: an unquoted word with glob
    # characters could match files, and a stale variable would hide a missing export.
    out = subprocess.run(
        ["bash", "-c", f"{script} && exec {sys.executable} -c '{_DUMP}'"],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if not k.startswith("METAFLOW_INIT_")},
        timeout=60,
    )
    if out.returncode != 0 or out.stderr.strip():
        raise PodDecodeFailed(f"bash: exit {out.returncode}: {out.stderr.strip()[-500:]}")
    env: dict[str, str] = json.loads(out.stdout)
    return env


def source_exports(entries: list[str], workdir: Path) -> dict[str, str]:
    """``set_parameters`` + bash on ``NAME=VALUE`` entries; the resulting ``METAFLOW_INIT_*`` variables."""
    workdir.mkdir(parents=True, exist_ok=True)
    params = {}
    for entry in entries:
        name, value = entry.split("=", 1)
        params[name] = (base64.b64encode(value.encode()).decode(), False)
    exports = workdir / "params"
    export_parameters(str(exports), params)  # type: ignore[arg-type]  # its hint says str; it takes (value, flag)
    return _bash(f'. "{exports}"', workdir)


def start_exports(template: Mapping[str, Any], values: Mapping[str, str], workdir: Path) -> dict[str, str]:
    """Run the compiled start template's own parameter export, Argo's ``{{=toBase64(...)}}`` filled
    with ``values`` (the workflow's parameters: the template defaults overridden by the submit)."""
    start = next(t for t in template["spec"]["templates"] if t["name"] == "start")
    script = start["container"]["command"][-1]
    found = _SET_PARAMETERS.search(script)
    assert found, f"no set_parameters call in the start template's command: {script[:300]}"

    def fill(expr: re.Match[str]) -> str:
        return base64.b64encode(values[expr.group(1)].encode()).decode()

    segment = _ARGO_EXPR.sub(fill, found.group(0)).replace("python -m", f"{sys.executable} -m", 1)
    workdir.mkdir(parents=True, exist_ok=True)
    return _bash(segment, workdir)


def init_command_reads(pod_env: Mapping[str, str]) -> dict[str, Any]:
    """The parameter values Metaflow's ``init`` command reads from ``METAFLOW_INIT_*``.

    Its options are built as ``metaflow.parameters.add_custom_parameters`` builds them (one
    ``click.Option("--NAME", **param.option_kwargs(deploy_mode=False))`` per flow parameter), and
    ``python flow.py ... init`` runs with the group's ``auto_envvar_prefix="METAFLOW"``, so the
    command reads ``METAFLOW_INIT_<NAME>``.

    Raises
    ------
    PodDecodeFailed
        If click refuses a value (the pod's ``init`` would exit with a usage error).
    """
    got: dict[str, Any] = {}
    options = [click.Option(("--" + p.name,), **p.option_kwargs(deploy_mode=False)) for p in flow_parameters().values()]
    command = click.Command("init", params=options, callback=lambda **kw: got.update(kw))
    saved = dict(os.environ)
    try:
        for key in [k for k in os.environ if k.startswith("METAFLOW_INIT_")]:
            del os.environ[key]
        os.environ.update(pod_env)
        command.main(args=[], prog_name="init", auto_envvar_prefix="METAFLOW_INIT", standalone_mode=False)
    except click.ClickException as exc:
        raise PodDecodeFailed(f"click: {exc.format_message()}") from None
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return got


def pod_values(entries: list[str], workdir: Path) -> dict[str, Any]:
    """``NAME=VALUE`` entries -> the values the flow's parameters get in the start pod (all of them:
    a parameter that is not given has its default)."""
    return init_command_reads(source_exports(entries, workdir))
