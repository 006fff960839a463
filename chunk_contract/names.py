"""The chunk-name rule shared by the flow and the function app.

A chunk name is a blob name inside the chunk container. It travels into an Argo workflow
parameter, and Metaflow's start pod passes parameter values through a bash ``export``, where
``$`` and backticks are expanded (see ``shared/reference/NOTES.md``). So every name is checked
against a strict allow-list *before* anything is sent or read: letters, digits and ``/ . _ - =``;
no ``..`` anywhere, no ``.`` segment, no leading ``/``, no empty segment, and at most 1010
characters — Azure allows 1024 for a blob name, and the chunk's records ``<name>.features.json``
(14 more) and ``<name>.error.json`` must fit too.

Why ``.`` segments are refused: HTTP clients (urllib3, the Azure SDK) drop ``./`` from a request
path, so ``./s1/a.csv`` and ``s1/./a.csv`` would reach the blob ``s1/a.csv`` under another name — a
second claim, a second workflow for the same content. One spelling per blob.

Standard library only: this module sits on the function app's cold-start path.
"""

from __future__ import annotations

import re

__all__ = [
    "AZURE_MAX_BLOB_NAME",
    "LONGEST_RECORD_SUFFIX",
    "MAX_CHUNK_NAME_LENGTH",
    "InvalidChunkName",
    "sensor_id",
    "validate_chunk_name",
]

AZURE_MAX_BLOB_NAME = 1024
LONGEST_RECORD_SUFFIX = ".features.json"  # chunk_contract.records.RESULT_SUFFIX, the longer of the two
MAX_CHUNK_NAME_LENGTH = AZURE_MAX_BLOB_NAME - len(LONGEST_RECORD_SUFFIX)  # 1010

_ALLOWED = re.compile(r"[A-Za-z0-9/._=-]+")
_RULE = (
    "letters, digits and / . _ - = only; no '..', no '.' segment, no leading '/', no empty segment, "
    f"at most {MAX_CHUNK_NAME_LENGTH} characters"
)


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
        allow-list, starts with ``/``, ends with ``/``, or has an empty, ``.`` or ``..`` segment.
    """
    if not isinstance(name, str):
        raise InvalidChunkName(name, f"must be a string, got {type(name).__name__}")
    if not name:
        raise InvalidChunkName(name, "must not be empty")
    if len(name) > MAX_CHUNK_NAME_LENGTH:
        raise InvalidChunkName(
            name,
            f"is {len(name)} characters long, the limit is {MAX_CHUNK_NAME_LENGTH} "
            f"(Azure's {AZURE_MAX_BLOB_NAME} less room for the record suffix {LONGEST_RECORD_SUFFIX!r})",
        )
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
    if "." in segments:
        raise InvalidChunkName(name, "must not contain a '.' path segment (HTTP clients drop './': an alias)")
    return name


def sensor_id(name: str) -> str:
    """The sensor id of a chunk: the first path segment of its (valid) name.

    >>> sensor_id("sensor-7/2026/11/22/chunk-0001.csv")
    'sensor-7'
    """
    return validate_chunk_name(name).split("/", 1)[0]
