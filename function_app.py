"""Azure Functions entry point (Python v2 model): wiring only.

The HTTP function serves the FastAPI app of `functions/`; the blob trigger ingests images
dropped into the `ingest` container (Event Grid source); the timers delete stored predictions
older than the retention period (CV_PREDICTION_RETENTION_DAYS, 30 by default) and sweep
orphaned blobs (bytes no row refers to, left by a process killed mid-write).
"""

from __future__ import annotations

import logging

import azure.functions as func

from functions.api.app import create_app
from functions.api.deps import Services
from functions.domain import names
from functions.settings import get_settings

# One set of services for the HTTP app and the triggers.
_services = Services.build(get_settings())
app = func.AsgiFunctionApp(
    app=create_app(services=_services), http_auth_level=func.AuthLevel.ANONYMOUS
)


@app.function_name("ingest_blob")
@app.blob_trigger(
    arg_name="blob",
    path=names.CONTAINER_INGEST + "/{name}",
    connection="AzureWebJobsStorage",
    source=func.BlobSource.EVENT_GRID,
)
def ingest_blob(blob: func.InputStream) -> None:
    name = (blob.name or "").removeprefix(names.CONTAINER_INGEST + "/")
    result = _services.ingest.handle(name, blob.read())
    logging.info("ingest %s: %s", name, result.status)


@app.function_name("purge_predictions")
@app.timer_trigger(arg_name="timer", schedule="0 17 * * * *", run_on_startup=False)
def purge_predictions(timer: func.TimerRequest) -> None:
    deleted = _services.stored_predictions.purge_expired()
    logging.info("retention: deleted %d stored predictions", deleted)


@app.function_name("sweep_orphans")
@app.timer_trigger(arg_name="timer", schedule="0 47 * * * *", run_on_startup=False)
def sweep_orphans(timer: func.TimerRequest) -> None:
    result = _services.orphans.sweep()
    logging.info("orphan sweep: %s", result)
