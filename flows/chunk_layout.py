"""Where chunks sit in the chunk container by time, so a fallback sweep lists only its window.

The setting ``SENSOR_CHUNK_LAYOUT`` describes the folder part of every chunk name, for instance
``{sensor}/{yyyy}/{mm}/{dd}/`` for the demo's ``sensor-001/2026/11/22/080000.csv``. Placeholders:

- ``{yyyy}`` (required), ``{mm}``, ``{dd}``, ``{hh}``: the chunk's UTC year, month, day, hour,
  zero-padded (4, 2, 2, 2 digits), coarse to fine, none skipped (``{dd}`` needs ``{mm}``);
- ``{sensor}`` (optional): one sensor's folder; it shares its path segment with no other
  placeholder, and its value never holds ``/``.

Literal text (the chunk-name characters ``A-Z a-z 0-9 / . _ - =``) may surround them, e.g.
``raw/{sensor}/y={yyyy}/m={mm}/``; the layout ends with ``/``.

Given a window ``[start, end]``, :meth:`ChunkLayout.prefix_templates` gives one
:class:`PrefixTemplate` per time slot (day, or hour with ``{hh}``; month or year for coarser
layouts) that overlaps the window. Where ``{sensor}`` stands decides what listing costs:

- no ``{sensor}``, or ``{sensor}`` after every time field (``{yyyy}/{mm}/{dd}/{sensor}/``): the
  prefix is cut just before ``{sensor}`` (``2026/11/22/``) and covers every sensor. No discovery.
- ``{sensor}`` before a time field (``{sensor}/{yyyy}/{mm}/{dd}/``): the sensors are found with one
  delimiter listing at :attr:`PrefixTemplate.discover` (here the container's root), and each
  template is resolved once per sensor (:func:`list_prefixes`). Time fields before ``{sensor}``
  (``{yyyy}/{sensor}/{mm}/``) make one discovery listing per distinct value (here per year).

Every blob whose name starts with the layout rendered at a time inside the window (and a sensor
that discovery found) starts with exactly one listed prefix; no name rendered at a time whose slot
lies outside the window does. Pure: no I/O, standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

__all__ = [
    "SETTING",
    "TIME_FIELDS",
    "ChunkLayout",
    "LayoutError",
    "PrefixTemplate",
    "list_prefixes",
    "parse_layout",
]

SETTING = "SENSOR_CHUNK_LAYOUT"
TIME_FIELDS = ("yyyy", "mm", "dd", "hh")  # coarse to fine
_WIDTH = {"yyyy": 4, "mm": 2, "dd": 2, "hh": 2}
_UNIT: dict[str, Literal["year", "month", "day", "hour"]] = {
    "yyyy": "year",
    "mm": "month",
    "dd": "day",
    "hh": "hour",
}
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_LITERAL = re.compile(r"[A-Za-z0-9/._=-]*")  # the chunk-name allow-list (chunk_contract.names)
_SENSOR_MARK = "{sensor}"

Token = tuple[Literal["text", "field"], str]


class LayoutError(ValueError):
    """A chunk layout broke a rule; the message names the setting, the value and the rule."""

    def __init__(self, text: object, rule: str, setting: str = SETTING) -> None:
        self.text = text
        self.rule = rule
        super().__init__(f"{setting}={text!r}: {rule}")


@dataclass(frozen=True)
class PrefixTemplate:
    """The listing prefix of one time slot, with the sensor left open when discovery must fill it.

    Attributes
    ----------
    slot : datetime
        Start (UTC) of the time slot this prefix covers.
    before : str
        The rendered text up to ``{sensor}`` (the whole prefix when no sensor is needed).
    after : str
        The rendered text after ``{sensor}``; empty when no sensor is needed.
    discover : str or None
        Where to list with ``delimiter="/"`` to find the sensors (equal to ``before``), or ``None``
        when the prefix covers every sensor as it is.
    """

    slot: datetime
    before: str
    after: str = ""
    discover: str | None = None

    @property
    def needs_sensor(self) -> bool:
        """Whether the prefix is resolved once per discovered sensor."""
        return self.discover is not None

    @property
    def text(self) -> str:
        """The template as text: ``sensor-{sensor}/2026/11/22/`` or a plain prefix."""
        return self.before + _SENSOR_MARK + self.after if self.needs_sensor else self.before

    def resolve(self, sensor: str | None = None) -> str:
        """The prefix for ``sensor`` (ignored, and may be omitted, when no sensor is needed).

        Raises
        ------
        ValueError
            If a sensor is needed and ``sensor`` is missing, empty or holds ``/``.
        """
        if not self.needs_sensor:
            return self.before
        if not sensor or "/" in sensor:
            raise ValueError(f"sensor must be a non-empty path segment without '/', got {sensor!r}")
        return self.before + sensor + self.after


@dataclass(frozen=True)
class ChunkLayout:
    """A parsed, validated ``SENSOR_CHUNK_LAYOUT`` (build it with :func:`parse_layout`).

    Attributes
    ----------
    text : str
        The layout as given.
    tokens : tuple of (kind, value)
        ``("text", literal)`` and ``("field", name)`` in order.
    """

    text: str
    tokens: tuple[Token, ...]

    @property
    def fields(self) -> tuple[str, ...]:
        """The placeholders in order of appearance."""
        return tuple(value for kind, value in self.tokens if kind == "field")

    @property
    def time_fields(self) -> tuple[str, ...]:
        """The time placeholders present, coarse to fine (``("yyyy", "mm", "dd")``)."""
        return tuple(f for f in self.fields if f != "sensor")

    @property
    def unit(self) -> Literal["year", "month", "day", "hour"]:
        """The time slot one prefix covers: the finest time field present."""
        return _UNIT[self.time_fields[-1]]

    @property
    def has_sensor(self) -> bool:
        return "sensor" in self.fields

    @property
    def needs_discovery(self) -> bool:
        """Whether ``{sensor}`` precedes a time field, so the sensors must be listed first."""
        if not self.has_sensor:
            return False
        return any(kind == "field" and value != "sensor" for kind, value in self._tail())

    @property
    def sensor_suffix(self) -> str:
        """Literal text after ``{sensor}`` up to and including the next ``/`` (``"/"`` usually)."""
        suffix = ""
        for kind, value in self._tail():
            # A time field never shares the sensor's segment (checked at parse), so only text
            # stands between {sensor} and the next '/'.
            assert kind == "text"
            cut = value.find("/")
            if cut >= 0:
                return suffix + value[: cut + 1]
            suffix += value
        raise AssertionError("a layout ends with '/'")  # pragma: no cover - checked at parse

    def _head(self) -> tuple[Token, ...]:
        i = self.tokens.index(("field", "sensor"))
        return self.tokens[:i]

    def _tail(self) -> tuple[Token, ...]:
        i = self.tokens.index(("field", "sensor"))
        return self.tokens[i + 1 :]

    def time_slots(self, start: datetime, end: datetime) -> list[datetime]:
        """Start (UTC) of every slot of :attr:`unit` that overlaps ``[start, end]``, in order.

        Parameters
        ----------
        start, end : datetime
            Timezone-aware bounds of the window, ``start <= end``.

        Raises
        ------
        ValueError
            If a bound is naive or ``start > end``.
        """
        for label, value in (("start", start), ("end", end)):
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError(f"window {label} must be timezone-aware, got naive {value.isoformat()}")
        if start > end:
            raise ValueError(f"window start {start.isoformat()} is after its end {end.isoformat()}")
        slot = _floor(start.astimezone(UTC), self.unit)
        last = _floor(end.astimezone(UTC), self.unit)
        slots = []
        while slot <= last:
            slots.append(slot)
            slot = _next(slot, self.unit)
        return slots

    def render(self, when: datetime, sensor: str | None = None) -> str:
        """The whole layout at time ``when`` (UTC) for ``sensor``: the folder of such a chunk.

        Raises
        ------
        ValueError
            If the layout has ``{sensor}`` and ``sensor`` is missing or holds ``/``.
        """
        if self.has_sensor and (not sensor or "/" in sensor):
            raise ValueError(f"sensor must be a non-empty path segment without '/', got {sensor!r}")
        return _render(self.tokens, when.astimezone(UTC), sensor)

    def prefix_templates(self, start: datetime, end: datetime) -> list[PrefixTemplate]:
        """One prefix template per time slot overlapping ``[start, end]`` (see the module docstring).

        Parameters
        ----------
        start, end : datetime
            Timezone-aware bounds of the window.

        Returns
        -------
        list of PrefixTemplate
            In slot order. Their prefixes never overlap: no listed prefix starts with another.
        """
        templates = []
        for slot in self.time_slots(start, end):
            if not self.has_sensor:
                templates.append(PrefixTemplate(slot=slot, before=_render(self.tokens, slot, None)))
            elif not self.needs_discovery:
                templates.append(PrefixTemplate(slot=slot, before=_render(self._head(), slot, None)))
            else:
                head = _render(self._head(), slot, None)
                templates.append(
                    PrefixTemplate(slot=slot, before=head, after=_render(self._tail(), slot, None), discover=head)
                )
        return templates

    def discovery_prefixes(self, start: datetime, end: datetime) -> list[str]:
        """The distinct prefixes to list with ``delimiter="/"`` to find the window's sensors.

        Empty when :attr:`needs_discovery` is false; one entry (``""`` or a literal such as
        ``raw/``) when ``{sensor}`` comes before every time field.
        """
        seen: dict[str, None] = {}
        for template in self.prefix_templates(start, end):
            if template.discover is not None:
                seen.setdefault(template.discover, None)
        return list(seen)

    def sensor_of(self, discover: str, listed_prefix: str) -> str | None:
        """The sensor named by a delimiter listing's virtual folder, or ``None`` if it does not fit.

        Parameters
        ----------
        discover : str
            The prefix the delimiter listing was made at.
        listed_prefix : str
            One ``BlobPrefix`` name of that listing, e.g. ``"sensor-001/"`` (it ends with ``/``).
        """
        suffix = self.sensor_suffix
        if not listed_prefix.startswith(discover) or not listed_prefix.endswith("/"):
            return None
        segment = listed_prefix[len(discover) :]
        if not segment.endswith(suffix) or len(segment) <= len(suffix):
            return None
        sensor = segment[: -len(suffix)]
        return None if "/" in sensor else sensor


def parse_layout(text: str, *, setting: str = SETTING) -> ChunkLayout:
    """Parse and validate a chunk layout such as ``{sensor}/{yyyy}/{mm}/{dd}/``.

    Parameters
    ----------
    text : str
        The layout (surrounding blanks are ignored).
    setting : str
        The name the error messages give the value (default ``SENSOR_CHUNK_LAYOUT``).

    Returns
    -------
    ChunkLayout

    Raises
    ------
    LayoutError
        A ``ValueError`` naming ``setting``, the value and the rule it broke: an unknown or repeated
        placeholder, a stray brace, a character outside the chunk-name allow-list, no ``{yyyy}``,
        time fields out of order or skipped, ``{sensor}`` sharing its segment with a time field, a
        leading ``/``, an empty, ``.`` or ``..`` segment, or no trailing ``/``.
    """
    if not isinstance(text, str):
        raise LayoutError(text, f"must be a string, got {type(text).__name__}", setting)
    raw = text
    text = text.strip()
    if not text:
        raise LayoutError(raw, "must not be empty (leave the setting unset for a full listing)", setting)
    tokens: list[Token] = []
    pos = 0
    for match in _PLACEHOLDER.finditer(text):
        tokens.extend(_literal(text, text[pos : match.start()], setting))
        name = match.group(1)
        if name != "sensor" and name not in TIME_FIELDS:
            raise LayoutError(
                text, f"unknown placeholder {{{name}}} (known: {{sensor}}, {{yyyy}}, {{mm}}, {{dd}}, {{hh}})", setting
            )
        if ("field", name) in tokens:
            raise LayoutError(text, f"placeholder {{{name}}} appears more than once", setting)
        tokens.append(("field", name))
        pos = match.end()
    tokens.extend(_literal(text, text[pos:], setting))

    if not text.endswith("/"):
        raise LayoutError(text, "must end with '/' (it describes the folder part of a chunk name)", setting)
    if text.startswith("/"):
        raise LayoutError(text, "must not start with '/' (blob names never do)", setting)
    for segment in text[:-1].split("/"):
        if segment in ("", ".", ".."):
            raise LayoutError(text, "must not have an empty, '.' or '..' path segment", setting)
    fields = [value for kind, value in tokens if kind == "field"]
    times = [f for f in fields if f != "sensor"]
    if "yyyy" not in times:
        raise LayoutError(text, "must contain {yyyy}: without a time field a sweep cannot narrow its listing", setting)
    expected = list(TIME_FIELDS[: len(times)])
    if times != expected:
        raise LayoutError(
            text,
            "time fields must run coarse to fine without gaps ({yyyy}, then optionally {mm}, {dd}, {hh}); "
            f"got {', '.join('{' + t + '}' for t in times)}",
            setting,
        )
    if "sensor" in fields:
        # The sensor's segment: from the '/' before {sensor} to the '/' after it.
        at = text.index(_SENSOR_MARK)
        start = text.rfind("/", 0, at) + 1
        stop = text.index("/", at)
        if _PLACEHOLDER.sub(lambda m: "" if m.group(0) == _SENSOR_MARK else "#", text[start:stop]).count("#"):
            raise LayoutError(text, "{sensor} must not share its path segment with a time field", setting)
    return ChunkLayout(text=text, tokens=tuple(tokens))


def list_prefixes(templates: Iterable[PrefixTemplate], sensors: Mapping[str, Iterable[str]]) -> list[str]:
    """Resolve prefix templates with the sensors discovery found, in template then sensor order.

    Parameters
    ----------
    templates : iterable of PrefixTemplate
        From :meth:`ChunkLayout.prefix_templates`.
    sensors : mapping of discovery prefix to sensor names
        What the delimiter listing at each :attr:`PrefixTemplate.discover` found; a template whose
        discovery prefix is absent resolves to nothing (no sensor, nothing to list).

    Returns
    -------
    list of str
        Distinct prefixes to list, none a prefix of another.
    """
    out: dict[str, None] = {}
    for template in templates:
        if not template.needs_sensor:
            out.setdefault(template.before, None)
            continue
        assert template.discover is not None
        for sensor in sorted(set(sensors.get(template.discover, ()))):
            out.setdefault(template.resolve(sensor), None)
    return list(out)


def _literal(layout: str, text: str, setting: str) -> list[Token]:
    if not text:
        return []
    if "{" in text or "}" in text:
        raise LayoutError(layout, "braces are only allowed around a placeholder such as {yyyy}", setting)
    if not _LITERAL.fullmatch(text):
        bad = next(c for c in text if not _LITERAL.fullmatch(c))
        raise LayoutError(
            layout, f"character {bad!r} is not allowed in literal text (allowed: letters, digits, / . _ - =)", setting
        )
    return [("text", text)]


def _render(tokens: Iterable[Token], when: datetime, sensor: str | None) -> str:
    values = {"yyyy": when.year, "mm": when.month, "dd": when.day, "hh": when.hour}
    parts = []
    for kind, value in tokens:
        if kind == "text":
            parts.append(value)
        elif value == "sensor":
            parts.append(sensor or "")
        else:
            parts.append(f"{values[value]:0{_WIDTH[value]}d}")
    return "".join(parts)


def _floor(when: datetime, unit: str) -> datetime:
    if unit == "hour":
        return when.replace(minute=0, second=0, microsecond=0)
    if unit == "day":
        return when.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "month":
        return when.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return when.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)


def _next(slot: datetime, unit: str) -> datetime:
    if unit == "hour":
        return slot + timedelta(hours=1)
    if unit == "day":
        return slot + timedelta(days=1)
    if unit == "month":
        return slot.replace(year=slot.year + 1, month=1) if slot.month == 12 else slot.replace(month=slot.month + 1)
    return slot.replace(year=slot.year + 1)
