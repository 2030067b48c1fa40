"""The iterations table: iterations by project, the one-training-at-a-time lock, and the
published names (so the prediction API finds an iteration by its publish name).

Partition = project id. Rows: it|{iterationId}, active (the lock), pb|{digest of the publish
name} (publish names may hold characters that Table keys forbid).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient

from functions.domain.models import ClassificationType, Iteration, IterationStatus, TrainingType
from functions.storage.tables import (
    Entity,
    Operation,
    Stale,
    commit,
    delete_if_match,
    delete_partition,
    edit_row,
    get_entity,
    if_match,
    range_query,
    retrying,
)

LOCK_ROW = "active"
PUBLISH_ROW_PREFIX = "pb|"
LEGACY_PUBLISH_ROW_PREFIX = "pub|"


def publish_key(name: str) -> str:
    return PUBLISH_ROW_PREFIX + hashlib.sha256(name.encode()).hexdigest()


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

    def insert(self, project_id: str, iteration: Iteration) -> None:
        self.table.create_entity(iteration_to_entity(project_id, iteration))

    def insert_if_absent(self, project_id: str, iteration: Iteration) -> bool:
        """Insert unless a row of that id exists (False then)."""
        try:
            self.insert(project_id, iteration)
        except ResourceExistsError:
            return False
        return True

    def edit(
        self, project_id: str, iteration_id: str, change: Callable[[Iteration], Iteration]
    ) -> Iteration | None:
        """Apply `change` to the stored iteration (see `edit_row`: the trainer's progress and a
        user's rename never overwrite each other); None when it does not exist."""

        def operations(_: Iteration, after: Iteration, etag: str) -> list[Operation]:
            return [("update", iteration_to_entity(project_id, after), if_match(etag))]

        key = "it|" + iteration_id
        edited = edit_row(self.table, project_id, key, iteration_from_entity, change, operations)
        return edited[1] if edited else None

    def delete(self, project_id: str, iteration_id: str) -> None:
        try:
            self.table.delete_entity(project_id, "it|" + iteration_id)
        except ResourceNotFoundError:
            pass

    def delete_checked(
        self, project_id: str, iteration_id: str, check: Callable[[Iteration], None]
    ) -> Iteration | None:
        """Delete the iteration if `check` (which raises to refuse) passes on the row as it is
        deleted: conditional on the ETag read, so a concurrent publish cannot slip between."""

        def attempt() -> Iteration | None:
            entity = get_entity(self.table, project_id, "it|" + iteration_id)
            if entity is None:
                return None
            iteration = iteration_from_entity(entity)
            check(iteration)
            key = {"PartitionKey": project_id, "RowKey": entity["RowKey"]}
            commit(self.table, [("delete", key, delete_if_match(str(entity["_etag"])))])
            return iteration

        return retrying(attempt, f"Iteration {iteration_id}")

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
                    "RowKey": publish_key(name),
                    "IterationId": iteration_id,
                }
            )
            return True
        except ResourceExistsError:
            entity = get_entity(self.table, project_id, publish_key(name))
            return bool(entity and entity["IterationId"] == iteration_id)

    def release_publish_name(self, project_id: str, name: str, iteration_id: str) -> None:
        """Free the name if `iteration_id` holds it (never another iteration's claim)."""
        entity = get_entity(self.table, project_id, publish_key(name))
        if entity is None or entity["IterationId"] != iteration_id:
            return
        key = {"PartitionKey": project_id, "RowKey": entity["RowKey"]}
        try:
            commit(self.table, [("delete", key, delete_if_match(str(entity["_etag"])))])
        except Stale:
            pass  # someone else released or re-claimed it meanwhile

    def published(self, project_id: str, name: str) -> str | None:
        entity = get_entity(self.table, project_id, publish_key(name))
        return str(entity["IterationId"]) if entity else None

    def delete_project(self, project_id: str) -> None:
        delete_partition(self.table, project_id)
