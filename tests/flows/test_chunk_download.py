"""flows/chunk_store.download_chunk against Azurite, with the chunk overwritten WHILE it is read.

The ETag the flow records with a result must be the ETag of the bytes it processed: a result
attributed to a newer version would mark that version processed although nobody read it. The
tests overwrite the blob from another thread at chosen moments of the download (through a thin
wrapper around the SDK's downloader and the stream it writes to), then compare the local file
and the returned ETag with each upload.

``test_a_head_after_the_download_would_be_caught`` runs the same scenario against the mutant the
mutation pass found (download, then HEAD for the ETag) and checks the scenario tells them apart.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobServiceClient

from localdev.azurite import Azurite

FLOWS_DIR = Path(__file__).resolve().parents[2] / "flows"
if str(FLOWS_DIR) not in sys.path:  # as tests/flows/conftest.py: appended, `processing` stays the package
    sys.path.append(str(FLOWS_DIR))

import chunk_store  # noqa: E402  (a top-level module of flows/, like the flow imports it)

MIB = 1024 * 1024
CHUNK = 256 * 1024  # the SDK's range size here: a 1 MiB blob is read in four GETs
V1 = b"version-1 " * (MIB // 10) + b"v1-end"
V2 = b"VERSION-2 " * (MIB // 10) + b"v2-end!!"  # another size too
NAME = "sensor-9/2026/12/01/big.csv"

Download = Callable[..., Any]


class _WriteSpy:
    """The stream the SDK writes the blob into: counts bytes and calls ``on_write(total)``."""

    def __init__(self, stream: Any, on_write: Callable[[int], None]) -> None:
        self._stream, self._on_write, self.written = stream, on_write, 0

    def write(self, data: bytes) -> int:
        count: int = self._stream.write(data)
        self.written += count
        self._on_write(self.written)
        return count

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _DownloaderSpy:
    def __init__(self, real: Any, on_write: Callable[[int], None]) -> None:
        self._real, self._on_write = real, on_write

    def readinto(self, stream: Any) -> int:
        count: int = self._real.readinto(_WriteSpy(stream, self._on_write))
        return count

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class _BlobClientSpy:
    def __init__(self, real: Any, spy: _ServiceSpy) -> None:
        self._real, self._spy = real, spy

    def download_blob(self, *args: Any, **kwargs: Any) -> _DownloaderSpy:
        downloader = self._real.download_blob(*args, **kwargs)  # the first range is fetched here
        self._spy.after_first_get()
        return _DownloaderSpy(downloader, self._spy.on_write)

    def __getattr__(self, name: str) -> Any:  # get_blob_properties & co. go to the real client
        return getattr(self._real, name)


class _ServiceSpy:
    """A BlobServiceClient whose blob downloads call back at chosen moments."""

    def __init__(self, real: BlobServiceClient) -> None:
        self._real = real
        self.after_first_get: Callable[[], None] = lambda: None
        self.on_write: Callable[[int], None] = lambda total: None

    def get_blob_client(self, container: str, blob: str) -> _BlobClientSpy:
        return _BlobClientSpy(self._real.get_blob_client(container, blob), self)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.fixture
def chunks(azurite: Azurite, unique_container: str) -> tuple[_ServiceSpy, BlobServiceClient, str]:
    """(the spied reader client, a separate writer client, the container), V1 uploaded."""
    reader = BlobServiceClient.from_connection_string(
        azurite.connection_string, max_single_get_size=CHUNK, max_chunk_get_size=CHUNK
    )
    writer = BlobServiceClient.from_connection_string(azurite.connection_string)
    writer.create_container(unique_container)
    return _ServiceSpy(reader), writer, unique_container


def _overwrite_from_another_thread(writer: BlobServiceClient, container: str) -> str:
    """Upload V2 over the chunk from another thread (waited for); its ETag."""
    result: dict[str, Any] = {}

    def put() -> None:
        result.update(writer.get_blob_client(container, NAME).upload_blob(V2, overwrite=True))

    thread = threading.Thread(target=put)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive() and "etag" in result
    return str(result["etag"])


def _upload_v1(writer: BlobServiceClient, container: str) -> str:
    return str(writer.get_blob_client(container, NAME).upload_blob(V1, overwrite=True)["etag"])


def _overwritten_after_the_last_byte(
    download: Download, chunks: tuple[_ServiceSpy, BlobServiceClient, str], tmp_path: Path
) -> tuple[Any, bytes, str, str]:
    """Download with V2 uploaded once every byte of V1 is in the file, before the call returns.

    Returns (the result, the file's bytes, V1's ETag, V2's ETag).
    """
    spy, writer, container = chunks
    etag1 = _upload_v1(writer, container)
    etags: list[str] = []

    def on_write(total: int) -> None:
        if total == len(V1) and not etags:
            etags.append(_overwrite_from_another_thread(writer, container))

    spy.on_write = on_write
    result = download(spy, container, NAME, tmp_path, 0)
    assert etags, "the overwrite never ran: the download did not write the whole first version"
    return result, result.path.read_bytes(), etag1, etags[0]


def test_the_returned_etag_is_the_one_of_the_bytes_in_the_file(
    chunks: tuple[_ServiceSpy, BlobServiceClient, str], tmp_path: Path
) -> None:
    result, content, etag1, etag2 = _overwritten_after_the_last_byte(chunk_store.download_chunk, chunks, tmp_path)
    _, writer, container = chunks
    assert etag1 != etag2
    assert writer.get_blob_client(container, NAME).get_blob_properties().etag == etag2  # V2 is current now
    assert content == V1 and result.size == len(V1)  # the file holds the first version, whole
    assert result.etag == etag1  # ... and so does the ETag recorded for it
    assert result.name == NAME and result.path.suffix == ".csv"


def test_an_overwrite_right_after_the_first_get_still_yields_the_first_version(
    chunks: tuple[_ServiceSpy, BlobServiceClient, str], tmp_path: Path
) -> None:
    # download_blob() fetched the first range and the ETag; the blob changes before any byte is
    # written. Either the later ranges (pinned with If-Match) fail, or file and ETag agree.
    spy, writer, container = chunks
    etag1 = _upload_v1(writer, container)

    def overwrite() -> None:
        _overwrite_from_another_thread(writer, container)

    spy.after_first_get = overwrite
    try:
        result = chunk_store.download_chunk(cast(BlobServiceClient, spy), container, NAME, tmp_path, 1)
    except HttpResponseError as exc:
        assert exc.status_code == 412, exc  # the SDK's If-Match on the later ranges: nothing recorded
        return
    pytest.fail(f"a download spanning an overwrite returned {result.etag} (V1 was {etag1}) instead of failing")


@pytest.mark.parametrize("after_bytes", [CHUNK, 2 * CHUNK + 1])
def test_an_overwrite_in_the_middle_never_returns_a_mixed_file(
    chunks: tuple[_ServiceSpy, BlobServiceClient, str], tmp_path: Path, after_bytes: int
) -> None:
    spy, writer, container = chunks
    etag1 = _upload_v1(writer, container)
    done: list[str] = []

    def on_write(total: int) -> None:
        if total >= after_bytes and not done:
            done.append(_overwrite_from_another_thread(writer, container))

    spy.on_write = on_write
    try:
        result = chunk_store.download_chunk(cast(BlobServiceClient, spy), container, NAME, tmp_path, 2)
    except HttpResponseError as exc:
        assert exc.status_code == 412, exc
        assert done  # the overwrite happened mid-stream and the next range refused to mix versions
        return
    content = result.path.read_bytes()
    assert (content, result.etag) in ((V1, etag1), (V2, done[0])), "file and ETag disagree"


def test_a_head_after_the_download_would_be_caught(
    chunks: tuple[_ServiceSpy, BlobServiceClient, str], tmp_path: Path
) -> None:
    """The mutation-pass mutant: same download, ETag from a HEAD afterwards. The scenario must fail it."""

    def head_after_download(service: Any, container: str, name: str, dest_dir: Path, index: int) -> Any:
        path = dest_dir / f"chunk-{index:06d}{Path(name).suffix}"
        with open(path, "wb") as out:
            size = service.get_blob_client(container, name).download_blob().readinto(out)
        etag = service.get_blob_client(container, name).get_blob_properties().etag
        return chunk_store.DownloadedChunk(name=name, path=path, etag=etag, size=size)

    result, content, etag1, etag2 = _overwritten_after_the_last_byte(head_after_download, chunks, tmp_path)
    assert content == V1
    assert result.etag == etag2 != etag1  # the mutant attributes V1's bytes to V2: the check above catches it
