"""The host-retry model: attempts up to poisonBlobThreshold, then poison; threshold from host.json."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from localdev.host_retry import (
    DEFAULT_POISON_THRESHOLD,
    invoke_with_host_retries,
    load_poison_threshold,
    next_action,
    poison_message,
    poison_threshold,
)


def test_next_action() -> None:
    assert [next_action(a, False, 3) for a in (1, 2, 3)] == ["retry", "retry", "poison"]
    assert next_action(3, True, 3) == "done"


def _flaky(failures: int) -> tuple[list[int], Callable[[], None]]:
    calls: list[int] = []

    def call() -> None:
        calls.append(1)
        if len(calls) <= failures:
            raise ConnectionError(f"attempt {len(calls)} failed")

    return calls, call


def test_success_after_retries_is_not_poisoned() -> None:
    calls, call = _flaky(2)
    outcome = invoke_with_host_retries(call, 5)
    assert len(calls) == 3 and outcome.attempts == 3 and outcome.succeeded and outcome.retried
    assert outcome.errors == ("ConnectionError: attempt 1 failed", "ConnectionError: attempt 2 failed")


def test_failure_at_every_attempt_poisons_after_the_threshold() -> None:
    calls, call = _flaky(99)
    outcome = invoke_with_host_retries(call, 5)
    assert len(calls) == 5 and outcome.poisoned and len(outcome.errors) == 5


def test_threshold_from_host_json(tmp_path: Path) -> None:
    host = tmp_path / "host.json"
    assert load_poison_threshold(host) == DEFAULT_POISON_THRESHOLD == 5  # no host.json: the host's default
    host.write_text(json.dumps({"version": "2.0", "extensions": {"blobs": {"poisonBlobThreshold": 3}}}))
    assert load_poison_threshold(host) == 3
    host.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_poison_threshold(host)


@pytest.mark.parametrize("bad", [0, -1, "5", True, 2.5])
def test_bad_threshold_names_the_setting(bad: object) -> None:
    with pytest.raises(ValueError, match="poisonBlobThreshold must be a positive integer"):
        poison_threshold({"extensions": {"blobs": {"poisonBlobThreshold": bad}}})


def test_poison_message_names_the_blob() -> None:
    msg = json.loads(poison_message("chunk_blob_trigger", "sensor-data", "s/a.csv", "0x1"))
    assert msg == {
        "Type": "BlobTrigger",
        "FunctionId": "Host.Functions.chunk_blob_trigger",
        "BlobType": "BlockBlob",
        "ContainerName": "sensor-data",
        "BlobName": "s/a.csv",
        "ETag": "0x1",
    }
