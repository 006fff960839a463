"""The chunk-name rule shared by the flow and the function app.

A chunk name is a blob name inside the chunk container. It travels into an Argo workflow
parameter, and Metaflow's start pod passes parameter values through a bash ``export``, where
``$`` and backticks are expanded (see ``shared/reference/NOTES.md``). So every name is checked
against a strict allow-list *before* anything is sent or read: letters, digits and ``/ . _ - =``;
no ``..`` segment, no leading ``/``, no empty segment, at most 1024 characters (Azure's own
limit for a blob name).

Standard library only: this module sits on the function app's cold-start path.
"""

from __future__ import annotations

import re

__all__ = ["MAX_CHUNK_NAME_LENGTH", "InvalidChunkName", "sensor_id", "validate_chunk_name"]

MAX_CHUNK_NAME_LENGTH = 1024

_ALLOWED = re.compile(r"[A-Za-z0-9/._=-]+")
_RULE = "letters, digits and / . _ - = only; no '..', no leading '/', no empty segment, at most 1024 characters"


class InvalidChunkName(ValueError):
    """A chunk name broke the allow-list. ``name`` is the offending value, ``reason`` the rule."""

    def __init__(self, name: object, reason: str) -> None:
        self.name = name
        self.reason = reason
        shown = repr(name) if not isinstance(name, str) or len(name) <= 120 else repr(name[:120] + "...")
        super().__init__(f"invalid chunk name {shown}: {reason} (allowed: {_RULE})")


def validate_chunk_name(name: object) -> str:
    """Return ``name`` unchanged if it is a valid chunk name, else raise :class:`InvalidChunkName`.

    Parameters
    ----------
    name : object
        Candidate blob name inside the chunk container.

    Raises
    ------
    InvalidChunkName
        If ``name`` is not a string, is empty or too long, holds a character outside the
        allow-list, starts with ``/``, ends with ``/``, or has an empty or ``..`` segment.
    """
    if not isinstance(name, str):
        raise InvalidChunkName(name, f"must be a string, got {type(name).__name__}")
    if not name:
        raise InvalidChunkName(name, "must not be empty")
    if len(name) > MAX_CHUNK_NAME_LENGTH:
        raise InvalidChunkName(name, f"is {len(name)} characters long, the limit is {MAX_CHUNK_NAME_LENGTH}")
    if not _ALLOWED.fullmatch(name):
        bad = next(c for c in name if not _ALLOWED.fullmatch(c))
        raise InvalidChunkName(name, f"character {bad!r} is not allowed")
    if name.startswith("/"):
        raise InvalidChunkName(name, "must not start with '/'")
    segments = name.split("/")
    if ".." in segments or any(".." in s for s in segments):
        raise InvalidChunkName(name, "must not contain '..'")
    if "" in segments:
        raise InvalidChunkName(name, "must not contain an empty path segment ('//' or a trailing '/')")
    return name


def sensor_id(name: str) -> str:
    """The sensor id of a chunk: the first path segment of its (valid) name.

    >>> sensor_id("sensor-7/2026/11/22/chunk-0001.csv")
    'sensor-7'
    """
    return validate_chunk_name(name).split("/", 1)[0]
