"""Fixtures of the end-to-end tests: an isolated Metaflow datastore and per-test containers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from function_app.settings import get_settings
from function_app.submission import get_backend
from localdev.azurite import Azurite


@pytest.fixture
def e2e_env(azurite: Azurite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Environment of one end-to-end test, also set in ``os.environ`` (the flow runs read it).

    Chunk and results containers are fresh; Metaflow writes under ``tmp_path``; the fallback's grace
    period is 0 so a sweep right after the events sees every chunk.
    """
    env = {
        "SENSOR_STORAGE": azurite.connection_string,
        "SENSOR_CONTAINER": f"c-{uuid.uuid4().hex[:20]}",
        "SENSOR_RESULTS_CONTAINER": f"r-{uuid.uuid4().hex[:20]}",
        "SENSOR_FALLBACK_GRACE_SECONDS": "0",
        "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(tmp_path / "metaflow"),
        "METAFLOW_CARD_LOCALROOT": str(tmp_path / "metaflow" / ".metaflow"),
        "METAFLOW_USER": "e2e",
        "USERNAME": "e2e",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    service.create_container(env["SENSOR_CONTAINER"])
    get_settings.cache_clear()
    get_backend.cache_clear()
    yield env
    get_settings.cache_clear()
    get_backend.cache_clear()
