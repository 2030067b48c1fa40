"""Table Storage: shared query helpers, and the project and tag tables with their mappers."""

from __future__ import annotations

import hashlib
import random
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from functions.domain.errors import BadRequest, ServiceUnavailable
from functions.domain.models import (
    ClassificationType,
    Project,
    ProjectState,
    Tag,
    TagType,
)

Entity = dict[str, Any]
Operation = tuple[str, Entity] | tuple[str, Entity, dict[str, Any]]
T = TypeVar("T")
A = TypeVar("A")  # what an edit makes of a T: a T, or None for a deletion
MAX_TRANSACTION_OPS = 100
MAX_RETRIES = 40


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


# A transaction's body is at most 4 MiB; entities are measured roughly by their text.
MAX_TRANSACTION_CHARS = 3_000_000


def submit(table: TableClient, operations: Sequence[Operation]) -> None:
    """Commit operations of one partition, as one transaction when they fit in one (at most
    100 operations and about 3 MB of entities each; the first keeps the first operations)."""
    chunk: list[Operation] = []
    chars = 0
    for operation in operations:
        size = sum(len(str(v)) for v in operation[1].values())
        if chunk and (len(chunk) >= MAX_TRANSACTION_OPS or chars + size > MAX_TRANSACTION_CHARS):
            table.submit_transaction(chunk)
            chunk, chars = [], 0
        chunk.append(operation)
        chars += size
    if chunk:
        table.submit_transaction(chunk)


def if_match(etag: str) -> dict[str, Any]:
    return {
        "mode": UpdateMode.REPLACE,
        "etag": etag,
        "match_condition": MatchConditions.IfNotModified,
    }


def delete_if_match(etag: str) -> dict[str, Any]:
    return {"etag": etag, "match_condition": MatchConditions.IfNotModified}


class Stale(Exception):
    """A conditional write found its row changed, gone or already there: read again."""


class ConcurrentChange(ServiceUnavailable):
    """A row kept changing under a read-modify-write; the client may simply try again."""

    def __init__(self, what: str) -> None:
        super().__init__("ErrorUnknown", f"{what} kept changing under concurrent edits; retry.")


def commit(table: TableClient, operations: Sequence[Operation]) -> None:
    """Submit one partition's operations (as one transaction when they fit in one); raise
    Stale when a condition failed: an ETag no longer matches, a row is gone or already exists."""
    try:
        submit(table, operations)
    except HttpResponseError as error:
        if is_stale(error):
            raise Stale() from None
        raise


def retrying(attempt: Callable[[], T], what: str) -> T:
    """Run a read-modify-write `attempt` until it commits without raising Stale; each try
    reads afresh. Random, growing pauses keep racing writers from colliding in lockstep."""
    for tries in range(MAX_RETRIES):
        try:
            return attempt()
        except Stale:
            time.sleep(random.uniform(0, min(0.05, 0.002 * 2**tries)))
    raise ConcurrentChange(what)


def edit_row(
    table: TableClient,
    partition: str,
    row_key: str,
    decode: Callable[[Entity], T],
    change: Callable[[T], A],
    operations: Callable[[T, A, str], list[Operation]],
    explain: Callable[[T, A], None] = lambda before, after: None,
) -> tuple[T, A] | None:
    """The one read-modify-write of a stored row: read it, apply `change` (which may raise to
    refuse), write `operations(before, after, etag)` conditional on the ETag read, and on a
    conflict read again and re-apply. `explain` runs after a failed write to raise the final
    error when the conflict is not a race (a name taken). None when the row does not exist."""

    def attempt() -> tuple[T, A] | None:
        entity = get_entity(table, partition, row_key)
        if entity is None:
            return None
        before = decode(entity)
        after = change(before)
        if after != before:
            try:
                commit(table, operations(before, after, str(entity["_etag"])))
            except Stale:
                explain(before, after)
                raise
        return before, after

    return retrying(attempt, f"Row {row_key}")


def name_key(prefix: str, name: str) -> str:
    """A row key for a user-given name that is unique ignoring case: names may hold any
    character (Table keys forbid / \\ # ? and control characters), so the key is a digest of
    the normalised name, never the name itself."""
    folded = unicodedata.normalize("NFC", name.strip()).casefold()
    return prefix + hashlib.sha256(folded.encode()).hexdigest()


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
        try:
            submit(table, [("delete", {"PartitionKey": partition, "RowKey": k}) for k in keys])
        except TableTransactionError as error:
            if error.status_code != 404:
                raise
            delete_rows(table, partition, keys)  # another deleter took some of these rows
        deleted += len(keys)


