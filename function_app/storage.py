"""Reading chunk ETags from Blob Storage for the HTTP trigger (the blob trigger gets its client from the host).

The ETag makes the workflow name version-specific, and reading it is also the existence check
(a missing chunk is a 404 to the caller). The client is built once per process from the same
``SENSOR_STORAGE`` connection the blob trigger uses: a connection string, or managed identity
through ``SENSOR_STORAGE__blobServiceUri`` (resolved by the binding extension's own factory, so
both triggers authenticate the same way).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ExponentialRetry

from function_app.settings import Settings

__all__ = ["ChunkNotFound", "blob_service_client", "fetch_etags"]


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
