"""An iteration's performance: metrics at a threshold, precision-recall curves per tag, and its
training images with their out-of-sample scores, all from the iteration's evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from functions.domain.errors import BadRequest
from functions.domain.ids import parse_id_list
from functions.domain.limits import MAX_TAGS_PER_ENTRY
from functions.domain.metrics import Metrics, precision_recall_curves
from functions.domain.models import Box, Image
from functions.domain.predictions import Label, TagScore
from functions.services.image_queries import ImageQueries
from functions.services.iterations import DetectorEvaluation, Evaluation, IterationService

DEFAULT_OVERLAP = 0.3  # Custom Vision's default overlap (IoU) threshold for detection


def valid_threshold(value: float, name: str = "threshold") -> float:
    if not 0.0 <= value <= 1.0:
        raise BadRequest("BadRequestInvalid", f"{name} must be between 0 and 1.")
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
    scores: list[TagScore]  # highest probability first, ties in output order (with boxes)
    tags: list[Label]  # the tags it was trained with


class PerformanceService:
    def __init__(self, iterations: IterationService, queries: ImageQueries) -> None:
        self.iterations = iterations
        self.queries = queries

    def at_threshold(
        self, project_id: str, iteration_id: str, threshold: float, overlap: float | None = None
    ) -> Performance:
        """Metrics at the probability threshold (and, for a detector, the overlap threshold)."""
        evaluation = self.iterations.evaluation(project_id, iteration_id)
        threshold = valid_threshold(threshold)
        if isinstance(evaluation, DetectorEvaluation):
            iou = valid_threshold(
                DEFAULT_OVERLAP if overlap is None else overlap, "overlapThreshold"
            )
            return Performance(evaluation.metrics(threshold, iou), evaluation.tags)
        return Performance(evaluation.metrics(threshold), evaluation.tags)

    def curves(self, project_id: str, iteration_id: str) -> list[TagCurve]:
        evaluation = self.iterations.evaluation(project_id, iteration_id)
        if isinstance(evaluation, DetectorEvaluation):
            return []  # the portal's curves are drawn for classifiers only, for now
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
        evaluation = self.iterations.evaluation(project_id, iteration_id)
        if isinstance(evaluation, DetectorEvaluation):
            return self._detector_images(project_id, evaluation, tag_ids, newest_first, take, skip)
        rows = self._rows(evaluation, tag_ids)
        if newest_first:
            rows = rows[::-1]  # image ids are time-ordered
        page = rows[skip : skip + take]
        images = {
            i.id: i
            for i in self.queries.by_ids(project_id, [evaluation.image_ids[r] for r in page])
        }
        return [self._image(evaluation, int(row), images) for row in page]

    def count(self, project_id: str, iteration_id: str, tag_ids: str | None) -> int:
        evaluation = self.iterations.evaluation(project_id, iteration_id)
        if isinstance(evaluation, DetectorEvaluation):
            return len(_detector_rows(evaluation, tag_ids))
        return len(self._rows(evaluation, tag_ids))

    @staticmethod
    def _rows(evaluation: Evaluation, tag_ids: str | None) -> np.ndarray:
        """The evaluation's rows carrying any of `tag_ids`, a comma-separated list (every row
        without any)."""
        columns = [evaluation.tags.index(t) for t in _wanted_tags(evaluation.tags, tag_ids)]
        if columns:
            return np.flatnonzero(evaluation.labels[:, columns].max(axis=1) > 0)
        return np.arange(len(evaluation.image_ids))

    def _detector_images(
        self,
        project_id: str,
        evaluation: DetectorEvaluation,
        tag_ids: str | None,
        newest_first: bool,
        take: int,
        skip: int,
    ) -> list[ImagePerformance]:
        """Held-out photos with their predicted boxes (highest first) and their labelled tags."""
        rows = _detector_rows(evaluation, tag_ids)
        rows = (rows[::-1] if newest_first else rows)[skip : skip + take]
        held = [evaluation.boxes.images[r] for r in rows]
        images = {i.id: i for i in self.queries.by_ids(project_id, [h.image_id for h in held])}
        by_id = {t.id: t for t in evaluation.tags}
        found = []
        for image in held:
            scores = [
                TagScore(p.tag, by_id[p.tag].name, by_id[p.tag].type, p.probability,
                         Box(p.left, p.top, p.width, p.height))
                for p in sorted(image.predicted, key=lambda p: -p.probability)
            ]  # fmt: skip
            labelled = list(dict.fromkeys(b.tag for b in image.labelled))
            found.append(
                ImagePerformance(image.image_id, images.get(image.image_id), scores,
                                 [by_id[t] for t in labelled])
            )  # fmt: skip
        return found

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


def _wanted_tags(tags: list[Label], tag_ids: str | None) -> list[Label]:
    wanted = parse_id_list(tag_ids, "tagId", MAX_TAGS_PER_ENTRY)
    chosen = [t for t in tags if t.id in wanted]
    if wanted and len(chosen) != len(wanted):
        raise BadRequest("BadRequestInvalidIds", "Some tagIds are not tags of this iteration.")
    return chosen


def _detector_rows(evaluation: DetectorEvaluation, tag_ids: str | None) -> list[int]:
    """The held-out photos with a labelled box of any of `tag_ids` (every photo without any)."""
    wanted = {t.id for t in _wanted_tags(evaluation.tags, tag_ids)}
    return [
        n
        for n, image in enumerate(evaluation.boxes.images)
        if not wanted or any(b.tag in wanted for b in image.labelled)
    ]
