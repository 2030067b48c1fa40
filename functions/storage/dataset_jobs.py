"""Dataset job records, in the iterations table beside the project's iterations.

Partition = project id; RowKey = ds|{jobId}. Progress and outcomes are written conditional on
the row's ETag (`edit_row`), so a job deleted meanwhile stays deleted and a finished one is
never set running again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from azure.data.tables import TableClient

from functions.domain.dataset_jobs import DatasetJob, DatasetJobStatus
from functions.storage.tables import (
    Entity,
    Operation,
    delete_rows,
    edit_row,
    get_entity,
    if_match,
    range_query,
)

PREFIX = "ds|"


def job_to_entity(job: DatasetJob) -> Entity:
    return {
        "PartitionKey": job.project_id,
        "RowKey": PREFIX + job.id,
        "Operation": job.operation,
        "Format": job.format,
        "Status": job.status.value,
        "Created": job.created,
        "LastModified": job.last_modified,
        "Total": job.total,
        "Processed": job.processed,
        "Imported": job.imported,
        "Duplicates": job.duplicates,
        "Failed": job.failed,
        "TagsCreated": json.dumps(job.tags_created),
        "SizeBytes": job.size_bytes,
        "Error": job.error or "",
    }


def job_from_entity(e: dict[str, Any]) -> DatasetJob:
    return DatasetJob(
        id=e["RowKey"].removeprefix(PREFIX),
        project_id=e["PartitionKey"],
        operation=e["Operation"],
        format=e["Format"],
        status=DatasetJobStatus(e["Status"]),
        created=e["Created"],
        last_modified=e["LastModified"],
        total=int(e.get("Total") or 0),
        processed=int(e.get("Processed") or 0),
        imported=int(e.get("Imported") or 0),
        duplicates=int(e.get("Duplicates") or 0),
        failed=int(e.get("Failed") or 0),
        tags_created=json.loads(e.get("TagsCreated") or "[]"),
        size_bytes=int(e.get("SizeBytes") or 0),
        error=e.get("Error") or None,
    )


class DatasetJobTable:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    def insert(self, job: DatasetJob) -> None:
        self.table.create_entity(job_to_entity(job))

    def get(self, project_id: str, job_id: str) -> DatasetJob | None:
        entity = get_entity(self.table, project_id, PREFIX + job_id)
        return job_from_entity(entity) if entity else None

    def list(self, project_id: str) -> list[DatasetJob]:
        """The project's jobs, newest first."""
        jobs = [job_from_entity(dict(e)) for e in range_query(self.table, project_id, PREFIX)]
        return sorted(jobs, key=lambda job: job.created, reverse=True)

    def edit(
        self, project_id: str, job_id: str, change: Callable[[DatasetJob], DatasetJob]
    ) -> DatasetJob | None:
        """The job after `change` (applied to the stored row, under its ETag); None when the
        job is gone."""

        def operations(_: DatasetJob, after: DatasetJob, etag: str) -> list[Operation]:
            return [("update", job_to_entity(after), if_match(etag))]

        edited = edit_row(
            self.table, project_id, PREFIX + job_id, job_from_entity, change, operations
        )
        return edited[1] if edited else None

    def delete(self, project_id: str, job_id: str) -> None:
        delete_rows(self.table, project_id, [PREFIX + job_id])
