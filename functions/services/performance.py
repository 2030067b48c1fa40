"""An iteration's performance: metrics at a threshold, precision-recall curves per tag, and its
training images with their out-of-sample scores, all from the iteration's evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from functions.domain.errors import BadRequest
from functions.domain.ids import parse_id_list
from functions.domain.limits import MAX_TAGS_PER_ENTRY
from functions.domain.metrics import Metrics, precision_recall_curves
from functions.domain.models import Image
from functions.domain.predictions import Label, TagScore
from functions.services.image_queries import ImageQueries
from functions.services.iterations import Evaluation, IterationService


def valid_threshold(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise BadRequest("BadRequestInvalid", "threshold must be between 0 and 1.")
    return value


@dataclass(frozen=True)
class Performance:
    metrics: Metrics
    tags: list[Label]  # metrics.per_tag's order


@dataclass(frozen=True)
class TagCurve:
    """One tag's precision-recall curve, thresholds descending (functions.domain.metrics)."""

    tag: Label
    thresholds: list[float]
    precision: list[float]
    recall: list[float]


@dataclass(frozen=True)
class ImagePerformance:
    image_id: str
    image: Image | None  # None when the image was deleted since the training
    scores: list[TagScore]  # highest probability first, ties in output order
    tags: list[Label]  # the tags it was trained with


class PerformanceService:
    def __init__(self, iterations: IterationService, queries: ImageQueries) -> None:
        self.iterations = iterations
        self.queries = queries

    def at_threshold(self, project_id: str, iteration_id: str, threshold: float) -> Performance:
        evaluation = self.iterations.evaluation(project_id, iteration_id)
        return Performance(evaluation.metrics(valid_threshold(threshold)), evaluation.tags)

    def curves(self, project_id: str, iteration_id: str) -> list[TagCurve]:
        evaluation = self.iterations.evaluation(project_id, iteration_id)
        curves = precision_recall_curves(evaluation.probabilities, evaluation.labels)
        return [
            TagCurve(tag, thresholds.tolist(), precision.tolist(), recall.tolist())
            for tag, (precision, recall, thresholds) in zip(evaluation.tags, curves, strict=True)
        ]

    def images(
        self,
        project_id: str,
        iteration_id: str,
        tag_ids: str | None,
        newest_first: bool,
        take: int,
        skip: int,
    ) -> list[ImagePerformance]:
        evaluation, rows = self._rows(project_id, iteration_id, tag_ids)
        if newest_first:
            rows = rows[::-1]  # image ids are time-ordered
        page = rows[skip : skip + take]
        images = {
            i.id: i
            for i in self.queries.by_ids(project_id, [evaluation.image_ids[r] for r in page])
        }
        return [self._image(evaluation, int(row), images) for row in page]

    def count(self, project_id: str, iteration_id: str, tag_ids: str | None) -> int:
        return len(self._rows(project_id, iteration_id, tag_ids)[1])

    def _rows(
        self, project_id: str, iteration_id: str, tag_ids: str | None
    ) -> tuple[Evaluation, np.ndarray]:
        """The evaluation and its rows carrying any of `tag_ids`, a comma-separated list (every
        row without any)."""
        evaluation = self.iterations.evaluation(project_id, iteration_id)
        wanted = parse_id_list(tag_ids, "tagId", MAX_TAGS_PER_ENTRY)
        columns = [i for i, t in enumerate(evaluation.tags) if t.id in wanted]
        if wanted and len(columns) != len(wanted):
            raise BadRequest("BadRequestInvalidIds", "Some tagIds are not tags of this iteration.")
        if columns:
            rows = np.flatnonzero(evaluation.labels[:, columns].max(axis=1) > 0)
        else:
            rows = np.arange(len(evaluation.image_ids))
        return evaluation, rows

    @staticmethod
    def _image(evaluation: Evaluation, row: int, images: dict[str, Image]) -> ImagePerformance:
        image_id = evaluation.image_ids[row]
        scores = [
            TagScore(tag.id, tag.name, tag.type, float(evaluation.probabilities[row, t]))
            for t, tag in enumerate(evaluation.tags)
        ]
        labels = [tag for t, tag in enumerate(evaluation.tags) if evaluation.labels[row, t] > 0]
        return ImagePerformance(
            image_id=image_id,
            image=images.get(image_id),
            scores=sorted(scores, key=lambda s: -s.probability),
            tags=labels,
        )
