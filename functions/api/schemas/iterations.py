"""Iteration, performance and image-performance wire models."""

from __future__ import annotations

from datetime import datetime

from functions.api.schemas.predictions import PredictionOut
from functions.api.schemas.training import ImageTagOut, Wire
from functions.domain.metrics import Metrics
from functions.domain.models import Iteration
from functions.domain.predictions import Label
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
    def of(cls, metrics: Metrics, tags: list[Label]) -> IterationPerformanceOut:
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
    regions: None = None


class ExportOut(Wire):
    platform: str
    status: str  # Exporting | Done | Failed
    downloadUri: str | None
    flavor: str | None
    newerVersionAvailable: bool
    error: str | None = None  # our addition: why a Failed export failed
