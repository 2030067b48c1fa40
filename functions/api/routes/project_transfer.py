"""Project export and import, and an iteration's artifacts by path (Custom Vision's
ExportProject, ImportProject and GetArtifact)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from functions.api.deps import ProjectDep, ServicesDep
from functions.api.presenters import image_links
from functions.api.schemas.training import ProjectExportOut, ProjectOut

router = APIRouter(tags=["projects"])


@router.get("/projects/{projectId}/export", response_model=ProjectExportOut)
def export_project(services: ServicesDep, project: ProjectDep) -> ProjectExportOut:
    """Counts of what an import copies, its estimated time, and a token for
    `POST /projects/import` (valid 24 hours, on this service only)."""
    return ProjectExportOut.of(services.transfer.export(project))


@router.post("/projects/import", response_model=ProjectOut)
def import_project(
    services: ServicesDep, request: Request, token: str | None = None, name: str | None = None
) -> ProjectOut:
    """A new project from an export token: settings and tags at once; the images are copied
    by a queued job, the project's `status` Importing until it is Succeeded (or Failed)."""
    project = services.transfer.start_import(token, name)
    return ProjectOut.of(project, None, image_links(services, request))


@router.get("/projects/{projectId}/artifacts")
def get_artifact(services: ServicesDep, project: ProjectDep, path: str = "") -> Response:
    """An iteration's file by its path relative to the project: `{iterationId}/model.onnx`,
    `{iterationId}/manifest.json`, ..."""
    data = services.transfer.artifact(project, path)
    return Response(data, media_type="application/octet-stream")
