"""The blob trigger's work: one new chunk version → one workflow.

The host hands over a ``BlobClient`` (SDK-type binding), never the content: chunks can be
gigabytes. We read only the properties (the ETag), then submit through
:func:`function_app.submission.submit_chunks`.

What happens to each outcome, and why:

- submitted / duplicate (Argo 409): return normally. Duplicate events (Event Grid delivers at
  least once, one upload can emit several events) all map to the same workflow name.
- invalid chunk name: logged as rejected, return normally — retrying cannot make a name valid,
  and the cron fallback applies the same allow-list.
- blob deleted before we read it: logged as skipped, return normally (nothing to process).
- settings missing, Argo refusing or unreachable after retries: RAISE, so the host retries the
  blob and after ``poisonBlobThreshold`` failures moves it to ``webjobs-blobtrigger-poison``;
  the cron run of the flow still processes the chunk.
"""

from __future__ import annotations

import logging

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobClient

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

__all__ = ["handle_blob"]

logger = logging.getLogger(__name__)


def handle_blob(
    client: BlobClient, *, settings: Settings | None = None, backend: SubmitBackend | None = None
) -> SubmitResult | None:
    """Submit the blob behind ``client``; None when it was rejected or skipped (see module docstring)."""
    settings = settings or get_settings()
    container, name = client.container_name, client.blob_name
    checked = check_chunks([name], 1)
    if isinstance(checked, Rejection):
        log_decision(trigger="blob", container=container, chunks=[name], outcome="rejected", reason=str(checked))
        return None
    try:
        etag = client.get_blob_properties().etag
    except ResourceNotFoundError:
        log_decision(
            trigger="blob", container=container, chunks=[name], outcome="skipped", reason="blob no longer exists"
        )
        return None
    try:
        return submit_chunks(settings, "blob", [name], [str(etag)], container=container, backend=backend)
    except InvalidSubmission:
        return None  # already logged by submit_chunks; a retry cannot fix it
