"""Coalescing, the pure part: how many messages a drain may take, and how chunks become batches.

The drainer (``function_app.drain``) asks these functions and then carries out the answer; nothing
here does I/O or reads a clock, so most of the coalescing tests live here.

- :func:`receive_budget`: with ``in_flight`` of the template's workflows not completed and a cap
  of ``K``, a drain may start ``K - in_flight`` workflows of up to ``N`` chunks: it receives at
  most ``(K - in_flight) * N`` messages, and none when ``K`` or more are in flight (backpressure:
  the messages wait in the queue, where they are durable and cheap).
- :func:`sort_messages`: one decision per received message — poison (with the reason), ignore,
  over the dequeue limit, or a chunk event — and the chunk events grouped by chunk version
  (duplicates in one receive are one candidate with several messages).
- :func:`group_batches`: candidates, oldest event first, cut into batches of at most ``N`` chunks
  whose ``chunks`` parameter stays within ``max_bytes`` (Metaflow's start pod passes it base64-encoded
  in one shell argument; Linux refuses 128 KiB).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from chunk_contract.naming import chunk_param_cost
from chunk_contract.versions import ChunkVersion
from function_app.event_queue import ReceivedMessage
from function_app.queue_messages import ChunkEvent, Ignored, Unusable, decode_message

__all__ = ["Candidate", "SortedMessages", "group_batches", "receive_budget", "sort_messages"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def receive_budget(in_flight: int, max_in_flight: int, max_chunks: int) -> int:
    """Messages one drain may receive: ``(K - in_flight) * N``, or 0 at or above the cap.

    >>> receive_budget(0, 20, 200), receive_budget(19, 20, 200), receive_budget(20, 20, 200)
    (4000, 200, 0)
    """
    if max_in_flight < 1 or max_chunks < 1:
        raise ValueError(f"K and N must be >= 1, got K={max_in_flight}, N={max_chunks}")
    if in_flight < 0:
        raise ValueError(f"in_flight must be >= 0, got {in_flight}")
    return max(0, max_in_flight - in_flight) * max_chunks


@dataclass
class Candidate:
    """One chunk version seen in a drain, with every message that carried it."""

    container: str
    name: str
    etag: str | None  # None: the event had no eTag; the drainer reads the blob's current one
    messages: list[ReceivedMessage] = field(default_factory=list)
    event_time: datetime | None = None
    over_dequeued: bool = False  # received more than COALESCE_MAX_DEQUEUE times

    @property
    def first_seen(self) -> datetime:
        """When the chunk was first announced: its earliest event time, else its earliest enqueue time.

        The event time wins when known: the queue's ``inserted_on`` is truncated to whole seconds.
        """
        if self.event_time is not None:
            return self.event_time
        return min((m.inserted_on for m in self.messages if m.inserted_on is not None), default=_EPOCH)

    def version(self) -> ChunkVersion:
        assert self.etag is not None, "resolve the ETag first"
        return ChunkVersion(self.container, self.name, self.etag)


@dataclass
class SortedMessages:
    """:func:`sort_messages`' answer."""

    candidates: list[Candidate] = field(default_factory=list)
    poison: list[tuple[ReceivedMessage, str]] = field(default_factory=list)
    ignored: list[tuple[ReceivedMessage, str]] = field(default_factory=list)
    over_dequeued: list[tuple[ReceivedMessage, ChunkEvent]] = field(default_factory=list)


def sort_messages(
    messages: Iterable[ReceivedMessage], *, container: str, max_dequeue: int, max_bytes: int = 65536
) -> SortedMessages:
    """Decode every message and decide what it is (pure).

    A message received more than ``max_dequeue`` times whose event is valid is kept apart
    (``over_dequeued``): the drainer settles its claim before it poisons it, so that its chunk is
    free for the fallback. Garbage is poisoned whatever its count: it can never succeed.
    """
    out = SortedMessages()
    by_key: dict[tuple[str, str | None], Candidate] = {}
    for message in messages:
        decoded = decode_message(message.content, container=container, max_bytes=max_bytes)
        if isinstance(decoded, Unusable):
            out.poison.append((message, decoded.reason))
            continue
        if isinstance(decoded, Ignored):
            out.ignored.append((message, decoded.reason))
            continue
        if message.dequeue_count > max_dequeue:
            out.over_dequeued.append((message, decoded))
            continue
        key = (decoded.name, decoded.etag)
        candidate = by_key.get(key)
        if candidate is None:
            candidate = by_key[key] = Candidate(decoded.container, decoded.name, decoded.etag)
            out.candidates.append(candidate)
        candidate.messages.append(message)
        if decoded.event_time is not None and (
            candidate.event_time is None or decoded.event_time < candidate.event_time
        ):
            candidate.event_time = decoded.event_time
    return out


def group_batches(candidates: Sequence[Candidate], *, max_chunks: int, max_bytes: int) -> list[list[Candidate]]:
    """Cut ``candidates`` (oldest first) into batches of at most ``max_chunks`` and ``max_bytes``.

    ``max_bytes`` bounds the ``chunks`` parameter exactly (``chunk_contract.naming.chunk_param_cost``);
    a candidate whose name alone exceeds it cannot occur (names are at most 1010 characters, and
    ``MAX_CHUNKS_PARAM_BYTES`` is at least 1024).
    Several versions of one blob never share a batch: the flow would process the blob once.
    """
    if max_chunks < 1:
        raise ValueError(f"max_chunks must be >= 1, got {max_chunks}")
    ordered = sorted(candidates, key=lambda c: (c.first_seen, c.name, c.etag or ""))
    batches: list[list[Candidate]] = []
    current: list[Candidate] = []
    names: set[str] = set()
    size = 2
    for c in ordered:
        cost = chunk_param_cost(c.name)
        if current and (len(current) >= max_chunks or size + cost > max_bytes or c.name in names):
            batches.append(current)
            current, names, size = [], set(), 2
        current.append(c)
        names.add(c.name)
        size += cost
    if current:
        batches.append(current)
    return batches
