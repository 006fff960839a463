"""Strict JSON: one reading of a document, or a :class:`StrictJSONError` naming the rule it broke.

``json.loads`` accepts documents that different readers understand differently, or that crash it:

- a key twice in one object (``{"force": false, "force": true}``): Python keeps the last value,
  other parsers (a gateway, an audit log, a WAF) may keep the first — what they check is not what
  runs;
- ``NaN``, ``Infinity``, ``-Infinity`` (not JSON at all) and numbers like ``1e400`` that overflow
  to an infinity;
- deep nesting: ``json.loads`` recurses, and ~100,000 ``[`` raise ``RecursionError`` (a 500 with a
  traceback instead of a 400);
- invalid UTF-8, and strings with an unpaired surrogate escape (``"\\ud800"``), which I-JSON
  (RFC 7493) forbids and which cannot be encoded back to UTF-8;
- unbounded size.

:func:`loads_strict` refuses all of these, checking size, then encoding, then depth (a scan
without recursion) before the parser runs. The error's ``rule`` is one of :data:`RULES` and its
message (``reason``) says what was wrong; it echoes at most a key of ~120 characters, through
``repr``, never the document.

The pieces (:func:`max_depth`, :func:`no_duplicate_keys`, :func:`no_constants`) are shared with
``function_app.queue_messages``, which keeps its own messages around them.

Standard library only: this module is on the function app's cold-start path.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "RULES",
    "StrictJSONError",
    "loads_strict",
    "max_depth",
    "no_constants",
    "no_duplicate_keys",
]

DEFAULT_MAX_BYTES = 1024 * 1024  # 1 MiB
DEFAULT_MAX_DEPTH = 32
RULES = ("size", "utf-8", "depth", "syntax", "duplicate-key", "constant", "number", "surrogate")

_SHOWN = 120  # characters of a key a message may echo
# A JSON string (possibly unterminated: the closing quote is optional, so every match advances) or a
# bracket. Strings are skipped whole, so the brackets counted are exactly the structural ones.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)


class StrictJSONError(ValueError):
    """The document broke one of the rules. ``rule`` is one of :data:`RULES`; ``reason`` the message."""

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(reason)
        self.rule = rule
        self.reason = reason


# --------------------------------------------------------------------------- the shared pieces


def max_depth(text: str, limit: int = DEFAULT_MAX_DEPTH) -> int:
    """Deepest bracket nesting outside strings, without recursion (exact for valid JSON).

    A scan, not a walk of the parsed value: ``json.loads`` itself recurses and raises
    RecursionError on ~1000 levels, so the depth is known before it runs. The scan stops as soon
    as the depth exceeds ``limit`` (the result is then ``limit + 1``).
    """
    if text.count("[") + text.count("{") <= limit:  # cannot be too deep: skip the scan
        return 0
    depth = deepest = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif token in ("]", "}"):
            depth -= 1
    return deepest


def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for ``json.loads``: a key twice in one object is an error, not "last wins"."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise StrictJSONError("duplicate-key", f"duplicate key {_show(key)}")
        result[key] = value
    return result


def no_constants(name: str) -> Any:
    """``parse_constant`` for ``json.loads``: ``NaN``, ``Infinity`` and ``-Infinity`` are not JSON."""
    raise StrictJSONError("constant", f"{name} is not JSON")


# --------------------------------------------------------------------------- the reader


def loads_strict(
    data: bytes | bytearray | memoryview, *, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = DEFAULT_MAX_DEPTH
) -> Any:
    """Parse ``data`` (UTF-8 JSON) into a value, or raise :class:`StrictJSONError`.

    Parameters
    ----------
    data : bytes
        The document as received (bytes-like; no BOM, no other encoding than UTF-8).
    max_bytes : int
        Largest document accepted.
    max_depth : int
        Deepest nesting of arrays and objects accepted (``[]`` is depth 1).

    Raises
    ------
    StrictJSONError
        ``size``, ``utf-8``, ``depth``, ``syntax``, ``duplicate-key``, ``constant`` (NaN,
        Infinity), ``number`` (a float overflowing to an infinity) or ``surrogate`` (an unpaired
        ``\\uD800``-``\\uDFFF`` escape). Never RecursionError.
    TypeError
        If ``data`` is not bytes-like.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"loads_strict reads bytes, got {type(data).__name__}")
    raw = bytes(data)
    if len(raw) > max_bytes:
        raise StrictJSONError("size", f"is {len(raw)} bytes, over the limit of {max_bytes} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StrictJSONError(
            "utf-8", f"is not UTF-8 (byte {raw[exc.start]:#04x} at position {exc.start}: {exc.reason})"
        ) from None
    too_deep = StrictJSONError("depth", f"is nested deeper than {max_depth} levels")
    if _max_depth(text, max_depth) > max_depth:
        raise too_deep
    try:
        value = json.loads(
            text, object_pairs_hook=no_duplicate_keys, parse_constant=no_constants, parse_float=_finite_float
        )
    except StrictJSONError as exc:
        prefix = "is ambiguous JSON: " if exc.rule == "duplicate-key" else "is not valid JSON: "
        raise StrictJSONError(exc.rule, prefix + exc.reason) from None
    except RecursionError:  # unreachable after the depth scan; kept so no input can ever raise it
        raise too_deep from None
    except ValueError as exc:  # JSONDecodeError (position only), integers over the str->int digit limit
        raise StrictJSONError("syntax", f"is not valid JSON ({_clip(str(exc))})") from None
    bad = _unpaired_surrogate(value)
    if bad is not None:
        raise StrictJSONError(
            "surrogate", f"is not valid I-JSON: {bad} holds an unpaired surrogate escape (\\ud800-\\udfff)"
        )
    return value


_max_depth = max_depth  # the parameter of loads_strict shadows the function's name


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise StrictJSONError("number", f"the number {_clip(text, 40)} is out of range (not a finite double)")
    return value


def _unpaired_surrogate(value: Any) -> str | None:
    """Where (``a key``/``a string``) ``value`` holds a lone surrogate, else None. Depth is bounded."""
    if isinstance(value, str):
        return None if _encodable(value) else "a string"
    if isinstance(value, list):
        for item in value:
            found = _unpaired_surrogate(item)
            if found:
                return found
    elif isinstance(value, dict):
        for key, item in value.items():
            if not _encodable(key):
                return "a key"
            found = _unpaired_surrogate(item)
            if found:
                return found
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _show(value: str) -> str:
    """``repr`` of at most _SHOWN characters of ``value`` (repr escapes control characters)."""
    return repr(value) if len(value) <= _SHOWN else repr(value[:_SHOWN]) + "..."


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
