"""Iterations: read, rename, delete (with artifacts), publish, and their evaluation."""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from functions.domain import artifacts, names
from functions.domain.clock import utcnow
from functions.domain.detection_evaluation import DetectionEvaluation
from functions.domain.errors import BadRequest, NotFound
from functions.domain.metrics import Metrics, TagMetrics, evaluate
from functions.domain.models import Iteration, IterationStatus
from functions.domain.predictions import Label, parse_labels
from functions.services.model_cache import ModelCache
from functions.storage.clients import Storage

MAX_PUBLISH_NAME_LENGTH = 256


def iteration_not_found(iteration_id: str) -> NotFound:
    return NotFound("NotFoundIteration", f"Iteration {iteration_id} was not found.")


def completed_iteration(storage: Storage, project_id: str, iteration_id: str) -> Iteration:
    """An iteration whose model exists, or Custom Vision's error saying why not."""
    iteration = storage.iterations.get(project_id, iteration_id)
    if iteration is None:
        raise iteration_not_found(iteration_id)
    if iteration.status is not IterationStatus.COMPLETED:
        raise BadRequest(
            "BadRequestIterationIsNotTrained",
            f"Iteration '{iteration.name}' is {iteration.status}, not Completed.",
        )
    return iteration


def latest_completed(storage: Storage, project_id: str) -> Iteration | None:
    """The project's most recently trained iteration whose model exists, if any."""
    completed = [
        i for i in storage.iterations.list(project_id) if i.status is IterationStatus.COMPLETED
    ]
    return max(completed, key=lambda i: (i.trained_at or i.created, i.created), default=None)


def _check_publishable(iteration: Iteration) -> None:
    if iteration.status is not IterationStatus.COMPLETED:
        raise BadRequest(
            "BadRequestIterationIsNotTrained", "Only a completed iteration can be published."
        )


def _deletable(iteration: Iteration) -> None:
    if iteration.publish_name:
        raise BadRequest(
            "BadRequestIterationIsPublished",
            f"Iteration '{iteration.name}' is published as '{iteration.publish_name}'; "
            "unpublish it first.",
        )
    if iteration.status is IterationStatus.TRAINING:
        raise BadRequest(
            "BadRequestTrainingAlreadyInProgress",
            "This iteration is still training; delete it once it has finished.",
        )


@dataclass(frozen=True)
class Evaluation:
    """Out-of-sample scores of every training image of an iteration."""

    image_ids: list[str]
    labels: np.ndarray  # (N, T) 0/1
    probabilities: np.ndarray  # (N, T)
    folds: np.ndarray  # (N,)
    tags: list[Label]  # output order

    def metrics(self, threshold: float) -> Metrics:
        return evaluate(self.probabilities, self.labels, self.folds, threshold)


@dataclass(frozen=True)
class DetectorEvaluation:
    """A detection iteration's held-out photos: predicted and labelled boxes."""

    boxes: DetectionEvaluation
    tags: list[Label]  # output order

    def metrics(self, threshold: float, overlap: float) -> Metrics:
        """Custom Vision's IterationPerformance: per-tag precision and recall at the
        probability and overlap thresholds, AP per tag, and their mean (mAP). One held-out
        split, so no standard deviations (0)."""
        found = self.boxes.metrics(threshold, overlap)
        per_tag = [found.per_tag[t.id] for t in self.tags]
        return Metrics(
            per_tag=[
                TagMetrics(m.precision, 0.0, m.recall, 0.0, m.average_precision) for m in per_tag
            ],
            precision=found.precision,
            precision_std=0.0,
            recall=found.recall,
            recall_std=0.0,
            average_precision=found.mean_average_precision,
        )


class _EvaluationCache:
    def __init__(self, size: int = 16) -> None:
        self.size = size
        self.items: OrderedDict[str, Evaluation | DetectorEvaluation] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: str) -> Evaluation | DetectorEvaluation | None:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
            return None

    def put(self, key: str, value: Evaluation | DetectorEvaluation) -> None:
        with self.lock:
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)


