"""The Azurite launcher gives a real, working Blob service with the features the project relies on."""

from __future__ import annotations

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
from azure.storage.blob import BlobServiceClient

from localdev.azurite import Azurite


def test_blob_round_trip_with_etag_conditions(azurite: Azurite, unique_container: str) -> None:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.create_container(unique_container)
    blob = container.get_blob_client("sensor-1/chunk.csv")
    first = blob.upload_blob(b"timestamp,value\n0,1\n", metadata={"k": "v"})
    with pytest.raises(ResourceExistsError):
        blob.upload_blob(b"other", overwrite=False)
    blob.upload_blob(b"timestamp,value\n0,2\n", overwrite=True)
    with pytest.raises(ResourceModifiedError):
        blob.upload_blob(b"x", overwrite=True, etag=first["etag"], match_condition=MatchConditions.IfNotModified)
    assert blob.download_blob().readall() == b"timestamp,value\n0,2\n"


def test_stop_ends_the_process() -> None:
    emulator = Azurite().start()
    proc = emulator._proc
    assert proc is not None and proc.poll() is None
    emulator.stop()
    assert proc.poll() is not None
