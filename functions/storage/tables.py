"""Table Storage: shared query helpers, and the project and tag tables with their mappers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from functions.domain.errors import BadRequest
from functions.domain.models import (
    ClassificationType,
    Project,
    ProjectState,
    Tag,
    TagType,
)

Entity = dict[str, Any]
Operation = tuple[str, Entity] | tuple[str, Entity, dict[str, Any]]
MAX_TRANSACTION_OPS = 100


def utcnow() -> datetime:
    return datetime.now(UTC)


def range_query(table: TableClient, partition: str, prefix: str, **kwargs: Any) -> Iterator[Entity]:
    """Rows of one partition whose RowKey starts with `prefix`, in key order."""
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return table.query_entities(
        "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
        parameters={"pk": partition, "lo": prefix, "hi": upper},
        **kwargs,
    )


def get_entity(table: TableClient, partition: str, row: str) -> Entity | None:
    """One row as a dict, with its ETag under "_etag"; None when missing."""
    try:
        entity = table.get_entity(partition, row)
    except ResourceNotFoundError:
        return None
    return {**entity, "_etag": entity.metadata.get("etag")}


def submit(table: TableClient, operations: Sequence[Operation]) -> None:
    """Commit operations of one partition, as one transaction when they fit in one."""
    for start in range(0, len(operations), MAX_TRANSACTION_OPS):
        chunk = list(operations[start : start + MAX_TRANSACTION_OPS])
        if chunk:
            table.submit_transaction(chunk)


def if_match(etag: str) -> dict[str, Any]:
    return {
        "mode": UpdateMode.REPLACE,
        "etag": etag,
        "match_condition": MatchConditions.IfNotModified,
    }


def delete_partition(table: TableClient, partition: str) -> int:
    """Delete every row of a partition in batches; safe to call again after an interruption."""
    deleted = 0
    while True:
        keys = [
            e["RowKey"]
            for e in table.query_entities(
                "PartitionKey eq @pk",
                parameters={"pk": partition},
                select=["RowKey"],
                results_per_page=MAX_TRANSACTION_OPS,
            )
            .by_page()
            .__next__()
        ]
        if not keys:
            return deleted
        submit(table, [("delete", {"PartitionKey": partition, "RowKey": k}) for k in keys])
        deleted += len(keys)


def is_conflict(error: TableTransactionError) -> bool:
    return error.status_code in (409, 412) or getattr(error, "error_code", None) in (
        "EntityAlreadyExists",
        "UpdateConditionNotSatisfied",
    )


# ---------------------------------------------------------------- projects

PROJECTS_PARTITION = "project"


def _project_name_key(name: str) -> str:
    return "name|" + name.strip().lower()


def project_to_entity(project: Project) -> Entity:
    return {
        "PartitionKey": PROJECTS_PARTITION,
        "RowKey": project.id,
        "Name": project.name,
        "Description": project.description,
        "DomainId": project.domain_id,
        "ClassificationType": project.classification_type.value,
        "TargetExportPlatforms": ",".join(project.target_export_platforms),
        "Created": project.created,
        "LastModified": project.last_modified,
        "State": project.state.value,
    }


def project_from_entity(e: Entity) -> Project:
    platforms = str(e.get("TargetExportPlatforms") or "")
    return Project(
        id=e["RowKey"],
        name=e["Name"],
        description=e.get("Description") or "",
        domain_id=e["DomainId"],
        classification_type=ClassificationType(e["ClassificationType"]),
        target_export_platforms=[p for p in platforms.split(",") if p],
        created=e["Created"],
        last_modified=e["LastModified"],
        state=ProjectState(e.get("State") or ProjectState.ACTIVE.value),
    )


class ProjectTable:
    """Projects in one partition, with a row per lower-cased name to keep names unique."""

    def __init__(self, table: TableClient) -> None:
        self.table = table

    def list(self, include_deleting: bool = False) -> list[Project]:
        rows = self.table.query_entities(
            "PartitionKey eq @pk and RowKey lt @hi",
            parameters={"pk": PROJECTS_PARTITION, "hi": "name|"},
        )
        projects = [project_from_entity(dict(e)) for e in rows]
        if not include_deleting:
            projects = [p for p in projects if p.state is ProjectState.ACTIVE]
        return sorted(projects, key=lambda p: p.created)

    def get(self, project_id: str) -> Project | None:
        entity = get_entity(self.table, PROJECTS_PARTITION, project_id)
        return project_from_entity(entity) if entity else None

    def insert(self, project: Project) -> None:
        name_row = {
            "PartitionKey": PROJECTS_PARTITION,
            "RowKey": _project_name_key(project.name),
            "ProjectId": project.id,
        }
        try:
            submit(self.table, [("create", name_row), ("create", project_to_entity(project))])
        except TableTransactionError as error:
            if is_conflict(error):
                raise _name_taken(project.name) from None
            raise

    def update(self, before: Project, after: Project) -> None:
        ops: list[Operation] = [("upsert", project_to_entity(after), {"mode": UpdateMode.REPLACE})]
        if _project_name_key(before.name) != _project_name_key(after.name):
            new_name = {
                "PartitionKey": PROJECTS_PARTITION,
                "RowKey": _project_name_key(after.name),
                "ProjectId": after.id,
            }
            old_name = {
                "PartitionKey": PROJECTS_PARTITION,
                "RowKey": _project_name_key(before.name),
            }
            ops = [("create", new_name), ("delete", old_name), *ops]
        try:
            submit(self.table, ops)
        except TableTransactionError as error:
            if is_conflict(error):
                raise _name_taken(after.name) from None
            raise

    def delete(self, project: Project) -> None:
        ops: list[Operation] = [
            ("delete", {"PartitionKey": PROJECTS_PARTITION, "RowKey": project.id}),
        ]
        name_row = get_entity(self.table, PROJECTS_PARTITION, _project_name_key(project.name))
        if name_row and name_row.get("ProjectId") == project.id:
            ops.append(
                ("delete", {"PartitionKey": PROJECTS_PARTITION, "RowKey": name_row["RowKey"]})
            )
        try:
            submit(self.table, ops)
        except (TableTransactionError, ResourceNotFoundError):
            pass  # already gone: deletion is resumable


def _name_taken(name: str) -> BadRequest:
    return BadRequest("BadRequestProjectNameNotUnique", f"A project named '{name}' already exists.")


# ---------------------------------------------------------------- tags


def _tag_name_key(name: str) -> str:
    return "name|" + name.strip().lower()


def tag_to_entity(project_id: str, tag: Tag) -> Entity:
    return {
        "PartitionKey": project_id,
        "RowKey": "tag|" + tag.id,
        "Name": tag.name,
        "Description": tag.description,
        "Type": tag.type.value,
    }


def tag_from_entity(e: Entity) -> Tag:
    return Tag(
        id=e["RowKey"].removeprefix("tag|"),
        name=e["Name"],
        description=e.get("Description") or "",
        type=TagType(e["Type"]),
    )


class TagTable:
    """Tags partitioned by project, with a row per lower-cased name to keep names unique."""

    def __init__(self, table: TableClient) -> None:
        self.table = table

    def list(self, project_id: str) -> list[Tag]:
        return [tag_from_entity(dict(e)) for e in range_query(self.table, project_id, "tag|")]

    def get(self, project_id: str, tag_id: str) -> Tag | None:
        entity = get_entity(self.table, project_id, "tag|" + tag_id)
        return tag_from_entity(entity) if entity else None

    def insert(self, project_id: str, tag: Tag) -> None:
        name_row = {"PartitionKey": project_id, "RowKey": _tag_name_key(tag.name), "TagId": tag.id}
        try:
            submit(self.table, [("create", name_row), ("create", tag_to_entity(project_id, tag))])
        except TableTransactionError as error:
            if is_conflict(error):
                raise _tag_name_taken(tag.name) from None
            raise

    def update(self, project_id: str, before: Tag, after: Tag) -> None:
        ops: list[Operation] = [
            ("upsert", tag_to_entity(project_id, after), {"mode": UpdateMode.REPLACE})
        ]
        if _tag_name_key(before.name) != _tag_name_key(after.name):
            ops = [
                (
                    "create",
                    {
                        "PartitionKey": project_id,
                        "RowKey": _tag_name_key(after.name),
                        "TagId": after.id,
                    },
                ),
                ("delete", {"PartitionKey": project_id, "RowKey": _tag_name_key(before.name)}),
                *ops,
            ]
        try:
            submit(self.table, ops)
        except TableTransactionError as error:
            if is_conflict(error):
                raise _tag_name_taken(after.name) from None
            raise

    def delete(self, project_id: str, tag: Tag) -> None:
        for row in ("tag|" + tag.id, _tag_name_key(tag.name)):
            try:
                self.table.delete_entity(project_id, row)
            except ResourceNotFoundError:
                pass

    def delete_project(self, project_id: str) -> None:
        delete_partition(self.table, project_id)


def _tag_name_taken(name: str) -> BadRequest:
    return BadRequest("BadRequestTagNameNotUnique", f"A tag named '{name}' already exists.")


def create_or_fail(table: TableClient, entity: Entity) -> bool:
    """Insert a row; False when it already exists."""
    try:
        table.create_entity(entity)
        return True
    except ResourceExistsError:
        return False


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
