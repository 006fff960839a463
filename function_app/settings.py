"""Every setting of the function app, in one place, read lazily from the environment.

Nothing here runs at import time: the Functions worker imports the app to index it, and any
exception then loads zero functions. :func:`get_settings` reads and validates the environment on
the first invocation and caches the result; a missing or malformed setting raises one
:class:`SettingsError` naming it (never echoing a secret's value).

The one exception is :func:`blob_trigger_source`, which the blob-trigger decorator needs at import
time: it never raises (see its docstring).
"""

from __future__ import annotations

import base64
import functools
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import azure.functions as func

__all__ = [
    "BLOB_TRIGGER_SOURCES",
    "DEFAULT_COALESCE_SCHEDULE",
    "SUBMIT_BACKENDS",
    "SUBMIT_MODES",
    "Settings",
    "SettingsError",
    "blob_trigger_source",
    "coalesce_schedule",
    "get_settings",
    "load_settings",
]

logger = logging.getLogger(__name__)

SUBMIT_BACKENDS = ("argo", "local")
SUBMIT_MODES = ("immediate", "coalesce")
DEFAULT_COALESCE_SCHEDULE = "*/30 * * * * *"  # NCRONTAB with seconds: every 30 s
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
    # The `chunks` parameter travels base64-encoded inside ONE shell argument of Metaflow's start
    # pod, and Linux refuses an argument of 128 KiB or more: 64 KiB before base64 is ~86 KiB after.
    max_chunks_param_bytes: int = 65536
    submit_mode: str = "immediate"
    events_queue: str = "chunk-events"
    ledger_table: str = "chunkledger"
    coalesce_max_in_flight: int = 20
    coalesce_max_chunks: int = 200
    coalesce_max_dequeue: int = 5
    coalesce_visibility_seconds: float = 300.0
    coalesce_deadline_seconds: float = 240.0
    claim_stale_seconds: float = 600.0

    @property
    def poison_queue(self) -> str:
        return f"{self.events_queue}-poison"


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
        value = env["SENSOR_STORAGE"].strip()
        problem = _connection_string_problem(value)
        if problem:
            # Never the value, nor a part of it: a connection string holds the account key.
            raise SettingsError("SENSOR_STORAGE", problem)
        return value
    for suffix in ("__blobServiceUri", "__serviceUri"):
        if env.get("SENSOR_STORAGE" + suffix, "").strip():
            return ""  # identity-based: resolved like the binding extension does (see storage.py)
    raise SettingsError(
        "SENSOR_STORAGE",
        "is not set (a storage connection string, or SENSOR_STORAGE__blobServiceUri for managed identity)",
    )


# Connection-string keys as the Azure SDKs read them (case-insensitively), in their usual spelling:
# only these names ever appear in a message, never a value nor a key as written.
_CONNECTION_KEYS = {
    k.upper(): k
    for k in (
        "AccountName",
        "AccountKey",
        "SharedAccessSignature",
        "DefaultEndpointsProtocol",
        "EndpointSuffix",
        "BlobEndpoint",
        "QueueEndpoint",
        "TableEndpoint",
        "FileEndpoint",
        "BlobSecondaryEndpoint",
        "QueueSecondaryEndpoint",
        "TableSecondaryEndpoint",
        "UseDevelopmentStorage",
        "DevelopmentStorageProxyUri",
    )
}
_CONNECTION_KEY = re.compile(r"[A-Za-z]+")
_ACCOUNT_NAME = re.compile(r"[a-z0-9]{3,24}")
_CONNECTION_SHAPE = "a connection string like 'DefaultEndpointsProtocol=https;AccountName=<account>;AccountKey=<key>'"


