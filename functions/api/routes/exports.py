"""Exports of an iteration: request one (the trainer job builds it) and list them, with
short-lived download links for the finished ones."""

from __future__ import annotations

from fastapi import APIRouter, Request

from functions.api.deps import ProjectDep, Services, ServicesDep, base_url
from functions.api.schemas.iterations import ExportOut
from functions.domain.exports import ExportRecord, ExportStatus
from functions.domain.ids import parse_id

router = APIRouter(tags=["exports"])

PATH = "/projects/{projectId}/iterations/{iterationId}/export"


def _out(services: Services, request: Request, record: ExportRecord) -> ExportOut:
    link = None
    if record.status is ExportStatus.DONE:
        link = services.links.link(
            base_url(request), record.project_id, record.iteration_id, record.file_name, "exports"
        )
    return ExportOut(
        platform=record.platform,
        status=record.status.value,
        downloadUri=link,
        flavor=record.flavor or None,
        newerVersionAvailable=record.newer_version_available,
        error=record.error,
    )


@router.post(PATH, response_model=ExportOut)
def export_iteration(
    services: ServicesDep,
    request: Request,
    project: ProjectDep,
    iterationId: str,
    platform: str | None = None,
    flavor: str | None = None,
) -> ExportOut:
    iteration_id = parse_id(iterationId, "iterationId")
    record = services.exports.start(project.id, iteration_id, platform, flavor)
    return _out(services, request, record)


@router.get(PATH, response_model=list[ExportOut])
def get_exports(
    services: ServicesDep, request: Request, project: ProjectDep, iterationId: str
) -> list[ExportOut]:
    records = services.exports.list(project.id, parse_id(iterationId, "iterationId"))
    return [_out(services, request, r) for r in records]
