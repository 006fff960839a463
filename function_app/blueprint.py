"""The functions, registered on one Blueprint; the root ``function_app.py`` adds it to the app.

Everything here runs at import time, i.e. while the worker indexes the app, so it reads no
required setting and does no I/O. The only import-time reads are the blob trigger's source and the
drainer's schedule, done defensively by :func:`function_app.settings.blob_trigger_source` and
:func:`function_app.settings.coalesce_schedule` (neither raises).
``%SENSOR_CONTAINER%`` is resolved by the host from the app settings, not by Python.
"""

from __future__ import annotations

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob

from function_app.blob_trigger import handle_blob
from function_app.drain_trigger import handle_drain_tick
from function_app.http_trigger import handle_trigger_request
from function_app.settings import blob_trigger_source, coalesce_schedule

__all__ = ["bp"]

bp = func.Blueprint()


@bp.function_name("chunk_blob_trigger")
@bp.blob_trigger(
    arg_name="client",
    path="%SENSOR_CONTAINER%/{name}",
    connection="SENSOR_STORAGE",
    source=blob_trigger_source(),
)
def chunk_blob_trigger(client: blob.BlobClient) -> None:
    # Annotated with the extension's BlobClient: the host then sends only a reference (connection,
    # container, name) and the worker builds an azure.storage.blob.BlobClient — the content is
    # never loaded, unlike an InputStream binding.
    handle_blob(client)


@bp.function_name("manual_trigger")
@bp.route(route="trigger", methods=[func.HttpMethod.POST], auth_level=func.AuthLevel.FUNCTION)
def manual_trigger(req: func.HttpRequest) -> func.HttpResponse:
    return handle_trigger_request(req)


@bp.function_name("coalesce_drainer")
@bp.timer_trigger(arg_name="timer", schedule=coalesce_schedule(), run_on_startup=False, use_monitor=True)
def coalesce_drainer(timer: func.TimerRequest) -> None:
    # A timer trigger runs on one instance however far the app scales out (the host holds a blob
    # lease), so drains never overlap. In immediate mode it returns at once (one cheap tick).
    handle_drain_tick()
