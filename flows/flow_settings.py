"""Every setting of SensorProcessingFlow, in one place, read from ``SENSOR_*`` environment variables.

Like Metaflow's own ``from_conf``: each setting has one environment variable and one default. The
flow file is imported in every task process (locally and in each Argo pod), so settings are read
there again; :func:`deploy_environment` lists the non-secret ones that ``argo-workflows create``
bakes into the template with ``@environment`` so the pods see the values the deployer chose.

Secrets never go into the template: ``SENSOR_STORAGE`` (a connection string) must reach the pods
through a Kubernetes secret (``METAFLOW_KUBERNETES_SECRETS``), see ``docs/flow.md``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEPLOY_ENV_VARS",
    "PREFIX",
    "FlowSettings",
    "SettingError",
    "conda_requested",
    "deploy_environment",
    "load_settings",
]

PREFIX = "SENSOR_"

# Non-secret settings copied into the Argo template (see deploy_environment).
DEPLOY_ENV_VARS = (
    "SENSOR_RESULTS_CONTAINER",
    "SENSOR_FALLBACK_GRACE_SECONDS",
    "SENSOR_FALLBACK_MAX_CHUNKS",
    "SENSOR_FALLBACK_MAX_BYTES",
    "SENSOR_FALLBACK_LOOKBACK_HOURS",
    "SENSOR_FALLBACK_LIST_WARN",
    "SENSOR_CHUNK_LAYOUT",
    "SENSOR_FS",
    "SENSOR_NPERSEG",
    "SENSOR_N_BANDS",
    "SENSOR_MAX_LAG",
    "SENSOR_MAX_GAP",
    "SENSOR_CARD_MAX_CHUNKS",
    "SENSOR_CARD_ENVELOPE_BINS",
    "SENSOR_MAX_UNSORTED_ROWS",
    "SENSOR_LEDGER_TABLE",
    "SENSOR_CLAIM_STALE_SECONDS",
    "SENSOR_FALLBACK_RECLAIM_SECONDS",
    # An account URL is not a secret; the credential comes from the pod's workload identity.
    "SENSOR_STORAGE__blobServiceUri",
    "SENSOR_STORAGE__serviceUri",
    "SENSOR_STORAGE__tableServiceUri",
)

# Standard 5-field cron (what Argo's CronWorkflow takes); Metaflow keeps the first 5 fields.
_CRON_FIELD = re.compile(r"[0-9A-Za-z*/,?-]+")


class SettingError(ValueError):
    """A ``SENSOR_*`` variable holds a value that breaks its rule; the message names both."""


@dataclass(frozen=True)
class FlowSettings:
    """The flow's settings (see ``docs/flow.md`` for the table).

    Attributes
    ----------
    storage_connection_string : str or None
        ``SENSOR_STORAGE``: a connection string (Azurite, account key). Secret: never printed.
    storage_account_url : str or None
        ``SENSOR_STORAGE__blobServiceUri`` or ``SENSOR_STORAGE__serviceUri``: the account URL, used
        with ``DefaultAzureCredential`` when no connection string is set.
    results_container : str
        ``SENSOR_RESULTS_CONTAINER``, default ``sensor-features``.
    fallback_grace_seconds : float
        ``SENSOR_FALLBACK_GRACE_SECONDS``, default 600: a chunk modified less long ago is left to its
        event-triggered run.
    fallback_max_chunks : int
        ``SENSOR_FALLBACK_MAX_CHUNKS``, default 100: flood guard, at most this many chunks per
        fallback run (the oldest first; the rest wait for the next run).
    fallback_max_bytes : int
        ``SENSOR_FALLBACK_MAX_BYTES``, default 8 GiB (8589934592): flood guard by size, the oldest
        chunks are taken while their total stays within it (always at least one). One fallback run
        downloads and streams every chunk it takes in one ``preprocess`` pod, one chunk on disk at
        a time; at a pessimistic 10 MB/s end to end (processing alone streams CSV at ~80 MB/s on
        one core here) 8 GiB takes about 14 min, well inside the hourly slot and the 2 h deadline.
    chunk_layout : str
        ``SENSOR_CHUNK_LAYOUT``, default empty: where chunks sit by time, e.g.
        ``{sensor}/{yyyy}/{mm}/{dd}/`` (see ``chunk_layout.py``). Set, a fallback run lists only the
        lookback window's prefixes; empty, it lists both containers whole.
    fallback_lookback_hours : float
        ``SENSOR_FALLBACK_LOOKBACK_HOURS``, default 48 (> 0, at most 8784): with a layout, the window
        a fallback run lists, by the time in the chunk's name. Older chunks are ``sensorctl backfill``'s job.
    fallback_list_warn : int
        ``SENSOR_FALLBACK_LIST_WARN``, default 100000: without a layout, a fallback run that lists
        more chunks than this prints a warning to set ``SENSOR_CHUNK_LAYOUT``.
    schedule_cron : str
        ``SENSOR_SCHEDULE_CRON``, default ``0 * * * *`` (hourly). Read when the flow is compiled.
    processing : dict
        ``SENSOR_FS``, ``SENSOR_NPERSEG``, ``SENSOR_N_BANDS``, ``SENSOR_MAX_LAG``, ``SENSOR_MAX_GAP``:
        keyword arguments of ``processing.features.ProcessingSettings`` (unset ones keep its defaults).
    card_max_chunks : int
        ``SENSOR_CARD_MAX_CHUNKS``, default 20: chunks plotted on the card, the worst first (the
        table lists all). Only their envelopes are kept, so a run's artifacts stay bounded.
    card_envelope_bins : int
        ``SENSOR_CARD_ENVELOPE_BINS``, default 1000 (>= 10): a plotted chunk's signal panel is a
        min/max envelope of this many to twice as many bins.
    max_unsorted_rows : int
        ``SENSOR_MAX_UNSORTED_ROWS``, default 2000000: a chunk whose timestamps are not in order is
        sorted in memory (~100 bytes per row at the peak); one with more rows is set aside instead,
        so the ``preprocess`` pod's memory stays bounded whatever is uploaded.
    ledger_table : str
        ``SENSOR_LEDGER_TABLE``, default ``chunkledger``: the claim ledger the function app writes;
        the fallback claims what it takes there and every run records its outcomes there.
    claim_stale_seconds : float
        ``SENSOR_CLAIM_STALE_SECONDS``, default 600 (the app's setting of the same name): a batch
        claim without a manifest this old is orphaned and may be fenced and taken.
    fallback_reclaim_seconds : float
        ``SENSOR_FALLBACK_RECLAIM_SECONDS``, default 10800 (3 h): a chunk whose workflow was accepted
        this long ago without an outcome is presumed lost (its pod died) and taken again. Keep it
        above the workflows' active deadline.
    conda_python, conda_numpy : str
        ``SENSOR_CONDA_PYTHON`` (default ``3.11``), ``SENSOR_CONDA_NUMPY`` (default ``2.4.6``):
        the ``@conda_base`` pins used with ``--environment=conda``.
    """

    storage_connection_string: str | None = field(default=None, repr=False)
    storage_account_url: str | None = None
    results_container: str = "sensor-features"
    fallback_grace_seconds: float = 600.0
    fallback_max_chunks: int = 100
    fallback_max_bytes: int = 8 * 2**30
    chunk_layout: str = ""
    fallback_lookback_hours: float = 48.0
    fallback_list_warn: int = 100_000
    schedule_cron: str = "0 * * * *"
    processing: dict[str, Any] = field(default_factory=dict)
    card_max_chunks: int = 20
    card_envelope_bins: int = 1000
    max_unsorted_rows: int = 2_000_000
    ledger_table: str = "chunkledger"
    claim_stale_seconds: float = 600.0
    fallback_reclaim_seconds: float = 10800.0
    conda_python: str = "3.11"
    conda_numpy: str = "2.4.6"

    def describe(self) -> dict[str, Any]:
        """Settings safe to print: the connection string is reduced to whether it is set."""
        return {
            "storage": "connection string (SENSOR_STORAGE)"
            if self.storage_connection_string
            else f"account URL {self.storage_account_url} with DefaultAzureCredential"
            if self.storage_account_url
            else "NOT CONFIGURED",
            "results_container": self.results_container,
            "fallback_grace_seconds": self.fallback_grace_seconds,
            "fallback_max_chunks": self.fallback_max_chunks,
            "fallback_max_bytes": self.fallback_max_bytes,
            "chunk_layout": self.chunk_layout or "(none: full listing)",
            "fallback_lookback_hours": self.fallback_lookback_hours,
            "fallback_list_warn": self.fallback_list_warn,
            "schedule_cron": self.schedule_cron,
            "ledger_table": self.ledger_table,
            "claim_stale_seconds": self.claim_stale_seconds,
            "fallback_reclaim_seconds": self.fallback_reclaim_seconds,
            "card_max_chunks": self.card_max_chunks,
            "card_envelope_bins": self.card_envelope_bins,
            "max_unsorted_rows": self.max_unsorted_rows,
            "processing": dict(self.processing),
        }


def _number(
    env: Mapping[str, str], name: str, default: float, kind: type, minimum: float, *, strict: bool = False
) -> Any:
    """``PREFIX + name`` as ``kind``, at least ``minimum`` (above it when ``strict``), else ``default``."""
    raw = env.get(PREFIX + name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = kind(raw.strip())
    except ValueError:
        raise SettingError(f"{PREFIX}{name}={raw!r} is not a valid {kind.__name__}") from None
    if value != value or value < minimum or (strict and value == minimum):  # value != value: NaN
        raise SettingError(f"{PREFIX}{name}={raw!r} must be a number {'>' if strict else '>='} {minimum}")
    return value


# A year of day prefixes per sensor is already ~365 listings a run; older history is backfill's job.
MAX_LOOKBACK_HOURS = 24 * 366


def _lookback_hours(env: Mapping[str, str]) -> float:
    hours: float = _number(env, "FALLBACK_LOOKBACK_HOURS", 48.0, float, 0.0, strict=True)
    if hours > MAX_LOOKBACK_HOURS:  # also inf
        raise SettingError(
            f"{PREFIX}FALLBACK_LOOKBACK_HOURS={env[PREFIX + 'FALLBACK_LOOKBACK_HOURS']!r} must be at most "
            f"{MAX_LOOKBACK_HOURS} (a year): older chunks are `sensorctl backfill`'s job"
        )
    return hours


def _chunk_layout(env: Mapping[str, str]) -> str:
    """``SENSOR_CHUNK_LAYOUT``, validated now so a bad layout fails every run, not only the cron's."""
    from chunk_layout import LayoutError, parse_layout

    raw = env.get(PREFIX + "CHUNK_LAYOUT") or ""
    if not raw.strip():
        return ""
    try:
        return parse_layout(raw, setting=PREFIX + "CHUNK_LAYOUT").text
    except LayoutError as exc:
        raise SettingError(str(exc)) from None


def _validate_cron(raw: str) -> str:
    fields = raw.split()
    if len(fields) != 5 or not all(_CRON_FIELD.fullmatch(f) for f in fields):
        raise SettingError(
            f"{PREFIX}SCHEDULE_CRON={raw!r} must be a standard 5-field cron expression "
            "(minute hour day-of-month month day-of-week), e.g. '0 * * * *'"
        )
    return " ".join(fields)


def _ledger_table(env: Mapping[str, str]) -> str:
    raw = (env.get(PREFIX + "LEDGER_TABLE") or "chunkledger").strip()
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{2,62}", raw):
        raise SettingError(
            f"{PREFIX}LEDGER_TABLE={raw!r} must be a table name of 3-63 letters and digits, starting with a letter"
        )
    return raw


def load_settings(env: Mapping[str, str] | None = None) -> FlowSettings:
    """Read and validate the settings from ``env`` (default: ``os.environ``).

    Raises
    ------
    SettingError
        Naming the variable and the rule its value broke.
    """
    # Imported here, not at module top: results.py pulls in the Azure SDK, which the compiler
    # and tests that only read settings do not need.
    from chunk_contract.records import InvalidContainerName, validate_container_name

    env = os.environ if env is None else env
    results_container = env.get(PREFIX + "RESULTS_CONTAINER") or "sensor-features"
    try:
        validate_container_name(results_container, "results container")
    except InvalidContainerName as exc:
        raise SettingError(f"{PREFIX}RESULTS_CONTAINER: {exc}") from None
    processing: dict[str, Any] = {}
    for name, key, kind, minimum in (
        ("FS", "fs", float, 0.0),
        ("NPERSEG", "nperseg", int, 1),
        ("N_BANDS", "n_bands", int, 1),
        ("MAX_LAG", "max_lag", int, 1),
        ("MAX_GAP", "max_gap", float, 0.0),
    ):
        if env.get(PREFIX + name, "").strip():
            processing[key] = _number(env, name, 0, kind, minimum)
    return FlowSettings(
        storage_connection_string=env.get(PREFIX + "STORAGE") or None,
        storage_account_url=env.get(PREFIX + "STORAGE__blobServiceUri")
        or env.get(PREFIX + "STORAGE__serviceUri")
        or None,
        results_container=results_container,
        fallback_grace_seconds=_number(env, "FALLBACK_GRACE_SECONDS", 600.0, float, 0.0),
        fallback_max_chunks=_number(env, "FALLBACK_MAX_CHUNKS", 100, int, 1),
        fallback_max_bytes=_number(env, "FALLBACK_MAX_BYTES", 8 * 2**30, int, 1),
        chunk_layout=_chunk_layout(env),
        fallback_lookback_hours=_lookback_hours(env),
        fallback_list_warn=_number(env, "FALLBACK_LIST_WARN", 100_000, int, 1),
        schedule_cron=_validate_cron(env.get(PREFIX + "SCHEDULE_CRON") or "0 * * * *"),
        processing=processing,
        card_max_chunks=_number(env, "CARD_MAX_CHUNKS", 20, int, 0),
        card_envelope_bins=_number(env, "CARD_ENVELOPE_BINS", 1000, int, 10),
        max_unsorted_rows=_number(env, "MAX_UNSORTED_ROWS", 2_000_000, int, 0),
        ledger_table=_ledger_table(env),
        claim_stale_seconds=_number(env, "CLAIM_STALE_SECONDS", 600.0, float, 1.0),
        fallback_reclaim_seconds=_number(env, "FALLBACK_RECLAIM_SECONDS", 10800.0, float, 1.0),
        conda_python=env.get(PREFIX + "CONDA_PYTHON") or "3.11",
        conda_numpy=env.get(PREFIX + "CONDA_NUMPY") or "2.4.6",
    )


def deploy_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The non-secret ``SENSOR_*`` variables set in ``env``, for ``@environment(vars=...)``.

    Never includes ``SENSOR_STORAGE`` (a connection string holds the account key).
    """
    env = os.environ if env is None else env
    return {name: env[name] for name in DEPLOY_ENV_VARS if env.get(name)}


def conda_requested(argv: Sequence[str], env: Mapping[str, str] | None = None) -> bool:
    """Whether this Metaflow command runs with ``--environment=conda`` (or ``pypi``).

    Metaflow refuses ``@conda_base`` without that option, even with ``disabled=True``, so the flow
    applies the decorator only when it is asked for: ``--environment=conda argo-workflows create``
    compiles it in, and the Argo pods run their steps with ``--environment=conda`` again; a plain
    ``run`` in a virtualenv leaves it out. ``METAFLOW_DEFAULT_ENVIRONMENT`` counts too.
    """
    env = os.environ if env is None else env
    wanted = {"conda", "pypi"}
    for i, arg in enumerate(argv):
        if arg.startswith("--environment="):
            return arg.split("=", 1)[1] in wanted
        if arg == "--environment" and i + 1 < len(argv):
            return argv[i + 1] in wanted
    return env.get("METAFLOW_DEFAULT_ENVIRONMENT", "") in wanted
