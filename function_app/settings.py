"""Every setting of the function app, in one place, read lazily from the environment.

Nothing here runs at import time: the Functions worker imports the app to index it, and any
exception then loads zero functions. :func:`get_settings` reads and validates the environment on
the first invocation and caches the result; a missing or malformed setting raises one
:class:`SettingsError` naming it (never echoing a secret's value).

The one exception is :func:`blob_trigger_source`, which the blob-trigger decorator needs at import
time: it never raises (see its docstring).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import azure.functions as func

__all__ = [
    "BLOB_TRIGGER_SOURCES",
    "SUBMIT_BACKENDS",
    "Settings",
    "SettingsError",
    "blob_trigger_source",
    "get_settings",
    "load_settings",
]

logger = logging.getLogger(__name__)

SUBMIT_BACKENDS = ("argo", "local")
BLOB_TRIGGER_SOURCES = {s.value: s for s in func.BlobSource}  # EventGrid, LogsAndContainerScan
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


class SettingsError(ValueError):
    """A required setting is missing or malformed. ``setting`` is its name."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        super().__init__(f"app setting {setting} {problem}")


@dataclass(frozen=True)
class Settings:
    """The validated settings. ``argo_token`` is kept out of ``repr`` so it never reaches a log."""

    sensor_storage: str = field(repr=False)  # connection string; "" = identity-based (SENSOR_STORAGE__blobServiceUri)
    sensor_container: str = "sensor-data"
    sensor_results_container: str = "sensor-features"  # the flow's results (status lookup, backfill)
    blob_trigger_source: str = "EventGrid"
    submit_backend: str = "argo"
    argo_server_url: str = ""
    argo_namespace: str = "argo"
    argo_workflow_template: str = "sensorprocessingflow"
    argo_token: str = field(default="", repr=False)
    argo_ca_bundle: str | None = None
    argo_insecure_skip_verify: bool = False
    argo_connect_timeout: float = 3.05
    argo_read_timeout: float = 10.0
    argo_retry_seconds: float = 20.0
    argo_max_attempts: int = 6
    max_chunks_per_request: int = 100


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise SettingsError(name, f"must be true or false, got {raw!r}")


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float, integer: bool = False) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise SettingsError(name, f"must be {kind}, got {raw!r}") from None
    if not value >= minimum:  # also rejects nan
        raise SettingsError(name, f"must be at least {minimum}, got {raw!r}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip() or default
    if raw not in allowed:
        raise SettingsError(name, f"must be one of {', '.join(allowed)}; got {raw!r}")
    return raw


def _storage(env: Mapping[str, str]) -> str:
    # SENSOR_STORAGE is a connection string, or (identity-based connection) absent with
    # SENSOR_STORAGE__blobServiceUri / __serviceUri set: the binding extension and the host accept both.
    if env.get("SENSOR_STORAGE", "").strip():
        return env["SENSOR_STORAGE"].strip()
    for suffix in ("__blobServiceUri", "__serviceUri"):
        if env.get("SENSOR_STORAGE" + suffix, "").strip():
            return ""  # identity-based: resolved like the binding extension does (see storage.py)
    raise SettingsError(
        "SENSOR_STORAGE",
        "is not set (a storage connection string, or SENSOR_STORAGE__blobServiceUri for managed identity)",
    )


def _results_container(env: Mapping[str, str]) -> str:
    # Same name and default as the flow's setting, so both sides agree on where results live.
    from processing.results import DEFAULT_RESULTS_CONTAINER, InvalidContainerName, validate_container_name

    raw = env.get("SENSOR_RESULTS_CONTAINER", "").strip() or DEFAULT_RESULTS_CONTAINER
    try:
        return validate_container_name(raw)
    except InvalidContainerName as exc:
        raise SettingsError("SENSOR_RESULTS_CONTAINER", str(exc)) from None


def load_settings(env: Mapping[str, str]) -> Settings:
    """Validate ``env`` (usually ``os.environ``) into :class:`Settings`; raise :class:`SettingsError`."""
    backend = _choice(env, "SUBMIT_BACKEND", "argo", SUBMIT_BACKENDS)
    container = env.get("SENSOR_CONTAINER", "").strip() or "sensor-data"
    results_container = _results_container(env)
    source = _choice(env, "BLOB_TRIGGER_SOURCE", "EventGrid", tuple(BLOB_TRIGGER_SOURCES))
    url = env.get("ARGO_SERVER_URL", "").strip().rstrip("/")
    token = env.get("ARGO_TOKEN", "").strip()
    # `argo auth token` prints "Bearer <jwt>": accept the value with or without that prefix.
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    ca_bundle = env.get("ARGO_CA_BUNDLE", "").strip() or None
    insecure = _flag(env, "ARGO_INSECURE_SKIP_VERIFY")
    if backend == "argo":
        if not url:
            raise SettingsError("ARGO_SERVER_URL", "is not set (e.g. https://argo-server.argo:2746)")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SettingsError("ARGO_SERVER_URL", f"must be an http(s) URL like https://host:2746, got {url!r}")
        if not token:
            raise SettingsError("ARGO_TOKEN", "is not set (the Argo Server bearer token)")
        if ca_bundle is not None and not os.path.isfile(ca_bundle):
            raise SettingsError("ARGO_CA_BUNDLE", f"names {ca_bundle!r}, which is not a file")
    return Settings(
        sensor_storage=_storage(env),
        sensor_container=container,
        sensor_results_container=results_container,
        blob_trigger_source=source,
        submit_backend=backend,
        argo_server_url=url,
        argo_namespace=env.get("ARGO_NAMESPACE", "").strip() or "argo",
        argo_workflow_template=env.get("ARGO_WORKFLOW_TEMPLATE", "").strip() or "sensorprocessingflow",
        argo_token=token,
        argo_ca_bundle=ca_bundle,
        argo_insecure_skip_verify=insecure,
        argo_connect_timeout=_number(env, "ARGO_CONNECT_TIMEOUT", 3.05, minimum=0.01),
        argo_read_timeout=_number(env, "ARGO_READ_TIMEOUT", 10.0, minimum=0.01),
        argo_retry_seconds=_number(env, "ARGO_RETRY_SECONDS", 20.0, minimum=0.0),
        argo_max_attempts=int(_number(env, "ARGO_MAX_ATTEMPTS", 6, minimum=1, integer=True)),
        max_chunks_per_request=int(_number(env, "MAX_CHUNKS_PER_REQUEST", 100, minimum=1, integer=True)),
    )


@functools.cache
def get_settings() -> Settings:
    """The settings of this process, read from ``os.environ`` on first use and cached.

    A :class:`SettingsError` is not cached: fixing the app setting (which restarts the host anyway)
    or, in tests, ``get_settings.cache_clear()`` makes the next call read again.
    """
    return load_settings(os.environ)


def blob_trigger_source(env: Mapping[str, str] | None = None) -> func.BlobSource:
    """The blob trigger's source, for the decorator — evaluated at IMPORT time, so it never raises.

    An invalid ``BLOB_TRIGGER_SOURCE`` falls back to Event Grid with a logged error instead of
    failing the import: an exception here would make the worker index zero functions, taking the
    HTTP trigger down with the blob trigger. Event Grid is the documented default, and the same
    value makes :func:`get_settings` raise a ``SettingsError`` naming the setting at the first
    invocation, so the mistake is still loud.
    """
    raw = (os.environ if env is None else env).get("BLOB_TRIGGER_SOURCE", "").strip()
    if not raw:
        return func.BlobSource.EVENT_GRID
    if raw in BLOB_TRIGGER_SOURCES:
        return BLOB_TRIGGER_SOURCES[raw]
    logger.error(
        "app setting BLOB_TRIGGER_SOURCE must be one of %s; got %r: indexing the blob trigger with EventGrid",
        ", ".join(BLOB_TRIGGER_SOURCES),
        raw,
    )
    return func.BlobSource.EVENT_GRID
