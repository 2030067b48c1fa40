"""The training set of one detection job: the images with regions of the chosen tags, and
their boxes, read from storage."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from functions.domain.models import Tag, TaggingStatus
from functions.storage.clients import Storage
from trainer_job.ml.images import load_resized
from trainer_job.tasks.detection.data import LabelledImage

log = logging.getLogger(__name__)


@dataclass
class DetectionSet:
    tags: list[Tag]  # output order
    image_ids: list[str]
    photos: list[LabelledImage]  # boxes as fractions, tags as indices into `tags`
    skipped_unreadable: list[str] = field(default_factory=list)


def load_detection_set(
    storage: Storage, project_id: str, selected_tag_ids: list[str]
) -> DetectionSet:
    all_tags = sorted(storage.tags.list(project_id), key=lambda t: t.name.lower())
    tags = [t for t in all_tags if not selected_tag_ids or t.id in selected_tag_ids]
    column = {t.id: i for i, t in enumerate(tags)}
    wanted: list[tuple[str, np.ndarray, np.ndarray]] = []
    for image in storage.images.iter_images(project_id, TaggingStatus.TAGGED, oldest_first=True):
        regions = [r for r in image.regions if r.tag_id in column]
        if regions:
            boxes = np.asarray(
                [(r.box.left, r.box.top, r.box.width, r.box.height) for r in regions], np.float32
            )
            wanted.append((image.id, boxes, np.asarray([column[r.tag_id] for r in regions])))

    with ThreadPoolExecutor(max_workers=8) as pool:
        decoded = list(pool.map(lambda w: load_resized(storage, project_id, w[0]), wanted))
    unreadable = [w[0] for w, image in zip(wanted, decoded, strict=True) if image is None]
    if unreadable:
        log.warning("skipping %d unreadable images", len(unreadable))
    kept = [(w, image) for w, image in zip(wanted, decoded, strict=True) if image is not None]
    return DetectionSet(
        tags=tags,
        image_ids=[w[0] for w, _ in kept],
        photos=[LabelledImage(image, w[1], w[2]) for w, image in kept],
        skipped_unreadable=unreadable,
    )
