"""The claim ledger: pure keys/entities/classify, and the Table Storage layer on Azurite's real table service."""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from azure.core.exceptions import AzureError, ResourceNotFoundError
from hypothesis import assume, given
from hypothesis import strategies as st

from chunk_contract.ledger import (
    _MAX_MANIFEST_CHARS,
    Claim,
    ClaimAttempt,
    Ledger,
    Manifest,
    RunReport,
    claim_entity,
    claim_from_entity,
    claim_keys,
    classify,
    latency_summary,
    manifest_entity,
    manifest_from_entity,
    manifest_keys,
    open_ledger,
    run_keys,
)
from chunk_contract.names import InvalidChunkName, validate_chunk_name
from chunk_contract.versions import ChunkVersion
from localdev.azurite import Azurite

T0 = datetime(2026, 11, 22, 12, 0, 0, 123456, tzinfo=UTC)
CEST = timezone(timedelta(hours=2))
BATCH_TOKEN = "tok-0a1b2c3d"  # the salt of a batch workflow name (not a credential)

# Table Storage: keys may not hold / \ # ? nor control characters U+0000-U+001F and U+007F-U+009F.
_FORBIDDEN_IN_KEYS = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


def _key_is_valid(key: str) -> bool:
    return not _FORBIDDEN_IN_KEYS.search(key) and 0 < len(key.encode("utf-8")) <= 1024


def _version(name: str = "sensor-1/2026/11/22/chunk-0001.csv", etag: str = '"0x8DC0000000001"') -> ChunkVersion:
    return ChunkVersion.of("chunks", name, etag)


# ============================================================================ keys (pure)

_SEGMENT = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._=-", min_size=1, max_size=60
).filter(lambda s: ".." not in s)
_NAMES = st.lists(_SEGMENT, min_size=1, max_size=25).map("/".join)
_CONTAINERS = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])", fullmatch=True)
_ETAGS = st.text(alphabet="0123456789ABCDEFx", min_size=1, max_size=40)


def _is_valid_name(name: str) -> bool:
    try:
        validate_chunk_name(name)
    except InvalidChunkName:
        return False
    return True


@given(_CONTAINERS, _NAMES, _ETAGS, st.integers(min_value=0, max_value=9999))
def test_claim_keys_are_valid_table_keys_for_any_valid_name(container: str, name: str, etag: str, gen: int) -> None:
    assume(_is_valid_name(name))
    partition, row = claim_keys(ChunkVersion.of(container, name, etag), gen)
    assert _key_is_valid(partition) and _key_is_valid(row)
    assert re.fullmatch(r"c[0-9a-f]{32}", partition)
    assert re.fullmatch(r"[0-9a-f]{40}-[0-9]{4}", row)
    assert row.endswith(f"-{gen:04d}")


@given(_CONTAINERS, _SEGMENT, _NAMES, _NAMES, _ETAGS, _ETAGS)
def test_one_sensor_is_one_partition(container: str, sensor: str, rest_a: str, rest_b: str, e1: str, e2: str) -> None:
    a, b = f"{sensor}/{rest_a}", f"{sensor}/{rest_b}"
    assume(_is_valid_name(a) and _is_valid_name(b) and a != b)
    va, vb = ChunkVersion.of(container, a, e1), ChunkVersion.of(container, b, e2)
    assert va.sensor == vb.sensor == sensor
    assert claim_keys(va)[0] == claim_keys(vb, 7)[0]
    assert claim_keys(va)[1] != claim_keys(vb)[1]


def test_partitions_follow_container_and_sensor_only() -> None:
    one = claim_keys(_version("sensor-1/a.csv", "0x1"))[0]
    assert one == claim_keys(_version("sensor-1/2027/b.csv", "0x2"), 3)[0]
    assert one != claim_keys(_version("sensor-2/a.csv", "0x1"))[0]
    assert one != claim_keys(ChunkVersion.of("other", "sensor-1/a.csv", "0x1"))[0]
    # the sensor of a top-level blob is its whole name
    assert claim_keys(_version("sensor-1", "0x1"))[0] == one
    assert claim_keys(_version("sensor-1.csv", "0x1"))[0] != one


def test_row_keys_differ_per_etag_name_container_and_generation() -> None:
    base = _version("sensor-1/a.csv", "0x1")
    rows = {
        claim_keys(base)[1],
        claim_keys(base, 1)[1],
        claim_keys(base, 9999)[1],
        claim_keys(_version("sensor-1/a.csv", "0x2"))[1],
        claim_keys(_version("sensor-1/b.csv", "0x1"))[1],
        claim_keys(ChunkVersion.of("other", "sensor-1/a.csv", "0x1"))[1],
    }
    assert len(rows) == 6
    # one version, all generations: one prefix (what Ledger.latest queries by)
    assert claim_keys(base)[1][:40] == claim_keys(base, 1)[1][:40] == claim_keys(base, 9999)[1][:40]
    # the ETag's spelling does not matter: keys are of the normalised version
    assert claim_keys(_version("sensor-1/a.csv", 'W/"0x1"')) == claim_keys(base)


