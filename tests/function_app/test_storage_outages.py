"""The ledger or the queue unreachable: retried or refused with a clear answer, never a lost chunk.

The outage is real: a Table or Queue endpoint on a loopback port where nothing listens (connection
refused), with the SDK's retries off so the tests are quick. The rest (blobs, the fake Argo) works.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import azure.functions as func
import pytest
from azure.core.exceptions import AzureError
from azure.storage.blob import ContainerClient
from azure.storage.queue import QueueClient

from chunk_contract.ledger import open_ledger
from function_app.argo_backend import ArgoBackend
from function_app.blob_trigger import handle_blob
from function_app.drain import drain_once
from function_app.event_queue import EventQueue
from function_app.http_trigger import handle_trigger_request
from function_app.queue_messages import blob_created_message
from function_app.settings import Settings, load_settings
from function_app.storage import blob_service_client
from localdev.azurite import Azurite, free_port
from tests.fakes.argo_server import FakeArgoServer


def _dead_ledger(azurite: Azurite) -> object:
    conn = azurite.connection_string.replace(
        f"TableEndpoint={azurite.table_endpoint}", f"TableEndpoint=http://127.0.0.1:{free_port()}/devstoreaccount1"
    )
    return open_ledger(conn, table_name="deadledger", retry_total=0)


def _queue(azurite: Azurite, name: str, *, dead: bool = False) -> EventQueue:
    conn = azurite.connection_string
    if dead:
        conn = conn.replace(
            f"QueueEndpoint={azurite.queue_endpoint}", f"QueueEndpoint=http://127.0.0.1:{free_port()}/devstoreaccount1"
        )
    queue = EventQueue(
        QueueClient.from_connection_string(conn, name, retry_total=0),
        QueueClient.from_connection_string(conn, f"{name}-poison", retry_total=0),
    )
    if not dead:
        queue.ensure_queues()
    return queue


def test_http_trigger_answers_503_and_submits_nothing_when_the_ledger_is_down(
    settings: Settings, azurite: Azurite, upload: Callable[..., str], fake_argo: FakeArgoServer
) -> None:
    upload("sensor-1/a.csv")
    req = func.HttpRequest("POST", "/api/trigger", body=json.dumps({"chunks": ["sensor-1/a.csv"]}).encode())
    response = handle_trigger_request(req, settings=settings, ledger=_dead_ledger(azurite))
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert "claim ledger" in json.loads(response.get_body())["error"]
    assert fake_argo.submit_requests() == []  # nothing is submitted without a claim


def test_blob_trigger_raises_for_a_host_retry_when_the_ledger_is_down(
    settings: Settings,
    azurite: Azurite,
    container: ContainerClient,
    upload: Callable[..., str],
    fake_argo: FakeArgoServer,
) -> None:
    upload("sensor-1/a.csv")
    with pytest.raises(AzureError):  # the host retries, then poisons; the fallback still has the chunk
        handle_blob(container.get_blob_client("sensor-1/a.csv"), settings=settings, ledger=_dead_ledger(azurite))
    assert fake_argo.submit_requests() == []


def test_blob_trigger_in_coalesce_mode_raises_when_the_queue_is_down(
    base_env: dict[str, str], azurite: Azurite, container: ContainerClient, upload: Callable[..., str]
) -> None:
    settings = load_settings({**base_env, "SUBMIT_MODE": "coalesce"})
    upload("sensor-1/a.csv")
    with pytest.raises(AzureError):
        handle_blob(
            container.get_blob_client("sensor-1/a.csv"), settings=settings, queue=_queue(azurite, "q-down", dead=True)
        )


def test_a_drain_with_the_ledger_down_loses_no_message(
    base_env: dict[str, str],
    azurite: Azurite,
    container: ContainerClient,
    upload: Callable[..., str],
    fake_argo: FakeArgoServer,
) -> None:
    settings = load_settings(
        {**base_env, "SUBMIT_MODE": "coalesce", "COALESCE_VISIBILITY_SECONDS": "300", "COALESCE_DEADLINE_SECONDS": "5"}
    )
    queue = _queue(azurite, f"q-{container.container_name[2:18]}")
    etag = upload("sensor-1/a.csv")
    queue.send(
        blob_created_message(
            container=settings.sensor_container, name="sensor-1/a.csv", etag=etag, event_time=datetime.now(UTC)
        )
    )
    with pytest.raises(AzureError):
        drain_once(
            settings,
            queue=queue,
            ledger=_dead_ledger(azurite),  # type: ignore[arg-type]
            backend=ArgoBackend(settings),
            etag_of=lambda c, n: str(blob_service_client(settings).get_blob_client(c, n).get_blob_properties().etag),
        )
    assert fake_argo.submit_requests() == []
    assert queue.depth() == 1 and queue.poison_depth() == 0  # hidden until its visibility ends, not deleted


def test_argo_refusing_connections_is_known_to_have_created_nothing(base_env: dict[str, str]) -> None:
    """Connection refused: no byte reached a server, so the claim may be released for the fallback."""
    from function_app.submission import SubmitUnavailable, decide

    settings = load_settings(
        {**base_env, "ARGO_SERVER_URL": f"http://127.0.0.1:{free_port()}", "ARGO_RETRY_SECONDS": "1"}
    )
    submission = decide(
        trigger="blob",
        container=settings.sensor_container,
        chunks=["sensor-1/a.csv"],
        etags=['"0x1"'],
        force=False,
        settings=settings,
        request_id="r1",
    )
    assert not isinstance(submission, type(None))
    with pytest.raises(SubmitUnavailable) as info:
        ArgoBackend(settings, sleep=lambda s: None).submit(submission)  # type: ignore[arg-type]
    assert info.value.maybe_created is False


def test_the_blob_trigger_reads_through_the_shared_client_not_the_hosts_per_blob_one(
    settings: Settings, container: ContainerClient, upload: Callable[..., str], fake_argo: FakeArgoServer
) -> None:
    """Worker 4.34 caches the BlobClient it builds per blob name, and a request through it keeps a
    socket open for the worker's lifetime: the app uses it for the container and name only."""

    class HostClient:  # what the host hands over: only the names may be used
        container_name = container.container_name
        blob_name = "sensor-1/a.csv"

        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"the per-blob client was used: {name}")

    upload("sensor-1/a.csv")
    result = handle_blob(
        HostClient(),
        settings=settings,
        ledger=open_ledger(settings.sensor_storage, table_name="sharedclient", auto_create=True),
    )
    assert result is not None and not result.duplicate
    assert len(fake_argo.submit_requests()) == 1
