"""The smart labeler: what a trained iteration suggests for the project's untagged images
(tags, or a detector's regions: boxes with their tags).

An iteration's model scores a training image from the same "resized" copy training used;
the scores are kept in the suggestions table, so each image is scored once per iteration.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from PIL import Image as PILImage

from functions.domain import names
from functions.domain.clock import utcnow
from functions.domain.errors import BadRequest, image_not_found
from functions.domain.limits import MAX_PREDICTION_IDS_PER_CALL, MAX_PREDICTION_QUERY_COUNT
from functions.domain.models import Image, TaggingStatus
from functions.domain.predictions import (
    TagScore,
    encode_continuation,
    offset_of,
    scores_of,
)
from functions.services.iterations import completed_iteration
from functions.services.model_cache import LoadedModel, ModelCache
from functions.services.prediction import detections_of, doubt_of
from functions.storage.clients import Storage

BATCH = 32
SORTS = ("UncertaintyAscending", "UncertaintyDescending")
_READERS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="suggest-read")


@dataclass(frozen=True)
class Suggestion:
    image: Image
    iteration_id: str
    created: datetime
    scores: list[TagScore]  # highest probability first
    uncertainty: float


@dataclass(frozen=True)
class SuggestionQuery:
    tag_ids: list[str]
    threshold: float = 0.0
    max_count: int = 50
    sort_by: str = "UncertaintyDescending"
    continuation: str | None = None
    session: str | None = None


def _suggested(scores: list[TagScore], tag_ids: list[str], threshold: float) -> bool:
    """Some wanted tag scores at least `threshold` (any tag when none is named)."""
    wanted = set(tag_ids)
    return any(s.probability >= threshold for s in scores if not wanted or s.tag_id in wanted)


@dataclass
class SuggestionService:
    storage: Storage
    models: ModelCache

    def suggest(self, project_id: str, iteration_id: str, image_ids: list[str]) -> list[Suggestion]:
        if not image_ids:
            raise BadRequest("BadRequestImageBatch", "Give the ids of the images to suggest for.")
        if len(image_ids) > MAX_PREDICTION_IDS_PER_CALL:
            raise BadRequest(
                "BadRequestExceededBatchSize",
                f"Suggestions are made for at most {MAX_PREDICTION_IDS_PER_CALL} images at once.",
            )
        model = self._model(project_id, iteration_id)
        images = []
        for image_id in image_ids:
            image = self.storage.images.get(project_id, image_id)
            if image is None:
                raise image_not_found(image_id)
            images.append(image)
        return self._suggestions(model, images)

    def query(
        self, project_id: str, iteration_id: str, query: SuggestionQuery
    ) -> tuple[list[Suggestion], str | None]:
        """Untagged images with a suggested tag among `tag_ids` at `threshold` or above,
        most uncertain first (or least, with UncertaintyAscending)."""
        if query.sort_by not in SORTS:
            raise BadRequest("BadRequestInvalid", f"sortBy is one of {', '.join(SORTS)}.")
        if not 1 <= query.max_count <= MAX_PREDICTION_QUERY_COUNT:
            raise BadRequest(
                "BadRequestPredictionResultsExceededCount",
                f"maxCount is 1 to {MAX_PREDICTION_QUERY_COUNT}; got {query.max_count}.",
            )
        offset = offset_of(query.continuation, query.sort_by)
        model = self._model(project_id, iteration_id)
        untagged = list(self.storage.images.iter_images(project_id, TaggingStatus.UNTAGGED))
        matching = [
            s
            for s in self._suggestions(model, untagged)
            if _suggested(s.scores, query.tag_ids, query.threshold)
        ]
        sign = 1.0 if query.sort_by == "UncertaintyAscending" else -1.0
        matching.sort(key=lambda s: (sign * s.uncertainty, s.image.id))
        end = offset + query.max_count
        more = end < len(matching)
        token = encode_continuation(query.sort_by, str(end)) if more else None
        return matching[offset:end], token

    def count(
        self, project_id: str, iteration_id: str, tag_ids: list[str], threshold: float
    ) -> dict[str, int]:
        """For each tag, how many untagged images have it suggested at `threshold` or above."""
        model = self._model(project_id, iteration_id)
        untagged = list(self.storage.images.iter_images(project_id, TaggingStatus.UNTAGGED))
        counts = dict.fromkeys(tag_ids or [label.id for label in model.labels], 0)
        for suggestion in self._suggestions(model, untagged):
            suggested = {s.tag_id for s in suggestion.scores if s.probability >= threshold}
            for tag_id in suggested & counts.keys():  # an image counts once per tag
                counts[tag_id] += 1
        return counts

    def _model(self, project_id: str, iteration_id: str) -> LoadedModel:
        completed_iteration(self.storage, project_id, iteration_id)
        return self.models.model(project_id, iteration_id)

    def _suggestions(self, model: LoadedModel, images: list[Image]) -> list[Suggestion]:
        known = dict(self.storage.suggestions.for_iteration(model.project_id, model.iteration_id))
        missing = [i.id for i in images if i.id not in known]
        for start in range(0, len(missing), BATCH):
            scored = self._score(model, missing[start : start + BATCH])
            self.storage.suggestions.put_many(model.project_id, model.iteration_id, scored.items())
            known.update(scored)
        now = utcnow()
        return [
            Suggestion(
                image=image,
                iteration_id=model.iteration_id,
                created=now,
                scores=known[image.id],
                uncertainty=doubt_of(model, known[image.id]),
            )
            for image in images
            if image.id in known
        ]

    def _score(self, model: LoadedModel, image_ids: list[str]) -> dict[str, list[TagScore]]:
        def read(image_id: str) -> np.ndarray | None:
            path = names.image_blob_path(model.project_id, image_id, "resized")
            data = self.storage.blobs.get(names.CONTAINER_IMAGES, path)
            if data is None:
                return None
            with PILImage.open(io.BytesIO(data)) as image:
                return model.input_array(image)

        arrays = list(_READERS.map(read, image_ids))
        present = [(i, a) for i, a in zip(image_ids, arrays, strict=True) if a is not None]
        if not present:
            return {}
        batch = np.stack([a for _, a in present])
        if model.detects:  # suggested regions: the detector's boxes
            found = detections_of(model, batch)
            return {image_id: f for (image_id, _), f in zip(present, found, strict=True)}
        probabilities = model.run(batch)
        return {
            image_id: scores_of(model.labels, row)
            for (image_id, _), row in zip(present, probabilities, strict=True)
        }
