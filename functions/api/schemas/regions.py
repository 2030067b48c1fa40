"""Wire models of object detection's regions, exactly as Training API v3.3 names them."""

from __future__ import annotations

from datetime import datetime

from functions.api.schemas.wire import Wire
from functions.domain.ids import parse_id
from functions.domain.models import Box, Region
from functions.domain.regions import NewRegion, valid_box


class BoundingBoxOut(Wire):
    left: float
    top: float
    width: float
    height: float

    @classmethod
    def of(cls, box: Box) -> BoundingBoxOut:
        return cls(left=box.left, top=box.top, width=box.width, height=box.height)


class RegionIn(Wire):
    """`Region` on an upload entry, and the box of an `ImageRegionCreateEntry`."""

    tagId: str
    left: float
    top: float
    width: float
    height: float

    def new_region(self, tag_id: str) -> NewRegion:
        return NewRegion(tag_id, valid_box(self.left, self.top, self.width, self.height))


def new_regions(regions: list[RegionIn] | None) -> list[NewRegion]:
    """An entry's regions, each box checked (a bad one refuses the batch: nothing is stored)."""
    return [r.new_region(parse_id(r.tagId, "tagId")) for r in regions or []]


class ImageRegionOut(BoundingBoxOut):
    regionId: str
    tagName: str
    created: datetime
    tagId: str

    @classmethod
    def of_region(cls, region: Region, tag_name: str) -> ImageRegionOut:
        b = region.box
        return cls(
            regionId=region.id,
            tagName=tag_name,
            created=region.created,
            tagId=region.tag_id,
            left=b.left,
            top=b.top,
            width=b.width,
            height=b.height,
        )


class ImageRegionCreateEntry(RegionIn):
    imageId: str


class ImageRegionCreateBatch(Wire):
    regions: list[ImageRegionCreateEntry] | None = None


class ImageRegionCreateResultOut(ImageRegionOut):
    imageId: str


class ImageRegionCreateSummaryOut(Wire):
    created: list[ImageRegionCreateResultOut]
    duplicated: list[ImageRegionCreateEntry]
    exceeded: list[ImageRegionCreateEntry]


class RegionProposalOut(Wire):
    confidence: float
    boundingBox: BoundingBoxOut


class ImageRegionProposalOut(Wire):
    projectId: str
    imageId: str
    proposals: list[RegionProposalOut]
