"""The chunk-event Storage Queue and its poison queue: thin I/O, no decisions.

Quirks of Azure Storage Queues handled here (see shared/reference/NOTES.md):

- ``receive_messages`` returns at most 32 messages per request; :meth:`EventQueue.receive` pages.
- Deleting needs the pop receipt of *this* receive, and there is no batch delete: one request per
  message. A message not deleted reappears after its visibility timeout with ``dequeue_count + 1``.
- The SDK's default message policies do no encoding: a message's content is the text we (or
  Event Grid, base64-encoded) put there, handed to ``function_app.queue_messages`` as is.
- A poison message is a JSON envelope with the reason and the original content, so an operator sees
  why without decoding anything, and can re-enqueue ``original`` as it was.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["EventQueue", "ReceivedMessage"]

logger = logging.getLogger(__name__)

MAX_PAGE = 32  # Azure's limit per receive request


@dataclass(frozen=True)
class ReceivedMessage:
    """One received message: what the drainer needs, and the handle to delete it."""

    id: str
    content: str
    dequeue_count: int
    inserted_on: datetime | None
    pop_receipt: str


class EventQueue:
    """The events queue and ``<queue>-poison`` (``azure.storage.queue.QueueClient`` each)."""

    def __init__(self, queue: Any, poison: Any) -> None:
        self.queue = queue
        self.poison_queue = poison

    def ensure_queues(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        for client in (self.queue, self.poison_queue):
            try:
                client.create_queue()
            except ResourceExistsError:
                pass

    def send(self, content: str, *, time_to_live: int = -1) -> None:
        """Enqueue ``content``; ``time_to_live=-1``: never expires (the default would be 7 days)."""
        self.queue.send_message(content, time_to_live=time_to_live)

    def receive(self, limit: int, *, visibility_timeout: int) -> Iterator[ReceivedMessage]:
        """Up to ``limit`` messages, each hidden for ``visibility_timeout`` seconds, in pages of 32.

        A generator: the caller may stop early (its deadline) without hiding more messages.
        """
        left = limit
        while left > 0:
            page = min(MAX_PAGE, left)
            got = list(
                self.queue.receive_messages(
                    messages_per_page=page, max_messages=page, visibility_timeout=visibility_timeout
                )
            )
            for m in got:
                yield ReceivedMessage(
                    id=str(m.id),
                    content=str(m.content or ""),
                    dequeue_count=int(m.dequeue_count or 0),
                    inserted_on=m.inserted_on,
                    pop_receipt=str(m.pop_receipt),
                )
            left -= len(got)
            if len(got) < page:
                return  # the queue has no more visible messages

    def delete(self, message: ReceivedMessage) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self.queue.delete_message(message.id, message.pop_receipt)
        except ResourceNotFoundError:
            # Deleted already, or its pop receipt expired (it became visible again and another
            # receive took it): harmless — the claim in the ledger makes the redelivery a duplicate.
            logger.info("message %s was gone when deleted", message.id)

    def release(self, message: ReceivedMessage) -> None:
        """Make ``message`` visible again now (a drain that received it cannot take it this time)."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self.queue.update_message(message.id, message.pop_receipt, visibility_timeout=0)
        except ResourceNotFoundError:
            logger.info("message %s was gone when released", message.id)

    def poison(self, message: ReceivedMessage, reason: str, *, now: datetime | None = None) -> None:
        """Move ``message`` to the poison queue with ``reason``, then delete the original."""
        envelope = {
            "reason": reason,
            "original": message.content,
            "message_id": message.id,
            "dequeue_count": message.dequeue_count,
            "inserted_on": message.inserted_on.isoformat() if message.inserted_on else None,
            "poisoned_at": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        }
        self.poison_queue.send_message(json.dumps(envelope), time_to_live=-1)
        self.delete(message)

    def depth(self) -> int:
        """Approximate number of messages (Azure Monitor has no per-queue depth: read it here)."""
        return int(self.queue.get_queue_properties().approximate_message_count or 0)

    def poison_depth(self) -> int:
        return int(self.poison_queue.get_queue_properties().approximate_message_count or 0)

    def oldest_age(self, now: datetime | None = None) -> float | None:
        """Seconds since the oldest visible message was enqueued (peek: hides nothing), None if empty."""
        peeked = list(self.queue.peek_messages(max_messages=1))
        if not peeked or peeked[0].inserted_on is None:
            return None
        return max(0.0, ((now or datetime.now(UTC)) - peeked[0].inserted_on).total_seconds())
