"""Training and iterations: train, list, get, rename, delete, performance, publish."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request, Response

from functions.api.deps import ProjectDep, ServicesDep
from functions.api.presenters import image_links
from functions.api.schemas.iterations import (
    ImagePerformanceOut,
    IterationOut,
    IterationPatch,
    IterationPerformanceOut,
)
from functions.domain.errors import BadRequest
from functions.domain.ids import parse_id
from functions.domain.limits import DEFAULT_TAKE
from functions.services.image_queries import validate_paging
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
    iteration_id = parse_id(iterationId, "iterationId")
    performance = services.performance.at_threshold(
        project.id, iteration_id, threshold, overlapThreshold
    )
    return IterationPerformanceOut.of(performance)


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
    iteration_id = parse_id(iterationId, "iterationId")
    newest_first = (orderBy or "Newest").lower() == "newest"
    found = services.performance.images(project.id, iteration_id, tagIds, newest_first, take, skip)
    link = image_links(services, request)
    return [ImagePerformanceOut.of(project.id, p, link) for p in found]


@router.get(
    "/projects/{projectId}/iterations/{iterationId}/performance/images/count", response_model=int
)
def get_image_performance_count(
    services: ServicesDep, project: ProjectDep, iterationId: str, tagIds: str | None = None
) -> int:
    return services.performance.count(project.id, parse_id(iterationId, "iterationId"), tagIds)
