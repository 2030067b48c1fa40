"""Iteration, performance and image-performance wire models."""

from __future__ import annotations

from datetime import datetime

from functions.api.schemas.predictions import LinkFn, PredictionOut
from functions.api.schemas.regions import ImageRegionOut
from functions.api.schemas.training import ImageTagOut
from functions.api.schemas.wire import Wire
from functions.domain.models import Iteration
from functions.services.performance import ImagePerformance, Performance, TagCurve
from functions.services.training import exportable_to


class Progress(Wire):
    stage: str
    fraction: float
    attempt: int  # deliveries of the training job so far (retries after a crash)


class IterationOut(Wire):
    id: str
    name: str
    status: str
    created: datetime
    lastModified: datetime
    trainedAt: datetime | None
    projectId: str
    exportable: bool
    exportableTo: list[str]
    domainId: str
    classificationType: str
    trainingType: str
    reservedBudgetInHours: int
    trainingTimeInMinutes: int
    publishName: str | None
    originalPublishResourceId: str | None
    customBaseModelInfo: None = None
    trainingErrorDetails: str | None
    progress: Progress  # our addition, for the portal

    @classmethod
    def of(cls, project_id: str, it: Iteration) -> IterationOut:
        platforms = exportable_to(it.domain_id)
        return cls(
            id=it.id,
            name=it.name,
            status=it.status.value,
            created=it.created,
            lastModified=it.last_modified,
            trainedAt=it.trained_at,
            projectId=project_id,
            exportable=bool(platforms),
            exportableTo=platforms,
            domainId=it.domain_id,
            classificationType=it.classification_type.value,
            trainingType=it.training_type.value,
            reservedBudgetInHours=it.reserved_budget_in_hours,
            trainingTimeInMinutes=it.training_time_in_minutes,
            publishName=it.publish_name,
            originalPublishResourceId=it.original_publish_resource_id,
            trainingErrorDetails=it.training_error_details,
            progress=Progress(
                stage=it.progress_stage, fraction=it.progress_fraction, attempt=it.attempt
            ),
        )


class IterationPatch(Wire):
    name: str | None = None


class TagPerformanceOut(Wire):
    id: str
    name: str
    precision: float
    precisionStdDeviation: float
    recall: float
    recallStdDeviation: float
    averagePrecision: float


class IterationPerformanceOut(Wire):
    perTagPerformance: list[TagPerformanceOut]
    precision: float
    precisionStdDeviation: float
    recall: float
    recallStdDeviation: float
    averagePrecision: float

    @classmethod
    def of(cls, performance: Performance) -> IterationPerformanceOut:
        metrics, tags = performance.metrics, performance.tags
        return cls(
            perTagPerformance=[
                TagPerformanceOut(
                    id=tag.id,
                    name=tag.name,
                    precision=m.precision,
                    precisionStdDeviation=m.precision_std,
                    recall=m.recall,
                    recallStdDeviation=m.recall_std,
                    averagePrecision=m.average_precision,
                )
                for tag, m in zip(tags, metrics.per_tag, strict=True)
            ],
            precision=metrics.precision,
            precisionStdDeviation=metrics.precision_std,
            recall=metrics.recall,
            recallStdDeviation=metrics.recall_std,
            averagePrecision=metrics.average_precision,
        )


class ImagePerformanceOut(Wire):
    predictions: list[PredictionOut]
    id: str
    created: datetime | None
    width: int
    height: int
    imageUri: str
    thumbnailUri: str
    tags: list[ImageTagOut]
    regions: list[ImageRegionOut] | None = None  # detection: the image's labelled boxes

    @classmethod
    def of(cls, project_id: str, p: ImagePerformance, link: LinkFn) -> ImagePerformanceOut:
        image = p.image
        names = {t.id: t.name for t in p.tags}
        return cls(
            regions=[ImageRegionOut.of_region(r, names.get(r.tag_id, "")) for r in image.regions]
            if image is not None and image.regions
            else None,
            predictions=[PredictionOut.of(s) for s in p.scores],
            id=p.image_id,
            created=image.created if image else None,
            width=image.width if image else 0,
            height=image.height if image else 0,
            imageUri=link(project_id, p.image_id, "resized"),
            thumbnailUri=link(project_id, p.image_id, "thumbnail"),
            tags=(
                [ImageTagOut(tagId=t.id, tagName=t.name, created=image.created) for t in p.tags]
                if image is not None
                else []
            ),
        )


class TagCurveOut(Wire):
    """The portal's precision-recall curve of one tag: points by threshold, descending; each
    point is the performance answer's precision and recall at that threshold."""

    id: str
    name: str
    thresholds: list[float]
    precision: list[float]
    recall: list[float]

    @classmethod
    def of(cls, curve: TagCurve) -> TagCurveOut:
        return cls(
            id=curve.tag.id,
            name=curve.tag.name,
            thresholds=curve.thresholds,
            precision=curve.precision,
            recall=curve.recall,
        )


class ExportOut(Wire):
    platform: str
    status: str  # Exporting | Done | Failed
    downloadUri: str | None
    flavor: str | None
    newerVersionAvailable: bool
    error: str | None = None  # our addition: why a Failed export failed