@pytest.mark.parametrize("generation", [-1, 10_000, 123_456])
def test_generation_out_of_range_raises(generation: int) -> None:
    with pytest.raises(ValueError, match="generation"):
        claim_keys(_version(), generation)


def test_longest_names_give_short_keys() -> None:
    name = "s/" + "a" * 1008  # the longest valid name: chunk_contract.names.MAX_CHUNK_NAME_LENGTH
    partition, row = claim_keys(_version(name, "0x1"), 9999)
    assert len(partition) == 33 and len(row) == 45


@given(st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", fullmatch=True))
def test_manifest_keys(workflow_name: str) -> None:
    partition, row = manifest_keys(workflow_name)
    assert row == workflow_name
    assert re.fullmatch(r"m[0-9a-f]{2}", partition)
    assert manifest_keys(workflow_name) == (partition, row)
    assert _key_is_valid(partition) and _key_is_valid(row)


def test_manifest_partitions_spread_over_256() -> None:
    partitions = {manifest_keys(f"sensor-batch-{i}")[0] for i in range(2000)}
    assert 200 < len(partitions) <= 256
    # a manifest partition can never be a claim partition
    assert not any(p.startswith("c") for p in partitions)


# ============================================================================ entities (pure)


def _full_claim() -> Claim:
    return Claim(
        version=_version(),
        owner="sensor-chunk-0a1b2c3d",
        owner_kind="batch",
        state="failed",
        path="backfill",
        first_seen=T0,
        claimed_at=T0 + timedelta(seconds=3),
        generation=4,
        event_time=datetime(2026, 11, 22, 13, 59, 58, tzinfo=CEST),
        forced=True,
        duplicates=17,
        last_duplicate_at=T0 + timedelta(minutes=5),
        last_duplicate_path="http",
        outcome_run="argo/sensor-chunk-0a1b2c3d/42",
        outcome_reason="ValueError: column 'ts' missing",
        outcome_at=T0 + timedelta(minutes=9, microseconds=7),
    )


def test_claim_entity_round_trip_with_every_field() -> None:
    claim = _full_claim()
    entity = claim_entity(claim)
    assert (entity["PartitionKey"], entity["RowKey"]) == claim.keys == claim_keys(claim.version, 4)
    assert entity["blob_name"] == claim.version.name and entity["etag"] == "0x8DC0000000001"
    assert entity["sensor"] == "sensor-1" and entity["generation"] == 4
    back = claim_from_entity(entity, entity_etag="W/\"datetime'x'\"")
    assert back == claim
    assert back.entity_etag == "W/\"datetime'x'\""
    assert back.event_time is not None and back.event_time.utcoffset() == timedelta(hours=2)


def test_claim_entity_round_trip_without_optional_fields() -> None:
    claim = Claim(_version(), "wf", "single", "claimed", "blob", T0, T0)
    entity = claim_entity(claim)
    assert None not in entity.values()
    for absent in ("event_time", "last_duplicate_at", "last_duplicate_path", "outcome_run", "outcome_reason"):
        assert absent not in entity
    back = claim_from_entity(entity)
    assert back == claim and back.entity_etag is None
    assert claim.as_dict()["chunk"] == claim.version.name


def test_claim_from_entity_makes_naive_datetimes_utc() -> None:
    entity = claim_entity(Claim(_version(), "wf", "single", "claimed", "blob", T0, T0))
    entity["first_seen"] = entity["claimed_at"] = datetime(2026, 11, 22, 12, 0)
    back = claim_from_entity(entity)
    assert back.first_seen == datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert back.claimed_at.tzinfo is not None


def _long_manifest(count: int = 2000, name_len: int = 200, batch_token: str = BATCH_TOKEN) -> Manifest:
    chunks = []
    for i in range(count):
        head = f"sensor-{i % 5}/dt=2026-11-22/"
        tail = f"/chunk-{i:05d}.v2.csv"
        chunks.append((head + "d" * (name_len - len(head) - len(tail)) + tail, f"0x8DC{i:011X}"))
    return Manifest("sensor-batch-0a1b2c3d", "chunks", tuple(sorted(chunks)), "submitting", "blob", T0, batch_token)


def _json_chars(manifest: Manifest) -> int:
    return len(json.dumps([list(c) for c in manifest.chunks], separators=(",", ":")))


def test_a_long_manifest_is_split_into_parts_and_round_trips() -> None:
    manifest = _long_manifest()  # 2,000 chunks of 200-character names: ~448 K chars of JSON
    assert all(len(name) == 200 for name, _ in manifest.chunks)
    entity = manifest_entity(manifest)
    assert (entity["PartitionKey"], entity["RowKey"]) == manifest_keys(manifest.workflow_name)
    assert entity["count"] == 2000 and entity["token"] == "tok-0a1b2c3d"
    strings = [v for v in entity.values() if isinstance(v, str)]
    assert all(len(s) <= 30_000 for s in strings)  # < 32 K UTF-16 chars = 64 KiB per string property
    parts = [k for k in entity if k.startswith("part_")]
    assert entity["parts"] == len(parts) == 15
    assert parts == [f"part_{i}" for i in range(len(parts))]
    back = manifest_from_entity(entity, entity_etag="e1")
    assert back == manifest and back.entity_etag == "e1" and back.token == "tok-0a1b2c3d"
    assert len(back.versions) == 2000 and back.versions[0] == ChunkVersion.of("chunks", *manifest.chunks[0])


def test_an_empty_tombstone_round_trips() -> None:
    tomb = Manifest("sensor-batch-dead", "chunks", (), "abandoned", "fence", T0)
    entity = manifest_entity(tomb)
    assert entity["count"] == 0 and entity["parts"] == 1 and entity["part_0"] == "[]"
    back = manifest_from_entity(entity)
    assert back == tomb and back.versions == () and back.token == ""


def _azure_entity_bytes(entity: dict[str, Any]) -> int:
    """Azure's documented entity size: 4 + 2*len(PK+RK) + sum(8 + 2*len(name) + sizeof(value))."""
    size = 4 + 2 * (len(entity["PartitionKey"]) + len(entity["RowKey"]))
    for key, value in entity.items():
        if key in ("PartitionKey", "RowKey"):
            continue
        if isinstance(value, str):
            value_size = 4 + 2 * len(value)
        elif isinstance(value, bool):
            value_size = 1
        else:  # int (Int32/Int64) and datetime
            value_size = 8
        size += 8 + 2 * len(key) + value_size
    return size


def _manifest_of_json_chars(target: int) -> Manifest:
    """A manifest (63-character name and container, long token) whose chunk JSON is exactly ``target`` chars."""
    base = _long_manifest(count=target // 1030, name_len=1000, batch_token="t" * 64)
    manifest = replace(base, workflow_name="w" * 63, container="c" * 63)
    extra = 0
    while True:
        # one more chunk costs len(name) + 12 characters: ,["<name>","0xFF"]
        name_len = target - _json_chars(manifest) - 12
        last = f"sensor-9/e{extra:03d}-".ljust(min(name_len, 900), "e")
        manifest = replace(manifest, chunks=(*manifest.chunks, (last, "0xFF")))
        extra += 1
        if name_len <= 900:
            break
    assert _json_chars(manifest) == target
    return manifest


def test_the_largest_storable_manifest_fits_azures_1_mib_entity_limit() -> None:
    # Azure refuses entities over 1 MiB (EntityTooLarge); Azurite stores them silently, so this is checked here.
    entity = manifest_entity(_manifest_of_json_chars(_MAX_MANIFEST_CHARS))
    assert _azure_entity_bytes(entity) <= 1024 * 1024
    assert len(entity) <= 255  # 252 custom properties + PartitionKey, RowKey, Timestamp
    assert manifest_from_entity(entity).chunks == _manifest_of_json_chars(_MAX_MANIFEST_CHARS).chunks


def test_a_manifest_over_the_entity_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="1 MiB"):
        manifest_entity(_manifest_of_json_chars(_MAX_MANIFEST_CHARS + 1))
    too_big = _long_manifest(count=2000, name_len=1000)  # ~2 M chars: ~4 MiB of UTF-16
    with pytest.raises(ValueError, match="sensor-batch-0a1b2c3d"):
        manifest_entity(too_big)


def test_an_ordinary_batch_is_far_below_the_limit() -> None:
    ordinary = manifest_entity(_long_manifest(count=100, name_len=60))
    assert _azure_entity_bytes(ordinary) < 64 * 1024


# ============================================================================ classify (pure)

STALE = timedelta(minutes=10)
RECLAIM = timedelta(hours=6)
YOUNG = timedelta(minutes=1)
OLD = timedelta(minutes=30)  # older than STALE, younger than RECLAIM
DEAD = timedelta(hours=7)  # older than RECLAIM

# (id, claim state, owner kind, manifest state or None, claim age, can_submit, reclaim_after, expected verdict)
CLASSIFY_CASES: list[tuple[str, str, str, str | None, timedelta, bool, timedelta | None, str]] = [
    ("processed", "processed", "single", None, YOUNG, True, RECLAIM, "duplicate"),
    ("processed-dead-never-reclaimed", "processed", "single", None, DEAD, False, RECLAIM, "duplicate"),
    ("failed", "failed", "batch", "accepted", YOUNG, True, RECLAIM, "duplicate"),
    ("failed-batch-no-manifest-old", "failed", "batch", None, DEAD, True, RECLAIM, "duplicate"),
    ("released", "released", "single", None, YOUNG, True, RECLAIM, "take"),
    ("released-batch-no-manifest-old", "released", "batch", None, DEAD, False, RECLAIM, "take"),
    ("accepted", "accepted", "single", None, YOUNG, True, RECLAIM, "duplicate"),
    ("accepted-old-not-dead", "accepted", "single", None, OLD, False, RECLAIM, "duplicate"),
    ("accepted-dead", "accepted", "single", None, DEAD, False, RECLAIM, "reclaim"),
    ("accepted-dead-never-reclaim", "accepted", "single", None, DEAD, True, None, "duplicate"),
    ("accepted-run-dead", "accepted", "run", None, DEAD, False, RECLAIM, "reclaim"),
    ("batch-manifest-accepted", "claimed", "batch", "accepted", YOUNG, True, RECLAIM, "duplicate"),
    ("batch-manifest-accepted-dead", "claimed", "batch", "accepted", DEAD, True, RECLAIM, "reclaim"),
    ("batch-abandoned", "claimed", "batch", "abandoned", YOUNG, True, RECLAIM, "take"),
    ("batch-abandoned-fallback", "claimed", "batch", "abandoned", DEAD, False, RECLAIM, "take"),
    ("batch-no-manifest-stale", "claimed", "batch", None, OLD, True, RECLAIM, "fence"),
    ("batch-no-manifest-stale-fallback", "claimed", "batch", None, OLD, False, None, "fence"),
    ("batch-no-manifest-exactly-stale", "claimed", "batch", None, STALE, True, RECLAIM, "wait"),
    ("batch-no-manifest-young", "claimed", "batch", None, YOUNG, True, RECLAIM, "wait"),
    ("batch-submitting", "claimed", "batch", "submitting", OLD, True, RECLAIM, "resume"),
    ("batch-submitting-fallback", "claimed", "batch", "submitting", OLD, False, RECLAIM, "wait"),
    ("batch-submitting-fallback-dead", "claimed", "batch", "submitting", DEAD, False, RECLAIM, "reclaim"),
    ("run-young", "claimed", "run", None, YOUNG, True, RECLAIM, "wait"),
    ("run-never-reclaim", "claimed", "run", None, DEAD, True, None, "wait"),
    ("run-dead", "claimed", "run", None, DEAD, True, RECLAIM, "reclaim"),
    ("single", "claimed", "single", None, YOUNG, True, RECLAIM, "resume"),
    ("single-dead-can-submit", "claimed", "single", None, DEAD, True, RECLAIM, "resume"),
    ("single-fallback", "claimed", "single", None, OLD, False, RECLAIM, "wait"),
    ("single-fallback-never-reclaim", "claimed", "single", None, DEAD, False, None, "wait"),
    ("single-fallback-dead", "claimed", "single", None, DEAD, False, RECLAIM, "reclaim"),
]


@pytest.mark.parametrize(
    ("state", "owner_kind", "manifest_state", "age", "can_submit", "reclaim_after", "expected"),
    [case[1:] for case in CLASSIFY_CASES],
    ids=[case[0] for case in CLASSIFY_CASES],
)
def test_classify(
    state: str,
    owner_kind: str,
    manifest_state: str | None,
    age: timedelta,
    can_submit: bool,
    reclaim_after: timedelta | None,
    expected: str,
) -> None:
    now = T0 + timedelta(days=1)
    claim = Claim(_version(), "sensor-batch-0a1b", owner_kind, state, "blob", now - age - YOUNG, now - age)
    manifest = (
        None
        if manifest_state is None
        else Manifest(
            "sensor-batch-0a1b", "chunks", ((claim.version.name, claim.version.etag),), manifest_state, "blob", now
        )
    )
    verdict = classify(claim, manifest, now=now, stale_after=STALE, can_submit=can_submit, reclaim_after=reclaim_after)
    assert verdict.kind == expected
    assert verdict.reason  # always explained
    assert "sensor-batch-0a1b" in verdict.reason


def test_classify_names_the_outcome_run_of_a_processed_claim() -> None:
    claim = Claim(_version(), "wf", "single", "processed", "blob", T0, T0, outcome_run="argo/wf/7")
    assert classify(claim, None, now=T0, stale_after=STALE).reason == "already processed by argo/wf/7"


# ============================================================================ Ledger on Azurite


@pytest.fixture
def ledger(azurite: Azurite) -> Iterator[Ledger]:
    """A ledger on a fresh table (tests share one Azurite)."""
    led = open_ledger(azurite.connection_string, table_name=f"t{uuid.uuid4().hex[:16]}", create=True)
    yield led
    led.table.delete_table()


def _claim(ledger: Ledger, version: ChunkVersion, owner: str = "wf-a", **kw: Any) -> ClaimAttempt:
    kw.setdefault("owner_kind", "single")
    kw.setdefault("path", "blob")
    kw.setdefault("now", T0)
    return ledger.claim(version, owner=owner, **kw)


def test_claim_and_owner_kind_are_validated_before_any_io() -> None:
    offline = Ledger(table=None)
    with pytest.raises(ValueError, match="path"):
        offline.claim(_version(), owner="wf", owner_kind="single", path="smtp", now=T0)
    with pytest.raises(ValueError, match="owner_kind"):
        offline.claim(_version(), owner="wf", owner_kind="cron", path="blob", now=T0)
    with pytest.raises(ValueError, match="outcome state"):
        offline.record_outcome(_version(), state="accepted", run="r", reason=None, now=T0)


def test_ensure_table_is_idempotent(azurite: Azurite, ledger: Ledger) -> None:
    again = open_ledger(azurite.connection_string, table_name=ledger.table.table_name, create=True)
    again.ensure_table()
    assert again.latest(_version()) is None


def test_first_claim_wins_and_later_claimants_see_it(ledger: Ledger) -> None:
    sdk_version = _version(etag='"0x8DC0000000001"')
    event_time = datetime(2026, 11, 22, 13, 59, 0, 654321, tzinfo=CEST)
    first = _claim(ledger, sdk_version, "wf-a", path="blob", now=T0, event_time=event_time)
    assert first.won and first.claim.entity_etag
    assert (first.claim.generation, first.claim.state, first.claim.duplicates) == (0, "claimed", 0)

    # Event Grid's bare ETag is the same version: it competes for the same row and loses.
    second = _claim(ledger, _version(etag="0x8DC0000000001"), "wf-b", owner_kind="batch", path="http", now=T0 + OLD)
    assert not second.won
    assert second.claim == first.claim
    assert (second.claim.owner, second.claim.owner_kind, second.claim.path) == ("wf-a", "single", "blob")
    assert second.claim.first_seen == T0 and second.claim.first_seen.tzinfo is not None
    assert second.claim.event_time == event_time  # the instant survives (stored as UTC)
    assert second.claim.entity_etag == first.claim.entity_etag

    assert ledger.latest(sdk_version) == first.claim
    # another content of the same blob is another version: its own claim
    assert _claim(ledger, _version(etag="0x8DC0000000002"), "wf-c").won


def test_concurrent_claims_have_exactly_one_winner(azurite: Azurite, ledger: Ledger) -> None:
    version = _version()
    barrier = threading.Barrier(20)
    results: list[ClaimAttempt] = []
    errors: list[BaseException] = []

    def contender(i: int) -> None:
        own = open_ledger(azurite.connection_string, table_name=ledger.table.table_name)
        barrier.wait(timeout=10)
        try:
            results.append(_claim(own, version, f"wf-{i}", path="blob" if i % 2 else "http"))
        except BaseException as exc:  # reported below
            errors.append(exc)

    _run_threads(contender, 20)
    assert not errors
    winners = [r for r in results if r.won]
    assert len(results) == 20 and len(winners) == 1
    owner = winners[0].claim.owner
    assert all(r.claim.owner == owner for r in results)
    stored = ledger.latest(version)
    assert stored is not None and stored.owner == owner and stored.generation == 0


def _run_threads(target: Callable[[int], None], count: int) -> None:
    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)


