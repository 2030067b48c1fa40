"""Object detection's regions: create, delete, and region proposals."""

from __future__ import annotations

from fastapi import APIRouter, Response

from functions.api.deps import ProjectDep, ServicesDep
from functions.api.schemas.regions import (
    BoundingBoxOut,
    ImageRegionCreateBatch,
    ImageRegionCreateEntry,
    ImageRegionCreateResultOut,
    ImageRegionCreateSummaryOut,
    ImageRegionOut,
    ImageRegionProposalOut,
    RegionProposalOut,
)
from functions.domain.ids import parse_id, parse_id_list
from functions.domain.limits import MAX_REGIONS_PER_CALL
from functions.services.regions import RegionRequest

router = APIRouter(tags=["regions"])


def _entry(request: RegionRequest) -> ImageRegionCreateEntry:
    box = request.region.box
    return ImageRegionCreateEntry(
        imageId=request.image_id,
        tagId=request.region.tag_id,
        left=box.left,
        top=box.top,
        width=box.width,
        height=box.height,
    )


@router.post("/projects/{projectId}/images/regions", response_model=ImageRegionCreateSummaryOut)
def create_image_regions(
    services: ServicesDep, project: ProjectDep, body: ImageRegionCreateBatch
) -> ImageRegionCreateSummaryOut:
    requests = [
        RegionRequest(parse_id(e.imageId, "imageId"), e.new_region(parse_id(e.tagId, "tagId")))
        for e in body.regions or []
    ]
    summary = services.regions.create(project.id, requests)
    names = {t.id: t.name for t in services.storage.tags.list(project.id)}
    created = [
        ImageRegionCreateResultOut(
            imageId=image_id,
            **ImageRegionOut.of_region(region, names.get(region.tag_id, "")).model_dump(),
        )
        for image_id, region in summary.created
    ]
    return ImageRegionCreateSummaryOut(
        created=created,
        duplicated=[_entry(r) for r in summary.duplicated],
        exceeded=[_entry(r) for r in summary.exceeded],
    )


@router.delete("/projects/{projectId}/images/regions", status_code=204)
def delete_image_regions(
    services: ServicesDep, project: ProjectDep, regionIds: str | None = None
) -> Response:
    ids = parse_id_list(regionIds, "regionId", MAX_REGIONS_PER_CALL)
    services.regions.delete(project.id, ids)
    return Response(status_code=204)


@router.post(
    "/projects/{projectId}/images/{imageId}/regionproposals",
    response_model=ImageRegionProposalOut,
)
def get_image_region_proposals(
    services: ServicesDep, project: ProjectDep, imageId: str
) -> ImageRegionProposalOut:
    image_id = parse_id(imageId, "imageId")
    proposals = services.regions.proposals(project.id, image_id)
    return ImageRegionProposalOut(
        projectId=project.id,
        imageId=image_id,
        proposals=[
            RegionProposalOut(confidence=p.confidence, boundingBox=BoundingBoxOut.of(p.box))
            for p in proposals
        ],
    )
