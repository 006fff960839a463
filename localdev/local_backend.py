"""``SUBMIT_BACKEND=local``: run each submission as a local Metaflow run instead of an Argo workflow.

For laptops, CI and the demo. The submission path is unchanged up to the backend: the
:class:`~function_app.submission.Submission` carries the exact Argo body, and this backend

1. decodes ``submitOptions.parameters`` exactly as Metaflow's Argo start pod does
   (:func:`decode_parameters`), so a body that would break in the pod breaks here too;
2. claims the workflow name by creating a marker blob with ``overwrite=False`` in
   :data:`WORKFLOWS_CONTAINER`: Azure answers 409 when it exists, which is Argo's 409 "already
   exists" — the same idempotency key, so deduplication holds locally ("exactly once in effect");
3. runs ``flows/sensor_processing_flow.py`` with ``metaflow.Runner`` and the decoded parameters;
4. records the run id and the outcome on the marker, so :meth:`LocalBackend.get_workflow` answers
   like ``GET /api/v1/workflows/{ns}/{name}`` for the status lookup.

Unlike Argo, :meth:`LocalBackend.submit` returns after the run has finished (a local "cluster" has
no scheduler to hand the run to). Metaflow is imported inside the functions that need it: the
function app imports this module lazily, and only in local mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import re
import signal
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient, ContentSettings

from function_app.settings import Settings
from function_app.submission import Submission, SubmitRejected, SubmitResult, SubmitUnavailable

__all__ = [
    "FLOW_FILE",
    "PARAMETER_TYPES",
    "WORKFLOWS_CONTAINER",
    "FlowRun",
    "LocalBackend",
    "ParameterDecodeError",
    "decode_parameters",
    "flow_environment",
    "run_flow",
]

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
FLOW_FILE = REPO_ROOT / "flows" / "sensor_processing_flow.py"
FLOW_NAME = "SensorProcessingFlow"
WORKFLOWS_CONTAINER = "sensor-local-workflows"
# The flow's parameters and their types, spelled as `argo-workflows create` writes them into the
# template's `metaflow/parameters` annotation: "JSON" (a JSONType, encoded twice on the wire),
# "str" (encoded once), "bool" (a bare JSON literal). tests/flows/test_argo_template.py checks this
# against the real compiler's output.
PARAMETER_TYPES: Mapping[str, str] = {"chunks": "JSON", "container": "str", "force": "bool"}

# Metadata keys of a marker blob (C#-identifier rule of Azure metadata).
_META_PHASE = "phase"
_META_RUN_ID = "run_id"
_META_MESSAGE = "message"
_META_FINISHED = "finished_at"

# metaflow.Runner() reloads metaflow.cli and imports the flow file in *this* process, and chdirs
# while it builds the command: not thread-safe. Starting runs is serialized; the runs themselves
# (subprocesses) proceed concurrently.
_START_LOCK = threading.Lock()
_LOCAL_URL = "local://metaflow-runner"  # stands in for the Argo URL in SubmitError fields


class ParameterDecodeError(ValueError):
    """A ``submitOptions.parameters`` entry would not survive Metaflow's decoding; names entry and rule."""