def test_forced_claims_open_new_generations(ledger: Ledger) -> None:
    version = _version()
    assert ledger.latest(version) is None
    g0 = _claim(ledger, version, "wf-0")
    f1 = _claim(ledger, version, "wf-f1", path="manual", forced=True, now=T0 + YOUNG)
    f2 = _claim(ledger, version, "wf-f2", path="backfill", forced=True, now=T0 + OLD)
    assert [a.won for a in (g0, f1, f2)] == [True, True, True]
    assert [a.claim.generation for a in (g0, f1, f2)] == [0, 1, 2]
    assert [a.claim.forced for a in (g0, f1, f2)] == [False, True, True]
    assert len({a.claim.keys for a in (g0, f1, f2)}) == 3

    latest = ledger.latest(version)
    assert latest == f2.claim and latest is not None and latest.owner == "wf-f2"

    late = _claim(ledger, version, "wf-late", now=T0 + DEAD)
    assert not late.won
    assert late.claim == f2.claim  # the newest generation is what the loser classifies
    generation_0 = claim_from_entity(ledger.table.get_entity(*claim_keys(version, 0)))
    assert generation_0 == g0.claim  # untouched by the losing unforced claim

    # a forced claim of a version nobody claimed yet takes generation 0
    fresh = _claim(ledger, _version(etag="0x99"), "wf-new", forced=True)
    assert fresh.won and fresh.claim.generation == 0 and fresh.claim.forced


