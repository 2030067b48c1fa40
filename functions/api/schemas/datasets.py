"""Dataset jobs on the wire (an extension: Custom Vision has no dataset export or import)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from functions.api.schemas.wire import Wire
from functions.domain.dataset_jobs import DatasetJob


class DatasetFailureOut(BaseModel):
    name: str  # the file's name in the archive
    message: str


class DatasetJobOut(Wire):
    id: str
    operation: str  # Export | Import
    format: str  # coco | voc | yolo | folders
    status: str  # Queued | Running | Done | Failed
    created: datetime
    lastModified: datetime
    total: int  # images to go through (0 until the job starts)
    processed: int
    imported: int
    duplicates: int
    failed: int
    tagsCreated: list[str]
    sizeBytes: int
    downloadUri: str | None  # a finished export's archive (a link valid for an hour)
    error: str | None
    # One job's GET: the import's duplicates and failures by file name (null in listings).
    duplicateNames: list[str] | None = None
    failures: list[DatasetFailureOut] | None = None

    @classmethod
    def of(
        cls, job: DatasetJob, link: str | None, report: dict[str, Any] | None = None
    ) -> DatasetJobOut:
        return cls(
            id=job.id,
            operation=job.operation,
            format=job.format,
            status=job.status.value,
            created=job.created,
            lastModified=job.last_modified,
            total=job.total,
            processed=job.processed,
            imported=job.imported,
            duplicates=job.duplicates,
            failed=job.failed,
            tagsCreated=job.tags_created,
            sizeBytes=job.size_bytes,
            downloadUri=link,
            error=job.error,
            duplicateNames=None if report is None else report["duplicates"],
            failures=None
            if report is None
            else [DatasetFailureOut(**f) for f in report["failures"]],
        )