class IterationService:
    def __init__(self, storage: Storage, models: ModelCache) -> None:
        self.storage = storage
        self.models = models  # told when a model stops being served under a name
        self._evaluations = _EvaluationCache()

    def all(self, project_id: str) -> list[Iteration]:
        return self.storage.iterations.list(project_id)

    def get(self, project_id: str, iteration_id: str) -> Iteration:
        iteration = self.storage.iterations.get(project_id, iteration_id)
        if iteration is None:
            raise iteration_not_found(iteration_id)
        return iteration

    def rename(self, project_id: str, iteration_id: str, name: str | None) -> Iteration:
        if name is None:
            return self.get(project_id, iteration_id)
        if not name.strip() or len(name) > MAX_PUBLISH_NAME_LENGTH:
            raise BadRequest("BadRequestIterationName", "An iteration name is 1 to 256 characters.")
        return self._edit(
            project_id,
            iteration_id,
            lambda it: replace(it, name=name.strip(), last_modified=utcnow()),
        )

    def delete(self, project_id: str, iteration_id: str) -> None:
        deleted = self.storage.iterations.delete_checked(project_id, iteration_id, _deletable)
        if deleted is None:
            raise iteration_not_found(iteration_id)
        prefix = artifacts.iteration_prefix(project_id, iteration_id)
        self.storage.blobs.delete_prefix(names.CONTAINER_MODELS, prefix)
        self.storage.blobs.delete_prefix(names.CONTAINER_EXPORTS, prefix)
        self.storage.exports.delete_iteration(project_id, iteration_id)
        self.storage.suggestions.delete_iteration(project_id, iteration_id)
        self.models.forget(project_id, iteration_id)

    def publish(
        self, project_id: str, iteration_id: str, publish_name: str, prediction_id: str
    ) -> Iteration:
        iteration = self.get(project_id, iteration_id)
        _check_publishable(iteration)
        if not publish_name or len(publish_name) > MAX_PUBLISH_NAME_LENGTH or "/" in publish_name:
            raise BadRequest(
                "BadRequestInvalidPublishName",
                "publishName is required: 1 to 256 characters, no '/'.",
            )
        if not prediction_id:
            raise BadRequest(
                "BadRequestInvalidPublishTarget",
                "predictionId (the prediction resource) is required.",
            )
        iterations = self.storage.iterations
        if not iterations.claim_publish_name(project_id, publish_name, iteration_id):
            raise BadRequest(
                "BadRequestInvalidPublishName",
                f"Another iteration of this project is published as '{publish_name}'.",
            )
        previous: list[str] = []

        def publish(current: Iteration) -> Iteration:
            _check_publishable(current)
            previous[:] = [current.publish_name] if current.publish_name else []
            return replace(
                current,
                publish_name=publish_name,
                original_publish_resource_id=prediction_id,
                last_modified=utcnow(),
            )

        try:
            published = self._edit(project_id, iteration_id, publish)
        except Exception:
            iterations.release_publish_name(project_id, publish_name, iteration_id)
            raise
        for old_name in previous:
            if old_name != publish_name:
                iterations.release_publish_name(project_id, old_name, iteration_id)
                self.models.forget_name(project_id, old_name)
        self.models.forget_name(project_id, publish_name)
        return published

    def unpublish(self, project_id: str, iteration_id: str) -> None:
        released: list[str] = []

        def unpublish(current: Iteration) -> Iteration:
            if not current.publish_name:
                raise BadRequest(
                    "BadRequestIterationNotPublished", "This iteration is not published."
                )
            released[:] = [current.publish_name]
            return replace(
                current,
                publish_name=None,
                original_publish_resource_id=None,
                last_modified=utcnow(),
            )

        self._edit(project_id, iteration_id, unpublish)
        for name in released:
            self.storage.iterations.release_publish_name(project_id, name, iteration_id)
        self.models.forget(project_id, iteration_id)

    def _edit(
        self, project_id: str, iteration_id: str, change: Callable[[Iteration], Iteration]
    ) -> Iteration:
        edited = self.storage.iterations.edit(project_id, iteration_id, change)
        if edited is None:
            raise iteration_not_found(iteration_id)
        return edited

    def evaluation(self, project_id: str, iteration_id: str) -> Evaluation | DetectorEvaluation:
        iteration = self.get(project_id, iteration_id)
        if iteration.status is not IterationStatus.COMPLETED:
            raise NotFound(
                "NotFoundIterationPerformance",
                f"Iteration '{iteration.name}' has no performance yet (status {iteration.status}).",
            )
        key = f"{project_id}/{iteration_id}"
        cached = self._evaluations.get(key)
        if cached is not None:
            return cached
        loaded = self._load_evaluation(project_id, iteration_id)
        self._evaluations.put(key, loaded)
        return loaded

    def _load_evaluation(
        self, project_id: str, iteration_id: str
    ) -> Evaluation | DetectorEvaluation:
        blobs = self.storage.blobs
        raw = blobs.get(
            names.CONTAINER_MODELS,
            artifacts.artifact_path(project_id, iteration_id, artifacts.EVALUATION),
        )
        labels_json = blobs.get(
            names.CONTAINER_MODELS,
            artifacts.artifact_path(project_id, iteration_id, artifacts.LABELS),
        )
        if raw is None or labels_json is None:
            raise NotFound(
                "NotFoundIterationPerformance", "This iteration's evaluation is missing."
            )
        data = np.load(io.BytesIO(raw), allow_pickle=False)
        tags = parse_labels(labels_json)
        if "predicted_boxes" in data:
            boxes = DetectionEvaluation.from_arrays([t.id for t in tags], data)
            return DetectorEvaluation(boxes, tags)
        return Evaluation(
            image_ids=[str(i) for i in data["image_ids"]],
            labels=data["labels"].astype(np.float32),
            probabilities=data["probabilities"].astype(np.float32),
            folds=data["folds"],
            tags=tags,
        )
