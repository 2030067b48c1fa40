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
from functions.domain import names
from functions.services.ingest import IngestService
from functions.services.orphans import OrphanSweeper
from functions.settings import get_settings
from functions.storage.clients import Storage

_storage = Storage.from_settings(get_settings())

_api = create_app(get_settings(), _storage)
app = func.AsgiFunctionApp(app=_api, http_auth_level=func.AuthLevel.ANONYMOUS)


@app.function_name("ingest_blob")
@app.blob_trigger(
    arg_name="blob",
    path=names.CONTAINER_INGEST + "/{name}",
    connection="AzureWebJobsStorage",
    source=func.BlobSource.EVENT_GRID,
)
def ingest_blob(blob: func.InputStream) -> None:
    name = (blob.name or "").removeprefix(names.CONTAINER_INGEST + "/")
    result = IngestService(_storage).handle(name, blob.read())
    logging.info("ingest %s: %s", name, result.status)


@app.function_name("purge_predictions")
@app.timer_trigger(arg_name="timer", schedule="0 17 * * * *", run_on_startup=False)
def purge_predictions(timer: func.TimerRequest) -> None:
    deleted = _api.state.services.stored_predictions.purge_expired()
    logging.info("retention: deleted %d stored predictions", deleted)


@app.function_name("sweep_orphans")
@app.timer_trigger(arg_name="timer", schedule="0 47 * * * *", run_on_startup=False)
def sweep_orphans(timer: func.TimerRequest) -> None:
    result = OrphanSweeper(_storage).sweep()
    logging.info("orphan sweep: %s", result)
