"""The images table: each image's row, its index rows and the counters, in one partition.

Partition = project id. Rows:
  img|{imageId}                  the image (ids are time-ordered, so this is oldest first)
  new|{inverted ms}|{imageId}    every image, newest first
  tgd|{inverted ms}|{imageId}    tagged images, newest first
  unt|{inverted ms}|{imageId}    untagged images, newest first
  tag|{tagId}|{inverted ms}|{imageId}   images with that tag, newest first
  hash|{sha256}                  duplicate detection: which image has these bytes
  cnt|project|{shard}            image and tagged-image counts (summed over shards)
  cnt|tag|{tagId}|{shard}        image count of one tag (summed over shards)
Index rows carry a copy of the image, so a page is one range query. An image change is one
entity-group transaction (rows and counters together), conditional on the ETags of the image
row and of every counter it read: a writer that raced another reads again and re-applies its
edit, so no acknowledged change is lost and views and counts never drift apart. Counters are
split into shards chosen at random, so concurrent uploads rarely contend for one counter row.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from azure.data.tables import TableClient, UpdateMode

from functions.domain.models import Box, Image, ImageTagRef, Region, TaggingStatus
from functions.storage.tables import (
    MAX_TRANSACTION_CHARS,
    MAX_TRANSACTION_OPS,
    Entity,
    Operation,
    Stale,
    commit,
    delete_if_match,
    delete_partition,
    delete_rows,
    edit_row,
    get_entity,
    if_match,
    range_query,
    retrying,
)

log = logging.getLogger(__name__)
_MAX_US = 10**16
COUNTER_SHARDS = 16
_PROPERTY_CHARS = 30_000  # a string property holds 64 KiB of UTF-16


@dataclass(frozen=True)
class CreateManyResult:
    duplicates: dict[str, str]  # new image id -> id of the image already holding its bytes
    failed: set[str]  # image ids whose rows could not be stored


class _HashTaken(Exception):
    """A creation failed because the project already holds those bytes."""


@dataclass(frozen=True)
class Edit:
    """An image as read by the write that stored `after` (None: deleted)."""

    before: Image
    after: Image | None


@dataclass(frozen=True)
class Counts:
    images: int
    tagged: int

    @property
    def untagged(self) -> int:
        return self.images - self.tagged


def _inverted(created: datetime) -> str:
    micros = int(created.timestamp()) * 1_000_000 + created.microsecond
    return f"{_MAX_US - micros:016d}"


def _view_all() -> str:
    return "new|"


def _view_tagged() -> str:
    return "tgd|"


def _view_untagged() -> str:
    return "unt|"


def _view_tag(tag_id: str) -> str:
    return f"tag|{tag_id}|"


def _regions_properties(regions: list[Region]) -> Entity:
    """Regions as JSON, split over as many string properties as needed (a table property holds
    at most 32K characters; 300 regions take about 60K): Regions, Regions1, Regions2, ..."""
    if not regions:
        return {}
    text = json.dumps(
        [
            [r.id, r.tag_id, r.created.isoformat(), r.box.left, r.box.top, r.box.width,
             r.box.height]
            for r in regions
        ],
        separators=(",", ":"),
    )  # fmt: skip
    parts = [text[i : i + _PROPERTY_CHARS] for i in range(0, len(text), _PROPERTY_CHARS)]
    return {("Regions" + (str(n) if n else "")): part for n, part in enumerate(parts)}


def _regions_of(e: Entity) -> list[Region]:
    parts: list[str] = []
    while (part := e.get("Regions" + (str(len(parts)) if parts else ""))) is not None:
        parts.append(part)
    return [
        Region(rid, tid, datetime.fromisoformat(ts), Box(left, top, width, height))
        for rid, tid, ts, left, top, width, height in json.loads("".join(parts) or "[]")
    ]


def _payload(image: Image) -> Entity:
    return {
        "ImageId": image.id,
        "Created": image.created,
        "Width": image.width,
        "Height": image.height,
        "Sha256": image.sha256,
        "ContentType": image.content_type,
        "Tags": json.dumps([[t.tag_id, t.created.isoformat()] for t in image.tags]),
        "Metadata": json.dumps(image.metadata),
        **_regions_properties(image.regions),
    }


def _payload_chars(image: Image) -> int:
    return sum(len(str(v)) for v in _payload(image).values())


def image_from_entity(e: Entity) -> Image:
    return Image(
        id=e["ImageId"],
        created=e["Created"],
        width=int(e["Width"]),
        height=int(e["Height"]),
        sha256=e["Sha256"],
        content_type=e["ContentType"],
        tags=[ImageTagRef(tid, datetime.fromisoformat(ts)) for tid, ts in json.loads(e["Tags"])],
        metadata=json.loads(e["Metadata"]),
        regions=_regions_of(e),
    )


def _chunks_for_transactions(images: list[Image]) -> list[list[Image]]:
    """Group creations so that each group's rows and counters fit in one transaction."""
    chunks: list[list[Image]] = []
    current: list[Image] = []
    rows = 0
    tags: set[str] = set()
    chars = 0
    for image in images:
        image_rows = len(image_row_keys(image)) + 1  # + the hash row
        image_chars = image_rows * _payload_chars(image)
        new_tags = tags | set(image.tag_ids)
        if current and (
            rows + image_rows + 1 + len(new_tags) > MAX_TRANSACTION_OPS
            or chars + image_chars > MAX_TRANSACTION_CHARS
        ):
            chunks.append(current)
            current, rows, chars, new_tags = [], 0, 0, set(image.tag_ids)
        current.append(image)
        rows += image_rows
        chars += image_chars
        tags = new_tags
    if current:
        chunks.append(current)
    return chunks


