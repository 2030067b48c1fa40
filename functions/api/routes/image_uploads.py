"""Creating images: multipart or raw bytes, base64 JSON files, and URLs. 200 or 207."""

from __future__ import annotations

import base64
import binascii

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from functions.api.deps import ProjectDep, ServicesDep
from functions.api.multipart import SpooledPart, spool_multipart
from functions.api.routes.images import image_mapper
from functions.api.schemas.training import (
    ImageCreateSummaryOut,
    ImageFileBatch,
    ImageUrlBatch,
)
from functions.domain.errors import BadRequest
from functions.domain.ids import parse_id, parse_id_list
from functions.domain.limits import MAX_TAGS_PER_ENTRY
from functions.domain.models import ImageCreateOutcome
from functions.services.images import NewImage

router = APIRouter(tags=["images"])


def summary_response(
    services: ServicesDep, request: Request, project_id: str, outcomes: list[ImageCreateOutcome]
) -> JSONResponse:
    mapper = image_mapper(services, request, project_id)
    summary = ImageCreateSummaryOut(
        isBatchSuccessful=all(o.ok for o in outcomes),
        images=[mapper.outcome(o) for o in outcomes],
    )
    status = 200 if summary.isBatchSuccessful else 207
    return JSONResponse(summary.model_dump(mode="json"), status_code=status)


def _tag_ids(ids: list[str] | None) -> list[str]:
    return [parse_id(t, "tagId") for t in ids or []]


@router.post("/projects/{projectId}/images", response_model=ImageCreateSummaryOut)
async def create_images_from_data(
    services: ServicesDep, request: Request, project: ProjectDep, tagIds: str | None = None
) -> JSONResponse:
    tag_ids = parse_id_list(tagIds, "tagId", MAX_TAGS_PER_ENTRY)
    entries: list[NewImage] = []
    content_type = request.headers.get("content-type", "")
    parts: list[SpooledPart] = []
    if content_type.lower().startswith("multipart/"):
        parts = await spool_multipart(content_type, request.stream())
        entries = [NewImage(p.file, tag_ids, source_url=p.filename) for p in parts]
    elif body := await request.body():
        entries.append(NewImage(body, tag_ids))
    try:
        if not entries:
            raise BadRequest("BadRequestImageBatch", "The request holds no image data.")
        outcomes = await run_in_threadpool(services.images.create, project.id, entries)
    finally:
        for part in parts:
            part.file.close()
    return summary_response(services, request, project.id, outcomes)


@router.post("/projects/{projectId}/images/files", response_model=ImageCreateSummaryOut)
def create_images_from_files(
    services: ServicesDep, request: Request, project: ProjectDep, batch: ImageFileBatch
) -> JSONResponse:
    common = _tag_ids(batch.tagIds)
    entries = []
    for item in batch.images or []:
        tag_ids = common + _tag_ids(item.tagIds)
        try:
            data = base64.b64decode(item.contents or "", validate=True)
        except (binascii.Error, ValueError):
            entries.append(NewImage(None, tag_ids, item.name, "contents is not valid base64."))
            continue
        entries.append(NewImage(data, tag_ids, source_url=item.name))
    outcomes = services.images.create(project.id, entries, batch.metadata)
    return summary_response(services, request, project.id, outcomes)


@router.post("/projects/{projectId}/images/urls", response_model=ImageCreateSummaryOut)
def create_images_from_urls(
    services: ServicesDep, request: Request, project: ProjectDep, batch: ImageUrlBatch
) -> JSONResponse:
    common = _tag_ids(batch.tagIds)
    sources = [(item.url or "", common + _tag_ids(item.tagIds)) for item in batch.images or []]
    outcomes = services.images.create_from_urls(
        project.id, sources, batch.metadata, services.url_policy
    )
    return summary_response(services, request, project.id, outcomes)
