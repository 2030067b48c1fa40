"""Projects: list, create, get, update, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response

from functions.api.deps import ProjectDep, Services, ServicesDep
from functions.api.presenters import image_links
from functions.api.schemas.training import ProjectOut, ProjectPatch
from functions.domain.models import Project
from functions.services.projects import ProjectChanges

router = APIRouter(tags=["projects"])


def _out(services: Services, request: Request, project: Project) -> ProjectOut:
    cover = services.projects.newest_image_id(project.id)
    return ProjectOut.of(project, cover, image_links(services, request))


@router.get("/projects", response_model=list[ProjectOut])
def list_projects(services: ServicesDep, request: Request) -> list[ProjectOut]:
    link = image_links(services, request)
    return [ProjectOut.of(p.project, p.newest_image_id, link) for p in services.projects.listing()]


@router.post("/projects", response_model=ProjectOut)
def create_project(
    services: ServicesDep,
    request: Request,
    name: str | None = None,
    description: str | None = None,
    domainId: str | None = None,
    classificationType: str | None = None,
    targetExportPlatforms: Annotated[str | None, Query()] = None,
    projectId: Annotated[
        str | None,
        Header(
            alias="X-Project-Id",
            description="Extension: create the project under this GUID (the migration tool "
            "keeps a project's id this way); Custom Vision ignores the header.",
        ),
    ] = None,
) -> ProjectOut:
    platforms = [p for p in (targetExportPlatforms or "").split(",") if p.strip()]
    project = services.projects.create(
        name, description, domainId, classificationType, [p.strip() for p in platforms], projectId
    )
    return _out(services, request, project)


@router.get("/projects/{projectId}", response_model=ProjectOut)
def get_project(services: ServicesDep, request: Request, project: ProjectDep) -> ProjectOut:
    return _out(services, request, project)


@router.patch("/projects/{projectId}", response_model=ProjectOut)
def update_project(
    services: ServicesDep, request: Request, project: ProjectDep, body: ProjectPatch
) -> ProjectOut:
    settings = body.settings
    changes = ProjectChanges(
        name=body.name,
        description=body.description,
        domain_id=settings.domainId if settings else None,
        classification_type=settings.classificationType if settings else None,
        target_export_platforms=settings.targetExportPlatforms if settings else None,
    )
    return _out(services, request, services.projects.update(project.id, changes))


@router.delete("/projects/{projectId}", status_code=204)
def delete_project(services: ServicesDep, project: ProjectDep) -> Response:
    services.projects.delete(project.id)
    services.models.forget(project.id)
    return Response(status_code=204)
