"""Shared fixtures. Azurite is started by the tests themselves (pinned through npm)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from localdev.azurite import Azurite


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """One Azurite (blob, queue and table over HTTP, free ports) for the whole test session."""
    with Azurite() as emulator:
        yield emulator


@pytest.fixture
def azurite_connection_string(azurite: Azurite) -> str:
    return azurite.connection_string


@pytest.fixture
def unique_container() -> str:
    """A container name no other test uses (tests share one Azurite)."""
    return f"t-{uuid.uuid4().hex[:20]}"