def test_concurrent_forced_claims_each_get_a_generation(azurite: Azurite, ledger: Ledger) -> None:
    version = _version()
    assert _claim(ledger, version, "wf-0").won
    barrier = threading.Barrier(5)
    results: list[ClaimAttempt] = []

    def forcer(i: int) -> None:
        own = open_ledger(azurite.connection_string, table_name=ledger.table.table_name)
        barrier.wait(timeout=10)
        results.append(_claim(own, version, f"wf-force-{i}", path="manual", forced=True))

    _run_threads(forcer, 5)
    assert len(results) == 5 and all(r.won for r in results)
    assert sorted(r.claim.generation for r in results) == [1, 2, 3, 4, 5]
    latest = ledger.latest(version)
    assert latest is not None and latest.generation == 5


def test_update_is_conditional_on_the_entity_etag(ledger: Ledger) -> None:
    version = _version()
    read = _claim(ledger, version).claim
    accepted = ledger.update(read, state="accepted")
    assert accepted is not None and accepted.state == "accepted"
    assert accepted.entity_etag and accepted.entity_etag != read.entity_etag

    assert ledger.update(read, state="released") is None  # stale ETag: someone changed it since
    stored = ledger.latest(version)
    assert stored is not None and stored.state == "accepted" and stored.entity_etag == accepted.entity_etag

    released = ledger.update(accepted, state="released", owner="wf-a")
    assert released is not None
    assert ledger.latest(version) == released
    assert released.state == "released"


