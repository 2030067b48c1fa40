"""The project-import job (POST /projects/import queues it): copy the exported project's
images and iterations into the new project (`project_copy.copy_project`), or mark the import
Failed."""

from __future__ import annotations

import logging

from functions.domain.jobs import TrainingJob
from functions.services.project_copy import copy_project
from functions.services.project_transfer import FAILED, set_status
from functions.storage.clients import Storage

log = logging.getLogger(__name__)


def run_import_job(storage: Storage, job: TrainingJob, attempt: int = 1) -> None:
    copied = copy_project(storage, job)
    log.info(
        "import %s: %d images and %d iterations copied (delivery %d)",
        job.project_id, copied.images, copied.iterations, attempt,
    )  # fmt: skip


def record_import_failure(storage: Storage, job: TrainingJob, reason: str, final: bool) -> None:
    """When `final`, the project's status is Failed; earlier attempts are retried."""
    if final:
        log.error("import %s failed: %s", job.project_id, reason)
        set_status(storage, job.project_id, FAILED)
