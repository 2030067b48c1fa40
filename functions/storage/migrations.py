"""Rewrites of rows stored by earlier versions, run at start-up (each safe to repeat)."""

from __future__ import annotations

import logging

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient

from functions.storage.iterations import LEGACY_PUBLISH_ROW_PREFIX, publish_key
from functions.storage.tables import (
    LEGACY_NAME_ROW_PREFIX,
    NAME_ROW_PREFIX,
    delete_rows,
    name_key,
    project_from_entity,
    tag_from_entity,
)

log = logging.getLogger(__name__)


def _legacy_rows(table: TableClient, prefix: str) -> list[dict[str, object]]:
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    rows = table.query_entities(
        "RowKey ge @lo and RowKey lt @hi", parameters={"lo": prefix, "hi": upper}
    )
    return [dict(e) for e in rows]


def _get(table: TableClient, partition: str, row: str) -> dict[str, object] | None:
    try:
        return dict(table.get_entity(partition, row))
    except ResourceNotFoundError:
        return None


def _move(table: TableClient, old: dict[str, object], new_key: str | None) -> None:
    """Store `old` under `new_key` (None: the row it points to is gone), then drop `old`."""
    if new_key is None:
        delete_rows(table, str(old["PartitionKey"]), [str(old["RowKey"])])
        return
    moved = {k: v for k, v in old.items() if k != "RowKey"} | {"RowKey": new_key}
    try:
        table.create_entity(moved)
    except ResourceExistsError:
        pass
    delete_rows(table, str(old["PartitionKey"]), [str(old["RowKey"])])


def rekey_names(projects: TableClient, tags: TableClient, iterations: TableClient) -> int:
    """Replace unique-name rows keyed by the name itself (before names were digested) with
    rows keyed by the digest; the name is read from the row they point to."""
    moved = 0
    for row in _legacy_rows(projects, LEGACY_NAME_ROW_PREFIX):
        project = _get(projects, str(row["PartitionKey"]), str(row["ProjectId"]))
        name = project_from_entity(project).name if project else None
        _move(projects, row, name_key(NAME_ROW_PREFIX, name) if name else None)
        moved += 1
    for row in _legacy_rows(tags, LEGACY_NAME_ROW_PREFIX):
        tag = _get(tags, str(row["PartitionKey"]), "tag|" + str(row["TagId"]))
        name = tag_from_entity(tag).name if tag else None
        _move(tags, row, name_key(NAME_ROW_PREFIX, name) if name else None)
        moved += 1
    for row in _legacy_rows(iterations, LEGACY_PUBLISH_ROW_PREFIX):
        _move(iterations, row, publish_key(str(row["RowKey"])[len(LEGACY_PUBLISH_ROW_PREFIX) :]))
        moved += 1
    if moved:
        log.info("re-keyed %d unique-name rows", moved)
    return moved
