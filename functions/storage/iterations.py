"""The iterations table: iterations by project, the one-training-at-a-time lock, and the
published names (so the prediction API finds an iteration by its publish name).

Partition = project id. Rows: it|{iterationId}, active (the lock), pub|{publishName}.
"""

from __future__ import annotations

import json
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from functions.domain.models import ClassificationType, Iteration, IterationStatus, TrainingType
from functions.storage.tables import Entity, delete_partition, get_entity, range_query

LOCK_ROW = "active"


def _publish_key(name: str) -> str:
    return "pub|" + name


def iteration_to_entity(project_id: str, it: Iteration) -> Entity:
    return {
        "PartitionKey": project_id,
        "RowKey": "it|" + it.id,
        "Name": it.name,
        "Status": it.status.value,
        "Created": it.created,
        "LastModified": it.last_modified,
        "DomainId": it.domain_id,
        "ClassificationType": it.classification_type.value,
        "TrainingType": it.training_type.value,
        "ReservedBudgetInHours": it.reserved_budget_in_hours,
        "TrainedAt": it.trained_at,
        "TrainingTimeInMinutes": it.training_time_in_minutes,
        "PublishName": it.publish_name or "",
        "OriginalPublishResourceId": it.original_publish_resource_id or "",
        "TrainingErrorDetails": it.training_error_details or "",
        "ProgressStage": it.progress_stage,
        "ProgressFraction": float(it.progress_fraction),
        "Attempt": it.attempt,
        "DataFingerprint": it.data_fingerprint,
        "SelectedTagIds": json.dumps(it.selected_tag_ids),
        "NotificationEmail": it.notification_email or "",
        "Seed": it.seed,
    }


def iteration_from_entity(e: dict[str, Any]) -> Iteration:
    return Iteration(
        id=e["RowKey"].removeprefix("it|"),
        name=e["Name"],
        status=IterationStatus(e["Status"]),
        created=e["Created"],
        last_modified=e["LastModified"],
        domain_id=e["DomainId"],
        classification_type=ClassificationType(e["ClassificationType"]),
        training_type=TrainingType(e["TrainingType"]),
        reserved_budget_in_hours=int(e.get("ReservedBudgetInHours") or 0),
        trained_at=e.get("TrainedAt"),
        training_time_in_minutes=int(e.get("TrainingTimeInMinutes") or 0),
        publish_name=e.get("PublishName") or None,
        original_publish_resource_id=e.get("OriginalPublishResourceId") or None,
        training_error_details=e.get("TrainingErrorDetails") or None,
        progress_stage=e.get("ProgressStage") or "",
        progress_fraction=float(e.get("ProgressFraction") or 0.0),
        attempt=int(e.get("Attempt") or 0),
        data_fingerprint=e.get("DataFingerprint") or "",
        selected_tag_ids=json.loads(e.get("SelectedTagIds") or "[]"),
        notification_email=e.get("NotificationEmail") or None,
        seed=int(e.get("Seed") or 0),
    )


class IterationTable:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    def list(self, project_id: str) -> list[Iteration]:
        rows = range_query(self.table, project_id, "it|")
        return sorted((iteration_from_entity(dict(e)) for e in rows), key=lambda i: i.created)

    def get(self, project_id: str, iteration_id: str) -> Iteration | None:
        entity = get_entity(self.table, project_id, "it|" + iteration_id)
        return iteration_from_entity(entity) if entity else None

    def save(self, project_id: str, iteration: Iteration) -> None:
        entity = iteration_to_entity(project_id, iteration)
        self.table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    def delete(self, project_id: str, iteration_id: str) -> None:
        try:
            self.table.delete_entity(project_id, "it|" + iteration_id)
        except ResourceNotFoundError:
            pass

    # ------------------------------------------------------------ the training lock

    def try_lock(self, project_id: str, iteration_id: str) -> bool:
        """Take the project's training lock for this iteration; False if another holds it."""
        try:
            self.table.create_entity(
                {"PartitionKey": project_id, "RowKey": LOCK_ROW, "IterationId": iteration_id}
            )
            return True
        except ResourceExistsError:
            return False

    def lock_holder(self, project_id: str) -> str | None:
        entity = get_entity(self.table, project_id, LOCK_ROW)
        return str(entity["IterationId"]) if entity else None

    def unlock(self, project_id: str, iteration_id: str) -> None:
        if self.lock_holder(project_id) == iteration_id:
            try:
                self.table.delete_entity(project_id, LOCK_ROW)
            except ResourceNotFoundError:
                pass

    # ------------------------------------------------------------ published names

    def claim_publish_name(self, project_id: str, name: str, iteration_id: str) -> bool:
        try:
            self.table.create_entity(
                {
                    "PartitionKey": project_id,
                    "RowKey": _publish_key(name),
                    "IterationId": iteration_id,
                }
            )
            return True
        except ResourceExistsError:
            entity = get_entity(self.table, project_id, _publish_key(name))
            return bool(entity and entity["IterationId"] == iteration_id)

    def release_publish_name(self, project_id: str, name: str) -> None:
        try:
            self.table.delete_entity(project_id, _publish_key(name))
        except ResourceNotFoundError:
            pass

    def published(self, project_id: str, name: str) -> str | None:
        entity = get_entity(self.table, project_id, _publish_key(name))
        return str(entity["IterationId"]) if entity else None

    def delete_project(self, project_id: str) -> None:
        delete_partition(self.table, project_id)
