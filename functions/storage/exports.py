"""Export records, in the iterations table next to their iteration.

Partition = project id; RowKey = exp|{iterationId}|{platform}|{flavor}. Starting an export is
a conditional write (create, or replace under the row's ETag), so of two racing requests one
starts the export and the other sees it running.
"""

from __future__ import annotations

from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.data.tables import TableClient

from functions.domain.exports import ExportRecord, ExportStatus
from functions.storage.tables import (
    Entity,
    Operation,
    edit_row,
    get_entity,
    if_match,
    range_query,
    submit,
)


def _key(iteration_id: str, platform: str, flavor: str) -> str:
    return f"exp|{iteration_id}|{platform}|{flavor}"


def export_to_entity(r: ExportRecord) -> Entity:
    return {
        "PartitionKey": r.project_id,
        "RowKey": _key(r.iteration_id, r.platform, r.flavor),
        "Iteration": r.iteration_id,
        "Platform": r.platform,
        "Flavor": r.flavor,
        "Status": r.status.value,
        "Created": r.created,
        "LastModified": r.last_modified,
        "ExporterVersion": r.exporter_version,
        "Error": r.error or "",
        "SizeBytes": r.size_bytes,
    }


def export_from_entity(e: dict[str, Any]) -> ExportRecord:
    return ExportRecord(
        project_id=e["PartitionKey"],
        iteration_id=e["Iteration"],
        platform=e["Platform"],
        flavor=e.get("Flavor") or "",
        status=ExportStatus(e["Status"]),
        created=e["Created"],
        last_modified=e["LastModified"],
        exporter_version=int(e.get("ExporterVersion") or 0),
        error=e.get("Error") or None,
        size_bytes=int(e.get("SizeBytes") or 0),
    )


class ExportTable:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    def list(self, project_id: str, iteration_id: str) -> list[ExportRecord]:
        rows = range_query(self.table, project_id, f"exp|{iteration_id}|")
        return [export_from_entity(dict(e)) for e in rows]

    def get(
        self, project_id: str, iteration_id: str, platform: str, flavor: str
    ) -> ExportRecord | None:
        entity = get_entity(self.table, project_id, _key(iteration_id, platform, flavor))
        return export_from_entity(entity) if entity else None

    def start(self, record: ExportRecord) -> tuple[ExportRecord, bool]:
        """Record `record` (status Exporting) unless that export is already running.

        Returns the export as stored and whether this call started it."""
        key = _key(record.iteration_id, record.platform, record.flavor)
        while True:
            entity = get_entity(self.table, record.project_id, key)
            if entity is None:
                try:
                    self.table.create_entity(export_to_entity(record))
                    return record, True
                except ResourceExistsError:
                    continue
            current = export_from_entity(entity)
            if current.status is ExportStatus.EXPORTING:
                return current, False
            try:
                self.table.update_entity(export_to_entity(record), **if_match(entity["_etag"]))
                return record, True
            except HttpResponseError as error:
                if error.status_code != 412:
                    raise

    def finish(self, record: ExportRecord) -> bool:
        """Store the outcome (Done or Failed) of a running export, conditional on the row read;
        False when that export is no longer running (finished already, or its iteration gone)."""
        key = _key(record.iteration_id, record.platform, record.flavor)

        def finish(current: ExportRecord) -> ExportRecord:
            return record if current.status is ExportStatus.EXPORTING else current

        def operations(_: ExportRecord, after: ExportRecord, etag: str) -> list[Operation]:
            return [("update", export_to_entity(after), if_match(etag))]

        edited = edit_row(
            self.table, record.project_id, key, export_from_entity, finish, operations
        )
        return edited is not None and edited[1] == record

    def delete_iteration(self, project_id: str, iteration_id: str) -> None:
        rows = range_query(self.table, project_id, f"exp|{iteration_id}|", select=["RowKey"])
        keys = [e["RowKey"] for e in rows]
        submit(self.table, [("delete", {"PartitionKey": project_id, "RowKey": k}) for k in keys])
