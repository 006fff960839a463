"""Thin Blob Storage I/O for the flow: connect, download, one listed blob. The sweep's listings are in sweep.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobProperties, BlobServiceClient
from fallback import ChunkListing
from flow_settings import FlowSettings

from chunk_contract.records import blob_service_client

__all__ = [
    "DownloadedChunk",
    "chunk_listing",
    "connect",
    "download_chunk",
    "ensure_container",
]


def connect(settings: FlowSettings) -> BlobServiceClient:
    """The Blob service client for ``settings`` (connection string, else account URL + identity)."""
    return blob_service_client(settings.storage_connection_string, settings.storage_account_url)


def ensure_container(service: BlobServiceClient, name: str) -> None:
    """Create container ``name`` if it does not exist (first run on a fresh account)."""
    try:
        service.create_container(name)
    except ResourceExistsError:
        pass


def chunk_listing(blob: BlobProperties) -> ChunkListing:
    """A listed blob as the fallback sees it: name, ETag, last-modified time, size in bytes."""
    return ChunkListing(name=blob.name, etag=blob.etag, last_modified=blob.last_modified, size=blob.size or 0)


@dataclass(frozen=True)
class DownloadedChunk:
    """A chunk streamed to a local file, with the ETag of exactly the content downloaded."""

    name: str
    path: Path
    etag: str
    size: int
    last_modified: datetime | None = None


def download_chunk(
    service: BlobServiceClient, container: str, name: str, dest_dir: Path, index: int
) -> DownloadedChunk:
    """Stream blob ``name`` into ``dest_dir`` without holding it in memory.

    The ETag is the one of the downloaded content (a single ranged GET sequence pinned to it by
    the SDK), so the result recorded for it is never attributed to a newer overwrite.

    Raises
    ------
    azure.core.exceptions.ResourceNotFoundError
        If the chunk does not exist (any more).
    """
    # The local file keeps the chunk's extension: the processing library detects the format by it.
    path = dest_dir / f"chunk-{index:06d}{Path(name).suffix}"
    downloader = service.get_blob_client(container, name).download_blob()
    with open(path, "wb") as out:
        size = downloader.readinto(out)
    props = downloader.properties
    return DownloadedChunk(name=name, path=path, etag=props.etag, size=size, last_modified=props.last_modified)