# Metaflow's start pod converts a bool parameter's environment variable with its vendored click
# 7.1.2 BOOL type (metaflow/_vendor/click/types.py, BoolParamType.convert): lowercased, not stripped.
_CLICK_TRUE = frozenset({"true", "t", "1", "yes", "y"})
_CLICK_FALSE = frozenset({"false", "f", "0", "no", "n"})
# What bash leaves alone in an unquoted word: no whitespace (word splitting), no glob or brace
# characters, nothing else special. json.dumps of a number, true, false or null matches it.
_PLAIN_WORD = re.compile(r"[A-Za-z0-9.+-]+")
# Inside double quotes bash drops a backslash only before these characters (and a newline, which
# json.dumps never writes).
_BASH_DQ_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def _bash_value(name: str, first: Any, exported: str) -> str:
    """What bash assigns for ``export METAFLOW_INIT_<NAME>=<exported>``, or refuse.

    ``exported`` is ``json.dumps(first)``: a double-quoted word when ``first`` is a string, a bare
    word otherwise.
    """
    if isinstance(first, str):
        if "$" in first or "`" in first:
            raise ParameterDecodeError(
                f"parameter {name!r}: value {first[:200]!r} holds '$' or '`', which the start pod's bash export expands"
            )
        return _BASH_DQ_ESCAPE.sub(lambda m: m.group(1) if m.group(1) in '\\"$`' else m.group(0), exported[1:-1])
    if not _PLAIN_WORD.fullmatch(exported):
        raise ParameterDecodeError(
            f"parameter {name!r}: JSON {type(first).__name__} {exported[:200]!r} is written unquoted into the start"
            " pod's bash export, where it would be word-split or glob-expanded"
        )
    return exported


def _decode_one(name: str, raw: str, kind: str) -> Any:
    # Step 1, metaflow/plugins/argo/set_parameters.py (parse_parameter_value): json.loads(value),
    # falling back to the raw string; json.dumps of the result is written into a bash
    # `export METAFLOW_INIT_<NAME>=...` line, which the start pod sources.
    try:
        first = json.loads(raw)
    except json.JSONDecodeError:
        first = raw
    if kind in ("JSON", "str") and not isinstance(first, str):
        # Metaflow's own trigger sends json.dumps(value) of a str (JSONType: json.dumps of the
        # json.dumps'ed object), i.e. always a JSON string for these. A list or object encoded only
        # once is written unquoted into the export line, where bash word-splits and globs it.
        raise ParameterDecodeError(
            f"parameter {name!r}: value {raw[:200]!r} must be a JSON string (json.dumps of the value"
            f"{', itself json.dumps of the object, for a JSONType parameter' if kind == 'JSON' else ''}),"
            f" got JSON {type(first).__name__}"
        )
    # Step 2, bash: the value the environment variable holds.
    value = _bash_value(name, first, json.dumps(first))
    # Step 3, the `init` command reads METAFLOW_INIT_<NAME> through click and the parameter's type.
    if kind == "str":
        if value != first:
            # json.dumps writes non-ASCII and control characters as \uXXXX / \n escapes, which
            # bash keeps literally inside double quotes.
            raise ParameterDecodeError(
                f"parameter {name!r}: value {first[:200]!r} would reach the flow as {value[:200]!r}"
                " (non-ASCII or control characters are not unescaped by bash)"
            )
        return value
    if kind == "JSON":
        # Metaflow's JSONType: json.loads of the environment variable's text.
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ParameterDecodeError(
                f"parameter {name!r} is a JSONType: {value[:200]!r} is not JSON ({exc})"
            ) from None
    if kind == "bool":
        # Metaflow's own trigger (argo_client.trigger_workflow_template) sends json.dumps(True)
        # = "true" / "false", as does the template's default; click also takes t/1/yes/y, f/0/no/n.
        word = value.lower()
        if word in _CLICK_TRUE:
            return True
        if word in _CLICK_FALSE:
            return False
        raise ParameterDecodeError(
            f"parameter {name!r} is a bool: the start pod's click would refuse {value[:200]!r}"
            f" (it takes {'/'.join(sorted(_CLICK_TRUE))} or {'/'.join(sorted(_CLICK_FALSE))}, any case;"
            " send json.dumps(True) = true or false)"
        )
    raise ValueError(f"parameter {name!r}: unknown parameter type {kind!r} (known: JSON, str, bool)")