def image_row_keys(image: Image) -> list[str]:
    """Every row key that holds a copy of this image."""
    inv = _inverted(image.created)
    keys = [f"img|{image.id}", f"{_view_all()}{inv}|{image.id}"]
    if image.tags:
        keys.append(f"{_view_tagged()}{inv}|{image.id}")
        keys.extend(f"{_view_tag(t.tag_id)}{inv}|{image.id}" for t in image.tags)
    else:
        keys.append(f"{_view_untagged()}{inv}|{image.id}")
    return keys


class ImageTable:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    # ------------------------------------------------------------ reads

    def get(self, project_id: str, image_id: str) -> Image | None:
        entity = get_entity(self.table, project_id, f"img|{image_id}")
        return image_from_entity(entity) if entity else None

    def find_by_hash(self, project_id: str, sha256: str) -> str | None:
        entity = get_entity(self.table, project_id, f"hash|{sha256}")
        return str(entity["ImageId"]) if entity else None

    def iter_images(
        self,
        project_id: str,
        status: TaggingStatus = TaggingStatus.ALL,
        oldest_first: bool = False,
        page_size: int = 1000,
    ) -> Iterator[Image]:
        """Images with that tagging status, newest first (or oldest first), fetched
        `page_size` at a time."""
        view = {
            TaggingStatus.ALL: _view_all(),
            TaggingStatus.TAGGED: _view_tagged(),
            TaggingStatus.UNTAGGED: _view_untagged(),
        }[status]
        return self._iter_view(project_id, view, oldest_first, page_size)

    def iter_tag(self, project_id: str, tag_id: str, page_size: int = 1000) -> Iterator[Image]:
        """Images carrying the tag, newest first (the order of `newest_first_key`)."""
        return self._iter_view(project_id, _view_tag(tag_id), False, page_size)

    @staticmethod
    def newest_first_key(image: Image) -> str:
        """Sorts images as the newest-first views list them."""
        return f"{_view_all()}{_inverted(image.created)}|{image.id}"

    def _iter_view(
        self, project_id: str, view: str, oldest_first: bool, page_size: int
    ) -> Iterator[Image]:
        page_size = max(1, min(page_size, 1000))
        if oldest_first and view == _view_all():
            rows: Iterator[Entity] = range_query(
                self.table, project_id, "img|", results_per_page=page_size
            )
            return (image_from_entity(e) for e in rows)
        rows = range_query(self.table, project_id, view, results_per_page=page_size)
        images = (image_from_entity(e) for e in rows)
        if oldest_first:
            return iter(list(images)[::-1])
        return images

    def ids(self, project_id: str) -> set[str]:
        """The ids of every image of the project."""
        rows = range_query(self.table, project_id, "img|", select=["RowKey"])
        return {e["RowKey"].removeprefix("img|") for e in rows}

    def counts(self, project_id: str) -> Counts:
        images = tagged = 0
        for e in range_query(self.table, project_id, "cnt|project|"):
            images += int(e["Images"])
            tagged += int(e["Tagged"])
        return Counts(images, tagged)

    def tag_counts(self, project_id: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for e in range_query(self.table, project_id, "cnt|tag|"):
            tag_id = e["RowKey"].split("|")[2]
            counts[tag_id] = counts.get(tag_id, 0) + int(e["Count"])
        return counts

    # ------------------------------------------------------------ writes

    def edit(
        self, project_id: str, image_id: str, change: Callable[[Image], Image | None]
    ) -> Edit | None:
        """Store `change(image)` (None deletes the image) with its index rows and counters in
        one transaction, conditional on the image row's ETag; when another writer changed the
        image first, read it again and re-apply `change`. None when the image does not exist.
        `change` may raise to refuse the edit; it must not have side effects."""

        def operations(before: Image, after: Image | None, etag: str) -> list[Operation]:
            return self._operations(project_id, [(before, after, etag)])

        key = f"img|{image_id}"
        edited = edit_row(self.table, project_id, key, image_from_entity, change, operations)
        return Edit(*edited) if edited else None

    def create_many(self, project_id: str, images: list[Image]) -> CreateManyResult:
        """Create new images in as few transactions as fit; duplicates are not stored."""
        result = CreateManyResult({}, set())
        for chunk in _chunks_for_transactions(images):
            pending = list(chunk)
            while pending:
                try:
                    self._create(project_id, pending)
                    break
                except _HashTaken:
                    # Someone stored some of these bytes meanwhile: set those aside, retry.
                    taken = {i.id: self.find_by_hash(project_id, i.sha256) for i in pending}
                    result.duplicates.update({k: v for k, v in taken.items() if v})
                    pending = [i for i in pending if not taken[i.id]]
                except Exception:
                    log.exception("storing %d image rows failed", len(pending))
                    result.failed.update(i.id for i in pending)
                    break
        return result

    def _create(self, project_id: str, images: list[Image]) -> None:
        def attempt() -> None:
            try:
                commit(self.table, self._operations(project_id, [(None, i, "") for i in images]))
            except Stale:
                if any(self.find_by_hash(project_id, i.sha256) for i in images):
                    raise _HashTaken() from None
                raise  # a counter moved under us: read it again

        retrying(attempt, "The image counters")

    def _operations(
        self, project_id: str, changes: list[tuple[Image | None, Image | None, str]]
    ) -> list[Operation]:
        """Counters first, then each image row (conditional on `etag`, the ETag its `before`
        was read with), then the index rows: if a change needs more than one transaction, the
        first one holds every condition."""
        conditional: list[Operation] = []
        rest: list[Operation] = []
        for before, after, etag in changes:
            old_keys = set(image_row_keys(before)) if before else set()
            new_keys = image_row_keys(after) if after else []
            image_key = f"img|{(after or before).id}"  # type: ignore[union-attr]
            if before is None and after is not None:
                hash_row = {"PartitionKey": project_id, "RowKey": f"hash|{after.sha256}"}
                conditional.append(("create", {**hash_row, "ImageId": after.id}))
                conditional.append(("create", self._row(project_id, image_key, after)))
            elif after is None and before is not None:
                conditional.append(
                    ("delete", {"PartitionKey": project_id, "RowKey": image_key},
                     delete_if_match(etag))
                )  # fmt: skip
                hash_row = {"PartitionKey": project_id, "RowKey": f"hash|{before.sha256}"}
                rest.append(("delete", hash_row))
            elif after is not None:
                conditional.append(
                    ("update", self._row(project_id, image_key, after), if_match(etag))
                )
            for key in sorted(old_keys - set(new_keys) - {image_key}):
                rest.append(("delete", {"PartitionKey": project_id, "RowKey": key}))
            if after is not None:
                for key in new_keys:
                    if key != image_key:
                        rest.append(
                            (
                                "upsert",
                                self._row(project_id, key, after),
                                {"mode": UpdateMode.REPLACE},
                            )
                        )
        return self._counter_operations(project_id, changes) + conditional + rest

    @staticmethod
    def _row(project_id: str, row_key: str, image: Image) -> Entity:
        return {"PartitionKey": project_id, "RowKey": row_key, **_payload(image)}

    def _counter_operations(
        self, project_id: str, changes: list[tuple[Image | None, Image | None, str]]
    ) -> list[Operation]:
        image_delta = tagged_delta = 0
        tag_deltas: dict[str, int] = {}
        for before, after, _ in changes:
            image_delta += (after is not None) - (before is not None)
            tagged_delta += bool(after and after.tags) - bool(before and before.tags)
            old_tags = set(before.tag_ids) if before else set()
            new_tags = set(after.tag_ids) if after else set()
            for tag_id in new_tags - old_tags:
                tag_deltas[tag_id] = tag_deltas.get(tag_id, 0) + 1
            for tag_id in old_tags - new_tags:
                tag_deltas[tag_id] = tag_deltas.get(tag_id, 0) - 1
        shard = random.randrange(COUNTER_SHARDS)
        ops: list[Operation] = []
        if image_delta or tagged_delta:
            deltas = {"Images": image_delta, "Tagged": tagged_delta}
            ops.append(self._bump(project_id, f"cnt|project|{shard:02d}", deltas))
        for tag_id, delta in sorted(tag_deltas.items()):
            if delta:
                row_key = f"cnt|tag|{tag_id}|{shard:02d}"
                ops.append(self._bump(project_id, row_key, {"Count": delta}))
        return ops

    def _bump(self, project_id: str, row_key: str, deltas: dict[str, int]) -> Operation:
        current = get_entity(self.table, project_id, row_key)
        if current is None:
            return ("create", {"PartitionKey": project_id, "RowKey": row_key, **deltas})
        updated = {
            "PartitionKey": project_id,
            "RowKey": row_key,
            **{k: int(current.get(k, 0)) + d for k, d in deltas.items()},
        }
        return ("update", updated, if_match(str(current["_etag"])))

    def with_id_prefix(self, project_id: str, prefix: str) -> list[Image]:
        """The images whose id starts with `prefix` (where a region's image is found)."""
        return [image_from_entity(e) for e in range_query(self.table, project_id, f"img|{prefix}")]

    def delete_tag_counter(self, project_id: str, tag_id: str) -> None:
        rows = range_query(self.table, project_id, f"cnt|tag|{tag_id}|", select=["RowKey"])
        delete_rows(self.table, project_id, [e["RowKey"] for e in rows])

    def delete_project(self, project_id: str) -> int:
        return delete_partition(self.table, project_id)
