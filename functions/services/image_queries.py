"""Reading images: views by tag and tagging status, paging, counts and the metadata filter."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from functions.domain.errors import BadRequest
from functions.domain.limits import DEFAULT_TAKE, MAX_IMAGES_PER_PROJECT, MAX_TAKE
from functions.domain.metadata_filter import parse_metadata_filter
from functions.domain.models import Image, OrderBy, TaggingStatus
from functions.services import iteration_snapshots
from functions.services.iteration_snapshots import Snapshot, as_of
from functions.storage.clients import Storage
from functions.storage.image_index import ImageTable


@dataclass(frozen=True)
class ImageQuery:
    tag_ids: list[str] = field(default_factory=list)
    tagging_status: TaggingStatus = TaggingStatus.ALL
    metadata_filter: str | None = None
    order_by: OrderBy = OrderBy.NEWEST
    take: int = DEFAULT_TAKE
    skip: int = 0


def _dedupe(images: Iterable[Image]) -> Iterator[Image]:
    for _, group in itertools.groupby(images, key=lambda i: i.id):
        yield next(group)


def validate_paging(take: int, skip: int) -> None:
    if not 0 <= take <= MAX_TAKE:
        raise BadRequest("BadRequestInvalid", f"take must be between 0 and {MAX_TAKE}.")
    if not 0 <= skip <= MAX_IMAGES_PER_PROJECT:
        raise BadRequest(
            "BadRequestInvalid", f"skip must be between 0 and {MAX_IMAGES_PER_PROJECT}."
        )


class ImageQueries:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def _stream(self, project_id: str, query: ImageQuery) -> Iterator[Image]:
        images = self.storage.images
        oldest = query.order_by is OrderBy.OLDEST
        # Fetch just what a page needs, unless a filter or a merge may need more rows.
        needed = query.skip + query.take
        exact = not query.metadata_filter and len(query.tag_ids) <= 1 and needed > 0
        page_size = needed if exact else 1000
        if query.tag_ids:
            if query.tagging_status is TaggingStatus.UNTAGGED:
                return iter(())
            streams = [images.iter_tag(project_id, t, page_size=page_size) for t in query.tag_ids]
            if len(streams) == 1:
                merged: Iterator[Image] = streams[0]
            else:
                merged = _dedupe(heapq.merge(*streams, key=ImageTable.newest_first_key))
            return iter(list(merged)[::-1]) if oldest else merged
        return images.iter_images(
            project_id, query.tagging_status, oldest_first=oldest, page_size=page_size
        )

    def _as_of(self, project_id: str, query: ImageQuery, snapshot: Snapshot) -> Iterator[Image]:
        """The images an iteration was trained on, with the tags and regions they had then
        (all of them tagged then: untagged images were not trained on)."""
        if query.tagging_status is TaggingStatus.UNTAGGED:
            return iter(())
        oldest = query.order_by is OrderBy.OLDEST
        current = self.storage.images.iter_images(project_id, oldest_first=oldest)
        images = (as_of(i, snapshot) for i in current if i.id in snapshot.images)
        if not query.tag_ids:
            return images
        wanted = set(query.tag_ids)
        return (i for i in images if wanted.intersection(i.tag_ids))

    def _filtered(
        self, project_id: str, query: ImageQuery, snapshot: Snapshot | None = None
    ) -> Iterator[Image]:
        predicate = parse_metadata_filter(query.metadata_filter)
        if snapshot is None:
            stream = self._stream(project_id, query)
        else:
            stream = self._as_of(project_id, query, snapshot)
        if predicate is None:
            return stream
        return (i for i in stream if predicate(i.metadata))

    def snapshot(self, project_id: str, iteration_id: str | None) -> Snapshot | None:
        """What `iteration_id` was trained on (see iteration_snapshots.load)."""
        return iteration_snapshots.load(self.storage, project_id, iteration_id)

    def page(
        self, project_id: str, query: ImageQuery, snapshot: Snapshot | None = None
    ) -> list[Image]:
        validate_paging(query.take, query.skip)
        stream = self._filtered(project_id, query, snapshot)
        return list(itertools.islice(stream, query.skip, query.skip + query.take))

    def count(self, project_id: str, query: ImageQuery, snapshot: Snapshot | None = None) -> int:
        if snapshot is not None:
            return sum(1 for _ in self._filtered(project_id, query, snapshot))
        if query.metadata_filter is None or not query.metadata_filter.strip():
            counted = self._count_from_counters(project_id, query)
            if counted is not None:
                return counted
        return sum(1 for _ in self._filtered(project_id, query))

    def _count_from_counters(self, project_id: str, query: ImageQuery) -> int | None:
        images = self.storage.images
        if query.tag_ids:
            if query.tagging_status is TaggingStatus.UNTAGGED:
                return 0
            if len(query.tag_ids) == 1:
                return images.tag_counts(project_id).get(query.tag_ids[0], 0)
            return None  # a union of several tags: count the merged views
        counts = images.counts(project_id)
        return {
            TaggingStatus.ALL: counts.images,
            TaggingStatus.TAGGED: counts.tagged,
            TaggingStatus.UNTAGGED: counts.untagged,
        }[query.tagging_status]

    def by_ids(
        self, project_id: str, image_ids: list[str], snapshot: Snapshot | None = None
    ) -> list[Image]:
        found = [self.storage.images.get(project_id, i) for i in image_ids]
        images = [i for i in found if i is not None]
        if snapshot is None:
            return images
        return [as_of(i, snapshot) for i in images if i.id in snapshot.images]
