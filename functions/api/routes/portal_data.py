"""What only the portal asks for, behind the Training-Key under the Training API's prefix but
outside Custom Vision's paths (and its OpenAPI document): project cards with their counts in
one request, and each tag's precision-recall curve as the server computes it."""

from __future__ import annotations

from fastapi import APIRouter, Request

from functions.api.deps import ProjectDep, ServicesDep
from functions.api.presenters import image_links
from functions.api.schemas.iterations import TagCurveOut
from functions.api.schemas.training import ProjectSummaryOut
from functions.domain.ids import parse_id

router = APIRouter(prefix="/portal", tags=["portal"], include_in_schema=False)


@router.get("/projects", response_model=list[ProjectSummaryOut])
def list_project_summaries(services: ServicesDep, request: Request) -> list[ProjectSummaryOut]:
    link = image_links(services, request)
    return [ProjectSummaryOut.listed(p, link) for p in services.projects.listing(True)]


@router.get(
    "/projects/{projectId}/iterations/{iterationId}/curves", response_model=list[TagCurveOut]
)
def get_precision_recall_curves(
    services: ServicesDep, project: ProjectDep, iterationId: str
) -> list[TagCurveOut]:
    curves = services.performance.curves(project.id, parse_id(iterationId, "iterationId"))
    return [TagCurveOut.of(c) for c in curves]
