"""Object-detection regions: add boxes to stored images, delete them, propose them.

Each image edit is conditional on the image row's ETag and re-applied when another writer got
there first (ImageTable.edit), so racing clients never lose a region. A region id begins with
its image's id (ids.new_region_id), so deleting a region needs no index.
"""

from __future__ import annotations

import io
from dataclasses import astuple, dataclass
from functools import partial

import numpy as np
from PIL import Image as PILImage

from functions.domain import names
from functions.domain.clock import utcnow
from functions.domain.detection_metrics import box_iou
from functions.domain.errors import BadRequest, image_not_found, tag_not_found
from functions.domain.ids import new_region_id, region_image_prefix
from functions.domain.image_edits import with_regions, without_regions
from functions.domain.limits import MAX_REGIONS_PER_CALL, MAX_REGIONS_PER_IMAGE
from functions.domain.models import Box, Image, Region, TagType
from functions.domain.regions import NewRegion, bad_regions, regions_need_detection, same_region
from functions.region_proposals import propose_regions
from functions.services.images import drop_vanished_tags
from functions.services.iterations import latest_completed
from functions.services.projects import detects_objects
from functions.services.suggestions import SuggestionService
from functions.storage.clients import Storage

PROPOSALS = 20  # boxes answered by GET region proposals, best first


@dataclass(frozen=True)
class RegionRequest:
    """One entry of an ImageRegionCreateBatch."""

    image_id: str
    region: NewRegion


@dataclass(frozen=True)
class RegionSummary:
    created: list[tuple[str, Region]]  # (image id, the stored region)
    duplicated: list[RegionRequest]
    exceeded: list[RegionRequest]


@dataclass(frozen=True)
class Proposal:
    confidence: float
    box: Box


def distinct(proposals: list[Proposal], count: int) -> list[Proposal]:
    """The first `count` proposals, in order, skipping any that overlaps an earlier kept one
    at IoU over 0.5 (another tag's box on the same object, or a generic box on a learned one)."""
    kept: list[Proposal] = []
    for proposal in proposals:
        others = np.array([astuple(k.box) for k in kept])
        if not kept or box_iou(np.array(astuple(proposal.box)), others).max() <= 0.5:
            kept.append(proposal)
        if len(kept) == count:
            break
    return kept


def _batch_size(count: int, what: str) -> None:
    if count == 0:
        raise bad_regions(f"The request names no {what}.")
    if count > MAX_REGIONS_PER_CALL:
        raise BadRequest(
            "BadRequestExceededBatchSize",
            f"At most {MAX_REGIONS_PER_CALL} {what} may be sent at once; got {count}.",
        )


class RegionService:
    def __init__(self, storage: Storage, suggestions: SuggestionService) -> None:
        self.storage = storage
        self.suggestions = suggestions

    def _require_detection(self, project_id: str) -> None:
        if not detects_objects(self.storage, project_id):
            raise regions_need_detection()

    def create(self, project_id: str, requests: list[RegionRequest]) -> RegionSummary:
        """Add the regions, refusing the whole call before any write when one is invalid."""
        _batch_size(len(requests), "regions")
        self._require_detection(project_id)
        tags = {t.id: t for t in self.storage.tags.list(project_id)}
        for request in requests:
            tag = tags.get(request.region.tag_id)
            if tag is None:
                raise tag_not_found(request.region.tag_id)
            if tag.type is TagType.NEGATIVE:
                raise bad_regions("A region cannot carry a Negative tag.")
        by_image: dict[str, list[tuple[str, RegionRequest]]] = {}
        for request in requests:
            rid = new_region_id(request.image_id)
            by_image.setdefault(request.image_id, []).append((rid, request))
        for image_id in by_image:
            if self.storage.images.get(project_id, image_id) is None:
                raise image_not_found(image_id)
        summary = RegionSummary([], [], [])
        for image_id, new in by_image.items():
            self._add(project_id, image_id, new, summary)
        drop_vanished_tags(self.storage, project_id, [(i, r.tag_id) for i, r in summary.created])
        return summary

    def _add(
        self,
        project_id: str,
        image_id: str,
        new: list[tuple[str, RegionRequest]],
        summary: RegionSummary,
    ) -> None:
        now = utcnow()

        def add(image: Image) -> Image:
            regions = list(image.regions)
            for rid, request in new:
                r = request.region
                if len(regions) >= MAX_REGIONS_PER_IMAGE:
                    break
                if not any(same_region(x.tag_id, x.box, r.tag_id, r.box) for x in regions):
                    regions.append(Region(rid, r.tag_id, now, r.box))
            return with_regions(image, regions)

        edit = self.storage.images.edit(project_id, image_id, add)
        if edit is None or edit.after is None:
            raise image_not_found(image_id)
        stored = {r.id: r for r in edit.after.regions}
        for rid, request in new:
            if rid in stored:
                summary.created.append((image_id, stored[rid]))
            elif any(
                same_region(x.tag_id, x.box, request.region.tag_id, request.region.box)
                for x in edit.after.regions
            ):
                summary.duplicated.append(request)
            else:
                summary.exceeded.append(request)

    def delete(self, project_id: str, region_ids: list[str]) -> None:
        """Delete the regions (ids that name no region are ignored, so a repeat is harmless)."""
        _batch_size(len(region_ids), "region ids")
        wanted = set(region_ids)
        by_image: dict[str, set[str]] = {}
        for prefix in sorted({region_image_prefix(r) for r in wanted}):
            for image in self.storage.images.with_id_prefix(project_id, prefix):
                held = wanted & {r.id for r in image.regions}
                if held:
                    by_image[image.id] = held
        for image_id, ids in by_image.items():
            self.storage.images.edit(project_id, image_id, partial(without_regions, region_ids=ids))

    def proposals(self, project_id: str, image_id: str) -> list[Proposal]:
        """Class-agnostic boxes for an image, best first: the latest detector's boxes when the
        project has one, then a generic method's (no model) where they add a new place."""
        self._require_detection(project_id)
        if self.storage.images.get(project_id, image_id) is None:
            raise image_not_found(image_id)
        path = names.image_blob_path(project_id, image_id, "resized")
        data = self.storage.blobs.get(names.CONTAINER_IMAGES, path)
        if data is None:
            raise image_not_found(image_id)
        with PILImage.open(io.BytesIO(data)) as picture:
            generic = [
                Proposal(p.confidence, Box(p.left, p.top, p.width, p.height))
                for p in propose_regions(picture, PROPOSALS)
            ]
        return distinct(self._learned_proposals(project_id, image_id) + generic, PROPOSALS)

    def _learned_proposals(self, project_id: str, image_id: str) -> list[Proposal]:
        """The latest detector's boxes for the image: its suggested regions (the smart
        labeler's, scored once per iteration and kept)."""
        latest = latest_completed(self.storage, project_id)
        if latest is None:
            return []
        return [
            Proposal(s.probability, s.box)
            for suggestion in self.suggestions.suggest(project_id, latest.id, [image_id])
            for s in suggestion.scores
            if s.box and s.probability >= 0.05
        ]
