"""Chunk-event queue messages: decode one message into a chunk event, or say why not (pure, no I/O).

In "coalesce" mode chunk events arrive on an Azure Storage Queue (``chunk-events``) from two
producers, which both write one ``Microsoft.Storage.BlobCreated`` event per message as
base64-encoded JSON (see ``shared/reference/NOTES.md``, "Azure Storage Queue and Event Grid
delivery"):

- Event Grid, with a ``StorageQueue`` endpoint: the event in the EventGrid schema or in the
  CloudEvents 1.0 schema (``specversion``, ``type``, ``time``);
- our own blob trigger, through :func:`encode_message`: the EventGrid schema.

:func:`decode_message` never raises, whatever the content; it returns one of three outcomes::

    ChunkEvent      a BlobCreated event for a valid chunk name in our container: process it
    Ignored         well-formed, every field valid, but nothing to do (``data.api`` is not a
                    completed upload, e.g. Data Lake ``CreateFile``): delete the message, log .reason
    Unusable        can never succeed (not base64/UTF-8/JSON, too big or too deep, duplicate keys,
                    NaN, not one object, wrong schema or event type, a subject for another
                    container, a name outside the allow-list, a bad ETag or time): move the message
                    to ``<queue>-poison`` with .reason, which names the field and the rule

Reasons echo at most ~120 characters of any input value, always through ``repr``, so they hold no
raw control characters and are safe to log and to store with the poisoned message.

The blob name is taken literally from ``subject`` (everything after ``/blobs/``), *not*
URL-unquoted: the reference samples and NOTES show ``subject`` carrying the name as it is, and only
``data.url`` is a URL. A percent-encoded subject therefore fails the allow-list (``%`` is not
allowed) and lands in the poison queue, instead of being silently turned into another name.

Standard library, ``chunk_contract`` and ``function_app.strict_json`` (the shared strict JSON pieces)
only: this module is on the function app's cold-start path.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeAlias

from chunk_contract.names import InvalidChunkName, validate_chunk_name
from chunk_contract.versions import InvalidETag, normalize_etag
from function_app.strict_json import StrictJSONError, max_depth, no_constants, no_duplicate_keys

__all__ = [
    "BLOB_CREATED",
    "COMPLETED_APIS",
    "MAX_DEPTH",
    "MAX_MESSAGE_BYTES",
    "ChunkEvent",
    "Decoded",
    "Ignored",
    "Unusable",
    "blob_created_message",
    "decode_message",
    "encode_message",
]

BLOB_CREATED = "Microsoft.Storage.BlobCreated"
# The operations after which the blob is complete. Azure's docs advise filtering on these:
# Data Lake (HNS) accounts also emit BlobCreated for ``CreateFile``, before any data is flushed.
COMPLETED_APIS = frozenset({"PutBlob", "PutBlockList", "FlushWithClose", "CopyBlob"})
MAX_MESSAGE_BYTES = 65536  # a Storage Queue message holds at most 64 KiB
MAX_DEPTH = 32  # a BlobCreated event nests 3 deep (event -> data -> storageDiagnostics)

_SUBJECT_PREFIX = "/blobServices/default/containers/"
_SUBJECT_SHAPE = f"'{_SUBJECT_PREFIX}<container>/blobs/<name>'"
_JSON_WHITESPACE = " \t\r\n"
_SHOWN = 120  # characters of an input value a reason may echo
_MAX_REASON = 400  # characters of a reason; longer ones are cut (they only ever come from exceptions)

# RFC 3339 as Azure writes it: "2017-06-26T18:41:00.9584103Z" (7 fractional digits; fromisoformat
# keeps 6) or with a numeric offset. ASCII digits only, and an offset is required: a naive time is
# ambiguous, and fromisoformat alone would accept date-only and week-date forms.
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})", re.ASCII)


# --------------------------------------------------------------------------- the outcomes


@dataclass(frozen=True)
class ChunkEvent:
    """One BlobCreated event for a chunk in our container.

    ``name`` is the literal blob name from ``subject``, checked against the chunk-name allow-list.
    ``etag`` is normalised (no quotes); ``None`` when the event carries no ``data.eTag``, and then
    the caller reads the blob's current ETag. ``event_time`` is timezone-aware, ``None`` when the
    event has no ``eventTime``/``time``. ``api`` is ``data.api`` (``None`` when absent).
    """

    container: str
    name: str
    etag: str | None
    event_time: datetime | None
    event_id: str | None
    api: str | None
    schema: Literal["eventgrid", "cloudevents"]


@dataclass(frozen=True)
class Unusable:
    """The message can never succeed: move it to ``<queue>-poison`` with ``reason`` (field: rule)."""

    reason: str


@dataclass(frozen=True)
class Ignored:
    """A well-formed event that needs no processing: delete the message and log ``reason``."""

    reason: str


Decoded: TypeAlias = ChunkEvent | Unusable | Ignored


# --------------------------------------------------------------------------- decode / encode


def decode_message(content: str | bytes, *, container: str, max_bytes: int = MAX_MESSAGE_BYTES) -> Decoded:
    """Decode one chunk-event queue message. Pure, and never raises.

    Parameters
    ----------
    content : str or bytes
        The message content as stored: base64 text of the event's JSON. Plain JSON text (first
        non-blank character ``{`` or ``[``) is accepted too, so content already decoded by the queue SDK's
        ``BinaryBase64DecodePolicy`` works as well.
    container : str
        The chunk container this app processes; an event for any other container is unusable.
    max_bytes : int
        Largest content accepted, in bytes (UTF-8 for text). Default: the 64 KiB queue limit.

    Returns
    -------
    ChunkEvent, Ignored or Unusable
        See the module docstring for what the caller does with each.
    """
    outcome = _decode(content, container, max_bytes)
    if isinstance(outcome, ChunkEvent):
        return outcome
    return type(outcome)(_clean(outcome.reason))


def encode_message(event: Mapping[str, Any]) -> str:
    """The queue message content for ``event``: compact JSON, UTF-8, standard base64 (with padding).

    This is what Event Grid writes for a ``StorageQueue`` endpoint, so :func:`decode_message` reads
    both producers the same way. The result is not checked against the 64 KiB limit here;
    ``decode_message`` rejects an oversized message.

    Raises
    ------
    TypeError
        If the event holds a value JSON cannot represent.
    ValueError
        If it holds NaN or an infinity (not JSON).
    """
    text = json.dumps(dict(event), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


# --------------------------------------------------------------------------- the steps


def _decode(content: object, container: str, max_bytes: int) -> Decoded:
    payload = _payload(content, max_bytes)
    if isinstance(payload, Unusable):
        return payload
    event = _parse_json(payload)
    if isinstance(event, Unusable):
        return event
    return _event(event, container)


def _payload(content: object, max_bytes: int) -> str | Unusable:
    """The message content -> JSON text: size check, then plain JSON or base64, then UTF-8."""
    if isinstance(content, str):
        # Every character is at least one UTF-8 byte: a text longer than the limit in characters is
        # too big without encoding it (surrogatepass: measuring must not fail on a lone surrogate).
        size = len(content) if len(content) > max_bytes else len(content.encode("utf-8", "surrogatepass"))
    elif isinstance(content, (bytes, bytearray, memoryview)):
        content = bytes(content)
        size = len(content)
    else:
        return Unusable(f"content: must be str or bytes, got {type(content).__name__}")
    if size > max_bytes:
        return Unusable(f"content: at least {size} bytes, over the {max_bytes}-byte limit of a queue message")

    if isinstance(content, str):
        text = content.strip(_JSON_WHITESPACE)
        if text[:1] in ("{", "["):
            # Plain JSON, not base64: Storage Explorer, `az storage message put` and a QueueClient
            # without an encode policy enqueue the text as given. '{' and '[' are not in the base64
            # alphabet, so the two forms cannot be confused. ('[' only to say why an array of
            # events is refused, rather than "not base64".)
            return text
        encoded: str | bytes = text
    else:
        data = content.strip(_JSON_WHITESPACE.encode())
        if data[:1] in (b"{", b"["):
            # Plain JSON bytes: what a QueueClient with BinaryBase64DecodePolicy hands over.
            return _utf8(data)
        encoded = data
    if not encoded:
        return Unusable("content: empty message")
    try:
        # validate=True: a character outside the standard alphabet is an error, not skipped.
        # (Surrounding whitespace was stripped above; whitespace inside is rejected.)
        decoded = base64.b64decode(encoded, validate=True)
    except ValueError as exc:  # binascii.Error; or a str holding non-ASCII characters
        return Unusable(f"content: not base64 ({_clip(str(exc))})")
    return _utf8(decoded)


def _utf8(data: bytes) -> str | Unusable:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Unusable(f"content: not UTF-8 (byte {data[exc.start]:#04x} at position {exc.start}: {exc.reason})")


def _parse_json(text: str) -> dict[str, Any] | Unusable:
    """Strict JSON: depth at most MAX_DEPTH, no duplicate keys, no NaN/Infinity, one object."""
    depth = _max_depth(text)
    if depth > MAX_DEPTH:
        return Unusable(f"content: JSON nested deeper than {MAX_DEPTH} levels")
    try:
        value = json.loads(text, object_pairs_hook=no_duplicate_keys, parse_constant=no_constants)
    except StrictJSONError as exc:  # a duplicate key or NaN/Infinity (function_app.strict_json)
        return Unusable(f"content: not JSON: {exc.reason}")
    except RecursionError:  # unreachable after the depth scan; kept so no input can ever raise it
        return Unusable(f"content: JSON nested deeper than {MAX_DEPTH} levels")
    except ValueError as exc:  # JSONDecodeError, and integers over the 4300-digit str->int limit
        return Unusable(f"content: not JSON: {_clip(str(exc))}")
    if not isinstance(value, dict):
        return Unusable(
            f"content: must be one event object; Event Grid puts one event per queue message, got {_describe(value)}"
        )
    return value


def _max_depth(text: str) -> int:
    """Deepest bracket nesting outside strings, without recursion: ``strict_json.max_depth``.

    A scan, not a walk of the parsed value: ``json.loads`` itself recurses and raises
    RecursionError on ~1000 levels, so the depth is known before it runs.
    """
    return max_depth(text, MAX_DEPTH)


def _event(event: dict[str, Any], container: str) -> Decoded:
    """A parsed JSON object -> the outcome. Every Unusable check runs before the Ignored one."""
    schema: Literal["eventgrid", "cloudevents"]
    if "specversion" in event:
        schema, type_field, time_field = "cloudevents", "type", "time"
        if event["specversion"] != "1.0":
            return Unusable(f"specversion: must be '1.0' (CloudEvents 1.0), got {_describe(event['specversion'])}")
    else:
        schema, type_field, time_field = "eventgrid", "eventType", "eventTime"
    for field in (type_field, "subject", "data"):
        if field not in event:
            return Unusable(f"{field}: missing; {_schema_needs(schema)}")
    if event[type_field] != BLOB_CREATED:
        return Unusable(f"{type_field}: must be {BLOB_CREATED!r}, got {_describe(event[type_field])}")

    location = _location(event["subject"], container)
    if isinstance(location, Unusable):
        return location
    name = location

    data = event["data"]
    if not isinstance(data, dict):
        return Unusable(f"data: must be an object, got {_describe(data)}")
    api = data.get("api")
    if api is not None and not isinstance(api, str):
        return Unusable(f"data.api: must be a string, got {_describe(api)}")

    etag: str | None = None
    if "eTag" in data:  # absent is fine (the caller reads the blob's ETag); present must be valid
        try:
            etag = normalize_etag(data["eTag"])
        except InvalidETag as exc:
            return Unusable(f"data.eTag: {_clip(str(exc))}")

    event_time: datetime | None = None
    if time_field in event:
        parsed = _timestamp(time_field, event[time_field])
        if isinstance(parsed, Unusable):
            return parsed
        event_time = parsed

    event_id = event.get("id")
    if event_id is not None and not isinstance(event_id, str):
        return Unusable(f"id: must be a string, got {_describe(event_id)}")

    if api is not None and api not in COMPLETED_APIS:
        return Ignored(f"data.api {_show(api)} is not a completed upload (one of {', '.join(sorted(COMPLETED_APIS))})")
    return ChunkEvent(container, name, etag, event_time, event_id, api, schema)


def _schema_needs(schema: str) -> str:
    if schema == "cloudevents":
        return "a CloudEvents 1.0 BlobCreated event needs type, subject and data"
    return "without specversion this is read as an EventGrid-schema event, which needs eventType, subject and data"


def _location(subject: object, container: str) -> str | Unusable:
    """The chunk name in ``subject``, if the subject is a blob in ``container`` with a valid name."""
    if not isinstance(subject, str) or not subject.startswith(_SUBJECT_PREFIX):
        return Unusable(f"subject: must look like {_SUBJECT_SHAPE}, got {_describe(subject)}")
    # A container name has no '/', so the container ends at the first '/'; the name is everything
    # after the following "blobs/" (it may itself contain "/blobs/").
    found, _, rest = subject[len(_SUBJECT_PREFIX) :].partition("/")
    if not rest.startswith("blobs/"):
        return Unusable(f"subject: must look like {_SUBJECT_SHAPE}, got {_describe(subject)}")
    if found != container:
        # Not Ignored: a subscription delivering another container's events is a misconfiguration
        # that must show up in the poison queue.
        return Unusable(f"subject: event for container {_show(found)}; this app processes {_show(container)}")
    name = rest[len("blobs/") :]
    try:
        return validate_chunk_name(name)
    except InvalidChunkName as exc:
        return Unusable(f"subject: blob name {_show(name)}: {exc.reason}")


def _timestamp(field: str, value: object) -> datetime | Unusable:
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        return Unusable(
            f"{field}: must be an RFC 3339 time with 'Z' or an offset, e.g. '2017-06-26T18:41:00.9584103Z', "
            f"got {_describe(value)}"
        )
    try:
        # Python 3.11 accepts 'Z' and any number of fractional digits (it keeps microseconds).
        return datetime.fromisoformat(value)
    except (ValueError, OverflowError) as exc:  # e.g. month 13, hour 25, offset +24:00
        return Unusable(f"{field}: not a valid time {_show(value)} ({_clip(str(exc))})")


# --------------------------------------------------------------------------- showing input safely


def _show(value: str) -> str:
    """``repr`` of at most _SHOWN characters of ``value`` (repr escapes control characters)."""
    return repr(value) if len(value) <= _SHOWN else repr(value[:_SHOWN]) + "..."


def _describe(value: object) -> str:
    """A short description of a JSON value for a reason: strings shown (truncated), others by kind."""
    if isinstance(value, str):
        return _show(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # at most 24 characters ('inf' for 1e400, which json.loads allows)
    if isinstance(value, int):
        return str(value) if abs(value) < 10**15 else "a large integer"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _clean(reason: str) -> str:
    """Last guard on every reason: escape anything unprintable and bound the length."""
    if not reason.isprintable():
        reason = "".join(c if c.isprintable() else repr(c)[1:-1] for c in reason)
    return _clip(reason, _MAX_REASON)


def blob_created_message(*, container: str, name: str, etag: str, event_time: datetime, source: str = "") -> str:
    """The queue message our blob trigger enqueues for a chunk version (coalesce mode).

    The same EventGrid-schema shape Event Grid itself would deliver to the queue, so the drainer has
    one decoder; ``source`` (the account URL, if known) only fills ``data.url`` for humans.
    """
    return encode_message(
        {
            "id": f"blob-trigger-{container}-{etag}",
            "eventType": BLOB_CREATED,
            "subject": f"/blobServices/default/containers/{container}/blobs/{name}",
            "eventTime": event_time.isoformat(),
            "dataVersion": "",
            "metadataVersion": "1",
            "data": {
                "api": "PutBlob",
                "eTag": etag,
                "url": f"{source.rstrip('/')}/{container}/{name}" if source else "",
                "blobType": "BlockBlob",
            },
        }
    )