def is_conflict(error: HttpResponseError) -> bool:
    return error.status_code in (409, 412) or getattr(error, "error_code", None) in (
        "EntityAlreadyExists",
        "UpdateConditionNotSatisfied",
    )


def is_stale(error: HttpResponseError) -> bool:
    """A condition of a write failed (rather than the service)."""
    if isinstance(error, ResourceModifiedError | ResourceExistsError | ResourceNotFoundError):
        return True
    return is_conflict(error) or (
        isinstance(error, TableTransactionError) and error.status_code == 404
    )


# ---------------------------------------------------------------- projects

PROJECTS_PARTITION = "project"
# Rows holding a name digest (see name_key); legacy rows held the lower-cased name itself.
NAME_ROW_PREFIX = "nm|"
LEGACY_NAME_ROW_PREFIX = "name|"


def _project_name_key(name: str) -> str:
    return name_key(NAME_ROW_PREFIX, name)


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
        "Status": project.status,
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
        status=str(e.get("Status") or "Succeeded"),
    )


def _rename_operations(
    partition: str, before: str, after: str, holder_field: str, holder: str
) -> list[Operation]:
    """Move a unique-name row from one name to another (nothing when only the case changes)."""
    old_key, new_key = name_key(NAME_ROW_PREFIX, before), name_key(NAME_ROW_PREFIX, after)
    if old_key == new_key:
        return []
    return [
        ("create", {"PartitionKey": partition, "RowKey": new_key, holder_field: holder}),
        ("delete", {"PartitionKey": partition, "RowKey": old_key}),
    ]