def _connection_string_problem(value: str) -> str | None:
    """What is wrong with a storage connection string, in words that hold none of it; None if fine.

    Parsed like the SDKs do (``key=value`` parts separated by ``;``, split at the first ``=``,
    keys case-insensitive), but stricter: every part must be ``key=value``, no key twice, and
    unless it is ``UseDevelopmentStorage=true`` it must name the account (``AccountName``, 3-24
    lowercase letters and digits) and carry a credential (``AccountKey`` in base64, or
    ``SharedAccessSignature``). Endpoints, if given, must be http(s) URLs.
    """
    parts = value.rstrip(";").split(";")
    pairs: dict[str, str] = {}
    for number, part in enumerate(parts, start=1):
        key, eq, item = part.partition("=")
        if not eq or not _CONNECTION_KEY.fullmatch(key):
            return f"is not {_CONNECTION_SHAPE}: part {number} of {len(parts)} (separated by ';') is not key=value"
        canonical = key.upper()
        if canonical in pairs:
            name = _CONNECTION_KEYS.get(canonical, f"the key of part {number}")
            return f"is ambiguous: it gives {name} twice"
        pairs[canonical] = item
    if "USEDEVELOPMENTSTORAGE" in pairs:
        if pairs["USEDEVELOPMENTSTORAGE"] != "true":
            return "has UseDevelopmentStorage set to something other than 'true' (the only value the SDKs accept)"
        return None
    if not pairs.get("ACCOUNTNAME"):
        return f"has no AccountName (expected {_CONNECTION_SHAPE}, or UseDevelopmentStorage=true)"
    if not _ACCOUNT_NAME.fullmatch(pairs["ACCOUNTNAME"]):
        return "has an AccountName that is not a storage account name (3-24 lowercase letters and digits)"
    if "ACCOUNTKEY" in pairs:
        try:
            if not base64.b64decode(pairs["ACCOUNTKEY"], validate=True):
                raise ValueError("empty")
        except ValueError:  # binascii.Error
            return "has an AccountKey that is not base64 (copy the key again from the storage account)"
    elif not pairs.get("SHAREDACCESSSIGNATURE"):
        return "has no credential: AccountKey or SharedAccessSignature is required"
    protocol = pairs.get("DEFAULTENDPOINTSPROTOCOL")
    if protocol is not None and protocol not in ("http", "https"):
        return "has a DefaultEndpointsProtocol other than http or https"
    for canonical, name in _CONNECTION_KEYS.items():
        if canonical.endswith("ENDPOINT") and canonical in pairs and not _is_plain_url(pairs[canonical]):
            return f"has a {name} that is not an http(s) URL"
    return None


def _is_plain_url(value: str) -> bool:
    """An http(s) URL with a host, and no whitespace or control characters (urlsplit drops some)."""
    if not value or any(c.isspace() or not c.isprintable() for c in value):
        return False
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 -- raises ValueError on a malformed or out-of-range port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


# A bearer token goes into an HTTP header: visible ASCII only. A line break would end the header
# (requests refuses it, and its error message would carry part of the token into a log); a
# character outside Latin-1 cannot be encoded at all. JWTs and Argo's "v2:..." SSO tokens fit.
_TOKEN = re.compile(r"[\x21-\x7e]+")


def _token(env: Mapping[str, str]) -> str:
    token = env.get("ARGO_TOKEN", "").strip()
    # `argo auth token` prints "Bearer <jwt>": accept the value with or without that prefix.
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    if token and not _TOKEN.fullmatch(token):
        position, char = next((i, c) for i, c in enumerate(token) if not _TOKEN.fullmatch(c))
        if char in "\r\n":
            kind = "a line break"
        elif char.isspace():
            kind = "whitespace"
        elif ord(char) < 0x80:
            kind = "a control character"
        else:
            kind = "a non-ASCII character"
        # The position and the kind of character only: nothing of the token itself.
        raise SettingsError(
            "ARGO_TOKEN",
            f"must be one bearer token of printable ASCII characters without spaces; it holds {kind} at position {position}",
        )
    return token


def _server_url(env: Mapping[str, str]) -> str:
    url = env.get("ARGO_SERVER_URL", "").strip().rstrip("/")
    if not url:
        return url
    if any(c.isspace() or not c.isprintable() for c in url):
        raise SettingsError("ARGO_SERVER_URL", "must be one http(s) URL; it holds whitespace or control characters")
    parts = urlsplit(url)
    if "@" in parts.netloc:
        # Not echoed: what precedes the '@' is a user name and perhaps a password.
        raise SettingsError(
            "ARGO_SERVER_URL", "must not hold a user name or password (the bearer token goes in ARGO_TOKEN)"
        )
    shown = url if len(url) <= 200 else url[:200] + "..."
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError("ARGO_SERVER_URL", f"must be an http(s) URL like https://host:2746, got {shown!r}")
    try:
        parts.port  # noqa: B018 -- raises ValueError on a malformed or out-of-range port
    except ValueError:
        raise SettingsError("ARGO_SERVER_URL", f"has an invalid port, got {shown!r}") from None
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise SettingsError("ARGO_SERVER_URL", f"must not hold a query or fragment (paths are appended), got {shown!r}")
    return url


