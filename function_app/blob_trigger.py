"""The blob trigger's work: a new chunk version -> one workflow (immediate) or one queued event (coalesce).

The host hands over a ``BlobClient`` (SDK-type binding), never the content: chunks can be
gigabytes. We use it for its container and blob name only and read the ETag through the app's one
shared ``BlobServiceClient``: the Functions worker (4.34) caches the client it builds per blob name,
and a request through it keeps a socket open for the worker's lifetime — one per distinct chunk.

``SUBMIT_MODE=immediate``: claim in the ledger and submit, through
:func:`function_app.submission.submit_chunks`. ``SUBMIT_MODE=coalesce``: enqueue the chunk version
on ``SENSOR_EVENTS_QUEUE``; the timer-triggered drainer claims and submits in batches.

What happens to each outcome, and why:

- submitted / duplicate (the ledger or Argo's 409 had it) / enqueued: return normally.
- invalid chunk name: logged as rejected, return normally — retrying cannot make a name valid,
  and the cron fallback applies the same allow-list.
- blob deleted before we read it: logged as skipped, return normally (nothing to process).
- settings missing, the ledger or the queue unreachable, Argo refusing or unreachable after
  retries: RAISE, so the host retries the blob and after ``poisonBlobThreshold`` failures moves it
  to ``webjobs-blobtrigger-poison``; the cron run of the flow still processes the chunk.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from function_app.settings import Settings, get_settings
from function_app.submission import (
    InvalidSubmission,
    Rejection,
    SubmitBackend,
    SubmitResult,
    check_chunks,
    log_decision,
    submit_chunks,
)
from function_app.telemetry import Invocation, invocation

__all__ = ["handle_blob"]

logger = logging.getLogger(__name__)


def handle_blob(
    client: Any,
    *,
    settings: Settings | None = None,
    backend: SubmitBackend | None = None,
    ledger: Any = None,
    queue: Any = None,
    service: Any = None,
) -> SubmitResult | None:
    """Submit or enqueue the blob behind ``client``; None when rejected, skipped or enqueued.

    The keyword arguments are for tests and tools (defaults: the app's clients from settings).
    One span and the metrics of the outcome when telemetry is on (``function_app.telemetry``).
    """
    with invocation("blob") as inv:
        inv.count_received()
        try:
            return _handle_blob(
                client, inv, settings=settings, backend=backend, ledger=ledger, queue=queue, service=service
            )
        except Exception as exc:
            inv.failed(exc, retried=1)  # raised to the host, which delivers the blob again
            raise


def _handle_blob(
    client: Any,
    inv: Invocation,
    *,
    settings: Settings | None,
    backend: SubmitBackend | None,
    ledger: Any,
    queue: Any,
    service: Any,
) -> SubmitResult | None:
    from function_app.storage import blob_service_client

    settings = settings or get_settings()
    inv.set_mode(settings.submit_mode)
    container, name = client.container_name, client.blob_name
    checked = check_chunks([name], 1)
    if isinstance(checked, Rejection):
        log_decision(trigger="blob", container=container, chunks=[name], outcome="rejected", reason=str(checked))
        inv.rejected()
        return None
    service = service or blob_service_client(settings)
    try:
        properties = service.get_blob_client(container, name).get_blob_properties()
    except ResourceNotFoundError:
        log_decision(
            trigger="blob", container=container, chunks=[name], outcome="skipped", reason="blob no longer exists"
        )
        inv.skipped()
        return None
    etag = str(properties.etag)
    inv.chunk_versions(container, [name], [etag])
    if settings.submit_mode == "coalesce":
        from function_app.queue_messages import blob_created_message
        from function_app.storage import event_queue

        (queue or event_queue(settings)).send(
            blob_created_message(container=container, name=name, etag=etag, event_time=datetime.now(UTC))
        )
        log_decision(
            trigger="blob", container=container, chunks=[name], outcome="enqueued", queue=settings.events_queue
        )
        inv.enqueued()
        return None
    try:
        result = submit_chunks(settings, "blob", [name], [etag], container=container, backend=backend, ledger=ledger)
    except InvalidSubmission:
        inv.rejected()
        return None  # already logged by submit_chunks; a retry cannot fix it
    # The upload time is the chunk's event: the latency is upload -> workflow accepted.
    last_modified = getattr(properties, "last_modified", None)
    inv.result(result, event_time=last_modified if isinstance(last_modified, datetime) else None)
    return result
