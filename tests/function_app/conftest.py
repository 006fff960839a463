"""Fixtures for the function app: the fake Argo Server, settings, chunks on Azurite, the indexed app."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from function_app.settings import Settings, get_settings, load_settings
from function_app.storage import blob_service_client
from function_app.submission import get_backend
from localdev.azurite import Azurite
from tests.fakes import FakeArgoServer

# A token that must never show up in a log, a response or an exception message.
SECRET_TOKEN = "s3cr3t-argo-token-do-not-log"


def _clear_caches() -> None:
    get_settings.cache_clear()
    get_backend.cache_clear()
    blob_service_client.cache_clear()


@pytest.fixture
def fake_argo() -> Iterator[FakeArgoServer]:
    with FakeArgoServer(token=SECRET_TOKEN) as fake:
        yield fake


@pytest.fixture
def fake_argo_tls() -> Iterator[FakeArgoServer]:
    with FakeArgoServer(token=SECRET_TOKEN, tls=True) as fake:
        yield fake


@pytest.fixture
def container(azurite: Azurite, unique_container: str) -> ContainerClient:
    """A fresh container on the session's Azurite."""
    return BlobServiceClient.from_connection_string(azurite.connection_string).create_container(unique_container)


@pytest.fixture
def base_env(azurite: Azurite, container: ContainerClient, fake_argo: FakeArgoServer) -> dict[str, str]:
    """The environment of a correctly configured app, pointing at Azurite and the fake Argo (HTTP)."""
    return {
        "SENSOR_STORAGE": azurite.connection_string,
        "SENSOR_CONTAINER": container.container_name,
        "ARGO_SERVER_URL": fake_argo.url,
        "ARGO_TOKEN": SECRET_TOKEN,
        "ARGO_NAMESPACE": fake_argo.namespace,
        "ARGO_RETRY_SECONDS": "5",
        "ARGO_READ_TIMEOUT": "2",
    }


@pytest.fixture
def settings(base_env: dict[str, str]) -> Settings:
    return load_settings(base_env)


@pytest.fixture
def app_env(base_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Put ``base_env`` (plus overrides; None removes) into os.environ, as the host would, with fresh caches."""

    def apply(**overrides: str | None) -> None:
        env = {**base_env, **overrides}
        for key in [*env, "BLOB_TRIGGER_SOURCE", "SUBMIT_BACKEND", "ARGO_CA_BUNDLE", "ARGO_INSECURE_SKIP_VERIFY"]:
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            if value is not None:
                monkeypatch.setenv(key, value)
        _clear_caches()

    apply()
    yield apply
    _clear_caches()


@pytest.fixture
def upload(container: ContainerClient) -> Callable[..., str]:
    """Upload a chunk; returns its ETag as the SDK reports it (with quotes)."""

    def put(name: str, data: bytes = b"timestamp,value\n0,1.0\n") -> str:
        result: dict[str, Any] = container.get_blob_client(name).upload_blob(data, overwrite=True)
        return str(result["etag"])

    return put


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Callable[[], str]:
    """Everything logged at DEBUG and above, as text (to check that no secret leaks)."""
    caplog.set_level(logging.DEBUG)
    return lambda: "\n".join(f"{r.name} {r.levelname} {r.getMessage()}" for r in caplog.records)


@pytest.fixture(scope="session")
def indexed() -> dict[str, Callable[..., Any]]:
    """The app's user functions by name, from the real FunctionApp (get_functions: once per session)."""
    import function_app

    return {str(f.get_function_name()): f.get_user_function() for f in function_app.app.get_functions()}
