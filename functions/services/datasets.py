"""Dataset exports and imports (an extension beside Custom Vision's API): the requests are
checked and recorded here, and queued for the trainer worker (`trainer_job/dataset_job.py`),
which does the work and records its progress."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from typing import IO, Any

from functions.dataset_formats import bad_dataset, read
from functions.domain import names
from functions.domain.clock import utcnow
from functions.domain.dataset_jobs import (
    EXPORT,
    IMPORT,
    REPORT_FILE,
    UPLOAD_FILE,
    DatasetJob,
    DatasetJobStatus,
    dataset_format,
    job_blob_path,
)
from functions.domain.errors import NotFound
from functions.domain.ids import new_id, parse_id
from functions.domain.jobs import TrainingJob
from functions.domain.models import Project
from functions.services.projects import detects_objects
from functions.services.tags import TagService
from functions.storage.clients import Storage

log = logging.getLogger(__name__)


def job_not_found(job_id: str) -> NotFound:
    return NotFound("NotFound", f"Dataset job '{job_id}' not found.")


def read_report(storage: Storage, job: DatasetJob) -> dict[str, Any]:
    """An import's `duplicates` (file names) and `failures` ({name, message}) so far."""
    data = storage.blobs.get(names.CONTAINER_EXPORTS, job_blob_path(job, REPORT_FILE))
    return json.loads(data) if data else {"duplicates": [], "failures": []}


@dataclass
class DatasetService:
    storage: Storage

    def start_export(self, project: Project, format_name: str | None) -> DatasetJob:
        fmt = dataset_format(format_name, detects_objects(self.storage, project.id))
        return self._queue(self._new(project, EXPORT, fmt))

    def start_import(
        self, project: Project, format_name: str | None, upload: IO[bytes]
    ) -> DatasetJob:
        """Check the archive (a zip of that format, with images, whose tags the project can
        take), keep it, and queue its import."""
        fmt = dataset_format(format_name, detects_objects(self.storage, project.id))
        with read(upload, fmt) as archive:
            if not archive.entries:
                raise bad_dataset("it holds no images")
            TagService(self.storage).missing(project.id, archive.tags)
        job = self._new(project, IMPORT, fmt)
        upload.seek(0)
        path = job_blob_path(job, UPLOAD_FILE)
        self.storage.blobs.put(names.CONTAINER_EXPORTS, path, upload, "application/zip")
        return self._queue(job)

    def _new(self, project: Project, operation: str, fmt: str) -> DatasetJob:
        now = utcnow()
        return DatasetJob(new_id(), project.id, operation, fmt, DatasetJobStatus.QUEUED, now, now)

    def _queue(self, job: DatasetJob) -> DatasetJob:
        self.storage.dataset_jobs.insert(job)
        message = TrainingJob.of_kind("dataset", job.project_id, job.id)
        try:
            self.storage.training_queue.send(message)
        except Exception:
            log.exception("queueing dataset job %s failed", job.id)
            self.storage.dataset_jobs.edit(
                job.project_id,
                job.id,
                lambda j: replace(
                    j, status=DatasetJobStatus.FAILED, error="The job could not be queued."
                ),
            )
            raise
        return job

    def get(self, project: Project, job_id: str) -> DatasetJob:
        job = self.storage.dataset_jobs.get(project.id, parse_id(job_id, "jobId"))
        if job is None:
            raise job_not_found(job_id)
        return job

    def list(self, project: Project) -> list[DatasetJob]:
        return self.storage.dataset_jobs.list(project.id)

    def report(self, job: DatasetJob) -> dict[str, Any]:
        return read_report(self.storage, job)

    def delete(self, project: Project, job_id: str) -> None:
        """The job's record and files; a running job stops at its next progress record."""
        job = self.get(project, job_id)
        self.storage.dataset_jobs.delete(project.id, job.id)
        self.storage.blobs.delete_prefix(names.CONTAINER_EXPORTS, job_blob_path(job, ""))