_DNS1123_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def _argo_name(env: Mapping[str, str], name: str, default: str, *, dots: bool) -> str:
    """ARGO_NAMESPACE (a DNS-1123 label) or ARGO_WORKFLOW_TEMPLATE (a DNS-1123 subdomain, e.g.
    ``project.branch.flow``): both go into the Argo Server's URL paths, so '/', '?', '%' or '..'
    must never reach them."""
    raw = env.get(name, "").strip() or default
    labels = raw.split(".") if dots else [raw]
    if len(raw) > (253 if dots else 63) or not all(_DNS1123_LABEL.fullmatch(label) for label in labels):
        shown = raw if len(raw) <= 80 else raw[:80] + "..."
        rule = (
            "a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', at most 253)"
            if dots
            else ("a DNS-1123 label (lowercase letters, digits and '-', at most 63)")
        )
        raise SettingsError(name, f"must be {rule}, got {shown!r}")
    return raw


def _container(env: Mapping[str, str], results_container: str) -> str:
    from chunk_contract.records import validate_container_name

    raw = env.get("SENSOR_CONTAINER", "").strip() or "sensor-data"
    try:
        validate_container_name(raw)
    except ValueError:
        shown = raw if len(raw) <= 80 else raw[:80] + "..."
        raise SettingsError(
            "SENSOR_CONTAINER",
            "must be a container name of 3-63 lowercase letters, digits and single hyphens, starting and "
            f"ending with a letter or digit, got {shown!r}",
        ) from None
    if raw == results_container:
        raise SettingsError(
            "SENSOR_CONTAINER",
            f"must differ from SENSOR_RESULTS_CONTAINER (both are {raw!r}): the flow refuses to run when chunks "
            "and their results share a container",
        )
    return raw


def _results_container(env: Mapping[str, str]) -> str:
    # Same name and default as the flow's setting, so both sides agree on where results live.
    from chunk_contract.records import DEFAULT_RESULTS_CONTAINER, InvalidContainerName, validate_container_name

    raw = env.get("SENSOR_RESULTS_CONTAINER", "").strip() or DEFAULT_RESULTS_CONTAINER
    try:
        return validate_container_name(raw)
    except InvalidContainerName as exc:
        raise SettingsError("SENSOR_RESULTS_CONTAINER", str(exc)) from None


_QUEUE = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,55}")  # 3-63, and "-poison" must still fit
_TABLE = re.compile(r"[A-Za-z][A-Za-z0-9]{2,62}")


def _queue_name(env: Mapping[str, str]) -> str:
    raw = env.get("SENSOR_EVENTS_QUEUE", "").strip() or "chunk-events"
    if not _QUEUE.fullmatch(raw):
        raise SettingsError(
            "SENSOR_EVENTS_QUEUE",
            f"must be a queue name of 3-56 lowercase letters, digits and single hyphens (room for '-poison'), got {raw!r}",
        )
    return raw


def _table_name(env: Mapping[str, str]) -> str:
    raw = env.get("SENSOR_LEDGER_TABLE", "").strip() or "chunkledger"
    if not _TABLE.fullmatch(raw):
        raise SettingsError(
            "SENSOR_LEDGER_TABLE",
            f"must be a table name of 3-63 letters and digits, starting with a letter, got {raw!r}",
        )
    return raw