def test_count_duplicate_counts_and_survives_a_stale_read(ledger: Ledger) -> None:
    version = _version()
    read = _claim(ledger, version).claim
    one = ledger.count_duplicate(read, path="http", now=T0 + YOUNG)
    assert (one.duplicates, one.last_duplicate_path, one.last_duplicate_at) == (1, "http", T0 + YOUNG)
    two = ledger.count_duplicate(one, path="backfill", now=T0 + OLD)
    assert two.duplicates == 2

    # Someone else updates the claim after `two` was read: the first If-Match fails, the counter re-reads.
    other = ledger.update(two, state="accepted")
    assert other is not None
    three = ledger.count_duplicate(two, path="blob", now=T0 + DEAD)
    assert three.duplicates == 3 and three.last_duplicate_path == "blob"
    assert three.state == "accepted"  # the other writer's change is kept, not overwritten
    stored = ledger.latest(version)
    assert stored == three
    assert stored is not None and stored.last_duplicate_at == T0 + DEAD


def test_record_outcome_on_an_existing_claim(ledger: Ledger) -> None:
    version = _version()
    read = _claim(ledger, version, "wf-a").claim
    assert ledger.update(read, state="accepted") is not None
    done = ledger.record_outcome(version, state="failed", run="argo/wf-a/1", reason="E" * 5000, now=T0 + OLD)
    assert (done.state, done.outcome_run, done.outcome_at) == ("failed", "argo/wf-a/1", T0 + OLD)
    assert done.outcome_reason == "E" * 2000
    assert (done.owner, done.owner_kind, done.generation) == ("wf-a", "single", 0)
    stored = ledger.latest(version)
    assert stored == done
    assert stored is not None and stored.entity_etag == done.entity_etag
    assert classify(stored, None, now=T0 + DEAD, stale_after=STALE, reclaim_after=RECLAIM).kind == "duplicate"

    # an outcome lands on the latest generation
    forced = _claim(ledger, version, "wf-again", forced=True, now=T0 + DEAD).claim
    redo = ledger.record_outcome(version, state="processed", run="argo/wf-again/1", reason=None, now=T0 + DEAD)
    assert redo.generation == forced.generation == 1 and redo.state == "processed"
    assert redo.outcome_reason is None
    gen0 = claim_from_entity(ledger.table.get_entity(*claim_keys(version, 0)))
    assert gen0.state == "failed"


