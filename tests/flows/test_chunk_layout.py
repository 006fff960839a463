"""The chunk layout (pure): parsing rules, the window's prefixes, and exact coverage (property tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import pytest
from chunk_layout import LayoutError, PrefixTemplate, list_prefixes, parse_layout
from hypothesis import given, settings
from hypothesis import strategies as st

NOW = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)


def test_the_demo_layout_lists_one_prefix_per_sensor_and_day_after_one_discovery() -> None:
    layout = parse_layout("{sensor}/{yyyy}/{mm}/{dd}/")
    assert layout.unit == "day" and layout.needs_discovery
    start, end = NOW - timedelta(hours=48), NOW + timedelta(hours=1)
    assert layout.discovery_prefixes(start, end) == [""]  # one delimiter listing at the root
    templates = layout.prefix_templates(start, end)
    assert [t.text for t in templates] == ["{sensor}/2026/11/20/", "{sensor}/2026/11/21/", "{sensor}/2026/11/22/"]
    prefixes = list_prefixes(templates, {"": ["sensor-002", "sensor-001"]})
    assert prefixes == [
        "sensor-001/2026/11/20/",
        "sensor-002/2026/11/20/",
        "sensor-001/2026/11/21/",
        "sensor-002/2026/11/21/",
        "sensor-001/2026/11/22/",
        "sensor-002/2026/11/22/",
    ]
    # The demo's chunk names (localdev/synthetic.py) fall under them.
    assert "sensor-001/2026/11/22/080000.csv".startswith(prefixes[4])


def test_time_first_needs_no_discovery_and_covers_every_sensor() -> None:
    layout = parse_layout("{yyyy}/{mm}/{dd}/{sensor}/")
    assert not layout.needs_discovery
    templates = layout.prefix_templates(NOW - timedelta(hours=30), NOW)
    assert layout.discovery_prefixes(NOW - timedelta(hours=30), NOW) == []
    assert list_prefixes(templates, {}) == ["2026/11/21/", "2026/11/22/"]
    assert all(not t.needs_sensor for t in templates)


def test_hourly_layout_with_literal_text_and_a_month_boundary() -> None:
    layout = parse_layout("raw/s-{sensor}/y={yyyy}/m={mm}/d={dd}/h={hh}/")
    assert layout.unit == "hour" and layout.sensor_suffix == "/"
    start = datetime(2026, 11, 30, 22, 15, tzinfo=UTC)
    templates = layout.prefix_templates(start, start + timedelta(hours=2))
    assert [t.text for t in templates] == [
        "raw/s-{sensor}/y=2026/m=11/d=30/h=22/",
        "raw/s-{sensor}/y=2026/m=11/d=30/h=23/",
        "raw/s-{sensor}/y=2026/m=12/d=01/h=00/",
    ]
    assert layout.discovery_prefixes(start, start) == ["raw/s-"]
    assert layout.sensor_of("raw/s-", "raw/s-007/") == "007"
    assert layout.sensor_of("raw/s-", "raw/s-/") is None  # empty sensor
    assert layout.sensor_of("raw/s-", "raw/x-007/") is None


def test_sensor_suffix_and_time_before_the_sensor() -> None:
    layout = parse_layout("{yyyy}/{sensor}-raw/{mm}/")
    assert layout.unit == "month" and layout.sensor_suffix == "-raw/"
    start = datetime(2026, 12, 20, tzinfo=UTC)
    # One discovery listing per year the window touches.
    assert layout.discovery_prefixes(start, start + timedelta(days=30)) == ["2026/", "2027/"]
    assert layout.sensor_of("2026/", "2026/a-raw/") == "a"
    assert layout.sensor_of("2026/", "2026/a/") is None
    templates = layout.prefix_templates(start, start + timedelta(days=30))
    assert list_prefixes(templates, {"2026/": ["a"], "2027/": ["b"]}) == ["2026/a-raw/12/", "2027/b-raw/01/"]


def test_year_only_layout_and_no_sensor() -> None:
    layout = parse_layout("archive/{yyyy}/")
    assert layout.unit == "year" and not layout.has_sensor
    assert list_prefixes(layout.prefix_templates(NOW - timedelta(days=400), NOW), {}) == [
        "archive/2025/",
        "archive/2026/",
    ]


def test_window_in_another_timezone_is_read_in_utc() -> None:
    layout = parse_layout("{yyyy}/{mm}/{dd}/{hh}/")
    plus2 = timezone(timedelta(hours=2))
    start = datetime(2026, 11, 22, 1, 30, tzinfo=plus2)  # 2026-11-21 23:30 UTC
    assert list_prefixes(layout.prefix_templates(start, start), {}) == ["2026/11/21/23/"]


def test_window_bounds_must_be_aware_and_ordered() -> None:
    layout = parse_layout("{yyyy}/")
    with pytest.raises(ValueError, match="timezone-aware"):
        layout.time_slots(datetime(2026, 1, 1), NOW)
    with pytest.raises(ValueError, match="after its end"):
        layout.time_slots(NOW, NOW - timedelta(seconds=1))


def test_resolve_refuses_a_sensor_with_a_slash() -> None:
    template = PrefixTemplate(slot=NOW, before="", after="/2026/", discover="")
    assert template.resolve("s1") == "s1/2026/"
    with pytest.raises(ValueError, match="without '/'"):
        template.resolve("a/b")


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("", "must not be empty"),
        ("{sensor}/{yyyy}/{mm}/{dd}", "must end with '/'"),
        ("/{yyyy}/", "must not start with '/'"),
        ("{sensor}//{yyyy}/", "empty, '.' or '..' path segment"),
        ("../{yyyy}/", "empty, '.' or '..' path segment"),
        ("{sensor}/", "must contain {yyyy}"),
        ("{sensor}/{mm}/{dd}/", "must contain {yyyy}"),
        ("{dd}/{mm}/{yyyy}/", "coarse to fine"),
        ("{yyyy}/{dd}/", "coarse to fine"),
        ("{yyyy}/{mm}/{hh}/", "coarse to fine"),
        ("{yyyy}/{month}/", r"unknown placeholder \{month\}"),
        ("{yyyy}/{}/", r"unknown placeholder \{\}"),
        ("{yyyy}/{yyyy}/", "appears more than once"),
        ("{sensor}/{sensor}/{yyyy}/", "appears more than once"),
        ("{{yyyy}}/", "braces are only allowed"),
        ("{yyyy/", "braces are only allowed"),
        ("data dir/{yyyy}/", "character ' ' is not allowed"),
        ("$HOME/{yyyy}/", "character '\\$' is not allowed"),
        ("{sensor}{yyyy}/", "must not share its path segment"),
        ("{yyyy}/{mm}-{sensor}/", "must not share its path segment"),
    ],
)
def test_bad_layouts_name_the_setting_and_the_rule(text: str, rule: str) -> None:
    with pytest.raises(LayoutError, match=rule) as info:
        parse_layout(text)
    assert str(info.value).startswith(f"SENSOR_CHUNK_LAYOUT={text.strip()!r}: ")
    assert isinstance(info.value, ValueError)


def test_the_error_names_another_setting_when_asked() -> None:
    with pytest.raises(LayoutError, match=r"^--layout='x/': must contain \{yyyy\}"):
        parse_layout("x/", setting="--layout")


# --------------------------------------------------------------------------- properties

LAYOUTS = [
    "{sensor}/{yyyy}/{mm}/{dd}/",
    "{yyyy}/{mm}/{dd}/{sensor}/",
    "{yyyy}/{mm}/{dd}/",
    "raw/s-{sensor}/y={yyyy}/m={mm}/d={dd}/h={hh}/",
    "{yyyy}/{sensor}-raw/{mm}/{dd}/",
    "{yyyy}{mm}{dd}/{sensor}.d/",
    "{sensor}/{yyyy}/{mm}/",
    "{yyyy}/",
]
BASE = datetime(2026, 1, 1, tzinfo=UTC)
times = st.integers(min_value=-3 * 24 * 366, max_value=3 * 24 * 366).map(
    lambda minutes: BASE + timedelta(minutes=minutes * 37)
)
sensor_names = st.text(alphabet="abcxyz019-_.", min_size=1, max_size=6).filter(lambda s: s not in (".", ".."))


def _slot_bounds(layout_text: str, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    layout = parse_layout(layout_text)
    slots = layout.time_slots(start, end)
    return slots[0], slots[-1]


@settings(max_examples=200, deadline=None)
@given(
    layout_text=st.sampled_from(LAYOUTS),
    start=times,
    span_hours=st.floats(min_value=0, max_value=24 * 70),
    when=times,
    sensor=sensor_names,
    others=st.lists(sensor_names, max_size=4),
    leaf=st.sampled_from(["080000.csv", "x.npy", "a/b.csv"]),
)
def test_a_name_is_covered_by_exactly_one_prefix_iff_its_slot_is_in_the_window(
    layout_text: str,
    start: datetime,
    span_hours: float,
    when: datetime,
    sensor: str,
    others: list[str],
    leaf: str,
) -> None:
    layout = parse_layout(layout_text)
    end = start + timedelta(hours=span_hours)
    # What discovery finds: the sensor of the name and some others, at every discovery prefix.
    found = {d: [sensor, *others] for d in layout.discovery_prefixes(start, end)}
    prefixes = list_prefixes(layout.prefix_templates(start, end), found)
    assert len(prefixes) == len(set(prefixes))
    # No listed prefix starts with another, so no blob is listed twice.
    ordered = sorted(prefixes)
    assert not any(b.startswith(a) for a, b in pairwise(ordered))

    name = layout.render(when, sensor if layout.has_sensor else None) + leaf
    covering = [p for p in prefixes if name.startswith(p)]
    first, last = _slot_bounds(layout_text, start, end)
    slot = layout.time_slots(when, when)[0]
    if first <= slot <= last:
        assert len(covering) == 1, (name, prefixes)
    else:
        assert covering == [], (name, covering)
    if start <= when <= end:
        assert len(covering) == 1  # every time inside the window is covered


@settings(max_examples=100, deadline=None)
@given(layout_text=st.sampled_from(LAYOUTS), when=times, sensor=sensor_names)
def test_discovery_reads_back_the_sensor_a_name_was_made_with(layout_text: str, when: datetime, sensor: str) -> None:
    layout = parse_layout(layout_text)
    if not layout.needs_discovery:
        return
    (discover,) = layout.discovery_prefixes(when, when)
    name = layout.render(when, sensor) + "leaf.csv"
    # What a delimiter listing at `discover` answers for this blob: the name up to the next '/'.
    folder = name[: name.index("/", len(discover)) + 1]
    assert layout.sensor_of(discover, folder) == sensor
