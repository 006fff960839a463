"""SensorProcessingFlow: chunks from Blob Storage -> features -> results in Blob Storage.

Graph: start -> preprocess -> (filter_bank, lags) -> join -> end.

- ``chunks=[...]`` (event mode, submitted by the function app): process exactly these chunks.
- ``chunks=[]`` (fallback mode, the hourly cron): process every chunk without an up-to-date result,
  past the grace period, oldest first, at most the flood guard (see ``fallback.py``).

Local run in a plain virtualenv (from the repository root)::

    SENSOR_STORAGE='<connection string>' python flows/sensor_processing_flow.py run --chunks '["s1/a.csv"]'

Argo deployment (see ``docs/flow.md`` for the settings it needs)::

    python flows/sensor_processing_flow.py --environment=conda --with retry argo-workflows create

Settings come from ``SENSOR_*`` environment variables (``flow_settings.py``); never pass a
connection string as a parameter: Metaflow prints parameters.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from flow_settings import conda_requested, deploy_environment, load_settings

# The decorators are attached to the metaflow module at import time: invisible to mypy.
from metaflow import (  # type: ignore[attr-defined]
    FlowSpec,
    JSONType,
    Parameter,
    card,
    conda_base,
    current,
    environment,
    schedule,
    step,
)

SETTINGS = load_settings()
# Non-secret SENSOR_* settings of the deploying shell, copied into every step (and so into the
# Argo template); SENSOR_STORAGE is deliberately not among them.
STEP_ENV = deploy_environment()


def _with_conda(cls: type) -> type:
    """Apply ``@conda_base`` only under ``--environment=conda``/``pypi``.

    Metaflow refuses ``@conda_base`` without that option even when ``disabled=True``, so a plain
    virtualenv ``run`` would be impossible with the decorator written statically. The Argo pods
    run every step with the ``--environment`` the template was compiled with, so they see it too.
    """
    if not conda_requested(sys.argv):
        return cls
    return conda_base(
        python=SETTINGS.conda_python,
        libraries={
            "numpy": SETTINGS.conda_numpy,
            "scipy": "1.17.1",
            "matplotlib-base": "3.11.2",
            "azure-storage-blob": "12.31.1",
            "azure-identity": "1.27.0",
        },
    )(cls)


@_with_conda
@schedule(cron=SETTINGS.schedule_cron)
class SensorProcessingFlow(FlowSpec):
    """Turn sensor chunks in Blob Storage into feature records (one run per event, or a cron sweep)."""

    chunks = Parameter(
        "chunks",
        type=JSONType,
        default="[]",
        help="JSON list of blob names inside the container; [] = fallback mode (process every missed chunk)",
    )
    container = Parameter("container", type=str, default="sensor-data", help="The chunk container")

    @environment(vars=STEP_ENV)
    @step
    def start(self) -> None:
        """Validate the parameters (before touching storage), then decide which chunks to process."""
        from datetime import UTC, datetime, timedelta

        import chunk_store
        from fallback import plan_fallback
        from flow_parameters import validate_parameters

        from processing.features import ProcessingSettings

        names = validate_parameters(self.chunks, self.container, SETTINGS.results_container)
        # A plain str artifact: later steps use it instead of the Parameter object.
        self.chunk_container: str = str(self.container)
        self.processing_settings = ProcessingSettings(**SETTINGS.processing)
        self.settings_used = SETTINGS.describe()
        self.mode = "event" if names else "fallback"
        self.set_aside: dict[str, dict[str, str]] = {}
        self.fallback_summary: dict[str, int] = {}
        if names:
            self.targets = names
        else:
            service = chunk_store.connect(SETTINGS)
            plan = plan_fallback(
                chunk_store.list_chunks(service, self.chunk_container),
                chunk_store.list_records(service, SETTINGS.results_container),
                now=datetime.now(UTC),
                grace=timedelta(seconds=SETTINGS.fallback_grace_seconds),
                limit=SETTINGS.fallback_max_chunks,
            )
            self.targets = [c.name for c in plan.take]
            # Names outside the allow-list are set aside, not processed: their names could not
            # travel through an Argo parameter either, and one stray blob must not fail the sweep.
            self.set_aside = {
                c.name: {"etag": c.etag, "reason": f"invalid chunk name: {reason}", "step": "start"}
                for c, reason in plan.invalid
            }
            self.fallback_summary = plan.summary()
            print(f"fallback: {plan.missing} chunk(s) found missing; {plan.summary()}")
        print(f"{self.mode} mode: {len(self.targets)} chunk(s) to process in {self.chunk_container!r}")
        self.next(self.preprocess)

    @environment(vars=STEP_ENV)
    @step
    def preprocess(self) -> None:
        """Download each chunk (streamed to a temp file) and resample it; bad chunks are set aside."""
        import chunk_store
        from azure.core.exceptions import ResourceNotFoundError

        from processing.features import ChunkError, preprocess

        service = chunk_store.connect(SETTINGS)
        self.chunk_etags: dict[str, str] = {}
        self.preprocessed: dict[str, Any] = {}
        self.preprocess_failures: dict[str, dict[str, str]] = {}
        with tempfile.TemporaryDirectory(prefix="sensor-chunks-") as tmp:
            for i, name in enumerate(self.targets):
                try:
                    got = chunk_store.download_chunk(service, self.chunk_container, name, Path(tmp), i)
                except ResourceNotFoundError:
                    self.preprocess_failures[name] = {
                        "etag": "",
                        "reason": "chunk does not exist",
                        "step": "preprocess",
                    }
                    continue
                # Other storage errors propagate: they are transient, and the task is retried
                # (`--with retry`) rather than marking good chunks as failed for ever.
                self.chunk_etags[name] = got.etag
                try:
                    with open(got.path, "rb") as f:
                        # A file object plus `name` makes errors name the chunk, not the temp file.
                        self.preprocessed[name] = preprocess(f, self.processing_settings, name=name)
                except (ChunkError, ValueError) as exc:
                    self.preprocess_failures[name] = {"etag": got.etag, "reason": str(exc), "step": "preprocess"}
                finally:
                    got.path.unlink()
        print(f"preprocessed {len(self.preprocessed)} chunk(s), {len(self.preprocess_failures)} set aside")
        self.next(self.filter_bank, self.lags)

    @environment(vars=STEP_ENV)
    @step
    def filter_bank(self) -> None:
        """Band powers of each preprocessed chunk."""
        from processing.features import band_powers

        self.bands: dict[str, tuple[list[float], list[float]]] = {}
        self.band_failures: dict[str, dict[str, str]] = {}
        for name, pre in self.preprocessed.items():
            try:
                self.bands[name] = band_powers(pre.values, self.processing_settings)
            except ValueError as exc:
                self.band_failures[name] = {"etag": self.chunk_etags[name], "reason": str(exc), "step": "filter_bank"}
        self.next(self.join)

    @environment(vars=STEP_ENV)
    @step
    def lags(self) -> None:
        """Autocorrelation r_1 .. r_max_lag of each preprocessed chunk."""
        from processing.features import autocorrelation

        self.acfs: dict[str, list[float]] = {}
        self.lag_failures: dict[str, dict[str, str]] = {}
        for name, pre in self.preprocessed.items():
            try:
                self.acfs[name] = autocorrelation(pre.values, self.processing_settings.max_lag)
            except ValueError as exc:
                self.lag_failures[name] = {"etag": self.chunk_etags[name], "reason": str(exc), "step": "lags"}
        self.next(self.join)

    @environment(vars=STEP_ENV)
    @step
    def join(self, inputs: Any) -> None:
        """Merge the branches, build the feature records and write results and error records."""
        import chunk_store
        from azure.core.exceptions import HttpResponseError

        from processing import results
        from processing.features import feature_record

        self.merge_artifacts(inputs)
        failures: dict[str, dict[str, str]] = {**self.set_aside, **self.preprocess_failures}
        for branch_failures in (self.band_failures, self.lag_failures):
            for name, failure in branch_failures.items():
                failures.setdefault(name, failure)
        records: dict[str, dict] = {}
        for name, pre in self.preprocessed.items():
            if name in failures:
                continue
            try:
                records[name] = feature_record(name, pre, *self.bands[name], self.acfs[name], self.processing_settings)
            except ValueError as exc:
                failures[name] = {"etag": self.chunk_etags[name], "reason": str(exc), "step": "join"}

        service = chunk_store.connect(SETTINGS)
        chunk_store.ensure_container(service, SETTINGS.results_container)
        out = service.get_container_client(SETTINGS.results_container)
        run = results.RunInfo(flow_name=str(current.flow_name), run_id=str(current.run_id))
        self.written: dict[str, str] = {}
        for name, record in records.items():
            self.written[name] = results.write_result(
                out, name, record, chunk_container=self.chunk_container, chunk_etag=self.chunk_etags[name], run=run
            )
        self.unrecorded: dict[str, str] = {}
        for name, failure in failures.items():
            try:
                self.written[name] = results.write_error(
                    out,
                    name,
                    failure["reason"],
                    chunk_container=self.chunk_container,
                    chunk_etag=failure["etag"],
                    step=failure["step"],
                    run=run,
                )
            except results.RecordNameTooLong as exc:
                # Only possible for a set-aside blob whose own name is near Azure's limit.
                self.unrecorded[name] = str(exc)
            except HttpResponseError as exc:
                if failure["step"] != "start":
                    raise  # a storage problem: fail the task so it is retried
                # A stray blob's name that Azure will not take for the record: report it instead.
                self.unrecorded[name] = f"{type(exc).__name__}: {exc.reason}"
        for name, why in self.unrecorded.items():
            print(f"  could not record {name!r}: {why}")
        self.records = records
        self.failures = failures
        self.summary = {
            "mode": self.mode,
            "processed": len(records),
            "failed": len(failures),
            **({"fallback": self.fallback_summary} if self.mode == "fallback" else {}),
        }
        print(f"wrote {len(records)} result(s) and {len(failures)} error record(s) to {SETTINGS.results_container!r}")
        for name, failure in failures.items():
            print(f"  set aside {name!r}: {failure['reason']}")
        self.next(self.end)

    @card(type="blank", id="chunks", timeout=300)
    @environment(vars=STEP_ENV)
    @step
    def end(self) -> None:
        """Summary, and the card: per chunk the resampled signal, band powers and autocorrelation."""
        from flow_card import render_card

        render_card(
            current.card["chunks"],  # type: ignore[attr-defined]
            summary=self.summary,
            preprocessed=self.preprocessed,
            bands=self.bands,
            acfs=self.acfs,
            failures=self.failures,
            max_plotted=SETTINGS.card_max_chunks,
        )
        print(f"done: {self.summary}")


if __name__ == "__main__":
    SensorProcessingFlow()