def test_record_outcome_without_a_claim_inserts_a_run_claim(ledger: Ledger) -> None:
    version = _version()
    done = ledger.record_outcome(version, state="processed", run="run-77", reason=None, now=T0, path="fallback")
    assert (done.owner, done.owner_kind, done.state, done.path) == ("run-77", "run", "processed", "fallback")
    assert (done.outcome_run, done.outcome_at, done.generation) == ("run-77", T0, 0)
    assert ledger.latest(version) == done
    late = _claim(ledger, version, "wf-blob", now=T0 + YOUNG)
    assert not late.won and late.claim.state == "processed"
    assert classify(late.claim, None, now=T0 + YOUNG, stale_after=STALE).kind == "duplicate"


def _manifest(name: str, count: int = 3, state: str = "submitting") -> Manifest:
    chunks = tuple((f"sensor-1/2026/11/22/chunk-{i:04d}.csv", f"0x8DC{i:04X}") for i in range(count))
    return Manifest(name, "chunks", chunks, state, "blob", T0)


def test_manifests_are_insert_once_and_fenced(ledger: Ledger) -> None:
    plan = _manifest("sensor-batch-1")
    created = ledger.create_manifest(plan)
    assert created is not None and created.entity_etag
    assert ledger.create_manifest(replace(plan, path="http", chunks=plan.chunks[:1])) is None
    read = ledger.get_manifest("sensor-batch-1")
    assert read == plan and read is not None and read.entity_etag == created.entity_etag

    # fencing an existing manifest changes nothing and returns it
    existing = ledger.fence("sensor-batch-1", container="chunks", now=T0 + OLD)
    assert existing == plan and existing is not None and existing.state == "submitting"
    assert ledger.get_manifest("sensor-batch-1") == plan

    accepted = ledger.set_manifest_state(created, "accepted")
    assert accepted is not None and accepted.state == "accepted" and accepted.entity_etag != created.entity_etag
    assert ledger.set_manifest_state(created, "abandoned") is None  # stale ETag
    now_read = ledger.get_manifest("sensor-batch-1")
    assert now_read is not None and now_read.state == "accepted" and now_read.chunks == plan.chunks

    assert ledger.get_manifest("sensor-batch-never") is None


