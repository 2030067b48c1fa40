"""Pure edits of an Image's tags, regions and metadata, shared by the services.

In an object-detection project an image's tags are the tags of its regions: every region edit
goes through `with_regions`, which derives them, so the tagged and per-tag views and counts of
the images table follow the regions with no code of their own.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from functions.domain.models import Image, ImageTagRef, Region


def without_tags(image: Image, tag_ids: set[str]) -> Image:
    """The image without those tags, and without the regions of those tags."""
    kept = [r for r in image.regions if r.tag_id not in tag_ids]
    return replace(image, tags=[t for t in image.tags if t.tag_id not in tag_ids], regions=kept)


def with_tags(image: Image, tag_ids: list[str], now: datetime) -> Image:
    present = set(image.tag_ids)
    added = [ImageTagRef(t, now) for t in tag_ids if t not in present]
    return replace(image, tags=[*image.tags, *added])


def with_regions(image: Image, regions: list[Region]) -> Image:
    """The image holding exactly these regions, tagged with their tags (each tag dated by its
    oldest region)."""
    first: dict[str, datetime] = {}
    for region in regions:
        if region.tag_id not in first or region.created < first[region.tag_id]:
            first[region.tag_id] = region.created
    tags = [ImageTagRef(tag_id, created) for tag_id, created in first.items()]
    return replace(image, regions=list(regions), tags=tags)


def without_regions(image: Image, region_ids: set[str]) -> Image:
    return with_regions(image, [r for r in image.regions if r.id not in region_ids])


def with_metadata(image: Image, metadata: dict[str, str]) -> Image:
    return replace(image, metadata={**image.metadata, **metadata})
