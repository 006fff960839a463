"""A small, pure model of how the Functions host retries a failing blob-trigger invocation.

The real host (Azure Functions runtime 4.x, blob extension 5.x) calls the function again when it
raises, up to ``extensions.blobs.poisonBlobThreshold`` attempts in total (default 5), and then puts
a message naming the blob on the ``webjobs-blobtrigger-poison`` queue and gives up. ``@app.retry``
does not apply to blob triggers. The demo and the fault-injection test both use this model, so the
numbers they print (retried, poisoned) mean the same thing as in production.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "DEFAULT_POISON_THRESHOLD",
    "POISON_QUEUE",
    "InvocationOutcome",
    "invoke_with_host_retries",
    "load_poison_threshold",
    "next_action",
    "poison_message",
    "poison_threshold",
]

DEFAULT_POISON_THRESHOLD = 5
POISON_QUEUE = "webjobs-blobtrigger-poison"
HOST_JSON = Path(__file__).resolve().parent.parent / "host.json"


def poison_threshold(host_json: Mapping[str, Any]) -> int:
    """``extensions.blobs.poisonBlobThreshold`` of a parsed ``host.json``, or the host's default 5.

    Raises
    ------
    ValueError
        If the setting is present but not a positive integer.
    """
    value = host_json.get("extensions", {}).get("blobs", {}).get("poisonBlobThreshold", DEFAULT_POISON_THRESHOLD)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"host.json extensions.blobs.poisonBlobThreshold must be a positive integer, got {value!r}")
    return value


def load_poison_threshold(path: Path = HOST_JSON) -> int:
    """The poison threshold the app would run with: read from its ``host.json`` when there is one."""
    if not path.exists():
        return DEFAULT_POISON_THRESHOLD
    try:
        parsed = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    return poison_threshold(parsed)


def next_action(attempt: int, succeeded: bool, threshold: int) -> Literal["done", "retry", "poison"]:
    """What the host does after attempt number ``attempt`` (1-based) of one blob.

    >>> next_action(1, False, 5), next_action(5, False, 5), next_action(2, True, 5)
    ('retry', 'poison', 'done')
    """
    if succeeded:
        return "done"
    return "retry" if attempt < threshold else "poison"


@dataclass(frozen=True)
class InvocationOutcome:
    """How the host's handling of one delivery ended.

    ``attempts`` counts calls of the function; ``errors`` holds one line per failed attempt.
    """

    attempts: int
    poisoned: bool
    errors: tuple[str, ...]

    @property
    def succeeded(self) -> bool:
        return not self.poisoned

    @property
    def retried(self) -> bool:
        return self.attempts > 1


def invoke_with_host_retries(call: Callable[[], object], threshold: int) -> InvocationOutcome:
    """Call ``call`` the way the host calls a blob-trigger function: again on any exception, up to ``threshold``.

    The exception of each failed attempt is kept (type and message) for the report; it is not
    re-raised, because the host does not re-raise either: after the last attempt the blob is poisoned.
    """
    if threshold < 1:
        raise ValueError(f"threshold must be at least 1, got {threshold}")
    errors: list[str] = []
    attempt = 0
    while True:
        attempt += 1
        try:
            call()
            ok = True
        except Exception as exc:  # the host catches everything the function raises
            errors.append(f"{type(exc).__name__}: {exc}")
            ok = False
        action = next_action(attempt, ok, threshold)
        if action != "retry":
            return InvocationOutcome(attempts=attempt, poisoned=action == "poison", errors=tuple(errors))


def poison_message(function_name: str, container: str, blob_name: str, etag: str) -> str:
    """The JSON message the host puts on the poison queue (same fields as the WebJobs SDK's)."""
    return json.dumps(
        {
            "Type": "BlobTrigger",
            "FunctionId": f"Host.Functions.{function_name}",
            "BlobType": "BlockBlob",
            "ContainerName": container,
            "BlobName": blob_name,
            "ETag": etag,
        }
    )
