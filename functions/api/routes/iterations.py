"""Training and iterations: train, list, get, rename, delete, performance, publish."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Body, Request, Response

from functions.api.deps import ProjectDep, ServicesDep, base_url
from functions.api.schemas.iterations import (
    ImagePerformanceOut,
    IterationOut,
    IterationPatch,
    IterationPerformanceOut,
)
from functions.api.schemas.predictions import PredictionOut
from functions.api.schemas.training import ImageTagOut
from functions.domain.errors import BadRequest
from functions.domain.ids import parse_id, parse_id_list
from functions.domain.limits import DEFAULT_TAKE, MAX_TAGS_PER_ENTRY
from functions.services.image_queries import validate_paging
from functions.services.iterations import Evaluation
from functions.services.training import TrainingRequest

router = APIRouter(tags=["training"])


@router.post("/projects/{projectId}/train", response_model=IterationOut)
def train_project(
    services: ServicesDep,
    project: ProjectDep,
    trainingType: str | None = None,
    reservedBudgetInHours: int = 0,
    forceTrain: bool = False,
    notificationEmailAddress: str | None = None,
    parameters: Annotated[dict[str, object] | None, Body()] = None,
) -> IterationOut:
    selected = (parameters or {}).get("selectedTags") or []
    if not isinstance(selected, list):
        raise BadRequest("BadRequestInvalid", "selectedTags must be a list of tag ids.")
    request = TrainingRequest(
        training_type=trainingType,
        reserved_budget_in_hours=reservedBudgetInHours,
        force_train=forceTrain,
        notification_email=notificationEmailAddress,
        selected_tag_ids=[parse_id(str(t), "tagId") for t in selected],
    )
    return IterationOut.of(project.id, services.training.request(project, request))


@router.get("/projects/{projectId}/iterations", response_model=list[IterationOut])
def get_iterations(services: ServicesDep, project: ProjectDep) -> list[IterationOut]:
    return [IterationOut.of(project.id, i) for i in services.iterations.all(project.id)]


@router.get("/projects/{projectId}/iterations/{iterationId}", response_model=IterationOut)
def get_iteration(services: ServicesDep, project: ProjectDep, iterationId: str) -> IterationOut:
    iteration = services.iterations.get(project.id, parse_id(iterationId, "iterationId"))
    return IterationOut.of(project.id, iteration)


@router.patch("/projects/{projectId}/iterations/{iterationId}", response_model=IterationOut)
def update_iteration(
    services: ServicesDep, project: ProjectDep, iterationId: str, body: IterationPatch
) -> IterationOut:
    iteration_id = parse_id(iterationId, "iterationId")
    return IterationOut.of(
        project.id, services.iterations.rename(project.id, iteration_id, body.name)
    )


@router.delete("/projects/{projectId}/iterations/{iterationId}", status_code=204)
def delete_iteration(services: ServicesDep, project: ProjectDep, iterationId: str) -> Response:
    services.iterations.delete(project.id, parse_id(iterationId, "iterationId"))
    return Response(status_code=204)


@router.post("/projects/{projectId}/iterations/{iterationId}/publish", response_model=bool)
def publish_iteration(
    services: ServicesDep,
    project: ProjectDep,
    iterationId: str,
    publishName: str = "",
    predictionId: str = "",
    overwrite: bool = False,
) -> bool:
    iteration_id = parse_id(iterationId, "iterationId")
    services.iterations.publish(project.id, iteration_id, publishName, predictionId)
    return True


@router.delete("/projects/{projectId}/iterations/{iterationId}/publish", status_code=204)
def unpublish_iteration(services: ServicesDep, project: ProjectDep, iterationId: str) -> Response:
    services.iterations.unpublish(project.id, parse_id(iterationId, "iterationId"))
    return Response(status_code=204)


def _threshold(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise BadRequest("BadRequestInvalid", "threshold must be between 0 and 1.")
    return value


@router.get(
    "/projects/{projectId}/iterations/{iterationId}/performance",
    response_model=IterationPerformanceOut,
)
def get_iteration_performance(
    services: ServicesDep,
    project: ProjectDep,
    iterationId: str,
    threshold: float = 0.5,
    overlapThreshold: float | None = None,
) -> IterationPerformanceOut:
    evaluation = services.iterations.evaluation(project.id, parse_id(iterationId, "iterationId"))
    return IterationPerformanceOut.of(evaluation.metrics(_threshold(threshold)), evaluation.tags)


def _rows(
    services: ServicesDep, project_id: str, iteration_id: str, tag_ids: str | None
) -> tuple[Evaluation, np.ndarray]:
    evaluation = services.iterations.evaluation(project_id, iteration_id)
    wanted = parse_id_list(tag_ids, "tagId", MAX_TAGS_PER_ENTRY)
    columns = [i for i, t in enumerate(evaluation.tags) if t.id in wanted]
    if wanted and len(columns) != len(wanted):
        raise BadRequest("BadRequestInvalidIds", "Some tagIds are not tags of this iteration.")
    if columns:
        rows = np.flatnonzero(evaluation.labels[:, columns].max(axis=1) > 0)
    else:
        rows = np.arange(len(evaluation.image_ids))
    return evaluation, rows


@router.get(
    "/projects/{projectId}/iterations/{iterationId}/performance/images",
    response_model=list[ImagePerformanceOut],
)
def get_image_performances(
    services: ServicesDep,
    request: Request,
    project: ProjectDep,
    iterationId: str,
    tagIds: str | None = None,
    orderBy: str | None = None,
    take: int = DEFAULT_TAKE,
    skip: int = 0,
) -> list[ImagePerformanceOut]:
    validate_paging(take, skip)
    evaluation, rows = _rows(services, project.id, parse_id(iterationId, "iterationId"), tagIds)
    if (orderBy or "Newest").lower() == "newest":
        rows = rows[::-1]  # image ids are time-ordered
    page = [evaluation.image_ids[i] for i in rows[skip : skip + take]]
    index = {image_id: i for i, image_id in enumerate(evaluation.image_ids)}
    images = {i.id: i for i in services.queries.by_ids(project.id, page)}
    root = base_url(request)
    out = []
    for image_id in page:
        row = index[image_id]
        image = images.get(image_id)
        predictions = sorted(
            (
                PredictionOut(
                    probability=float(evaluation.probabilities[row, t]),
                    tagId=tag.id,
                    tagName=tag.name,
                    tagType=tag.type,
                )
                for t, tag in enumerate(evaluation.tags)
            ),
            key=lambda p: -p.probability,
        )
        out.append(
            ImagePerformanceOut(
                predictions=predictions,
                id=image_id,
                created=image.created if image else None,
                width=image.width if image else 0,
                height=image.height if image else 0,
                imageUri=services.links.link(root, project.id, image_id, "resized"),
                thumbnailUri=services.links.link(root, project.id, image_id, "thumbnail"),
                tags=[
                    ImageTagOut(tagId=tag.id, tagName=tag.name, created=image.created)
                    for t, tag in enumerate(evaluation.tags)
                    if evaluation.labels[row, t] > 0 and image is not None
                ],
            )
        )
    return out


@router.get(
    "/projects/{projectId}/iterations/{iterationId}/performance/images/count", response_model=int
)
def get_image_performance_count(
    services: ServicesDep, project: ProjectDep, iterationId: str, tagIds: str | None = None
) -> int:
    _, rows = _rows(services, project.id, parse_id(iterationId, "iterationId"), tagIds)
    return len(rows)