class ProjectTable:
    """Projects in one partition, with a row per normalised name to keep names unique."""

    def __init__(self, table: TableClient) -> None:
        self.table = table

    def list(self, include_deleting: bool = False) -> list[Project]:
        rows = self.table.query_entities(
            "PartitionKey eq @pk and RowKey lt @hi",
            parameters={"pk": PROJECTS_PARTITION, "hi": LEGACY_NAME_ROW_PREFIX},
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
            commit(self.table, [("create", name_row), ("create", project_to_entity(project))])
        except Stale:
            if get_entity(self.table, PROJECTS_PARTITION, project.id) is not None:
                raise BadRequest(
                    "BadRequestProjectDuplicated", f"A project with id '{project.id}' exists."
                ) from None
            raise _name_taken(project.name) from None

    def edit(self, project_id: str, change: Callable[[Project], Project]) -> Project | None:
        """Apply `change` to the stored project (see `edit_row`); None when it does not exist."""

        def operations(before: Project, after: Project, etag: str) -> list[Operation]:
            return [
                *_rename_operations(
                    PROJECTS_PARTITION, before.name, after.name, "ProjectId", project_id
                ),
                ("update", project_to_entity(after), if_match(etag)),
            ]

        def explain(_: Project, after: Project) -> None:
            if self._name_holder(after.name) not in (None, project_id):
                raise _name_taken(after.name)

        edited = edit_row(
            self.table, PROJECTS_PARTITION, project_id, project_from_entity, change, operations,
            explain,
        )  # fmt: skip
        return edited[1] if edited else None

    def _name_holder(self, name: str) -> str | None:
        row = get_entity(self.table, PROJECTS_PARTITION, _project_name_key(name))
        return str(row["ProjectId"]) if row else None

    def delete(self, project: Project) -> None:
        """Remove the project row and its name row (each only if still this project's)."""
        delete_rows(self.table, PROJECTS_PARTITION, [project.id])
        if self._name_holder(project.name) == project.id:
            delete_rows(self.table, PROJECTS_PARTITION, [_project_name_key(project.name)])


def _name_taken(name: str) -> BadRequest:
    return BadRequest("BadRequestProjectNameNotUnique", f"A project named '{name}' already exists.")


# ---------------------------------------------------------------- tags


def _tag_name_key(name: str) -> str:
    return name_key(NAME_ROW_PREFIX, name)


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


NEGATIVE_ROW = "negative"  # which tag is the project's one Negative tag


def _negative_operations(project_id: str, before: Tag | None, after: Tag) -> list[Operation]:
    """Claim the Negative row when a tag becomes Negative: a second claim fails the write."""
    was = before is not None and before.type is TagType.NEGATIVE
    if after.type is TagType.NEGATIVE and not was:
        return [("create", {"PartitionKey": project_id, "RowKey": NEGATIVE_ROW, "TagId": after.id})]
    return []


class TagTable:
    """Tags partitioned by project, with a row per normalised name to keep names unique and
    a row naming the Negative tag, so that racing writers cannot make a second one."""

    def __init__(self, table: TableClient) -> None:
        self.table = table

    def list(self, project_id: str) -> list[Tag]:
        return [tag_from_entity(dict(e)) for e in range_query(self.table, project_id, "tag|")]

    def get(self, project_id: str, tag_id: str) -> Tag | None:
        entity = get_entity(self.table, project_id, "tag|" + tag_id)
        return tag_from_entity(entity) if entity else None

    def find_by_name(self, project_id: str, name: str) -> Tag | None:
        """The tag of this name, ignoring case (read through its unique-name row)."""
        row = get_entity(self.table, project_id, _tag_name_key(name))
        return self.get(project_id, str(row["TagId"])) if row else None

    def insert(self, project_id: str, tag: Tag) -> None:
        name_row = {"PartitionKey": project_id, "RowKey": _tag_name_key(tag.name), "TagId": tag.id}
        ops: list[Operation] = [
            ("create", name_row),
            ("create", tag_to_entity(project_id, tag)),
            *_negative_operations(project_id, None, tag),
        ]

        def attempt() -> None:
            try:
                commit(self.table, ops)
            except Stale:
                if tag.type is TagType.NEGATIVE:
                    self._check_negative_free(project_id, tag.id)
                holder = get_entity(self.table, project_id, _tag_name_key(tag.name))
                if holder is not None:
                    raise _tag_name_taken(tag.name) from None
                raise

        retrying(attempt, "The project's tags")

    def _check_negative_free(self, project_id: str, tag_id: str) -> None:
        """Refuse a second Negative tag; a claim left by a tag that no longer exists (a crash
        between two deletions) is dropped, and the caller tries again."""
        holder = get_entity(self.table, project_id, NEGATIVE_ROW)
        if holder is None or holder["TagId"] == tag_id:
            return
        if self.get(project_id, str(holder["TagId"])) is not None:
            raise _second_negative()
        delete_rows(self.table, project_id, [NEGATIVE_ROW])

    def _release_negative(self, project_id: str, tag_id: str) -> None:
        holder = get_entity(self.table, project_id, NEGATIVE_ROW)
        if holder is not None and holder["TagId"] == tag_id:
            delete_rows(self.table, project_id, [NEGATIVE_ROW])

    def edit(self, project_id: str, tag_id: str, change: Callable[[Tag], Tag]) -> Tag | None:
        """Apply `change` to the stored tag (see `edit_row`); None when it does not exist."""

        def operations(before: Tag, after: Tag, etag: str) -> list[Operation]:
            return [
                *_rename_operations(project_id, before.name, after.name, "TagId", tag_id),
                *_negative_operations(project_id, before, after),
                ("update", tag_to_entity(project_id, after), if_match(etag)),
            ]

        def explain(before: Tag, after: Tag) -> None:
            holder = get_entity(self.table, project_id, _tag_name_key(after.name))
            if holder is not None and holder["TagId"] != tag_id:
                raise _tag_name_taken(after.name)
            if _negative_operations(project_id, before, after):
                self._check_negative_free(project_id, tag_id)

        key = "tag|" + tag_id
        edited = edit_row(self.table, project_id, key, tag_from_entity, change, operations, explain)
        if edited is None:
            return None
        before, after = edited
        if before.type is TagType.NEGATIVE and after.type is not TagType.NEGATIVE:
            self._release_negative(project_id, tag_id)
        return after

    def delete(self, project_id: str, tag: Tag) -> None:
        """Remove the tag row and its name row; safe to repeat and to race."""
        delete_rows(self.table, project_id, ["tag|" + tag.id])
        holder = get_entity(self.table, project_id, _tag_name_key(tag.name))
        if holder is not None and holder["TagId"] == tag.id:
            delete_rows(self.table, project_id, [_tag_name_key(tag.name)])
        self._release_negative(project_id, tag.id)

    def delete_project(self, project_id: str) -> None:
        delete_partition(self.table, project_id)


def _second_negative() -> BadRequest:
    return BadRequest("BadRequestMultipleNegativeTag", "A project has one Negative tag at most.")


def _tag_name_taken(name: str) -> BadRequest:
    return BadRequest("BadRequestTagNameNotUnique", f"A tag named '{name}' already exists.")


def delete_rows(table: TableClient, partition: str, row_keys: Iterable[str]) -> None:
    """Delete rows that may already be gone (deletions racing each other both succeed)."""
    for key in row_keys:
        try:
            table.delete_entity(partition, key)
        except ResourceNotFoundError:
            pass


def create_or_fail(table: TableClient, entity: Entity) -> bool:
    """Insert a row; False when it already exists."""
    try:
        table.create_entity(entity)
        return True
    except ResourceExistsError:
        return False