def test_a_fence_on_a_missing_manifest_wins_and_the_planner_loses(ledger: Ledger) -> None:
    assert ledger.fence("sensor-batch-2", container="chunks", now=T0 + OLD) is None  # the tombstone went in
    tomb = ledger.get_manifest("sensor-batch-2")
    assert tomb is not None
    assert (tomb.state, tomb.chunks, tomb.path, tomb.created_at) == ("abandoned", (), "fence", T0 + OLD)
    assert ledger.create_manifest(_manifest("sensor-batch-2")) is None  # the late planner must not submit
    again = ledger.get_manifest("sensor-batch-2")
    assert again == tomb
    # a second fence sees the tombstone
    assert ledger.fence("sensor-batch-2", container="chunks", now=T0 + DEAD) == tomb


def test_a_multi_part_manifest_round_trips_through_the_table(ledger: Ledger) -> None:
    plan = _long_manifest(count=300, name_len=240)  # ~75 K chars: 3 parts, well under 1 MiB
    assert manifest_entity(plan)["parts"] == 3
    assert ledger.create_manifest(plan) is not None
    assert ledger.get_manifest(plan.workflow_name) == plan


def test_names_with_slashes_equals_dots_and_1000_characters_are_claimable(ledger: Ledger) -> None:
    head = "sensor=7/dt=2026-11-22/v1.2/"
    names = [
        "sensor-1/a.b.c",
        "sensor=7/dt=2026-11-22/x=1.csv",
        (head + "abcd/" * 200)[: 1000 - 5] + "z.csv",
        (head + "abcd/" * 200)[: 1000 - 5] + "y.csv",
        "s/" + "n" * 1008,
    ]
    assert len(names[2]) == len(names[3]) == 1000 and len(names[4]) == 1010  # the longest valid name
    versions = [_version(name, "0x1") for name in names]
    for i, version in enumerate(versions):
        assert _claim(ledger, version, f"wf-{i}").won
    for i, version in enumerate(versions):
        stored = ledger.latest(version)
        assert stored is not None and stored.version == version and stored.owner == f"wf-{i}"
    # the two 1000-character names of one sensor share a partition but not a row
    assert claim_keys(versions[2])[0] == claim_keys(versions[3])[0]
    assert claim_keys(versions[2])[1] != claim_keys(versions[3])[1]


@pytest.mark.parametrize("name", ["sensor-1/a#b.csv", "sensor-1/a?b.csv", "sensor-1/a\\b.csv", "sensor-1/a\x01b"])
def test_names_the_table_could_not_key_never_reach_the_ledger(name: str) -> None:
    with pytest.raises(InvalidChunkName):
        _version(name)


def test_a_missing_table_raises_on_claim(azurite: Azurite) -> None:
    """A ledger whose table is missing (not deployed, deleted, wrong name) raises a ResourceNotFoundError,
    an AzureError. Callers must treat that exactly like an unreachable ledger: fail the delivery so it is
    retried (or dead-lettered), never drop the message and never submit without a claim."""
    missing = open_ledger(azurite.connection_string, table_name=f"t{uuid.uuid4().hex[:16]}")
    with pytest.raises(ResourceNotFoundError) as info:
        _claim(missing, _version())
    assert isinstance(info.value, AzureError)
    assert "TableNotFound" in str(info.value)
    with pytest.raises(ResourceNotFoundError):
        missing.latest(_version())
    with pytest.raises(ResourceNotFoundError):
        missing.fence("sensor-batch-1", container="chunks", now=T0)  # the tombstone insert fails loudly


@pytest.mark.parametrize("operation", ["get_manifest", "update", "set_manifest_state"])
def test_a_missing_table_is_never_mistaken_for_a_missing_row(azurite: Azurite, operation: str) -> None:
    """404 TableNotFound must surface: only 404 ResourceNotFound means "no manifest" / "the row is gone"."""
    missing = open_ledger(azurite.connection_string, table_name=f"t{uuid.uuid4().hex[:16]}")
    stale_etag = "W/\"datetime'2026-11-22T12%3A00%3A00.0000000Z'\""
    calls: dict[str, Callable[[], object]] = {
        "get_manifest": lambda: missing.get_manifest("sensor-batch-1"),
        "update": lambda: missing.update(
            Claim(_version(), "wf", "single", "claimed", "blob", T0, T0, entity_etag=stale_etag), state="accepted"
        ),
        "set_manifest_state": lambda: missing.set_manifest_state(
            replace(_manifest("sensor-batch-1"), entity_etag=stale_etag), "accepted"
        ),
    }
    with pytest.raises(ResourceNotFoundError):
        calls[operation]()


