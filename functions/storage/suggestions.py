"""The suggestions table: what an iteration's model says about a project's training images,
kept so that the smart labeler scores each image once per iteration.

Partition = project id; RowKey = {iterationId}|{imageId}.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from azure.data.tables import TableClient

from functions.domain.predictions import TagScore
from functions.storage.tables import Entity, delete_partition, range_query, submit


def _entity(project_id: str, iteration_id: str, image_id: str, scores: list[TagScore]) -> Entity:
    return {
        "PartitionKey": project_id,
        "RowKey": f"{iteration_id}|{image_id}",
        "Scores": json.dumps([[s.tag_id, s.tag_name, s.tag_type, s.probability] for s in scores]),
    }


def _scores(entity: dict[str, Any]) -> list[TagScore]:
    return [TagScore(t, n, k, float(p)) for t, n, k, p in json.loads(entity["Scores"])]


class SuggestionTable:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    def put_many(
        self, project_id: str, iteration_id: str, scored: Iterable[tuple[str, list[TagScore]]]
    ) -> None:
        operations = [
            ("upsert", _entity(project_id, iteration_id, image_id, scores))
            for image_id, scores in scored
        ]
        submit(self.table, operations)

    def for_iteration(
        self, project_id: str, iteration_id: str
    ) -> Iterator[tuple[str, list[TagScore]]]:
        """(image id, scores) of every image scored by this iteration."""
        for entity in range_query(self.table, project_id, f"{iteration_id}|", results_per_page=500):
            yield entity["RowKey"].split("|", 1)[1], _scores(entity)

    def delete_iteration(self, project_id: str, iteration_id: str) -> None:
        rows = range_query(self.table, project_id, f"{iteration_id}|", select=["RowKey"])
        keys = [e["RowKey"] for e in rows]
        submit(self.table, [("delete", {"PartitionKey": project_id, "RowKey": k}) for k in keys])

    def delete_project(self, project_id: str) -> None:
        delete_partition(self.table, project_id)
