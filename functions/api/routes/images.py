"""Image queries, counts, deletion, image tags and metadata."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import JSONResponse

from functions.api.deps import ProjectDep, Services, ServicesDep
from functions.api.presenters import image_mapper
from functions.api.schemas.training import (
    ImageMapper,
    ImageMetadataEntryOut,
    ImageMetadataSummaryOut,
    ImageOut,
    ImageTagBatch,
    ImageTagPair,
    ImageTagSummaryOut,
)
from functions.domain.errors import BadRequest
from functions.domain.ids import parse_id, parse_id_list
from functions.domain.limits import DEFAULT_TAKE, MAX_IMAGE_IDS_PER_CALL, MAX_TAGS_PER_ENTRY
from functions.domain.models import Image, OrderBy, TaggingStatus
from functions.domain.validation import choice
from functions.services.image_queries import ImageQuery
from functions.services.iteration_snapshots import Snapshot

router = APIRouter(tags=["images"])

TagIdsQuery = Annotated[str | None, Query(alias="tagIds")]
FilterQuery = Annotated[str | None, Query(alias="$filter")]


def _query(
    tag_ids: str | None,
    tagging_status: TaggingStatus,
    metadata_filter: str | None,
    order_by: str | None,
    take: int,
    skip: int,
) -> ImageQuery:
    return ImageQuery(
        tag_ids=parse_id_list(tag_ids, "tagId", MAX_TAGS_PER_ENTRY),
        tagging_status=tagging_status,
        metadata_filter=metadata_filter,
        order_by=choice(OrderBy, order_by, OrderBy.NEWEST, "BadRequestInvalid", "orderBy"),
        take=take,
        skip=skip,
    )


def _page(
    services: Services,
    request: Request,
    project_id: str,
    query: ImageQuery,
    iteration_id: str | None,
) -> list[ImageOut]:
    """A page of images; with `iteration_id`, as that iteration was trained on them."""
    snapshot = services.queries.snapshot(project_id, iteration_id)
    images: list[Image] = services.queries.page(project_id, query, snapshot)
    return [_mapper(services, request, project_id, snapshot).image(i) for i in images]


def _mapper(
    services: Services, request: Request, project_id: str, snapshot: Snapshot | None
) -> ImageMapper:
    """Tags under their current names; a tag deleted since, under its name in the snapshot."""
    mapper = image_mapper(services, request, project_id)
    if snapshot is not None:
        mapper.tag_names = {**{t.id: t.name for t in snapshot.tags}, **mapper.tag_names}
    return mapper


def _count(services: Services, project_id: str, query: ImageQuery, iteration_id: str | None) -> int:
    snapshot = services.queries.snapshot(project_id, iteration_id)
    return services.queries.count(project_id, query, snapshot)


@router.get("/projects/{projectId}/images", response_model=list[ImageOut])
def get_images(
    services: ServicesDep,
    request: Request,
    project: ProjectDep,
    tagIds: TagIdsQuery = None,
    taggingStatus: str | None = None,
    filter: FilterQuery = None,
    orderBy: str | None = None,
    take: int = DEFAULT_TAKE,
    skip: int = 0,
    iterationId: str | None = None,
) -> list[ImageOut]:
    status = choice(
        TaggingStatus, taggingStatus, TaggingStatus.ALL, "BadRequestInvalid", "taggingStatus"
    )
    query = _query(tagIds, status, filter, orderBy, take, skip)
    return _page(services, request, project.id, query, iterationId)


@router.get("/projects/{projectId}/images/count", response_model=int)
def get_image_count(
    services: ServicesDep,
    project: ProjectDep,
    tagIds: TagIdsQuery = None,
    taggingStatus: str | None = None,
    filter: FilterQuery = None,
    iterationId: str | None = None,
) -> int:
    status = choice(
        TaggingStatus, taggingStatus, TaggingStatus.ALL, "BadRequestInvalid", "taggingStatus"
    )
    return _count(services, project.id, _query(tagIds, status, filter, None, 0, 0), iterationId)


@router.get("/projects/{projectId}/images/tagged", response_model=list[ImageOut])
def get_tagged_images(
    services: ServicesDep,
    request: Request,
    project: ProjectDep,
    tagIds: TagIdsQuery = None,
    orderBy: str | None = None,
    take: int = DEFAULT_TAKE,
    skip: int = 0,
    iterationId: str | None = None,
) -> list[ImageOut]:
    query = _query(tagIds, TaggingStatus.TAGGED, None, orderBy, take, skip)
    return _page(services, request, project.id, query, iterationId)


@router.get("/projects/{projectId}/images/tagged/count", response_model=int)
def get_tagged_image_count(
    services: ServicesDep,
    project: ProjectDep,
    tagIds: TagIdsQuery = None,
    iterationId: str | None = None,
) -> int:
    query = _query(tagIds, TaggingStatus.TAGGED, None, None, 0, 0)
    return _count(services, project.id, query, iterationId)


@router.get("/projects/{projectId}/images/untagged", response_model=list[ImageOut])
def get_untagged_images(
    services: ServicesDep,
    request: Request,
    project: ProjectDep,
    orderBy: str | None = None,
    take: int = DEFAULT_TAKE,
    skip: int = 0,
    iterationId: str | None = None,
) -> list[ImageOut]:
    query = _query(None, TaggingStatus.UNTAGGED, None, orderBy, take, skip)
    return _page(services, request, project.id, query, iterationId)


@router.get("/projects/{projectId}/images/untagged/count", response_model=int)
def get_untagged_image_count(
    services: ServicesDep, project: ProjectDep, iterationId: str | None = None
) -> int:
    query = _query(None, TaggingStatus.UNTAGGED, None, None, 0, 0)
    return _count(services, project.id, query, iterationId)


@router.get("/projects/{projectId}/images/id", response_model=list[ImageOut])
def get_images_by_ids(
    services: ServicesDep,
    request: Request,
    project: ProjectDep,
    imageIds: str | None = None,
    iterationId: str | None = None,
) -> list[ImageOut]:
    ids = parse_id_list(imageIds, "imageId", MAX_IMAGE_IDS_PER_CALL)
    snapshot = services.queries.snapshot(project.id, iterationId)
    mapper = _mapper(services, request, project.id, snapshot)
    return [mapper.image(i) for i in services.queries.by_ids(project.id, ids, snapshot)]


@router.delete("/projects/{projectId}/images", status_code=204)
def delete_images(
    services: ServicesDep,
    project: ProjectDep,
    imageIds: str | None = None,
    allImages: bool = False,
    allIterations: bool = False,
) -> Response:
    if allImages:
        services.images.delete_all(project.id)
    else:
        ids = parse_id_list(imageIds, "imageId", MAX_IMAGE_IDS_PER_CALL)
        if not ids:
            raise BadRequest("BadRequestInvalidIds", "Give imageIds, or allImages=true.")
        services.images.delete(project.id, ids)
    return Response(status_code=204)


@router.post("/projects/{projectId}/images/tags", response_model=ImageTagSummaryOut)
def create_image_tags(
    services: ServicesDep, project: ProjectDep, body: ImageTagBatch
) -> ImageTagSummaryOut:
    pairs = [
        (parse_id(p.imageId, "imageId"), parse_id(p.tagId, "tagId")) for p in (body.tags or [])
    ]
    if not pairs:
        raise BadRequest("BadRequestImageTags", "Give at least one imageId and tagId pair.")
    result = services.images.add_tags(project.id, pairs)

    def wire(items: list[tuple[str, str]]) -> list[ImageTagPair]:
        return [ImageTagPair(imageId=i, tagId=t) for i, t in items]

    return ImageTagSummaryOut(
        created=wire(result.created),
        duplicated=wire(result.duplicated),
        exceeded=wire(result.exceeded),
    )


@router.delete("/projects/{projectId}/images/tags", status_code=204)
def delete_image_tags(
    services: ServicesDep,
    project: ProjectDep,
    imageIds: str | None = None,
    tagIds: TagIdsQuery = None,
) -> Response:
    image_ids = parse_id_list(imageIds, "imageId", 64)
    tag_ids = parse_id_list(tagIds, "tagId", MAX_TAGS_PER_ENTRY)
    if not image_ids or not tag_ids:
        raise BadRequest("BadRequestInvalidIds", "Give imageIds and tagIds.")
    services.images.remove_tags(project.id, image_ids, tag_ids)
    return Response(status_code=204)


@router.post("/projects/{projectId}/images/metadata", response_model=ImageMetadataSummaryOut)
def update_image_metadata(
    services: ServicesDep,
    project: ProjectDep,
    metadata: Annotated[dict[str, str], Body()],
    imageIds: str | None = None,
) -> JSONResponse:
    ids = parse_id_list(imageIds, "imageId", MAX_IMAGE_IDS_PER_CALL)
    if not ids:
        raise BadRequest("BadRequestInvalidIds", "Give at least one image id in imageIds.")
    results = services.images.update_metadata(project.id, ids, metadata)
    summary = ImageMetadataSummaryOut(
        isBatchSuccessful=all(r.status == "OK" for r in results),
        images=[
            ImageMetadataEntryOut(imageId=r.image_id, status=r.status, metadata=r.metadata)
            for r in results
        ],
    )
    status = 200 if summary.isBatchSuccessful else 207
    return JSONResponse(summary.model_dump(mode="json"), status_code=status)
