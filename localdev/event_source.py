"""A local stand-in for Event Grid + the Functions host's blob-trigger binding (never deployed).

:class:`EventSource` watches the chunk container in Azurite (which has no Event Grid) by listing it,
emits one ``Microsoft.Storage.BlobCreated`` event per new blob version (name + ETag), and delivers
events to the *real* blob-trigger handler the way the host does: it reads container and blob name
from the event's ``subject``, binds an ``azure.storage.blob.BlobClient`` from the app's connection
string (what ``azurefunctions-extensions-bindings-blob`` hands the function), calls the handler,
and retries a failing call up to the poison threshold (:mod:`localdev.host_retry`).

Delivery is at least once: :func:`localdev.events.plan_deliveries` can duplicate and reorder.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.storage.blob import BlobClient, BlobServiceClient

from localdev.events import Delivery, DeliveryPlan, blob_created_event, blob_location, plan_deliveries
from localdev.host_retry import InvocationOutcome, invoke_with_host_retries, load_poison_threshold

__all__ = ["DeliveryReport", "EventSource", "Handler"]

logger = logging.getLogger(__name__)

Handler = Callable[[BlobClient], object]


@dataclass
class DeliveryReport:
    """What happened to a batch of deliveries: the numbers the demo and the test print."""

    deliveries: int = 0
    duplicates: int = 0
    invocations: int = 0
    retried: int = 0  # deliveries that needed more than one attempt
    poisoned: list[tuple[str, str]] = field(default_factory=list)  # (blob name, etag)
    errors: list[str] = field(default_factory=list)

    def add(self, delivery: Delivery, outcome: InvocationOutcome) -> None:
        self.deliveries += 1
        self.invocations += outcome.attempts
        self.retried += outcome.retried
        if outcome.poisoned:
            self.poisoned.append((blob_location(delivery.event)[1], delivery.event["data"]["eTag"]))
        self.errors.extend(outcome.errors)


class EventSource:
    """Turn new blobs in one container into ``BlobCreated`` events and deliver them.

    Parameters
    ----------
    connection_string : str
        The storage connection the function app's trigger uses (``SENSOR_STORAGE``).
    container : str
        The chunk container to watch.
    poison_threshold : int, optional
        Attempts per delivery before the blob is poisoned; read from ``host.json`` when omitted.
    """

    def __init__(self, connection_string: str, container: str, *, poison_threshold: int | None = None) -> None:
        self._connection_string = connection_string
        self._service = BlobServiceClient.from_connection_string(connection_string)
        self.container = container
        self.poison_threshold = poison_threshold if poison_threshold is not None else load_poison_threshold()
        self._seen: dict[str, str] = {}
        self._sequencer = 0
        self._lock = threading.Lock()

    def poll(self) -> list[dict[str, Any]]:
        """One look at the container: an event for each blob that is new or has a new ETag since the last look."""
        events = []
        account_url = self._service.url.rstrip("/")
        for blob in self._service.get_container_client(self.container).list_blobs():
            if self._seen.get(blob.name) == blob.etag:
                continue
            self._seen[blob.name] = blob.etag
            self._sequencer += 1
            modified = blob.last_modified or datetime.now(UTC)
            events.append(
                blob_created_event(
                    account_url=account_url,
                    container=self.container,
                    name=blob.name,
                    etag=blob.etag,
                    content_length=int(blob.size or 0),
                    sequencer=self._sequencer,
                    event_time=modified,
                )
            )
        return events

    def bind(self, event: dict[str, Any]) -> BlobClient:
        """The ``BlobClient`` the host would pass to the trigger for ``event``."""
        container, name = blob_location(event)
        return BlobClient.from_connection_string(self._connection_string, container, name)

    def deliver_one(self, delivery: Delivery, handler: Handler) -> InvocationOutcome:
        """Deliver one event with the host's retries; never raises for a handler failure."""
        outcome = invoke_with_host_retries(lambda: handler(self.bind(delivery.event)), self.poison_threshold)
        if outcome.poisoned:
            logger.warning(
                "poisoned %s after %d attempts: %s",
                blob_location(delivery.event)[1],
                outcome.attempts,
                outcome.errors[-1],
            )
        return outcome

    def deliver(
        self,
        plan: DeliveryPlan | Iterable[dict[str, Any]],
        handler: Handler,
        *,
        workers: int = 1,
        on_done: Callable[[Delivery, InvocationOutcome], None] | None = None,
    ) -> DeliveryReport:
        """Deliver every delivery of ``plan`` (or each event once) to ``handler``.

        Parameters
        ----------
        plan : DeliveryPlan or iterable of event dicts
            What to deliver, in order.
        handler : callable
            The blob-trigger function, called with a bound ``BlobClient``.
        workers : int
            Concurrent deliveries; > 1 lets duplicates race, as they do in production.
        on_done : callable, optional
            Called after each delivery (progress bars).
        """
        if not isinstance(plan, DeliveryPlan):
            plan = plan_deliveries(list(plan))
        report = DeliveryReport(duplicates=plan.duplicates)

        def one(delivery: Delivery) -> None:
            outcome = self.deliver_one(delivery, handler)
            with self._lock:
                report.add(delivery, outcome)
                if on_done is not None:
                    on_done(delivery, outcome)

        if workers <= 1:
            for d in plan.deliveries:
                one(d)
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="event-delivery") as pool:
                list(pool.map(one, plan.deliveries))
        return report

    def plan(
        self,
        events: list[dict[str, Any]],
        *,
        duplicate_rate: float = 0.0,
        reorder: bool = False,
        seed: int | None = None,
    ) -> DeliveryPlan:
        """Shortcut for :func:`localdev.events.plan_deliveries` with a seeded generator."""
        return plan_deliveries(events, duplicate_rate=duplicate_rate, reorder=reorder, rng=random.Random(seed))