def test_a_missing_row_is_answered_with_none(ledger: Ledger) -> None:
    version = _version()
    read = _claim(ledger, version).claim
    ledger.table.delete_entity(*read.keys)
    assert ledger.update(read, state="accepted") is None  # 404 ResourceNotFound: the row is gone
    assert ledger.count_duplicate(read, path="http", now=T0) == read  # best effort: nothing to count on
    ghost = replace(_manifest("sensor-batch-ghost"), entity_etag=read.entity_etag)
    assert ledger.set_manifest_state(ghost, "accepted") is None
    assert ledger.get_manifest("sensor-batch-ghost") is None


# ============================================================================ latency and run reports


def test_outcome_latency_is_from_the_event_time_else_the_upload_else_first_sight(ledger: Ledger) -> None:
    with_event = _version("sensor-1/a.csv")
    _claim(ledger, with_event, "wf-a", event_time=T0 - timedelta(seconds=30), now=T0)
    done = ledger.record_outcome(
        with_event, state="processed", run="r/1", reason=None, now=T0 + timedelta(seconds=90), uploaded_at=T0
    )
    assert done.outcome_latency_s == pytest.approx(120.0)

    uploaded = _version("sensor-1/b.csv")
    _claim(ledger, uploaded, "wf-b", now=T0)
    done = ledger.record_outcome(
        uploaded, state="failed", run="r/1", reason="bad", now=T0 + timedelta(seconds=90), uploaded_at=T0 - OLD
    )
    assert done.outcome_latency_s == pytest.approx(90.0 + OLD.total_seconds())

    seen = _version("sensor-1/c.csv")
    _claim(ledger, seen, "wf-c", now=T0)
    done = ledger.record_outcome(seen, state="processed", run="r/1", reason=None, now=T0 + timedelta(seconds=5))
    assert done.outcome_latency_s == pytest.approx(5.0)
    stored = ledger.latest(seen)
    assert stored is not None and stored.outcome_latency_s == pytest.approx(5.0)
    assert stored.as_dict()["outcome_latency_s"] == pytest.approx(5.0)


def test_run_reports_round_trip_and_are_found_by_their_window(ledger: Ledger) -> None:
    day = timedelta(days=1)
    reports = [
        RunReport("SensorProcessingFlow", "17", "event", T0 - 3 * day, T0 - 3 * day + YOUNG, processed=4),
        RunReport(
            "SensorProcessingFlow",
            "argo-sensorprocessingflow-x7k2p",
            "fallback",
            T0 - day,
            T0 - day + OLD,
            processed=9,
            failed=1,
            set_aside=1,
            recovered=3,
            latency_count=10,
            latency_p50_s=61.5,
            latency_p95_s=3600.0,
            latency_max_s=4000.0,
        ),
        RunReport("SensorProcessingFlow", "19", "event", T0, T0 + YOUNG, skipped_up_to_date=2),
    ]
    for report in reports:
        ledger.record_run(report)
    ledger.record_run(reports[1])  # a retried join writes the same run again: still one report
    assert ledger.runs(T0 - 4 * day, T0 + day) == reports
    assert ledger.runs(T0 - 2 * day, T0 + day) == reports[1:]
    assert ledger.runs(T0 - day + OLD, T0 + day) == reports[2:]
    assert ledger.runs(T0 - 10 * day, T0 - 5 * day) == []


def test_run_keys_are_valid_for_any_run_id() -> None:
    for run_id in ("17", "argo-sensorprocessingflow-x7k2p", "a/b#c?d", "", "x" * 500):
        partition, row = run_keys("SensorProcessingFlow", run_id, T0)
        assert partition == "r20261122"
        assert _key_is_valid(row)
    assert run_keys("F", "a/b", T0) != run_keys("F", "a#b", T0)


def test_runs_on_a_missing_table_is_empty_with_auto_create(azurite: Azurite) -> None:
    name = "nol" + uuid.uuid4().hex[:12]
    ledger = open_ledger(azurite.connection_string, table_name=name, auto_create=True)
    assert ledger.runs(T0 - timedelta(days=1), T0) == []


@given(st.lists(st.floats(0, 1e6, allow_nan=False), max_size=50))
def test_latency_summary_matches_numpys_linear_percentiles(values: list[float]) -> None:
    import numpy as np

    count, p50, p95, top = latency_summary(values)
    assert count == len(values)
    if not values:
        assert (p50, p95, top) == (None, None, None)
        return
    assert p50 == pytest.approx(float(np.percentile(values, 50)), rel=1e-12, abs=1e-9)
    assert p95 == pytest.approx(float(np.percentile(values, 95)), rel=1e-12, abs=1e-9)
    assert top == max(values)
