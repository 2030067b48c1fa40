"""The suggestions table: what an iteration's model says about a project's training images,
kept so that the smart labeler scores each image once per iteration.

Partition = project id; RowKey = {iterationId}|{imageId}.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from azure.data.tables import TableClient

from functions.domain.predictions import TagScore, scores_from_json, scores_json
from functions.storage.tables import Entity, delete_partition, range_query, submit


def _entity(project_id: str, iteration_id: str, image_id: str, scores: list[TagScore]) -> Entity:
    return {
        "PartitionKey": project_id,
        "RowKey": f"{iteration_id}|{image_id}",
        "Scores": scores_json(scores),
    }


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
            yield entity["RowKey"].split("|", 1)[1], scores_from_json(entity["Scores"])

    def delete_iteration(self, project_id: str, iteration_id: str) -> None:
        rows = range_query(self.table, project_id, f"{iteration_id}|", select=["RowKey"])
        keys = [e["RowKey"] for e in rows]
        submit(self.table, [("delete", {"PartitionKey": project_id, "RowKey": k}) for k in keys])

    def delete_project(self, project_id: str) -> None:
        delete_partition(self.table, project_id)
