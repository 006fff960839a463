"""processing/results.py: record names, ETag up-to-dateness, chunk state, on a real Blob service (Azurite)."""

from __future__ import annotations

import json

import pytest
from azure.storage.blob import BlobServiceClient

from chunk_contract import records as results
from chunk_contract.records import (
    ChunkNotFound,
    RecordNameTooLong,
    RunInfo,
    chunk_of_record,
    decide_state,
    is_up_to_date,
    normalize_etag,
    read_chunk_state,
    write_error,
    write_result,
)
from localdev.azurite import Azurite

RUN = RunInfo(flow_name="SensorProcessingFlow", run_id="argo-sensorprocessingflow-abc12")


def test_names_round_trip() -> None:
    for chunk in ["s1/a.csv", "x.npy", "a.features.json"]:
        assert chunk_of_record(results.result_blob_name(chunk)) == (chunk, "result")
        assert chunk_of_record(results.error_blob_name(chunk)) == (chunk, "error")
    assert chunk_of_record("s1/a.csv") is None
    assert chunk_of_record(".error.json") is None


def test_etags_compare_with_or_without_quotes() -> None:
    assert normalize_etag('"0x8DC"') == normalize_etag("0x8DC") == normalize_etag('W/"0x8DC"') == "0x8DC"
    assert is_up_to_date({"chunk_etag": "0x8DC"}, '"0x8DC"')
    assert not is_up_to_date({"chunk_etag": "0x8DC"}, '"0x8DD"')
    assert not is_up_to_date({}, '"0x8DC"')
    assert not is_up_to_date(None, '"0x8DC"')
    assert not is_up_to_date({"chunk_etag": ""}, "")


def test_decide_state() -> None:
    fresh = {"chunk_etag": "e2", "run_id": "r2", "run_pathspec": "F/r2"}
    stale = {"chunk_etag": "e1", "run_id": "r1"}
    assert decide_state("c", '"e2"', fresh, None).status == "processed"
    assert decide_state("c", '"e2"', fresh, None).run_pathspec == "F/r2"
    failed = decide_state("c", '"e2"', stale, fresh, reason="bad")
    assert (failed.status, failed.reason, failed.stale_record, failed.error_blob) == (
        "failed",
        "bad",
        True,
        "c.error.json",
    )
    pending = decide_state("c", '"e2"', stale, stale)
    assert (pending.status, pending.stale_record, pending.result_blob) == ("pending", True, None)
    assert decide_state("c", '"e2"', None, None).stale_record is False


def test_metadata_keys_are_csharp_identifiers() -> None:
    keys = [v for k, v in vars(results).items() if k.startswith("META_")]
    assert keys and all(k.isidentifier() and k.isascii() and k == k.lower() for k in keys)


def test_write_and_read_state_on_azurite(azurite: Azurite, unique_container: str) -> None:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    chunks = service.create_container(unique_container)
    out = service.create_container(unique_container + "-out")
    chunk = "sensor-1/2026/c.csv"
    with pytest.raises(ChunkNotFound, match="does not exist"):
        read_chunk_state(service, chunk, chunk_container=unique_container, results_container=out.container_name)

    etag1 = chunks.get_blob_client(chunk).upload_blob(b"t,v\n0,1\n")["etag"]
    state = read_chunk_state(service, chunk, chunk_container=unique_container, results_container=out.container_name)
    assert state.status == "pending"

    write_error(
        out, chunk, "line 2: bad", chunk_container=unique_container, chunk_etag=etag1, step="preprocess", run=RUN
    )
    state = read_chunk_state(service, chunk, chunk_container=unique_container, results_container=out.container_name)
    assert (state.status, state.reason, state.run_id) == ("failed", "line 2: bad", RUN.run_id)
    assert state.error_blob == results.error_blob_name(chunk)
    body = json.loads(out.download_blob(state.error_blob).readall())
    assert body["chunk"] == chunk and body["step"] == "preprocess" and body["run_pathspec"] == RUN.pathspec

    # The chunk is overwritten: the error record is stale, the chunk pending again.
    etag2 = chunks.get_blob_client(chunk).upload_blob(b"t,v\n0,2\n", overwrite=True)["etag"]
    state = read_chunk_state(service, chunk, chunk_container=unique_container, results_container=out.container_name)
    assert (state.status, state.stale_record) == ("pending", True)

    record = {"chunk": chunk, "features": [1.0, 2.5]}
    for _ in range(2):  # idempotent
        name = write_result(out, chunk, record, chunk_container=unique_container, chunk_etag=etag2, run=RUN)
    state = read_chunk_state(service, chunk, chunk_container=unique_container, results_container=out.container_name)
    assert (state.status, state.result_blob, state.run_pathspec) == ("processed", name, RUN.pathspec)
    assert json.loads(out.download_blob(name).readall()) == record
    meta = out.get_blob_client(name).get_blob_properties().metadata
    assert meta["chunk_etag"] == normalize_etag(etag2) and meta["record_kind"] == "result"
    # The success removed the error record of the earlier content.
    assert [b.name for b in out.list_blobs()] == [name]


def test_record_name_limit(azurite: Azurite, unique_container: str) -> None:
    out = BlobServiceClient.from_connection_string(azurite.connection_string).create_container(unique_container)
    with pytest.raises(RecordNameTooLong, match="1024"):
        write_error(out, "a" * 1020, "x", chunk_container="c", chunk_etag="e", step="start", run=RUN)


def test_connection_errors_never_echo_the_connection_string() -> None:
    with pytest.raises(ValueError, match="SENSOR_STORAGE") as info:
        results.blob_service_client("AccountKey=c2VjcmV0;garbage")
    assert "c2VjcmV0" not in str(info.value)
    with pytest.raises(ValueError, match="no storage connection configured"):
        results.blob_service_client(None, None)
