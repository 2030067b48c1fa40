"""Dataset jobs: an export of a project's labelled images as an archive in a common format, or
an import of one into a project. The function app records the request and queues it; the
trainer worker does the work, counting what it has done so far (`processed` of `total`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from functions.dataset_formats import DETECTION_FORMATS, FOLDERS, check_format
from functions.domain.errors import BadRequest

EXPORT, IMPORT = "Export", "Import"
UPLOAD_FILE = "upload.zip"  # an import's archive, kept until its job ends
REPORT_FILE = "report.json"  # an import's duplicates and failures, by file name
PROGRESS_EVERY = 64  # images between two records of a job's progress


class DatasetJobStatus(enum.StrEnum):
    QUEUED = "Queued"
    RUNNING = "Running"
    DONE = "Done"
    FAILED = "Failed"


@dataclass(frozen=True)
class DatasetJob:
    id: str
    project_id: str
    operation: str  # Export | Import
    format: str
    status: DatasetJobStatus
    created: datetime
    last_modified: datetime
    total: int = 0  # images to go through, once the job has started
    processed: int = 0
    imported: int = 0  # an import's new images
    duplicates: int = 0  # an import's images the project held already
    failed: int = 0  # an import's images refused (the report says why)
    tags_created: list[str] = field(default_factory=list)
    size_bytes: int = 0  # an export's archive
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in (DatasetJobStatus.DONE, DatasetJobStatus.FAILED)

    @property
    def file_name(self) -> str:
        """An export's archive (where its download link points)."""
        return f"dataset-{self.format}.zip"


def dataset_format(name: str | None, detection: bool) -> str:
    """The format, checked against the project's kind: boxes need a detection format, a
    classification's tags one folder per tag."""
    chosen = check_format((name or "").strip().lower() or None)
    if detection and chosen not in DETECTION_FORMATS:
        raise BadRequest(
            "BadRequestInvalid",
            f"An object detection project's dataset is one of {', '.join(DETECTION_FORMATS)}.",
        )
    if not detection and chosen != FOLDERS:
        raise BadRequest(
            "BadRequestInvalid",
            f"A classification project's dataset is '{FOLDERS}' (one folder per tag).",
        )
    return chosen


def job_blob_path(job: DatasetJob, file_name: str) -> str:
    """A job's files in the exports container (the project's prefix, deleted with it)."""
    return f"{job.project_id}/{job.id}/{file_name}"
