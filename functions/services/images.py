"""Writing images: upload batches (bytes or URLs), tags, metadata and deletion."""

from __future__ import annotations

import itertools
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import IO

from functions.domain.clock import utcnow
from functions.domain.errors import BadRequest, image_not_found, tag_not_found
from functions.domain.ids import new_region_id, new_time_ordered_id
from functions.domain.image_edits import with_metadata, with_regions, with_tags, without_tags
from functions.domain.limits import (
    MAX_IMAGE_IDS_PER_CALL,
    MAX_IMAGE_TAG_PAIRS,
    MAX_IMAGES_PER_BATCH,
    MAX_IMAGES_PER_PROJECT,
    MAX_METADATA_KEY_LENGTH,
    MAX_METADATA_PER_IMAGE,
    MAX_METADATA_VALUE_LENGTH,
    MAX_REGIONS_PER_IMAGE,
    MAX_TAGS_PER_ENTRY,
    MAX_TAGS_PER_IMAGE,
    MAX_TRAINING_IMAGE_BYTES,
)
from functions.domain.models import (
    Image,
    ImageCreateOutcome,
    ImageCreateStatus,
    ImageTagRef,
    Region,
    Tag,
    TagType,
)
from functions.domain.regions import NewRegion, regions_need_detection, same_region
from functions.imaging import ImageRejected, ProcessedImage, process_image
from functions.services.projects import detects_objects
from functions.services.url_fetch import UrlFetchError, UrlPolicy, fetch_all
from functions.storage.clients import Storage
from functions.storage.image_index import CreateManyResult

log = logging.getLogger(__name__)

# Decoding and resizing release the GIL, and blob uploads wait on the network. (URL downloads
# have threads of their own: see url_fetch.fetch_all.)
_WORKERS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="image-upload")


@dataclass(frozen=True)
class NewImage:
    """One entry of an upload batch: its bytes (or a file holding them, read when the entry is
    processed, so a batch is not held in memory whole), or why they could not be read."""

    data: bytes | IO[bytes] | None
    tag_ids: list[str] = field(default_factory=list)
    source_url: str | None = None
    source_error: str | None = None
    regions: list[NewRegion] = field(default_factory=list)  # object detection only


@dataclass(frozen=True)
class TagPairsResult:
    created: list[tuple[str, str]]
    duplicated: list[tuple[str, str]]
    exceeded: list[tuple[str, str]]


@dataclass(frozen=True)
class MetadataResult:
    image_id: str
    status: str  # ImageMetadataUpdateStatus: OK, ErrorImageNotFound, ErrorLimitExceed
    metadata: dict[str, str]


@dataclass(frozen=True)
class _Prepared:
    entry: NewImage
    outcome: ImageCreateOutcome | None = None  # set when the entry already failed
    processed: ProcessedImage | None = None
    image_id: str | None = None  # None for bytes the project already holds
    existing_id: str | None = None  # the image holding those bytes


@dataclass
class _Batch:
    """An upload batch being sorted: each entry's outcome so far, the new images by id (with
    their entry's index), and entries repeating bytes of an earlier entry (index -> its id)."""

    outcomes: list[ImageCreateOutcome | None]
    new: dict[str, tuple[int, Image]] = field(default_factory=dict)
    repeats: dict[int, str] = field(default_factory=dict)


def validate_metadata(metadata: dict[str, str]) -> None:
    for key, value in metadata.items():
        if not key or len(key) > MAX_METADATA_KEY_LENGTH:
            raise BadRequest(
                "BadRequestImageMetadataKey",
                f"Metadata keys are 1 to {MAX_METADATA_KEY_LENGTH} characters; got '{key[:40]}'.",
            )
        if not isinstance(value, str) or len(value) > MAX_METADATA_VALUE_LENGTH:
            raise BadRequest(
                "BadRequestImageMetadataValue",
                f"The value of metadata key '{key}' must be text of at most "
                f"{MAX_METADATA_VALUE_LENGTH} characters.",
            )


def _outcome(item: _Prepared, status: ImageCreateStatus, message: str) -> ImageCreateOutcome:
    return ImageCreateOutcome(status, source_url=item.entry.source_url, message=message)