def load_settings(env: Mapping[str, str]) -> Settings:
    """Validate ``env`` (usually ``os.environ``) into :class:`Settings`; raise :class:`SettingsError`."""
    backend = _choice(env, "SUBMIT_BACKEND", "argo", SUBMIT_BACKENDS)
    results_container = _results_container(env)
    container = _container(env, results_container)
    source = _choice(env, "BLOB_TRIGGER_SOURCE", "EventGrid", tuple(BLOB_TRIGGER_SOURCES))
    url = _server_url(env)
    token = _token(env)
    ca_bundle = env.get("ARGO_CA_BUNDLE", "").strip() or None
    insecure = _flag(env, "ARGO_INSECURE_SKIP_VERIFY")
    if backend == "argo":
        if not url:
            raise SettingsError("ARGO_SERVER_URL", "is not set (e.g. https://argo-server.argo:2746)")
        if not token:
            raise SettingsError("ARGO_TOKEN", "is not set (the Argo Server bearer token)")
        if ca_bundle is not None and not os.path.isfile(ca_bundle):
            raise SettingsError("ARGO_CA_BUNDLE", f"names {ca_bundle!r}, which is not a file")
    settings = Settings(
        sensor_storage=_storage(env),
        sensor_container=container,
        sensor_results_container=results_container,
        blob_trigger_source=source,
        submit_backend=backend,
        argo_server_url=url,
        argo_namespace=_argo_name(env, "ARGO_NAMESPACE", "argo", dots=False),
        argo_workflow_template=_argo_name(env, "ARGO_WORKFLOW_TEMPLATE", "sensorprocessingflow", dots=True),
        argo_token=token,
        argo_ca_bundle=ca_bundle,
        argo_insecure_skip_verify=insecure,
        argo_connect_timeout=_number(env, "ARGO_CONNECT_TIMEOUT", 3.05, minimum=0.01),
        argo_read_timeout=_number(env, "ARGO_READ_TIMEOUT", 10.0, minimum=0.01),
        argo_retry_seconds=_number(env, "ARGO_RETRY_SECONDS", 20.0, minimum=0.0),
        argo_max_attempts=int(_number(env, "ARGO_MAX_ATTEMPTS", 6, minimum=1, integer=True)),
        max_chunks_per_request=int(_number(env, "MAX_CHUNKS_PER_REQUEST", 100, minimum=1, integer=True)),
        max_chunks_param_bytes=int(_number(env, "MAX_CHUNKS_PARAM_BYTES", 65536, minimum=1024, integer=True)),
        submit_mode=_choice(env, "SUBMIT_MODE", "immediate", SUBMIT_MODES),
        events_queue=_queue_name(env),
        ledger_table=_table_name(env),
        coalesce_max_in_flight=int(_number(env, "COALESCE_MAX_IN_FLIGHT", 20, minimum=1, integer=True)),
        coalesce_max_chunks=int(_number(env, "COALESCE_MAX_CHUNKS", 200, minimum=1, integer=True)),
        coalesce_max_dequeue=int(_number(env, "COALESCE_MAX_DEQUEUE", 5, minimum=1, integer=True)),
        coalesce_visibility_seconds=_number(env, "COALESCE_VISIBILITY_SECONDS", 300.0, minimum=1.0),
        coalesce_deadline_seconds=_number(env, "COALESCE_DEADLINE_SECONDS", 240.0, minimum=1.0),
        claim_stale_seconds=_number(env, "SENSOR_CLAIM_STALE_SECONDS", 600.0, minimum=1.0),
    )
    if settings.coalesce_visibility_seconds <= settings.coalesce_deadline_seconds:
        raise SettingsError(
            "COALESCE_VISIBILITY_SECONDS",
            f"must exceed COALESCE_DEADLINE_SECONDS ({settings.coalesce_deadline_seconds:g}): a message must stay "
            "hidden for the whole drain that received it",
        )
    if settings.claim_stale_seconds <= settings.coalesce_deadline_seconds:
        raise SettingsError(
            "SENSOR_CLAIM_STALE_SECONDS",
            f"must exceed COALESCE_DEADLINE_SECONDS ({settings.coalesce_deadline_seconds:g}): a batch claim younger "
            "than one drain may belong to a plan still being written",
        )
    return settings


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


def coalesce_schedule(env: Mapping[str, str] | None = None) -> str:
    """The drainer's timer schedule (``COALESCE_SCHEDULE``, NCRONTAB with seconds) — read at IMPORT time.

    Like :func:`blob_trigger_source` it never raises: a malformed value (not six fields) falls back
    to the default with a logged error, so one bad setting cannot unload every function.
    """
    raw = (os.environ if env is None else env).get("COALESCE_SCHEDULE", "").strip()
    if not raw:
        return DEFAULT_COALESCE_SCHEDULE
    fields = raw.split()
    if len(fields) == 6 and all(re.fullmatch(r"[0-9*/,-]+", f) for f in fields):
        return raw
    logger.error(
        "app setting COALESCE_SCHEDULE must be an NCRONTAB expression of six fields "
        "(second minute hour day month weekday), got %r: using %r",
        raw[:80],
        DEFAULT_COALESCE_SCHEDULE,
    )
    return DEFAULT_COALESCE_SCHEDULE
