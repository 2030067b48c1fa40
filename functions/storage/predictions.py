"""The predictions table: stored predictions of a project, oldest first and newest first.

Partition = project id. Two rows per prediction, written and deleted in one transaction:
p|{predictionId} (ids are UUIDv7, so key order is time order, oldest first) and
n|{inverted id} (newest first). Time filters become RowKey ranges.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from azure.data.tables import TableClient

from functions.domain.ids import inverted, time_prefix
from functions.domain.predictions import Prediction, QueryOrder, scores_from_json, scores_json
from functions.storage.tables import Entity, delete_partition, get_entity, range_query, submit

OLDEST = "p|"
NEWEST = "n|"
_AFTER_ALL = "~"  # sorts after every hex digit and dash


def _keys(prediction_id: str) -> tuple[str, str]:
    return OLDEST + prediction_id, NEWEST + inverted(prediction_id)


def prediction_to_entity(p: Prediction, row_key: str) -> Entity:
    return {
        "PartitionKey": p.project_id,
        "RowKey": row_key,
        "Id": p.id,
        "Iteration": p.iteration_id,
        "Created": p.created,
        "Application": p.application or "",
        "Scores": scores_json(p.scores),
        "Uncertainty": float(p.uncertainty),
        "DomainId": p.domain_id,
        "Width": p.width,
        "Height": p.height,
    }


def prediction_from_entity(e: dict[str, Any]) -> Prediction:
    return Prediction(
        id=e["Id"],
        project_id=e["PartitionKey"],
        iteration_id=e["Iteration"],
        created=e["Created"],
        scores=scores_from_json(e["Scores"]),
        uncertainty=float(e.get("Uncertainty") or 0.0),
        application=e.get("Application") or None,
        domain_id=e.get("DomainId") or "",
        width=int(e.get("Width") or 0),
        height=int(e.get("Height") or 0),
    )


class PredictionTable:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    def add(self, prediction: Prediction) -> None:
        submit(
            self.table,
            [("create", prediction_to_entity(prediction, key)) for key in _keys(prediction.id)],
        )

    def ids(self, project_id: str) -> set[str]:
        """The ids of every stored prediction of the project."""
        rows = range_query(self.table, project_id, OLDEST, select=["RowKey"])
        return {e["RowKey"].removeprefix(OLDEST) for e in rows}

    def get(self, project_id: str, prediction_id: str) -> Prediction | None:
        entity = get_entity(self.table, project_id, OLDEST + prediction_id)
        return prediction_from_entity(entity) if entity else None

    def delete(self, project_id: str, prediction_id: str) -> bool:
        """Remove both rows of a prediction; False when it was not there."""
        if get_entity(self.table, project_id, OLDEST + prediction_id) is None:
            return False
        operations = [
            ("delete", {"PartitionKey": project_id, "RowKey": key}) for key in _keys(prediction_id)
        ]
        submit(self.table, operations)
        return True

    def scan(
        self,
        project_id: str,
        order: QueryOrder,
        after: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Iterator[tuple[str, Prediction]]:
        """(row key, prediction) oldest or newest first, after the row key `after`, limited
        to predictions made between `start` and `end` (inclusive, to the millisecond)."""
        if order is QueryOrder.NEWEST:
            prefix = NEWEST
            low = NEWEST + inverted(time_prefix(end)) if end else NEWEST
            high = NEWEST + inverted(time_prefix(start)) + _AFTER_ALL if start else NEWEST + "~"
        else:
            prefix = OLDEST
            low = OLDEST + time_prefix(start) if start else OLDEST
            high = OLDEST + time_prefix(end) + _AFTER_ALL if end else OLDEST + "~"
        if after is not None and after.startswith(prefix) and after >= low:
            condition, bound = "RowKey gt @lo", after
        else:
            condition, bound = "RowKey ge @lo", low
        rows = self.table.query_entities(
            f"PartitionKey eq @pk and {condition} and RowKey lt @hi",
            parameters={"pk": project_id, "lo": bound, "hi": high},
            results_per_page=200,
        )
        for entity in rows:
            yield entity["RowKey"], prediction_from_entity(entity)

    def made_before(self, cutoff: datetime) -> Iterator[tuple[str, str]]:
        """(project id, prediction id) of every stored prediction older than `cutoff`."""
        rows = self.table.query_entities(
            "RowKey ge @lo and RowKey lt @hi",
            parameters={"lo": OLDEST, "hi": OLDEST + time_prefix(cutoff)},
            select=["PartitionKey", "Id"],
            results_per_page=200,
        )
        for entity in rows:
            yield entity["PartitionKey"], entity["Id"]

    def delete_project(self, project_id: str) -> None:
        delete_partition(self.table, project_id)