def _new_image(item: _Prepared, metadata: dict[str, str], now: datetime) -> Image:
    assert item.processed is not None and item.image_id is not None
    processed = item.processed
    image = Image(
        id=item.image_id,
        created=now,
        width=processed.width,
        height=processed.height,
        sha256=processed.sha256,
        content_type=processed.content_type,
        tags=[ImageTagRef(t, now) for t in item.entry.tag_ids],
        metadata=dict(metadata),
    )
    if not item.entry.regions:
        return image
    regions = [Region(new_region_id(image.id), r.tag_id, now, r.box) for r in item.entry.regions]
    return with_regions(image, regions)


def _unique_regions(regions: list[NewRegion]) -> list[NewRegion]:
    """An entry's regions without repeats (the same tag and box twice is one region)."""
    unique: list[NewRegion] = []
    for region in regions:
        if not any(same_region(region.tag_id, region.box, u.tag_id, u.box) for u in unique):
            unique.append(region)
    return unique


def _tag_problem(tag_ids: list[str], tags: dict[str, Tag]) -> tuple[ImageCreateStatus, str] | None:
    """Why an entry's tags cannot be stored, if they cannot."""
    unknown = [t for t in tag_ids if t not in tags]
    if unknown:
        return ImageCreateStatus.ERROR_INVALID_TAG, f"Unknown tag id {unknown[0]}."
    if len(tag_ids) > MAX_TAGS_PER_ENTRY:
        return (
            ImageCreateStatus.ERROR_TAG_LIMIT_EXCEED,
            f"An image may be uploaded with at most {MAX_TAGS_PER_ENTRY} tags.",
        )
    types = {tags[t].type for t in tag_ids}
    if TagType.NEGATIVE in types and TagType.REGULAR in types:
        return (
            ImageCreateStatus.ERROR_NEGATIVE_AND_REGULAR_TAG_ON_SAME_IMAGE,
            "An image cannot carry the Negative tag and a regular tag.",
        )
    return None


def _region_problem(entry: NewImage, tags: dict[str, Tag]) -> tuple[ImageCreateStatus, str] | None:
    """Why an entry of an object-detection project cannot be stored, if it cannot."""
    if entry.tag_ids:
        return (
            ImageCreateStatus.ERROR_INVALID_TAG,
            "In an object-detection project an image's tags are those of its regions: send "
            "regions (a tag and a box each), not tagIds.",
        )
    for region in entry.regions:
        tag = tags.get(region.tag_id)
        if tag is None:
            return ImageCreateStatus.ERROR_INVALID_TAG, f"Unknown tag id {region.tag_id}."
        if tag.type is TagType.NEGATIVE:
            return ImageCreateStatus.ERROR_INVALID_TAG, "A region cannot carry a Negative tag."
    if len(entry.regions) > MAX_REGIONS_PER_IMAGE:
        return (
            ImageCreateStatus.ERROR_REGION_LIMIT_EXCEED,
            f"An image holds at most {MAX_REGIONS_PER_IMAGE} regions; got {len(entry.regions)}.",
        )
    return None


def _failed(entry: NewImage, status: ImageCreateStatus, message: str) -> _Prepared:
    outcome = ImageCreateOutcome(status, source_url=entry.source_url, message=message)
    return _Prepared(replace(entry, data=None), outcome=outcome)


def _read(file: IO[bytes]) -> bytes:
    """An entry's bytes from its file: one byte more than allowed is enough to refuse it."""
    return file.read(MAX_TRAINING_IMAGE_BYTES + 1)


def _check_tag_kinds(image: Image, wanted: list[str], tags: dict[str, Tag]) -> None:
    kinds = {tags[t].type for t in {*image.tag_ids, *wanted} if t in tags}
    if TagType.NEGATIVE in kinds and TagType.REGULAR in kinds:
        raise BadRequest(
            "BadRequestNegativeAndRegularTagOnSameImage",
            f"Image {image.id} cannot carry the Negative tag and a regular tag.",
        )


