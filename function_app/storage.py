"""The app's storage clients, one of each per process: blob (chunk ETags), the claim ledger (Table
Storage) and the chunk-event queue. (The blob trigger gets a per-blob client from the host too.)

The ETag makes the workflow name version-specific, and reading it is also the existence check
(a missing chunk is a 404 to the caller). The client is built once per process from the same
``SENSOR_STORAGE`` connection the blob trigger uses: a connection string, or managed identity
through ``SENSOR_STORAGE__blobServiceUri`` (resolved by the binding extension's own factory, so
both triggers authenticate the same way).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ExponentialRetry

from chunk_contract.ledger import Ledger, open_ledger
from function_app.event_queue import EventQueue
from function_app.settings import Settings, SettingsError

__all__ = ["ChunkNotFound", "blob_service_client", "event_queue", "event_queue_clients", "fetch_etags", "ledger"]


class ChunkNotFound(LookupError):
    """A requested chunk does not exist in the container (an HTTP 404)."""

    def __init__(self, container: str, name: str) -> None:
        super().__init__(f"chunk {name!r} does not exist in container {container!r}")
        self.container = container
        self.name = name


@functools.cache
def blob_service_client(settings: Settings) -> BlobServiceClient:
    # Explicit timeouts, and a retry policy that fits an HTTP request: the SDK's default backs off
    # 15 s, 18 s, 24 s, far past what a caller waits. Here: about 1 s, 3 s, 5 s, then a 503.
    retry = ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=3)
    if settings.sensor_storage:
        return BlobServiceClient.from_connection_string(
            settings.sensor_storage, connection_timeout=5, read_timeout=20, retry_policy=retry
        )
    from azurefunctions.extensions.bindings.blob.utils import service_client_factory

    # Managed identity: the binding's own factory picks the URL and credential; rebuilt with our policy.
    resolved: BlobServiceClient = service_client_factory("SENSOR_STORAGE")
    return BlobServiceClient(
        resolved.url, credential=resolved.credential, connection_timeout=5, read_timeout=20, retry_policy=retry
    )


def fetch_etags(service: BlobServiceClient, container: str, names: Sequence[str]) -> list[str]:
    """The current ETag of each chunk, in order; :class:`ChunkNotFound` for the first missing one.

    Other storage errors (``azure.core.exceptions.AzureError``) propagate after the SDK's retries.
    """
    etags = []
    for name in names:
        try:
            properties = service.get_blob_client(container, name).get_blob_properties()
        except ResourceNotFoundError:
            raise ChunkNotFound(container, name) from None
        etags.append(str(properties.etag))
    return etags


def _service_uri(settings: Settings, service: str) -> str:
    """The account URL of ``service`` (``table``, ``queue``) for an identity-based connection.

    Like the Functions host: ``SENSOR_STORAGE__<service>ServiceUri`` if set, else derived from the
    blob or account URI (``https://<account>.blob.core.windows.net`` -> ``.table.``).
    """
    env = os.environ
    explicit = env.get(f"SENSOR_STORAGE__{service}ServiceUri", "").strip()
    if explicit:
        return explicit
    for key in ("SENSOR_STORAGE__blobServiceUri", "SENSOR_STORAGE__serviceUri"):
        base = env.get(key, "").strip()
        if base:
            return base.replace(".blob.", f".{service}.", 1)
    raise SettingsError(
        f"SENSOR_STORAGE__{service}ServiceUri", "is not set (and no SENSOR_STORAGE__blobServiceUri to derive it from)"
    )


def _credential(settings: Settings) -> Any:
    from azure.identity import DefaultAzureCredential  # identity-based connections only

    client_id = os.environ.get("SENSOR_STORAGE__clientId", "").strip() or None
    return DefaultAzureCredential(managed_identity_client_id=client_id)


@functools.cache
def ledger(settings: Settings) -> Ledger:
    """The claim ledger of these settings, one client per process (no I/O until used; the table is
    created by the first claim that finds it missing).

    Short timeouts and a retry policy that fits a caller waiting (about 0.5 s, 1 s, 2 s), like the
    blob client above; a failure after that propagates as an ``AzureError`` (retried by the host or
    the next drain, never a lost event).
    """
    options: dict[str, Any] = {
        "connection_timeout": 5,
        "read_timeout": 20,
        "retry_total": 3,
        "retry_backoff_factor": 0.5,
    }
    if settings.sensor_storage:
        return open_ledger(settings.sensor_storage, table_name=settings.ledger_table, auto_create=True, **options)
    return open_ledger(
        account_url=_service_uri(settings, "table"),
        credential=_credential(settings),
        table_name=settings.ledger_table,
        auto_create=True,
        **options,
    )


def event_queue_clients(settings: Settings) -> EventQueue:
    """The chunk-event queue and its poison queue, built but not touched (no I/O): read-only tools
    (``sensorctl doctor``) use this; the app uses :func:`event_queue`, which also creates them."""
    from azure.storage.queue import QueueClient

    options: dict[str, Any] = {"connection_timeout": 5, "read_timeout": 20, "retry_total": 3}
    if settings.sensor_storage:
        main = QueueClient.from_connection_string(settings.sensor_storage, settings.events_queue, **options)
        poison = QueueClient.from_connection_string(settings.sensor_storage, settings.poison_queue, **options)
    else:
        url, credential = _service_uri(settings, "queue"), _credential(settings)
        main = QueueClient(url, settings.events_queue, credential=credential, **options)
        poison = QueueClient(url, settings.poison_queue, credential=credential, **options)
    return EventQueue(main, poison)


@functools.cache
def event_queue(settings: Settings) -> EventQueue:
    """The chunk-event queue and its poison queue (both created on first use), one client per process."""
    queue = event_queue_clients(settings)
    queue.ensure_queues()
    return queue
