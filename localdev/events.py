"""``Microsoft.Storage.BlobCreated`` events and at-least-once delivery plans (pure, no I/O).

Event Grid delivers every event *at least once*, in no guaranteed order, and one upload can produce
several events. The local event source reproduces that on purpose: :func:`plan_deliveries` turns a
list of events into a delivery sequence with chosen duplicates and reordering, so the function app
is tested against what Event Grid actually does, not against a polite single delivery.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote

__all__ = [
    "BLOB_CREATED",
    "Delivery",
    "DeliveryPlan",
    "InvalidEvent",
    "blob_created_event",
    "blob_location",
    "plan_deliveries",
]

BLOB_CREATED = "Microsoft.Storage.BlobCreated"
_SUBJECT_PREFIX = "/blobServices/default/containers/"


class InvalidEvent(ValueError):
    """An event is not a ``BlobCreated`` event this source understands; the message names the field."""


def blob_created_event(
    *,
    account_url: str,
    container: str,
    name: str,
    etag: str,
    content_length: int,
    sequencer: int,
    event_time: datetime,
    api: str = "PutBlob",
    event_id: str | None = None,
) -> dict[str, Any]:
    """One event in the Event Grid schema, shaped like the ones Azure Storage publishes.

    Parameters
    ----------
    account_url : str
        Blob endpoint of the account, e.g. ``http://127.0.0.1:10000/devstoreaccount1``.
    container, name : str
        Where the blob is.
    etag : str
        The blob's ETag at creation (``data.eTag``).
    content_length : int
        Size in bytes (``data.contentLength``).
    sequencer : int
        Monotonic per-blob ordering key; rendered as Azure does, a fixed-width hex string.
    event_time : datetime
        When the blob was written (timezone-aware).
    api : str
        The storage operation: ``PutBlob``, ``PutBlockList``, ``FlushWithClose`` or ``CopyBlob``.
    event_id : str, optional
        Event id; a fresh UUID when not given. Duplicated deliveries keep the same id.
    """
    url = f"{account_url.rstrip('/')}/{container}/{quote(name)}"
    return {
        "topic": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/local"
        "/providers/Microsoft.Storage/storageAccounts/devstoreaccount1",
        "subject": f"{_SUBJECT_PREFIX}{container}/blobs/{name}",
        "eventType": BLOB_CREATED,
        "eventTime": event_time.isoformat(),
        "id": event_id or str(uuid.uuid4()),
        "data": {
            "api": api,
            "clientRequestId": str(uuid.uuid4()),
            "requestId": str(uuid.uuid4()),
            "eTag": etag,
            "contentType": "text/csv",
            "contentLength": content_length,
            "blobType": "BlockBlob",
            "url": url,
            "sequencer": f"{sequencer:032x}",
            "storageDiagnostics": {"batchId": str(uuid.uuid4())},
        },
        "dataVersion": "",
        "metadataVersion": "1",
    }


def blob_location(event: dict[str, Any]) -> tuple[str, str]:
    """``(container, blob name)`` of a ``BlobCreated`` event, read from its ``subject``.

    This is what the Functions host does before it binds the blob for the trigger.

    Raises
    ------
    InvalidEvent
        If the event type is not ``BlobCreated`` or the subject is not a blob subject.
    """
    if event.get("eventType") != BLOB_CREATED:
        raise InvalidEvent(f"eventType must be {BLOB_CREATED!r}, got {event.get('eventType')!r}")
    subject = event.get("subject")
    if not isinstance(subject, str) or not subject.startswith(_SUBJECT_PREFIX) or "/blobs/" not in subject:
        raise InvalidEvent(f"subject must look like '{_SUBJECT_PREFIX}<container>/blobs/<name>', got {subject!r}")
    container, _, name = subject[len(_SUBJECT_PREFIX) :].partition("/blobs/")
    if not container or not name:
        raise InvalidEvent(f"subject names no container or no blob: {subject!r}")
    return container, unquote(name)


@dataclass(frozen=True)
class Delivery:
    """One delivery of an event; ``copy`` is 0 for the first delivery, 1.. for duplicates."""

    event: dict[str, Any]
    copy: int


@dataclass(frozen=True)
class DeliveryPlan:
    """The order in which events are delivered, and how many deliveries are duplicates."""

    deliveries: tuple[Delivery, ...]
    duplicates: int
    reordered: bool


def plan_deliveries(
    events: Sequence[dict[str, Any]],
    *,
    duplicate_rate: float = 0.0,
    reorder: bool = False,
    rng: random.Random | None = None,
) -> DeliveryPlan:
    """Every event at least once; ``duplicate_rate`` of them twice; optionally shuffled.

    Parameters
    ----------
    events : sequence of dict
        Events in the order they happened.
    duplicate_rate : float
        Fraction in ``[0, 1]`` of events delivered a second time (rounded to the nearest count,
        so 20 % of 31 events is 6 duplicates, not "about 6").
    reorder : bool
        Shuffle the whole delivery sequence, duplicates included (Event Grid guarantees no order).
    rng : random.Random, optional
        Source of randomness, for reproducible plans.

    Raises
    ------
    ValueError
        If ``duplicate_rate`` is outside ``[0, 1]``.
    """
    if not 0.0 <= duplicate_rate <= 1.0:
        raise ValueError(f"duplicate_rate must be within [0, 1], got {duplicate_rate}")
    rng = rng or random.Random()
    deliveries = [Delivery(e, 0) for e in events]
    n_dup = round(duplicate_rate * len(events))
    duplicated = rng.sample(range(len(events)), n_dup)
    deliveries += [Delivery(events[i], 1) for i in sorted(duplicated)]
    if reorder:
        rng.shuffle(deliveries)
    return DeliveryPlan(tuple(deliveries), n_dup, reorder)
