"""Wire models of predictions: ImagePrediction, stored predictions and their query, images
from predictions, and the smart labeler's suggestions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from functions.api.schemas.regions import BoundingBoxOut, RegionIn
from functions.api.schemas.wire import Wire
from functions.domain.predictions import Prediction, TagScore

# (project id, prediction or image id, variant) -> a signed link
LinkFn = Callable[[str, str, str], str]


class PredictionOut(Wire):
    probability: float
    tagId: str
    tagName: str
    boundingBox: BoundingBoxOut | None = None
    tagType: str

    @classmethod
    def of(cls, s: TagScore) -> PredictionOut:
        return cls(
            probability=s.probability,
            tagId=s.tag_id,
            tagName=s.tag_name,
            boundingBox=BoundingBoxOut.of(s.box) if s.box is not None else None,
            tagType=s.tag_type,
        )


class ImagePredictionOut(Wire):
    id: str
    project: str
    iteration: str
    created: datetime
    predictions: list[PredictionOut]

    @classmethod
    def of(cls, p: Prediction) -> ImagePredictionOut:
        return cls(
            id=p.id,
            project=p.project_id,
            iteration=p.iteration_id,
            created=p.created,
            predictions=[PredictionOut.of(s) for s in p.scores],
        )


class StoredImagePredictionOut(ImagePredictionOut):
    resizedImageUri: str
    thumbnailUri: str
    originalImageUri: str
    domain: str

    @classmethod
    def stored(cls, p: Prediction, link: LinkFn) -> StoredImagePredictionOut:
        return cls(
            **ImagePredictionOut.of(p).model_dump(),
            resizedImageUri=link(p.project_id, p.id, "resized"),
            thumbnailUri=link(p.project_id, p.id, "thumbnail"),
            originalImageUri=link(p.project_id, p.id, "original"),
            domain=p.domain_id,
        )


class ImageUrlIn(Wire):
    url: str | None = None


class PredictionQueryTagIn(Wire):
    id: str
    minThreshold: float | None = None
    maxThreshold: float | None = None


class PredictionQueryTokenIO(Wire):
    session: str | None = None
    continuation: str | None = None
    maxCount: int | None = None
    orderBy: str | None = None
    tags: list[PredictionQueryTagIn] | None = None
    iterationId: str | None = None
    startTime: datetime | None = None
    endTime: datetime | None = None
    application: str | None = None


class PredictionQueryResultOut(Wire):
    token: PredictionQueryTokenIO
    results: list[StoredImagePredictionOut]


class ImageIdCreateEntryIn(Wire):
    id: str | None = None
    tagIds: list[str] | None = None
    regions: list[RegionIn] | None = None  # object detection: the boxes to keep


class ImageIdCreateBatchIn(Wire):
    images: list[ImageIdCreateEntryIn] | None = None
    tagIds: list[str] | None = None
    metadata: dict[str, str] | None = None


class SuggestedTagAndRegionOut(Wire):
    id: str
    project: str
    iteration: str
    created: datetime
    predictions: list[PredictionOut]
    predictionUncertainty: float


class StoredSuggestedTagAndRegionOut(SuggestedTagAndRegionOut):
    width: int
    height: int
    resizedImageUri: str
    thumbnailUri: str
    originalImageUri: str
    domain: str


class SuggestedTagAndRegionQueryTokenIO(Wire):
    tagIds: list[str] | None = None
    threshold: float | None = None
    session: str | None = None
    continuation: str | None = None
    maxCount: int | None = None
    sortBy: str | None = None


class SuggestedTagAndRegionQueryOut(Wire):
    token: SuggestedTagAndRegionQueryTokenIO
    results: list[StoredSuggestedTagAndRegionOut]


class TagFilterIn(Wire):
    tagIds: list[str] | None = None
    threshold: float | None = None