def decode_parameters(
    parameters: Iterable[str], parameter_types: Mapping[str, str] = PARAMETER_TYPES
) -> dict[str, Any]:
    """Decode Argo ``submitOptions.parameters`` into the values the flow's parameters receive.

    Parameters
    ----------
    parameters : iterable of str
        ``"NAME=VALUE"`` strings, split at the first ``=`` like Argo does.
    parameter_types : mapping of str to str
        The flow's parameter names, each mapped to its Metaflow type name as in the template's
        ``metaflow/parameters`` annotation: ``"JSON"``, ``"str"`` or ``"bool"``. Names not in it
        are dropped with a warning: Argo accepts unknown parameter names silently, and the flow
        never sees them.

    Returns
    -------
    dict
        ``{name: value}``, ready for ``metaflow.Runner(...).run(**values)``.

    Raises
    ------
    ParameterDecodeError
        For an entry without ``=`` (Argo answers 500), a repeated name, or a value that Metaflow's
        decoding would mangle or reject.
    """
    values: dict[str, Any] = {}
    for entry in parameters:
        if not isinstance(entry, str) or "=" not in entry:
            raise ParameterDecodeError(f"parameter entry {entry!r:.200} must be a string 'NAME=VALUE'")
        name, raw = entry.split("=", 1)
        if name not in parameter_types:
            logger.warning("parameter %r is not a parameter of the flow: ignored, as Argo does", name)
            continue
        if name in values:
            raise ParameterDecodeError(f"parameter {name!r} is given twice")
        values[name] = _decode_one(name, raw, parameter_types[name])
    return values


@dataclass(frozen=True)
class FlowRun:
    """The outcome of one local run: ``run_id`` (Metaflow's), ``successful``, stderr's tail on failure,
    and the artifacts of the ``end`` step that were asked for."""

    run_id: str
    successful: bool
    message: str = ""
    artifacts: Mapping[str, Any] = field(default_factory=dict)
    flow_name: str = FLOW_NAME

    @property
    def pathspec(self) -> str:
        return f"{self.flow_name}/{self.run_id}"


