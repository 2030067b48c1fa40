"""`make run`: Azurite, the API on http://localhost:$PORT, the ingest poller and the trainer.

Ctrl-C stops all of it. Data lives under .data/azurite, so a restart keeps projects.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn

from tools.azurite import ROOT, require_free, start_azurite

if TYPE_CHECKING:
    from functions.services.ingest import IngestService

log = logging.getLogger("run")
INGEST_POLL_SECONDS = 2.0
PURGE_EVERY_SECONDS = 3600.0  # stored predictions past retention (the Functions timer's job)
PURGE_FIRST_SECONDS = 60.0
SWEEP_EVERY_SECONDS = 3600.0  # orphaned blobs (the Functions timer's job)


def _ingest_loop(service: IngestService, stop: threading.Event) -> None:
    while not stop.wait(INGEST_POLL_SECONDS):
        try:
            for result in service.poll_once():
                log.info("ingest %s: %s %s", result.blob_name, result.status, result.message or "")
        except Exception:
            log.exception("ingest poll failed; retrying")


def _every(seconds: float, job: Callable[[], object], what: str, stop: threading.Event) -> None:
    delay = PURGE_FIRST_SECONDS  # after the API's start-up has created the tables
    while not stop.wait(delay):
        try:
            log.info("%s: %s", what, job())
        except Exception:
            log.exception("%s failed; retrying later", what)
        delay = seconds


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)  # no per-request HTTP logs
    port = int(os.environ.get("PORT", "7071"))
    require_free(port, "the API", "Stop what uses it, or choose another: `PORT=7072 make run`.")
    data_dir = ROOT / ".data" / "azurite"
    azurite = start_azurite(data_dir, log_file=Path(ROOT / ".data" / "azurite.log"))
    os.environ["CV_STORAGE_CONNECTION_STRING"] = azurite.connection_string
    from functions.settings import get_settings

    settings = get_settings()
    stop = threading.Event()
    trainer: subprocess.Popen[bytes] | None = None
    try:
        from functions.api.app import create_app
        from functions.api.deps import Services

        services = Services.build(settings)  # the same services as the Functions host's
        app = create_app(services=services)
        poller = threading.Thread(target=_ingest_loop, args=(services.ingest, stop), daemon=True)
        poller.start()
        jobs = (
            (PURGE_EVERY_SECONDS, services.stored_predictions.purge_expired, "retention purge"),
            (SWEEP_EVERY_SECONDS, services.orphans.sweep, "orphan sweep"),
        )
        for seconds, job, what in jobs:
            threading.Thread(target=_every, args=(seconds, job, what, stop), daemon=True).start()
        trainer = subprocess.Popen([sys.executable, "-m", "trainer_job", "--watch"], cwd=ROOT)
        print(
            f"\n  Open Custom Vision is running on http://localhost:{port}\n"
            f"  Training endpoint : http://localhost:{port}/customvision/v3.3/training\n"
            f"  API docs          : http://localhost:{port}/docs\n"
            f"  Training-Key      : {settings.training_key}\n"
            f"  Prediction-Key    : {settings.prediction_key}\n"
            f"  Drop images into  : blob container 'ingest' as {{projectId}}/{{tagName}}/{{file}}\n"
            "  Trainer worker    : python -m trainer_job --watch (queue 'training-requests')\n"
            f"  Storage (Azurite) : {data_dir}\n"
            "  Ctrl-C stops everything.\n",
            flush=True,
        )
        uvicorn.run(app, host=settings.host, port=port, log_level="info")
    finally:
        stop.set()
        if trainer is not None and trainer.poll() is None:
            trainer.terminate()
            trainer.wait(timeout=30)
        azurite.stop()
        print("stopped.", flush=True)


if __name__ == "__main__":
    main()
