"""SensorProcessingFlow: chunks from Blob Storage -> features -> results in Blob Storage.

Graph: start -> preprocess -> (filter_bank, lags) -> join -> end.

- ``chunks=[...]`` (event mode, submitted by the function app): process these chunks, except those
  whose record (result or error) is already up to date for their current ETag; ``force=true``
  processes all of them.
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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flow_settings import conda_requested, deploy_environment, load_settings

# The decorators are attached to the metaflow module at import time: invisible to mypy.
from metaflow import (  # type: ignore[attr-defined]
    FlowSpec,
    JSONType,
    Parameter,
    card,
    conda,
    conda_base,
    current,
    environment,
    schedule,
    step,
)

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

    from chunk_contract.records import ChunkState

SETTINGS = load_settings()
# Non-secret SENSOR_* settings of the deploying shell, copied into every step (and so into the
# Argo template); SENSOR_STORAGE is deliberately not among them.
STEP_ENV = deploy_environment()
# Concurrent HEAD requests of the up-to-date check in event mode (a batch holds up to 200 chunks).
STATE_CHECK_WORKERS = 8


def up_to_date_states(
    service: BlobServiceClient, names: Sequence[str], *, chunk_container: str, results_container: str
) -> dict[str, ChunkState]:
    """The chunks of ``names`` that already have an up-to-date record, with their state.

    ``chunk_contract.records.read_chunk_state`` per chunk: three HEAD requests (chunk, result,
    error record) and, only for a chunk whose up-to-date record is an error, one small GET for the
    reason. Run on a few threads: against Azure, 200 chunks are ~75 round trips in sequence. A
    chunk that does not exist is not in the answer: it stays a target, and ``preprocess`` records
    "chunk does not exist" as before. Storage errors propagate (the task is retried).
    """
    from chunk_contract.records import ChunkNotFound, read_chunk_state

    def state(name: str) -> ChunkState | None:
        try:
            return read_chunk_state(service, name, chunk_container=chunk_container, results_container=results_container)
        except ChunkNotFound:
            return None

    with ThreadPoolExecutor(max_workers=max(1, min(STATE_CHECK_WORKERS, len(names)))) as pool:
        states = list(pool.map(state, names))
    # "failed" counts as done too, as in a fallback run: the same bytes fail the same way.
    return {s.chunk: s for s in states if s is not None and s.status in ("processed", "failed")}


# The pods' conda environments hold only what each step imports (Metaflow resolves one environment
# per distinct set): the Azure SDKs everywhere (Metaflow's own Azure datastore needs them too),
# numpy where chunks are processed, matplotlib only in `end`, which draws the card. No scipy: the
# processing core's one use of it (a Hann window) is numpy now, and its import cost ~2 s per task.
BASE_LIBRARIES = {"azure-storage-blob": "12.31.1", "azure-identity": "1.27.0", "azure-data-tables": "12.7.0"}
NUMPY_LIBRARIES = {"numpy": SETTINGS.conda_numpy}
CARD_LIBRARIES = {**NUMPY_LIBRARIES, "matplotlib-base": "3.11.2"}


def _with_conda(cls: type) -> type:
    """Apply ``@conda_base`` only under ``--environment=conda``/``pypi``.

    Metaflow refuses ``@conda_base`` without that option even when ``disabled=True``, so a plain
    virtualenv ``run`` would be impossible with the decorator written statically. The Argo pods
    run every step with the ``--environment`` the template was compiled with, so they see it too.
    """
    if not conda_requested(sys.argv):
        return cls
    return conda_base(python=SETTINGS.conda_python, libraries=BASE_LIBRARIES)(cls)


def _libraries(libraries: dict[str, str]) -> Any:
    """A step's ``@conda(libraries=...)`` on top of the base, under the same condition as :func:`_with_conda`."""

    def apply(step_function: Any) -> Any:
        if not conda_requested(sys.argv):
            return step_function
        return conda(libraries=libraries)(step_function)

    return apply


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
    # On the wire a bool is a bare JSON literal: submit force=true / force=false (docs/flow.md).
    force = Parameter(
        "force",
        type=bool,
        default=False,
        help="Event mode: also process chunks whose record is already up to date for their current ETag "
        "(default: skip them). No effect in fallback mode",
    )

    @environment(vars=STEP_ENV)
    @step
    def start(self) -> None:
        """Validate the parameters (before touching storage), then decide which chunks to process."""
        from datetime import UTC, datetime, timedelta

        import chunk_store
        from flow_parameters import validate_force, validate_parameters

        from processing.settings import ProcessingSettings

        names = validate_parameters(self.chunks, self.container, SETTINGS.results_container)
        forced = validate_force(self.force)
        # A plain str artifact: later steps use it instead of the Parameter object.
        self.chunk_container: str = str(self.container)
        self.processing_settings = ProcessingSettings(**SETTINGS.processing)
        self.settings_used = SETTINGS.describe()
        self.started_at = datetime.now(UTC)
        self.mode = "event" if names else "fallback"
        self.forced = forced
        self.set_aside: dict[str, dict[str, str]] = {}
        self.held_elsewhere: dict[str, str] = {}  # fallback: chunks another claim holds (name -> why)
        self.fallback_summary: dict[str, int] = {}
        self.fallback_listing: dict[str, Any] = {}
        self.recovered: frozenset = frozenset()  # fallback: versions no event path had claimed
        # Event mode: chunks left out because their record is up to date (name -> ETag), and what
        # that record says (status, run_pathspec, reason). Never in `chunk_etags`: not processed.
        self.skipped: dict[str, str] = {}
        self.skipped_states: dict[str, dict[str, str | None]] = {}
        if names and self.forced:
            self.targets = names
            print(f"force: processing all {len(names)} chunk(s), up-to-date records are not checked")
        elif names:
            done = up_to_date_states(
                chunk_store.connect(SETTINGS),
                names,
                chunk_container=self.chunk_container,
                results_container=SETTINGS.results_container,
            )
            self.targets = [name for name in names if name not in done]
            self.skipped = {name: done[name].chunk_etag for name in names if name in done}
            self.skipped_states = {
                name: {
                    "status": done[name].status,
                    "run_pathspec": done[name].run_pathspec,
                    "reason": done[name].reason,
                }
                for name in self.skipped
            }
            if self.skipped:
                print(
                    f"skipped {len(self.skipped)} chunk(s) already up to date (force=true processes them): "
                    + ", ".join(f"{name!r} ({done[name].status})" for name in list(self.skipped)[:20])
                    + (" ..." if len(self.skipped) > 20 else "")
                )
        else:
            if self.forced:
                print(
                    "force=true has no effect in fallback mode (chunks=[]): chunks with an up-to-date record are left alone"
                )
            # With SENSOR_CHUNK_LAYOUT, only the lookback window's prefixes are listed (and only
            # their records read): the sweep's cost follows the window, not all history (sweep.py).
            from sweep import fallback_sweep

            plan = fallback_sweep(
                chunk_store.connect(SETTINGS),
                chunk_container=self.chunk_container,
                results_container=SETTINGS.results_container,
                layout=SETTINGS.chunk_layout or None,
                lookback=timedelta(hours=SETTINGS.fallback_lookback_hours),
                now=datetime.now(UTC),
                grace=timedelta(seconds=SETTINGS.fallback_grace_seconds),
                limit=SETTINGS.fallback_max_chunks,
                max_bytes=SETTINGS.fallback_max_bytes,
                list_warn=SETTINGS.fallback_list_warn,
            )
            # What was listed: a wrong layout makes the sweep see nothing, and this is where it shows.
            self.fallback_listing = plan.listing.as_dict() if plan.listing is not None else {}
            print(f"fallback listing: {self.fallback_listing}")
            # The fallback is one of the paths that execute chunks: it claims what it takes in the
            # ledger, and leaves what another path holds (see ledger_io.py for the rules).
            from ledger_io import claim_for_fallback, connect_ledger

            from chunk_contract.versions import ChunkVersion

            now = datetime.now(UTC)
            claimed = claim_for_fallback(
                connect_ledger(SETTINGS),
                [ChunkVersion.of(self.chunk_container, c.name, c.etag) for c in plan.take],
                owner=f"{current.flow_name}/{current.run_id}",
                now=now,
                stale_after=timedelta(seconds=SETTINGS.claim_stale_seconds),
                reclaim_after=timedelta(seconds=SETTINGS.fallback_reclaim_seconds),
            )
            taken, held = claimed.taken, claimed.held
            self.targets = [v.name for v in taken]
            self.held_elsewhere = held
            self.recovered = claimed.recovered
            for name, why in list(held.items())[:20]:
                print(f"  left to its claim: {name!r}: {why}")
            # Names outside the allow-list are set aside, not processed: their names could not
            # travel through an Argo parameter either, and one stray blob must not fail the sweep.
            self.set_aside = {
                c.name: {"etag": c.etag, "reason": f"invalid chunk name: {reason}", "step": "start"}
                for c, reason in plan.invalid
            }
            self.fallback_summary = {
                **plan.summary(),
                "claimed": len(taken),
                "held_by_another_claim": len(held),
                "never_claimed": len(claimed.recovered),
            }
            print(f"fallback: {plan.missing} chunk(s) found missing; {self.fallback_summary}")
        print(f"{self.mode} mode: {len(self.targets)} chunk(s) to process in {self.chunk_container!r}")
        self.next(self.preprocess)

    @_libraries(NUMPY_LIBRARIES)
    @environment(vars=STEP_ENV)
    @step
    def preprocess(self) -> None:
        """Stream each chunk once: download it (to a temp file, pinned to one ETag), resample, accumulate.

        Nothing of chunk size leaves this step: per chunk a summary (a few numbers), the Welch and
        lag accumulators' states (O(nperseg), O(max_lag)) and, for the few chunks the card will
        plot, a min/max envelope (O(SENSOR_CARD_ENVELOPE_BINS)). The branches finish the states;
        the chunk is never downloaded again, so a chunk overwritten meanwhile cannot mix in.
        """
        import chunk_store
        from azure.core.exceptions import ResourceNotFoundError
        from card_selection import WorstChunks, badness

        from processing.allocator import keep_freed_memory
        from processing.features import ChunkError, stream_chunk

        keep_freed_memory()  # block-sized temporaries are reused instead of page-faulted in again
        service = chunk_store.connect(SETTINGS)
        self.chunk_etags: dict[str, str] = {}
        self.uploaded_at: dict[str, Any] = {}  # name -> the blob's last-modified time, as downloaded
        self.summaries: dict[str, Any] = {}  # name -> processing.features.ChunkSummary
        self.welch_states: dict[str, Any] = {}  # name -> processing.welch.WelchState
        self.lag_states: dict[str, Any] = {}  # name -> processing.acf.LagState
        self.preprocess_failures: dict[str, dict[str, str]] = {}
        worst = WorstChunks(SETTINGS.card_max_chunks)
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
                self.uploaded_at[name] = got.last_modified
                try:
                    streamed = stream_chunk(
                        got.path,
                        self.processing_settings,
                        name=name,  # errors name the chunk, not the temp file
                        envelope_bins=getattr(SETTINGS, "card_envelope_bins", 1000) if SETTINGS.card_max_chunks else 0,
                        max_unsorted_rows=getattr(SETTINGS, "max_unsorted_rows", 2_000_000),
                    )
                except (ChunkError, ValueError) as exc:
                    self.preprocess_failures[name] = {"etag": got.etag, "reason": str(exc), "step": "preprocess"}
                    continue
                finally:
                    got.path.unlink()
                summary = streamed.summary
                self.summaries[name] = summary
                self.welch_states[name] = streamed.welch
                self.lag_states[name] = streamed.lags
                score = badness(gap_fraction=summary.gap_fraction, n_dropped=summary.n_dropped, n_raw=summary.n_raw)
                worst.offer(name, score, streamed.envelope)
        # The card's signal panels, the worst chunks first (at most SENSOR_CARD_MAX_CHUNKS).
        self.envelopes: dict[str, Any] = worst.worst_first()
        print(f"preprocessed {len(self.summaries)} chunk(s), {len(self.preprocess_failures)} set aside")
        self.next(self.filter_bank, self.lags)

    @_libraries(NUMPY_LIBRARIES)
    @environment(vars=STEP_ENV)
    @step
    def filter_bank(self) -> None:
        """Band powers of each chunk, from its Welch accumulator state."""
        from processing.features import bands_from_state

        self.bands: dict[str, tuple[list[float], list[float]]] = {}
        self.band_failures: dict[str, dict[str, str]] = {}
        for name, state in self.welch_states.items():
            try:
                self.bands[name] = bands_from_state(state, self.processing_settings)
            except ValueError as exc:
                self.band_failures[name] = {"etag": self.chunk_etags[name], "reason": str(exc), "step": "filter_bank"}
        self.next(self.join)

    @_libraries(NUMPY_LIBRARIES)
    @environment(vars=STEP_ENV)
    @step
    def lags(self) -> None:
        """Autocorrelation r_1 .. r_max_lag of each chunk, from its lag accumulator state."""
        self.acfs: dict[str, list[float]] = {}
        self.lag_failures: dict[str, dict[str, str]] = {}
        for name, state in self.lag_states.items():
            try:
                self.acfs[name] = state.autocorrelation(constant=self.summaries[name].constant)
            except ValueError as exc:
                self.lag_failures[name] = {"etag": self.chunk_etags[name], "reason": str(exc), "step": "lags"}
        self.next(self.join)

    @_libraries(NUMPY_LIBRARIES)
    @environment(vars=STEP_ENV)
    @step
    def join(self, inputs: Any) -> None:
        """Merge the branches, build the feature records, write results and error records, report the run."""
        from datetime import UTC, datetime

        import chunk_store
        from azure.core.exceptions import HttpResponseError
        from ledger_io import connect_ledger, record_outcomes

        from chunk_contract import records as results
        from chunk_contract.ledger import RunReport, latency_summary
        from chunk_contract.versions import ChunkVersion
        from processing.features import ChunkError, record_from_stream

        self.merge_artifacts(inputs, exclude=["welch_states", "lag_states"])
        failures: dict[str, dict[str, str]] = {**self.set_aside, **self.preprocess_failures}
        for branch_failures in (self.band_failures, self.lag_failures):
            for name, failure in branch_failures.items():
                failures.setdefault(name, failure)
        records: dict[str, dict] = {}
        for name, summary in self.summaries.items():
            if name in failures:
                continue
            try:
                records[name] = record_from_stream(
                    name, summary, *self.bands[name], self.acfs[name], self.processing_settings
                )
            except (ChunkError, ValueError) as exc:
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
        # The outcome of every chunk version this run saw goes into the claim ledger too (status
        # lookups, the health report), with its upload -> result latency; then one report of the
        # run. A ledger failure fails the task, which is then retried (both writes are idempotent).
        outcomes: dict[ChunkVersion, tuple[str, str | None]] = {
            ChunkVersion.of(self.chunk_container, name, self.chunk_etags[name]): ("processed", None) for name in records
        }
        for name, failure in failures.items():
            if failure.get("etag") and failure["step"] != "start":  # a set-aside stray name is no chunk version
                outcomes[ChunkVersion.of(self.chunk_container, name, failure["etag"])] = ("failed", failure["reason"])
        uploaded = {v: self.uploaded_at[v.name] for v in outcomes if self.uploaded_at.get(v.name) is not None}
        ledger = connect_ledger(SETTINGS)
        now = datetime.now(UTC)
        claims = record_outcomes(ledger, outcomes, run=run.pathspec, now=now, uploaded=uploaded) if outcomes else {}
        # Per chunk: upload -> result seconds (event time, else the blob's last-modified time).
        self.latencies: dict[str, float] = {
            v.name: c.outcome_latency_s for v, c in claims.items() if c.outcome_latency_s is not None
        }
        recovered = sum(1 for v in self.recovered if v.name in records or v.name in failures)
        count, p50, p95, top = latency_summary(self.latencies.values())
        report = RunReport(
            flow_name=run.flow_name,
            run_id=run.run_id,
            mode=self.mode,
            started_at=self.started_at,
            finished_at=now,
            processed=len(records),
            failed=len(failures),
            skipped_up_to_date=len(self.skipped),
            set_aside=len(self.set_aside) + len(self.preprocess_failures),
            recovered=recovered,
            latency_count=count,
            latency_p50_s=p50,
            latency_p95_s=p95,
            latency_max_s=top,
        )
        ledger.record_run(report)
        self.report = report.as_dict()
        self.records = records
        self.failures = failures
        self.summary = {
            "mode": self.mode,
            "processed": len(records),
            "failed": len(failures),
            "latency_s": {"count": count, "p50": p50, "p95": p95, "max": top},
            **(
                {"fallback": {**self.fallback_summary, "recovered": recovered}}
                if self.mode == "fallback"
                else {"skipped_up_to_date": len(self.skipped), "forced": self.forced}
            ),
        }
        print(f"wrote {len(records)} result(s) and {len(failures)} error record(s) to {SETTINGS.results_container!r}")
        for name, failure in failures.items():
            print(f"  set aside {name!r}: {failure['reason']}")
        self.next(self.end)

    @card(type="blank", id="chunks", timeout=300)
    @_libraries(CARD_LIBRARIES)
    @environment(vars=STEP_ENV)
    @step
    def end(self) -> None:
        """Summary, and the card: a table of every chunk, plots of the worst few."""
        from flow_card import render_card

        render_card(
            current.card["chunks"],  # type: ignore[attr-defined]
            summary=self.summary,
            summaries=self.summaries,
            envelopes=self.envelopes,
            bands=self.bands,
            acfs=self.acfs,
            failures=self.failures,
            skipped=self.skipped_states,
            max_plotted=SETTINGS.card_max_chunks,
        )
        print(f"done: {self.summary}")


if __name__ == "__main__":
    SensorProcessingFlow()