def flow_environment(settings: Settings | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a local flow run: the caller's, plus the storage connection and a user name.

    ``SENSOR_STORAGE`` comes from the app settings when they hold a connection string (the flow
    reads the same variable). Metaflow refuses to run without ``USERNAME``/``METAFLOW_USER``.
    Cards are kept under ``METAFLOW_DATASTORE_SYSROOT_LOCAL`` too (``METAFLOW_CARD_LOCALROOT``), which
    Metaflow does not do by itself.
    """
    env = dict(os.environ if base is None else base)
    if settings is not None and settings.sensor_storage:  # empty: identity-based, the flow reads the URL
        env["SENSOR_STORAGE"] = settings.sensor_storage
    if not env.get("METAFLOW_USER") and not env.get("USERNAME"):
        env["METAFLOW_USER"] = "local"
    sysroot = env.get("METAFLOW_DATASTORE_SYSROOT_LOCAL")
    if sysroot and not env.get("METAFLOW_CARD_LOCALROOT"):
        # Without it, cards ignore the sysroot and land in <cwd>/.metaflow/mf.cards; with it (any
        # value), metaflow 2.19 writes them beside the runs: <sysroot>/.metaflow/<Flow>/runs/<id>/...
        env["METAFLOW_CARD_LOCALROOT"] = str(Path(sysroot) / ".metaflow")
    return env


async def _run_async(flow_file: Path, env: dict[str, str], params: dict[str, Any], artifacts: Sequence[str]) -> FlowRun:
    from metaflow import Runner  # heavy: only ever imported in local mode
    from metaflow.util import get_username

    with _START_LOCK:
        if get_username() is None:
            # Runner() imports the flow in *this* process, which needs a user name too; Metaflow
            # reads METAFLOW_USER only once, at import, and refuses "root" (containers, CI).
            os.environ["USERNAME"] = env.get("METAFLOW_USER") or env.get("USERNAME") or "local"
            logger.info("no Metaflow user name in this process: USERNAME=%s set for local runs", os.environ["USERNAME"])
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGINT) if in_main else None
        # Runner's SubprocessManager replaces the SIGINT handler (so Ctrl-C would no longer stop
        # the demo) or, off the main thread, prints a warning per run: keep both out.
        with contextlib.redirect_stderr(io.StringIO()):
            # cwd: where Metaflow puts .metaflow/ when METAFLOW_DATASTORE_SYSROOT_LOCAL is unset.
            runner = Runner(str(flow_file), show_output=False, env=env, cwd=str(REPO_ROOT))
        if in_main and previous is not None:
            signal.signal(signal.SIGINT, previous)
        try:
            executing = await runner.async_run(**params)
        except BaseException:
            runner.cleanup()
            raise
    try:
        await executing.wait()
        ok = executing.status == "successful"
        message = "" if ok else _failure_message(executing)
        data = executing.run.data if ok and artifacts else None
        found = {name: getattr(data, name) for name in artifacts} if data is not None else {}
        flow_name, _, run_id = executing.run.pathspec.partition("/")
        return FlowRun(run_id=run_id, successful=ok, message=message, artifacts=found, flow_name=flow_name)
    finally:
        runner.cleanup()


def _failure_message(executing: Any) -> str:
    """The failed task and the tail of its stderr (the runner's own stderr only says "Step failure")."""
    try:
        for step in executing.run:
            for task in step:
                if not task.successful:
                    tail = [line for line in task.stderr.strip().splitlines() if line.strip()][-3:]
                    return f"{task.pathspec} failed: " + " | ".join(tail)
    except Exception as exc:  # the message is best effort; the run's own stderr still says something
        logger.info("could not read the failed task's log: %s", exc)
    return str(executing.stderr)[-2000:]


def run_flow(
    params: Mapping[str, Any], env: Mapping[str, str], flow_file: Path = FLOW_FILE, artifacts: Sequence[str] = ()
) -> FlowRun:
    """Run the flow locally with ``params`` (already decoded) and wait for it.

    Safe to call from several threads at once; each call runs its own event loop. ``artifacts``
    names ``end``-step artifacts to read back (through the run's own metadata, so this process's
    Metaflow configuration does not matter).
    """
    return asyncio.run(_run_async(flow_file, dict(env), dict(params), tuple(artifacts)))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class LocalBackend:
    """The ``local`` submit backend (see the module docstring). Constructed ``LocalBackend(settings)``.

    Parameters
    ----------
    settings : Settings
        The app settings: ``sensor_storage`` reaches the marker container and the flow.
    flow_file : Path
        The flow to run (the project's flow unless a test says otherwise).
    workflows_container : str
        Where the name-claiming marker blobs live.
    """

    def __init__(
        self, settings: Settings, *, flow_file: Path = FLOW_FILE, workflows_container: str = WORKFLOWS_CONTAINER
    ) -> None:
        self.settings = settings
        self.flow_file = flow_file
        self.workflows_container = workflows_container
        self._container: ContainerClient | None = None

    def _markers(self) -> ContainerClient:
        if self._container is None:
            from function_app.storage import blob_service_client

            # The app's own client: the same connection (string or identity) as both triggers.
            service: BlobServiceClient = blob_service_client(self.settings)
            container = service.get_container_client(self.workflows_container)
            with contextlib.suppress(ResourceExistsError):
                container.create_container()
            self._container = container
        return self._container

    def submit(self, submission: Submission) -> SubmitResult:
        """Claim ``submission.workflow_name``, run the flow, record the outcome.

        Raises
        ------
        SubmitRejected
            When the parameters would not survive Metaflow's decoding (Argo would accept the
            submission and the start pod would fail; failing early is kinder and not retried).
        SubmitUnavailable
            When storage cannot be reached (retried by the caller/host, like Argo's 503).
        """
        options = submission.body.get("submitOptions", {})
        try:
            params = decode_parameters(options.get("parameters", []))
        except ParameterDecodeError as exc:
            raise SubmitRejected(
                f"workflow {submission.workflow_name}: {exc}", status=400, url=_LOCAL_URL, server_message=str(exc)
            ) from None
        name = submission.workflow_name
        try:
            blob = self._markers().get_blob_client(name)
            body = {
                "workflow_name": name,
                "template": submission.template,
                "trigger": submission.trigger,
                "container": submission.container,
                "chunks": list(submission.chunks),
                "parameters": list(options.get("parameters", [])),
                "labels": options.get("labels", ""),
                "created_at": _now(),
            }
            try:
                blob.upload_blob(
                    json.dumps(body).encode(),
                    overwrite=False,
                    metadata={_META_PHASE: "Pending"},
                    content_settings=ContentSettings(content_type="application/json"),
                )
            except ResourceExistsError:
                # Argo's 409 "already exists": somebody submitted this chunk version already.
                existing = self.get_workflow(name) or {}
                run_id = existing.get("metadata", {}).get("annotations", {}).get("sensor-pipeline.io/run-id", "")
                logger.info("workflow %s already exists: duplicate suppressed", name)
                return SubmitResult(workflow_name=name, run_id=run_id, duplicate=True, attempts=1)
        except AzureError as exc:
            raise SubmitUnavailable(
                f"local backend: storage unreachable while claiming {name}: {type(exc).__name__}",
                url=_LOCAL_URL,
                attempts=1,
            ) from None

        blob.set_blob_metadata({_META_PHASE: "Running"})
        try:
            run = run_flow(params, flow_environment(self.settings), self.flow_file)
        except Exception as exc:  # the run could not even start: record it, as Argo records a failed pod
            run = FlowRun(run_id="", successful=False, message=f"{type(exc).__name__}: {exc}"[:2000])
        blob.set_blob_metadata(
            {
                _META_PHASE: "Succeeded" if run.successful else "Failed",
                _META_RUN_ID: run.pathspec if run.run_id else "",
                # Metadata values must be ASCII; keep the reason short and printable.
                _META_MESSAGE: _ascii(run.message.strip().splitlines()[-1] if run.message.strip() else "")[:500],
                _META_FINISHED: _now(),
            }
        )
        logger.info("workflow %s ran as %s: %s", name, run.pathspec, "Succeeded" if run.successful else "Failed")
        return SubmitResult(workflow_name=name, run_id=run.pathspec if run.run_id else "", duplicate=False, attempts=1)

    def count_in_flight(self, template: str, limit: int) -> int:
        """Workflows (marker blobs) not yet Succeeded or Failed, counted up to ``limit``, as Argo's list would.

        A local submit blocks until its run ends, so this is 0 unless another process is running one.
        """
        count = 0
        for blob in self._markers().list_blobs(include=["metadata"]):
            if (blob.metadata or {}).get(_META_PHASE, "Pending") not in ("Succeeded", "Failed", "Error"):
                count += 1
                if count >= limit:
                    break
        return count

    def get_workflow(self, name: str) -> dict[str, Any] | None:
        """The workflow named ``name``, shaped like Argo's ``GET /api/v1/workflows/{ns}/{name}``; ``None`` if absent."""
        blob = self._markers().get_blob_client(name)
        try:
            props = blob.get_blob_properties()
            body = json.loads(blob.download_blob().readall())
        except ResourceNotFoundError:
            return None
        meta = dict(props.metadata or {})
        parameters = [p.split("=", 1) for p in body.get("parameters", []) if "=" in p]
        return {
            "metadata": {
                "name": name,
                "creationTimestamp": body.get("created_at"),
                "annotations": {"sensor-pipeline.io/run-id": meta.get(_META_RUN_ID, "")},
            },
            "spec": {
                "workflowTemplateRef": {"name": body.get("template")},
                "arguments": {"parameters": [{"name": k, "value": v} for k, v in parameters]},
            },
            "status": {
                "phase": meta.get(_META_PHASE, "Pending"),
                "message": meta.get(_META_MESSAGE, ""),
                "finishedAt": meta.get(_META_FINISHED),
            },
        }


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")
