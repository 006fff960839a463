"""Makes the fake Argo Server *execute* what is submitted, through its ``on_created`` hook.

Each newly created Workflow is run as a real local Metaflow run: its ``spec.arguments.parameters``
(the template's defaults overridden by the submitted values, as Argo merges them) are turned back
into ``NAME=VALUE`` strings and decoded exactly as Metaflow's start pod decodes them
(``localdev.local_backend.decode_parameters``). The hook runs in the fake's request thread,
before the response is sent, so it only hands the workflow to a small thread pool.

Every execution is recorded with the ``chunk_etags`` artifact of its run — which chunk versions it
actually processed — so a test can prove that no chunk version was executed twice.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from localdev.local_backend import FlowRun, decode_parameters, run_flow
from tests.fakes.argo_server import FakeArgoServer

__all__ = ["Execution", "WorkflowExecutor"]


@dataclass(frozen=True)
class Execution:
    workflow_name: str
    params: dict[str, Any]
    run: FlowRun

    @property
    def chunk_etags(self) -> dict[str, str]:
        return dict(self.run.artifacts.get("chunk_etags") or {})


@dataclass
class WorkflowExecutor:
    """Attach with ``fake.on_created = executor.on_created``; :meth:`wait` for every run to end."""

    fake: FakeArgoServer
    env: dict[str, str]
    workers: int = 2
    executions: list[Execution] = field(default_factory=list)
    _pool: ThreadPoolExecutor = field(init=False)
    _futures: list[Future[None]] = field(default_factory=list, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="argo-executor")

    def on_created(self, workflow: dict[str, Any]) -> None:
        with self._lock:
            self._futures.append(self._pool.submit(self._execute, workflow))

    def _execute(self, workflow: dict[str, Any]) -> None:
        name = workflow["metadata"]["name"]
        entries = [f"{p['name']}={p['value']}" for p in workflow["spec"]["arguments"]["parameters"]]
        params = decode_parameters(entries)
        self.fake.set_phase(name, "Running")
        run = run_flow(params, self.env, artifacts=("chunk_etags",))
        self.fake.set_phase(name, "Succeeded" if run.successful else "Failed")
        with self._lock:
            self.executions.append(Execution(name, params, run))

    def wait(self) -> None:
        """Block until every execution handed over so far has ended; re-raise the first error."""
        while True:
            with self._lock:
                pending = [f for f in self._futures if not f.done()]
                done = [f for f in self._futures if f.done()]
            for f in done:
                f.result()
            if not pending:
                return
            pending[0].result()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
