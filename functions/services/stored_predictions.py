"""Stored predictions: the query behind the portal's Predictions tab, deletion, retention,
and turning predictions into training images (the improve-over-time loop)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta

from functions.domain import names
from functions.domain.clock import utcnow
from functions.domain.errors import BadRequest
from functions.domain.limits import (
    MAX_IMAGES_PER_BATCH,
    MAX_PREDICTION_IDS_PER_CALL,
    MAX_PREDICTION_IMAGE_BYTES,
    MAX_PREDICTION_QUERY_COUNT,
    MAX_PREDICTION_QUERY_TAGS,
)
from functions.domain.models import ImageCreateOutcome
from functions.domain.predictions import (
    Prediction,
    PredictionQuery,
    QueryOrder,
    decode_continuation,
    encode_continuation,
    offset_of,
)
from functions.domain.regions import NewRegion
from functions.imaging import process_image
from functions.services.images import ImageService, NewImage
from functions.storage.clients import Storage

# Suggested order sorts every matching prediction; it reads at most this many.
MAX_SUGGESTED_SCAN = 20_000


@dataclass(frozen=True)
class FromPrediction:
    """One entry of ImageIdCreateBatch: a stored prediction to become a training image."""

    prediction_id: str
    tag_ids: list[str]
    regions: list[NewRegion]  # object detection: the boxes it keeps (the client chooses)


@dataclass(frozen=True)
class QueryPage:
    results: list[Prediction]
    continuation: str | None  # None: nothing more


def validate_query(query: PredictionQuery) -> None:
    if not 1 <= query.max_count <= MAX_PREDICTION_QUERY_COUNT:
        raise BadRequest(
            "BadRequestPredictionResultsExceededCount",
            f"maxCount is 1 to {MAX_PREDICTION_QUERY_COUNT}; got {query.max_count}.",
        )
    if len(query.tags) > MAX_PREDICTION_QUERY_TAGS:
        raise BadRequest(
            "BadRequestPredictionTagsExceededCount",
            f"A query filters on at most {MAX_PREDICTION_QUERY_TAGS} tags.",
        )
    for tag in query.tags:
        if not 0.0 <= tag.low <= tag.high <= 1.0:
            raise BadRequest(
                "BadRequestPredictionInvalidQueryParameters",
                "Tag thresholds need 0 <= minThreshold <= maxThreshold <= 1.",
            )
    if query.start and query.end and query.start > query.end:
        raise BadRequest(
            "BadRequestPredictionInvalidQueryParameters", "startTime is after endTime."
        )


def validate_ids(ids: list[str]) -> None:
    if not ids:
        raise BadRequest("BadRequestPredictionIdsMissing", "Give the ids of the predictions.")
    if len(ids) > MAX_PREDICTION_IDS_PER_CALL:
        raise BadRequest(
            "BadRequestPredictionIdsExceededCount",
            f"At most {MAX_PREDICTION_IDS_PER_CALL} prediction ids may be given at once.",
        )


@dataclass
class StoredPredictions:
    storage: Storage
    images: ImageService
    retention: timedelta

    def query(self, project_id: str, query: PredictionQuery) -> QueryPage:
        validate_query(query)
        if query.order is QueryOrder.SUGGESTED:
            return self._most_uncertain(project_id, query)
        after = decode_continuation(query.continuation, query.order) if query.continuation else None
        rows = self.storage.predictions.scan(project_id, query.order, after, query.start, query.end)
        matches = ((key, p) for key, p in rows if query.matches(p))
        page = list(itertools.islice(matches, query.max_count + 1))
        more = len(page) > query.max_count
        page = page[: query.max_count]
        token = encode_continuation(query.order, page[-1][0]) if more and page else None
        return QueryPage([p for _, p in page], token)

    def _most_uncertain(self, project_id: str, query: PredictionQuery) -> QueryPage:
        offset = offset_of(query.continuation, query.order)
        rows = self.storage.predictions.scan(
            project_id, QueryOrder.OLDEST, None, query.start, query.end
        )
        matches = [p for _, p in itertools.islice(rows, MAX_SUGGESTED_SCAN) if query.matches(p)]
        matches.sort(key=lambda p: (-p.uncertainty, p.id))
        end = offset + query.max_count
        token = encode_continuation(query.order, str(end)) if end < len(matches) else None
        return QueryPage(matches[offset:end], token)

    def image(self, project_id: str, prediction_id: str, variant: str) -> tuple[bytes, str] | None:
        """A stored prediction's image (bytes, content type): the original as stored; the
        resized copy and the thumbnail made from it on their first read, and kept."""
        blobs = self.storage.blobs
        container = names.CONTAINER_PREDICTIONS
        found = blobs.get_with_type(
            container, names.image_blob_path(project_id, prediction_id, variant)
        )
        if found is not None or variant == "original":
            return found
        original = blobs.get(
            container, names.image_blob_path(project_id, prediction_id, "original")
        )
        if original is None:
            return None
        processed = process_image(original, MAX_PREDICTION_IMAGE_BYTES)
        derived = {"resized": processed.resized, "thumbnail": processed.thumbnail}
        for name, data in derived.items():  # two first reads at once write the same bytes
            blobs.put(
                container,
                names.image_blob_path(project_id, prediction_id, name),
                data,
                "image/jpeg",
            )
        return derived[variant], "image/jpeg"

    def delete(self, project_id: str, prediction_ids: list[str]) -> None:
        validate_ids(prediction_ids)
        for prediction_id in prediction_ids:
            self._remove(project_id, prediction_id)

    def _remove(self, project_id: str, prediction_id: str) -> None:
        # Blobs first: a retried delete finds the rows and finishes.
        prefix = f"{project_id}/{prediction_id}/"
        self.storage.blobs.delete_prefix(names.CONTAINER_PREDICTIONS, prefix)
        self.storage.predictions.delete(project_id, prediction_id)

    def purge_expired(self, now: datetime | None = None) -> int:
        """Delete every prediction older than the retention period; how many went."""
        cutoff = (now or utcnow()) - self.retention
        expired = list(self.storage.predictions.made_before(cutoff))
        for project_id, prediction_id in expired:
            self._remove(project_id, prediction_id)
        return len(expired)

    def to_training_images(
        self,
        project_id: str,
        entries: list[FromPrediction],
        metadata: dict[str, str] | None,
    ) -> list[ImageCreateOutcome]:
        """Training images, with tags or regions, from stored predictions' images (in entry
        order)."""
        if len(entries) > MAX_IMAGES_PER_BATCH:
            raise BadRequest(
                "BadRequestImageBatch", f"A batch holds at most {MAX_IMAGES_PER_BATCH} images."
            )
        new_images = [self._as_new_image(project_id, entry) for entry in entries]
        return self.images.create(project_id, new_images, metadata)

    def _as_new_image(self, project_id: str, entry: FromPrediction) -> NewImage:
        prediction_id, tag_ids = entry.prediction_id, entry.tag_ids
        found = self.storage.predictions.get(project_id, prediction_id)
        path = names.image_blob_path(project_id, prediction_id, "original")
        data = self.storage.blobs.get(names.CONTAINER_PREDICTIONS, path) if found else None
        if data is None:
            message = f"Prediction {prediction_id} was not found in this project."
            return NewImage(None, tag_ids, source_error=message)
        return NewImage(data, tag_ids, regions=entry.regions)
