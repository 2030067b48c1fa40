"""The project-import job (POST /projects/import queues it): copy the exported project's
images into the new project (`project_transfer.copy_images`), or mark the import Failed."""

from __future__ import annotations

import logging

from functions.domain.jobs import TrainingJob
from functions.services.project_transfer import FAILED, copy_images, set_status
from functions.storage.clients import Storage

log = logging.getLogger(__name__)


def run_import_job(storage: Storage, job: TrainingJob, attempt: int = 1) -> None:
    copied = copy_images(storage, job)
    log.info("import %s: %d images copied (delivery %d)", job.project_id, copied, attempt)


def record_import_failure(storage: Storage, job: TrainingJob, reason: str, final: bool) -> None:
    """When `final`, the project's status is Failed; earlier attempts are retried."""
    if final:
        log.error("import %s failed: %s", job.project_id, reason)
        set_status(storage, job.project_id, FAILED)
