"""BlobCreated events have Azure's shape, and delivery plans are at-least-once with exact duplicate counts."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime

import pytest

from localdev.events import BLOB_CREATED, InvalidEvent, blob_created_event, blob_location, plan_deliveries

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def _event(name: str, seq: int = 1) -> dict:
    return blob_created_event(
        account_url="http://127.0.0.1:10000/devstoreaccount1/",
        container="sensor-data",
        name=name,
        etag="0x8DC0FFEE",
        content_length=42,
        sequencer=seq,
        event_time=NOW,
    )


def test_event_has_the_fields_azure_storage_publishes() -> None:
    e = _event("sensor-001/2026/11/22/080000.csv")
    assert e["eventType"] == BLOB_CREATED
    assert e["subject"] == "/blobServices/default/containers/sensor-data/blobs/sensor-001/2026/11/22/080000.csv"
    assert e["data"]["url"] == "http://127.0.0.1:10000/devstoreaccount1/sensor-data/sensor-001/2026/11/22/080000.csv"
    assert {"api", "eTag", "contentLength", "sequencer", "blobType", "url"} <= set(e["data"])
    assert e["data"]["api"] == "PutBlob" and e["data"]["contentLength"] == 42
    assert len(e["data"]["sequencer"]) == 32 and int(e["data"]["sequencer"], 16) == 1


def test_blob_location_reads_the_subject_like_the_host() -> None:
    assert blob_location(_event("a=b/c.csv")) == ("sensor-data", "a=b/c.csv")


@pytest.mark.parametrize(
    ("patch", "match"),
    [
        ({"eventType": "Microsoft.Storage.BlobDeleted"}, "eventType"),
        ({"subject": "/blobServices/default/containers/c"}, "subject"),
        ({"subject": "/blobServices/default/containers//blobs/x"}, "no container"),
    ],
)
def test_blob_location_rejects_other_events_naming_the_field(patch: dict, match: str) -> None:
    with pytest.raises(InvalidEvent, match=match):
        blob_location({**_event("x.csv"), **patch})


def test_plan_delivers_each_event_at_least_once_with_exact_duplicates_and_reordering() -> None:
    events = [_event(f"s/{i}.csv", i) for i in range(31)]
    plan = plan_deliveries(events, duplicate_rate=0.2, reorder=True, rng=random.Random(7))
    ids = Counter(d.event["id"] for d in plan.deliveries)
    assert set(ids) == {e["id"] for e in events}  # nothing lost
    assert plan.duplicates == round(0.2 * 31) == 6
    assert sum(c - 1 for c in ids.values()) == 6
    assert sum(d.copy for d in plan.deliveries) == 6
    order = [d.event["id"] for d in plan.deliveries if d.copy == 0]
    assert order != [e["id"] for e in events]  # seed 7 does reorder


def test_plan_without_options_is_one_delivery_each_in_order() -> None:
    events = [_event(f"s/{i}.csv", i) for i in range(5)]
    plan = plan_deliveries(events)
    assert [d.event for d in plan.deliveries] == events and plan.duplicates == 0


def test_duplicate_rate_outside_unit_interval_is_refused() -> None:
    with pytest.raises(ValueError, match=r"duplicate_rate must be within \[0, 1\], got 1.5"):
        plan_deliveries([], duplicate_rate=1.5)
