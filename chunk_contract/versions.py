"""Chunk versions: a blob (container, name) at one content, identified by its normalised ETag.

The same upload is seen with its ETag in several spellings: the blob SDK returns ``'"0x8DC..."'``
(quoted), Event Grid's ``data.eTag`` has none, an HTTP cache may add a weak ``W/`` prefix, and blob
metadata stores it bare. :func:`normalize_etag` is the one function that maps all of them to one
string; an empty ETag is an error everywhere (a version without an ETag is not a version).

Standard library only: this module is on the function app's cold-start path.
"""

from __future__ import annotations

from dataclasses import dataclass

from chunk_contract.names import sensor_id, validate_chunk_name

__all__ = ["ChunkVersion", "InvalidETag", "normalize_etag"]

_MAX_ETAG = 256  # Azure's are ~20 characters; anything far longer is not an ETag


class InvalidETag(ValueError):
    """An ETag is missing, empty or malformed; the message shows it (ETags are not secrets)."""


def normalize_etag(etag: object) -> str:
    """``'"0x8DC"'``, ``'W/"0x8DC"'`` and ``'0x8DC'`` all become ``'0x8DC'``.

    Raises
    ------
    InvalidETag
        If ``etag`` is not a string, is empty (also after removing quotes and ``W/``), longer than
        256 characters, or holds anything but printable ASCII (no whitespace, quotes or control
        characters) inside.
    """
    if not isinstance(etag, str):
        raise InvalidETag(f"ETag must be a string, got {type(etag).__name__}")
    value = etag.strip()
    if value.startswith("W/"):
        value = value[2:]
    value = value.strip('"')
    if not value:
        raise InvalidETag(f"empty ETag {etag!r}")
    # RFC 7232 entity-tags are printable ASCII (0x21-0x7E) without '"': nothing else can be one.
    if len(value) > _MAX_ETAG or any(not 0x21 <= ord(c) <= 0x7E or c == '"' for c in value):
        raise InvalidETag(f"malformed ETag {etag[:80]!r}")
    return value


@dataclass(frozen=True, order=True)
class ChunkVersion:
    """One chunk at one content. Built with :meth:`of`, which validates and normalises."""

    container: str
    name: str
    etag: str

    @classmethod
    def of(cls, container: str, name: str, etag: object) -> ChunkVersion:
        """Validate ``name`` (allow-list) and normalise ``etag``; raise ``InvalidChunkName``/``InvalidETag``."""
        return cls(container, validate_chunk_name(name), normalize_etag(etag))

    @property
    def sensor(self) -> str:
        return sensor_id(self.name)
