"""The timer trigger's work: one drain of the chunk-event queue when ``SUBMIT_MODE=coalesce``.

Thin: it builds the drain's parts from the settings (the app's one ledger, queue, blob and Argo
clients) and calls :func:`function_app.drain.drain_once`. What a failure means:

- the in-flight count refused (401/403/404): logged as an error naming the fix; nothing was
  received, nothing submitted or deleted. Raised, so the invocation shows as failed;
- Argo, the queue or the ledger unreachable: logged; raised. The messages stay queued and the next
  tick tries again (a timer trigger is not retried by the host, it simply fires again).
"""

from __future__ import annotations

import logging

from function_app.settings import Settings, get_settings
from function_app.telemetry import invocation

__all__ = ["handle_drain_tick"]

logger = logging.getLogger(__name__)


def handle_drain_tick(settings: Settings | None = None) -> object:
    """Run one drain in coalesce mode; return its report (None in immediate mode).

    With telemetry on, one span per drain, and the queue gauges (depth, oldest message's age,
    poison depth: ``function_app.telemetry``) read as the drain starts; nothing in immediate mode.
    """
    settings = settings or get_settings()
    if settings.submit_mode != "coalesce":
        return None
    from azure.core.exceptions import ResourceNotFoundError

    from function_app import storage
    from function_app.drain import drain_once
    from function_app.submission import SubmitRejected, get_backend

    service = storage.blob_service_client(settings)

    def etag_of(container: str, name: str) -> str | None:
        try:
            return str(service.get_blob_client(container, name).get_blob_properties().etag)
        except ResourceNotFoundError:
            return None

    with invocation("drain", settings.submit_mode) as inv:
        events = storage.event_queue(settings)
        # Before the drain receives (and hides) anything: the backlog it starts from, and the age
        # of its oldest event — which keeps growing through an Argo outage (telemetry on only).
        inv.observe_queue(events)
        try:
            report = drain_once(
                settings,
                queue=events,
                ledger=storage.ledger(settings),
                backend=get_backend(settings),
                etag_of=etag_of,
            )
        except SubmitRejected as exc:
            logger.error("drain: the in-flight count was refused, nothing received or submitted: %s", exc)
            raise
        inv.drain(report)
        return report
