"""Tags: list with image counts, create, get, update, delete."""

from __future__ import annotations

from fastapi import APIRouter, Response

from functions.api.deps import ProjectDep, ServicesDep
from functions.api.schemas.training import TagOut, TagPatch
from functions.domain.ids import parse_id
from functions.services.tags import TagChanges

router = APIRouter(tags=["tags"])


@router.get("/projects/{projectId}/tags", response_model=list[TagOut])
def list_tags(
    services: ServicesDep, project: ProjectDep, iterationId: str | None = None
) -> list[TagOut]:
    return [TagOut.of(t) for t in services.tags.all(project.id, iterationId)]


@router.post("/projects/{projectId}/tags", response_model=TagOut)
def create_tag(
    services: ServicesDep,
    project: ProjectDep,
    name: str | None = None,
    description: str | None = None,
    type: str | None = None,
) -> TagOut:
    return TagOut.of(services.tags.create(project.id, name, description, type))


@router.get("/projects/{projectId}/tags/{tagId}", response_model=TagOut)
def get_tag(
    services: ServicesDep, project: ProjectDep, tagId: str, iterationId: str | None = None
) -> TagOut:
    return TagOut.of(services.tags.get(project.id, parse_id(tagId, "tagId"), iterationId))


@router.patch("/projects/{projectId}/tags/{tagId}", response_model=TagOut)
def update_tag(services: ServicesDep, project: ProjectDep, tagId: str, body: TagPatch) -> TagOut:
    changes = TagChanges(name=body.name, description=body.description, type=body.type)
    updated = services.tags.update(project.id, parse_id(tagId, "tagId"), changes)
    services.models.forget_tag_names(project.id)  # predictions answer the new name at once
    return TagOut.of(updated)


@router.delete("/projects/{projectId}/tags/{tagId}", status_code=204)
def delete_tag(services: ServicesDep, project: ProjectDep, tagId: str) -> Response:
    services.tags.delete(project.id, parse_id(tagId, "tagId"))
    return Response(status_code=204)
