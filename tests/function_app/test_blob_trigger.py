"""The blob trigger through the real registered function, with a real BlobClient on an Azurite blob."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import azure.functions as func
import pytest
from azure.storage.blob import BlobClient, ContainerClient
from azurefunctions.extensions.base import Datum
from azurefunctions.extensions.bindings.blob import BlobClient as BindingBlobClient
from azurefunctions.extensions.bindings.blob import BlobClientConverter

from function_app.settings import SettingsError
from function_app.submission import SubmitRejected, SubmitUnavailable
from localdev.azurite import Azurite
from tests.fakes import FakeArgoServer, Fault
from tests.function_app.conftest import SECRET_TOKEN


@pytest.fixture
def trigger(indexed: dict[str, Callable[..., Any]], app_env: Callable[..., None]) -> Callable[[BlobClient], None]:
    return indexed["chunk_blob_trigger"]


@pytest.fixture
def blob(azurite: Azurite, container: ContainerClient) -> Callable[[str], BlobClient]:
    def make(name: str) -> BlobClient:
        return BlobClient.from_connection_string(azurite.connection_string, container.container_name, name)

    return make


def decisions(logs: str) -> list[dict[str, Any]]:
    return [json.loads(line.split("submit-decision ", 1)[1]) for line in logs.splitlines() if "submit-decision" in line]


def test_a_new_chunk_submits_one_workflow(
    trigger: Callable[[BlobClient], None],
    blob: Callable[[str], BlobClient],
    upload: Callable[..., str],
    fake_argo: FakeArgoServer,
    container: ContainerClient,
) -> None:
    upload("sensor-3/2026/c.csv")
    trigger(blob("sensor-3/2026/c.csv"))
    (created,) = fake_argo.created
    params = {p["name"]: p["value"] for p in created["spec"]["arguments"]["parameters"]}
    assert json.loads(json.loads(params["chunks"])) == ["sensor-3/2026/c.csv"]
    assert json.loads(params["container"]) == container.container_name
    assert created["metadata"]["labels"]["sensor-pipeline.io/trigger"] == "blob"


def test_the_worker_path_builds_the_client_from_a_reference(
    trigger: Callable[[BlobClient], None],
    upload: Callable[..., str],
    fake_argo: FakeArgoServer,
    container: ContainerClient,
) -> None:
    # What the worker does with the host's model_binding_data: only connection, container and name
    # cross over; the extension builds the BlobClient from the SENSOR_STORAGE app setting.
    upload("sensor-3/ref.csv")
    reference = SimpleNamespace(
        version="1.0",
        source="AzureStorageBlobs",
        content_type="application/json",
        content=json.dumps(
            {"Connection": "SENSOR_STORAGE", "ContainerName": container.container_name, "BlobName": "sensor-3/ref.csv"}
        ),
    )
    client = BlobClientConverter.decode(
        Datum(reference, "model_binding_data"), trigger_metadata={}, pytype=BindingBlobClient
    )
    assert isinstance(client, BlobClient)
    trigger(client)
    assert [w["metadata"]["labels"]["sensor-pipeline.io/trigger"] for w in fake_argo.created] == ["blob"]


def test_duplicate_events_give_one_workflow(
    trigger: Callable[[BlobClient], None],
    blob: Callable[[str], BlobClient],
    upload: Callable[..., str],
    fake_argo: FakeArgoServer,
    all_logs: Callable[[], str],
) -> None:
    upload("sensor-3/dup.csv")
    for _ in range(3):
        trigger(blob("sensor-3/dup.csv"))
    assert len(fake_argo.created) == 1
    assert [d["outcome"] for d in decisions(all_logs())] == ["submitted", "duplicate", "duplicate"]


def test_blob_and_http_paths_share_the_workflow(
    trigger: Callable[[BlobClient], None],
    blob: Callable[[str], BlobClient],
    upload: Callable[..., str],
    fake_argo: FakeArgoServer,
    indexed: dict[str, Callable[..., Any]],
) -> None:
    upload("sensor-3/both.csv")
    trigger(blob("sensor-3/both.csv"))
    req = func.HttpRequest("POST", "http://localhost/api/trigger", body=b'{"chunks": ["sensor-3/both.csv"]}')
    body = json.loads(indexed["manual_trigger"](req).get_body())
    assert body["duplicate"] is True and body["workflow"] == fake_argo.created[0]["metadata"]["name"]
    assert len(fake_argo.created) == 1


def test_an_overwritten_chunk_is_processed_again(
    trigger: Callable[[BlobClient], None],
    blob: Callable[[str], BlobClient],
    upload: Callable[..., str],
    fake_argo: FakeArgoServer,
) -> None:
    upload("sensor-3/v.csv", b"v1")
    trigger(blob("sensor-3/v.csv"))
    upload("sensor-3/v.csv", b"v2")
    trigger(blob("sensor-3/v.csv"))
    assert len({w["metadata"]["name"] for w in fake_argo.created}) == 2


def test_an_invalid_name_is_rejected_without_retry(
    trigger: Callable[[BlobClient], None],
    blob: Callable[[str], BlobClient],
    upload: Callable[..., str],
    fake_argo: FakeArgoServer,
    all_logs: Callable[[], str],
) -> None:
    upload("sensor 3/$(reboot).csv")
    trigger(blob("sensor 3/$(reboot).csv"))  # returns: a retry cannot make the name valid
    assert fake_argo.requests == []
    (decision,) = decisions(all_logs())
    assert decision["outcome"] == "rejected" and "not allowed" in decision["reason"]


def test_a_deleted_blob_is_skipped(
    trigger: Callable[[BlobClient], None],
    blob: Callable[[str], BlobClient],
    fake_argo: FakeArgoServer,
    all_logs: Callable[[], str],
) -> None:
    trigger(blob("sensor-3/gone.csv"))
    assert fake_argo.requests == []
    assert decisions(all_logs())[0]["outcome"] == "skipped"


def test_argo_unavailable_raises_so_the_host_retries(
    trigger: Callable[[BlobClient], None],
    blob: Callable[[str], BlobClient],
    upload: Callable[..., str],
    fake_argo: FakeArgoServer,
    app_env: Callable[..., None],
    all_logs: Callable[[], str],
) -> None:
    app_env(ARGO_MAX_ATTEMPTS="2")
    fake_argo.fail_next(Fault.unavailable(), Fault.reset())
    upload("sensor-3/u.csv")
    with pytest.raises(SubmitUnavailable):
        trigger(blob("sensor-3/u.csv"))
    assert fake_argo.created == []
    # The host's retry (same event again) then succeeds: nothing is lost.
    trigger(blob("sensor-3/u.csv"))
    assert len(fake_argo.created) == 1
    assert SECRET_TOKEN not in all_logs()


def test_argo_refusing_raises(
    trigger: Callable[[BlobClient], None],
    blob: Callable[[str], BlobClient],
    upload: Callable[..., str],
    app_env: Callable[..., None],
) -> None:
    app_env(ARGO_TOKEN="not-the-token")
    upload("sensor-3/r.csv")
    with pytest.raises(SubmitRejected) as info:
        trigger(blob("sensor-3/r.csv"))
    assert info.value.status == 401


def test_a_missing_setting_fails_the_invocation_naming_it(
    trigger: Callable[[BlobClient], None], blob: Callable[[str], BlobClient], app_env: Callable[..., None]
) -> None:
    app_env(ARGO_SERVER_URL=None)
    with pytest.raises(SettingsError, match="ARGO_SERVER_URL"):
        trigger(blob("sensor-3/x.csv"))
