"""Creating images: multipart or raw bytes, base64 JSON files, and URLs. 200 or 207."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import replace
from typing import IO, Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from functions.api.deps import ProjectDep, Services, ServicesDep
from functions.api.json_spool import SpooledJson, decode_base64, spool_json
from functions.api.multipart import SpooledPart, spool_multipart
from functions.api.presenters import summary_response
from functions.api.schemas.regions import new_regions
from functions.api.schemas.training import (
    ImageCreateSummaryOut,
    ImageFileBatch,
    ImageUrlBatch,
)
from functions.domain.errors import BadRequest
from functions.domain.ids import parse_id, parse_id_list
from functions.domain.limits import MAX_IMAGES_PER_BATCH, MAX_TAGS_PER_ENTRY
from functions.domain.models import ImageCreateOutcome
from functions.services.images import NewImage

router = APIRouter(tags=["images"])


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


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON schema with its $defs inlined (the document resolves $ref from its root)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        return [inline(value) for value in node] if isinstance(node, list) else node

    inlined: dict[str, Any] = inline(schema)
    return inlined


# The route reads the body itself (as it streams in); the document still describes it.
_FILE_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _inline_schema(ImageFileBatch)}},
    }
}
_CONTENTS = ("images", "*", "contents")


@router.post(
    "/projects/{projectId}/images/files",
    response_model=ImageCreateSummaryOut,
    openapi_extra=_FILE_BATCH_BODY,
)
async def create_images_from_files(
    services: ServicesDep, request: Request, project: ProjectDep
) -> JSONResponse:
    try:
        # The Python SDK's batch is one JSON document (up to 64 x 8 MB of base64): its image
        # contents go to files as it streams in, never into memory whole.
        body = await spool_json(request.stream(), MAX_IMAGES_PER_BATCH)
    except (ValueError, RecursionError) as error:  # not JSON, or nested too deep
        raise _not_json(error) from None
    try:
        outcomes = await run_in_threadpool(_create_from_files, services, project.id, body)
    finally:
        body.close()
    return summary_response(services, request, project.id, outcomes)


def _create_from_files(
    services: Services, project_id: str, body: SpooledJson
) -> list[ImageCreateOutcome]:
    try:
        document = body.restored(body.document, keep=_CONTENTS)
    except (ValueError, RecursionError) as error:  # not JSON, or nested too deep
        raise _not_json(error) from None
    try:
        batch = ImageFileBatch.model_validate(document)
    except ValidationError as error:
        raise RequestValidationError(error.errors(include_url=False)) from None
    common = _tag_ids(batch.tagIds)
    entries: list[NewImage] = []
    try:
        for item in batch.images or []:
            entry = NewImage(
                None, common + _tag_ids(item.tagIds), item.name, regions=new_regions(item.regions)
            )
            data = _base64_contents(body, item.contents)
            if data is None:
                entries.append(replace(entry, source_error="contents is not valid base64."))
            else:
                entries.append(replace(entry, data=data))
        return services.images.create(project_id, entries, batch.metadata)
    finally:
        for entry in entries:
            if not isinstance(entry.data, bytes | None):
                entry.data.close()


def _base64_contents(body: SpooledJson, contents: str | None) -> bytes | IO[bytes] | None:
    """An image's bytes (in a file when they were spooled), or None when not valid base64."""
    spooled = body.spooled(contents)
    if spooled is not None:
        try:
            return decode_base64(spooled)
        finally:
            spooled.close()  # only the decoded copy stays on disk
    try:
        return base64.b64decode(contents or "", validate=True)
    except (binascii.Error, ValueError):
        return None


def _not_json(error: ValueError | RecursionError) -> RequestValidationError:
    """What FastAPI answers for a body that is not JSON."""
    where = ("body", error.pos) if isinstance(error, json.JSONDecodeError) else ("body",)
    detail: dict[str, Any] = {"type": "json_invalid", "loc": where, "msg": "JSON decode error"}
    return RequestValidationError([{**detail, "input": {}, "ctx": {"error": str(error)}}])


@router.post("/projects/{projectId}/images/urls", response_model=ImageCreateSummaryOut)
def create_images_from_urls(
    services: ServicesDep, request: Request, project: ProjectDep, batch: ImageUrlBatch
) -> JSONResponse:
    common = _tag_ids(batch.tagIds)
    sources = [
        NewImage(
            None, common + _tag_ids(item.tagIds), item.url or "", regions=new_regions(item.regions)
        )
        for item in batch.images or []
    ]
    outcomes = services.images.create_from_urls(
        project.id, sources, batch.metadata, services.url_policy
    )
    return summary_response(services, request, project.id, outcomes)
