"""What an iteration was trained on: its tags and, for each tagged image, the tags and regions
it had. The trainer records it (`record`) as the iteration's `snapshot.json` when training
starts; queries with `iterationId` answer from it (`load`, `as_of`), as Custom Vision does.
Iterations trained before snapshots existed have none: their queries answer as of now."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from functions.domain import artifacts, names
from functions.domain.errors import NotFound
from functions.domain.ids import parse_id
from functions.domain.models import Box, Image, ImageTagRef, Region, Tag, TaggingStatus, TagType
from functions.storage.clients import Storage

SNAPSHOT = "snapshot.json"


@dataclass(frozen=True)
class Snapshot:
    tags: list[Tag]  # image_count: the iteration's images with the tag
    images: dict[str, tuple[list[str], list[Region]]]  # image id -> (tag ids, regions)

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "tags": [_tag_json(t) for t in self.tags],
                "images": {
                    image_id: [tag_ids, [_region_json(r) for r in regions]]
                    for image_id, (tag_ids, regions) in self.images.items()
                },
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Snapshot:
        raw = json.loads(data)
        tags = [
            Tag(t["id"], t["name"], t["description"], TagType(t["type"]), int(t["imageCount"]))
            for t in raw["tags"]
        ]
        images = {
            image_id: (list(tag_ids), [_region_of(r) for r in regions])
            for image_id, (tag_ids, regions) in raw["images"].items()
        }
        return cls(tags, images)


def _tag_json(tag: Tag) -> dict[str, Any]:
    return {
        "id": tag.id,
        "name": tag.name,
        "description": tag.description,
        "type": tag.type.value,
        "imageCount": tag.image_count,
    }


def _region_json(region: Region) -> list[Any]:
    box = region.box
    return [region.id, region.tag_id, region.created.isoformat(), box.left, box.top, box.width,
            box.height]  # fmt: skip


def _region_of(raw: list[Any]) -> Region:
    region_id, tag_id, created, left, top, width, height = raw
    return Region(region_id, tag_id, datetime.fromisoformat(created), Box(left, top, width, height))


def take(storage: Storage, project_id: str, selected_tag_ids: list[str]) -> Snapshot:
    """The project's tagged images and tags now (only `selected_tag_ids`' when given)."""
    tags = [
        t for t in storage.tags.list(project_id) if not selected_tag_ids or t.id in selected_tag_ids
    ]
    wanted = {t.id for t in tags}
    images: dict[str, tuple[list[str], list[Region]]] = {}
    counts = dict.fromkeys(wanted, 0)
    for image in storage.images.iter_images(project_id, TaggingStatus.TAGGED):
        tag_ids = [t for t in image.tag_ids if t in wanted]
        if not tag_ids:
            continue
        images[image.id] = (tag_ids, [r for r in image.regions if r.tag_id in wanted])
        for tag_id in tag_ids:
            counts[tag_id] += 1
    return Snapshot([replace(t, image_count=counts[t.id]) for t in tags], images)


def record(storage: Storage, project_id: str, iteration_id: str, selected: list[str]) -> None:
    storage.blobs.put(
        names.CONTAINER_MODELS,
        artifacts.artifact_path(project_id, iteration_id, SNAPSHOT),
        take(storage, project_id, selected).to_json(),
        "application/json",
    )


def load(storage: Storage, project_id: str, iteration_id: str | None) -> Snapshot | None:
    """The snapshot of `iteration_id` (None when not asked for, or when the iteration has
    none); NotFoundIteration for an iteration the project does not have."""
    if not iteration_id:
        return None
    iteration_id = parse_id(iteration_id, "iterationId")
    if storage.iterations.get(project_id, iteration_id) is None:
        raise NotFound("NotFoundIteration", f"Iteration '{iteration_id}' not found.")
    data = storage.blobs.get(
        names.CONTAINER_MODELS, artifacts.artifact_path(project_id, iteration_id, SNAPSHOT)
    )
    return Snapshot.from_json(data) if data else None


def as_of(image: Image, snapshot: Snapshot) -> Image:
    """The image with the tags and regions it had in the snapshot."""
    tag_ids, regions = snapshot.images[image.id]
    created = {t.tag_id: t.created for t in image.tags}
    tags = [ImageTagRef(t, created.get(t, image.created)) for t in tag_ids]
    return replace(image, tags=tags, regions=regions)
