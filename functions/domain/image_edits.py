"""Pure edits of an Image's tags and metadata, shared by the services."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from functions.domain.models import Image, ImageTagRef


def without_tags(image: Image, tag_ids: set[str]) -> Image:
    return replace(image, tags=[t for t in image.tags if t.tag_id not in tag_ids])


def with_tags(image: Image, tag_ids: list[str], now: datetime) -> Image:
    present = set(image.tag_ids)
    added = [ImageTagRef(t, now) for t in tag_ids if t not in present]
    return replace(image, tags=[*image.tags, *added])


def with_metadata(image: Image, metadata: dict[str, str]) -> Image:
    return replace(image, metadata={**image.metadata, **metadata})