def drop_vanished_tags(storage: Storage, project_id: str, pairs: list[tuple[str, str]]) -> None:
    """Undo (image, tag) references written while their tag was being deleted.

    A tag's deletion removes the tag row first and then the tag (and its regions) from its
    images; a writer that read the tag before that and wrote after the sweep passed its image
    checks here, after its own write, so one of the two always removes the reference."""
    wanted = {tag_id for _, tag_id in pairs}
    if not wanted:
        return
    gone = wanted - {t.id for t in storage.tags.list(project_id)}
    for image_id in {i for i, t in pairs if t in gone}:
        storage.images.edit(project_id, image_id, lambda i: without_tags(i, gone))
    for tag_id in gone:
        storage.images.delete_tag_counter(project_id, tag_id)


class ImageService:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    # ------------------------------------------------------------ create

    def create(
        self,
        project_id: str,
        entries: list[NewImage],
        metadata: dict[str, str] | None = None,
    ) -> list[ImageCreateOutcome]:
        if not entries:
            raise BadRequest("BadRequestImageBatch", "The batch holds no images.")
        if len(entries) > MAX_IMAGES_PER_BATCH:
            raise BadRequest(
                "BadRequestImageBatch",
                f"A batch holds at most {MAX_IMAGES_PER_BATCH} images; got {len(entries)}.",
            )
        metadata = metadata or {}
        validate_metadata(metadata)
        detection = detects_objects(self.storage, project_id)
        if not detection and any(e.regions for e in entries):
            raise regions_need_detection()
        entries = [replace(e, regions=_unique_regions(e.regions)) for e in entries]
        tags = {t.id: t for t in self.storage.tags.list(project_id)}
        # Ids and times follow the batch order, so "Newest" lists the last entry first.
        ids = [new_time_ordered_id() for _ in entries]
        prepared = list(
            _WORKERS.map(
                lambda e, i: self._prepare(project_id, e, i, tags, metadata, detection),
                entries,
                ids,
            )
        )
        batch = self._sort(project_id, prepared, metadata)
        new_images = [image for _, image in batch.new.values()]
        result = self.storage.images.create_many(project_id, new_images)
        self._settle(project_id, prepared, batch, result)
        stored = [(i, t) for i, (_, image) in batch.new.items() if i not in result.failed
                  for t in image.tag_ids if i not in result.duplicates]  # fmt: skip
        drop_vanished_tags(self.storage, project_id, stored)
        return [o for o in batch.outcomes if o is not None]

    def _sort(self, project_id: str, prepared: list[_Prepared], metadata: dict[str, str]) -> _Batch:
        """Which prepared entries become new images, which repeat bytes already held (before
        or earlier in this batch) and which exceed the project's limit."""
        batch = _Batch(outcomes=[item.outcome for item in prepared])
        room = MAX_IMAGES_PER_PROJECT - self.storage.images.counts(project_id).images
        now = utcnow()
        first_of: dict[str, str] = {}  # sha256 -> the id of this batch's first entry with it
        for index, item in enumerate(prepared):
            if item.outcome is not None:
                continue
            if item.image_id is None:  # bytes the project already held before this batch
                batch.outcomes[index] = self._duplicate(project_id, item, item.existing_id)
            elif item.processed is not None and item.processed.sha256 in first_of:
                self._discard(project_id, item)
                batch.repeats[index] = first_of[item.processed.sha256]
            elif len(batch.new) >= room:
                self._discard(project_id, item)
                batch.outcomes[index] = _outcome(
                    item,
                    ImageCreateStatus.ERROR_LIMIT_EXCEED,
                    f"A project holds at most {MAX_IMAGES_PER_PROJECT} images.",
                )
            else:
                created = now + timedelta(microseconds=index)
                batch.new[item.image_id] = (index, _new_image(item, metadata, created))
                if item.processed is not None:
                    first_of[item.processed.sha256] = item.image_id
        return batch

    def _settle(
        self, project_id: str, prepared: list[_Prepared], batch: _Batch, result: CreateManyResult
    ) -> None:
        """Each entry's outcome once the new images' rows were written (or were not)."""
        for image_id, (index, image) in batch.new.items():
            item = prepared[index]
            if image_id in result.failed:
                self._discard(project_id, item)
                batch.outcomes[index] = _outcome(
                    item, ImageCreateStatus.ERROR_STORAGE, "Storing the image failed."
                )
            elif image_id in result.duplicates:
                self._discard(project_id, item)
                batch.outcomes[index] = self._duplicate(
                    project_id, item, result.duplicates[image_id]
                )
            else:
                batch.outcomes[index] = ImageCreateOutcome(
                    ImageCreateStatus.OK, source_url=item.entry.source_url, image=image
                )
        for index, first_id in batch.repeats.items():
            if first_id in result.failed:
                batch.outcomes[index] = batch.outcomes[batch.new[first_id][0]]
            else:
                existing = result.duplicates.get(first_id, first_id)
                batch.outcomes[index] = self._duplicate(project_id, prepared[index], existing)

    def create_from_urls(
        self,
        project_id: str,
        sources: list[NewImage],
        metadata: dict[str, str] | None,
        policy: UrlPolicy,
    ) -> list[ImageCreateOutcome]:
        """Entries whose `source_url` is fetched for their bytes."""
        if len(sources) > MAX_IMAGES_PER_BATCH or not sources:
            return self.create(project_id, sources, metadata)
        policy = replace(policy, max_bytes=MAX_TRAINING_IMAGE_BYTES)
        fetched = fetch_all([entry.source_url or "" for entry in sources], policy)
        entries = [
            replace(entry, source_error=str(result))
            if isinstance(result, UrlFetchError)
            else replace(entry, data=result)
            for entry, result in zip(sources, fetched, strict=True)
        ]
        return self.create(project_id, entries, metadata)

    def _prepare(
        self,
        project_id: str,
        entry: NewImage,
        image_id: str,
        tags: dict[str, Tag],
        metadata: dict[str, str],
        detection: bool = False,
    ) -> _Prepared:
        data = entry.data if isinstance(entry.data, bytes | None) else _read(entry.data)
        if data is None:
            return _failed(entry, ImageCreateStatus.ERROR_SOURCE, entry.source_error or "No data.")
        tag_ids = list(dict.fromkeys(entry.tag_ids))
        problem = _region_problem(entry, tags) if detection else _tag_problem(tag_ids, tags)
        if problem is not None:
            return _failed(entry, *problem)
        if len(metadata) > MAX_METADATA_PER_IMAGE:
            return _failed(
                entry,
                ImageCreateStatus.ERROR_LIMIT_EXCEED,
                f"An image holds at most {MAX_METADATA_PER_IMAGE} metadata entries.",
            )
        try:
            processed = process_image(data, MAX_TRAINING_IMAGE_BYTES)
        except ImageRejected as rejected:
            return _failed(entry, ImageCreateStatus(rejected.status), rejected.message)
        entry = replace(entry, tag_ids=tag_ids, data=None)  # the bytes go with this call
        existing_id = self.storage.images.find_by_hash(project_id, processed.sha256)
        if existing_id:
            return _Prepared(entry, processed=processed, existing_id=existing_id)
        try:
            blobs = self.storage.blobs
            blobs.put_image_variant(project_id, image_id, "original", data, processed.content_type)
            blobs.put_image_variant(
                project_id, image_id, "resized", processed.resized, "image/jpeg"
            )
            blobs.put_image_variant(
                project_id, image_id, "thumbnail", processed.thumbnail, "image/jpeg"
            )
        except Exception:
            log.exception("storing image blobs failed")
            self.storage.blobs.delete_image(project_id, image_id)
            return _failed(entry, ImageCreateStatus.ERROR_STORAGE, "Storing the image failed.")
        return _Prepared(entry, processed=processed, image_id=image_id)

    def _duplicate(
        self, project_id: str, item: _Prepared, existing_id: str | None
    ) -> ImageCreateOutcome:
        existing = self.storage.images.get(project_id, existing_id) if existing_id else None
        return ImageCreateOutcome(
            ImageCreateStatus.OK_DUPLICATE,
            source_url=item.entry.source_url,
            image=existing,
            message="The project already holds an image with identical bytes.",
        )

    def _discard(self, project_id: str, item: _Prepared) -> None:
        if item.image_id:
            self.storage.blobs.delete_image(project_id, item.image_id)

    # ------------------------------------------------------------ delete

    def delete(self, project_id: str, image_ids: list[str]) -> None:
        """Delete the rows first, under the image's ETag, and the bytes after: an image is
        either whole or gone (bytes left by a crash in between are swept as orphans)."""
        for image_id in image_ids:
            edit = self.storage.images.edit(project_id, image_id, lambda _: None)
            if edit is not None:
                self.storage.blobs.delete_image(project_id, image_id)

    def delete_all(self, project_id: str) -> None:
        while True:
            stream = self.storage.images.iter_images(project_id)
            page = [i.id for i in itertools.islice(stream, 256)]
            if not page:
                return
            self.delete(project_id, page)

    # ------------------------------------------------------------ tags

    def add_tags(self, project_id: str, pairs: list[tuple[str, str]]) -> TagPairsResult:
        if len(pairs) > MAX_IMAGE_TAG_PAIRS:
            raise BadRequest(
                "BadRequestExceededBatchSize",
                f"At most {MAX_IMAGE_TAG_PAIRS} image-tag pairs may be sent at once.",
            )
        if detects_objects(self.storage, project_id):
            raise BadRequest(
                "BadRequestImageTags",
                "In an object-detection project an image's tags are those of its regions: "
                "add regions (POST .../images/regions) instead of tags.",
            )
        tags = {t.id: t for t in self.storage.tags.list(project_id)}
        by_image: dict[str, list[str]] = {}
        for image_id, tag_id in pairs:
            if tag_id not in tags:
                raise tag_not_found(tag_id)
            by_image.setdefault(image_id, []).append(tag_id)
        for image_id, wanted in by_image.items():  # refuse the whole call before any write
            _check_tag_kinds(self._require(project_id, image_id), wanted, tags)
        created: list[tuple[str, str]] = []
        duplicated: list[tuple[str, str]] = []
        exceeded: list[tuple[str, str]] = []
        now = utcnow()
        for image_id, wanted in by_image.items():
            unique = list(dict.fromkeys(wanted))

            def add(image: Image, unique: list[str] = unique) -> Image:
                _check_tag_kinds(image, unique, tags)
                room = MAX_TAGS_PER_IMAGE - len(image.tags)
                fresh = [t for t in unique if t not in image.tag_ids][: max(room, 0)]
                return with_tags(image, fresh, now)

            edit = self.storage.images.edit(project_id, image_id, add)
            if edit is None or edit.after is None:
                raise image_not_found(image_id)
            had, has = set(edit.before.tag_ids), set(edit.after.tag_ids)
            for tag_id in unique:
                if tag_id in had:
                    duplicated.append((image_id, tag_id))
                elif tag_id in has:
                    created.append((image_id, tag_id))
                else:
                    exceeded.append((image_id, tag_id))
        drop_vanished_tags(self.storage, project_id, created)
        return TagPairsResult(created, duplicated, exceeded)

    def remove_tags(self, project_id: str, image_ids: list[str], tag_ids: list[str]) -> None:
        for image_id in image_ids:
            self.storage.images.edit(project_id, image_id, lambda i: without_tags(i, set(tag_ids)))

    # ------------------------------------------------------------ metadata

    def update_metadata(
        self, project_id: str, image_ids: list[str], metadata: dict[str, str]
    ) -> list[MetadataResult]:
        if len(image_ids) > MAX_IMAGE_IDS_PER_CALL:
            raise BadRequest(
                "BadRequestExceededBatchSize", f"At most {MAX_IMAGE_IDS_PER_CALL} image ids."
            )
        validate_metadata(metadata)

        def merge(image: Image) -> Image:
            updated = with_metadata(image, metadata)
            return image if len(updated.metadata) > MAX_METADATA_PER_IMAGE else updated

        results: list[MetadataResult] = []
        for image_id in image_ids:
            edit = self.storage.images.edit(project_id, image_id, merge)
            if edit is None or edit.after is None:
                results.append(MetadataResult(image_id, "ErrorImageNotFound", {}))
            elif len(with_metadata(edit.before, metadata).metadata) > MAX_METADATA_PER_IMAGE:
                results.append(MetadataResult(image_id, "ErrorLimitExceed", edit.before.metadata))
            else:
                results.append(MetadataResult(image_id, "OK", edit.after.metadata))
        return results

    def _require(self, project_id: str, image_id: str) -> Image:
        image = self.storage.images.get(project_id, image_id)
        if image is None:
            raise image_not_found(image_id)
        return image
