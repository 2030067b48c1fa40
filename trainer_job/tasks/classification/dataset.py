"""The training set of one job: which images, with which labels, read from storage."""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from PIL import Image as PILImage

from functions.domain.models import ClassificationType, Tag, TaggingStatus
from functions.storage.clients import Storage
from trainer_job.ml.images import load_resized

log = logging.getLogger(__name__)


@dataclass
class TrainingSet:
    tags: list[Tag]  # output order
    image_ids: list[str]
    images: list[PILImage.Image]
    labels: np.ndarray  # (N, T) 0/1
    skipped_unreadable: list[str] = field(default_factory=list)
    skipped_ambiguous: list[str] = field(default_factory=list)  # several tags, multiclass


def split_seed(image_ids: list[str]) -> int:
    """A seed that only the set of images decides (not their order, not the iteration)."""
    digest = hashlib.sha256("\n".join(sorted(image_ids)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def load_training_set(
    storage: Storage,
    project_id: str,
    classification: ClassificationType,
    selected_tag_ids: list[str],
) -> TrainingSet:
    all_tags = sorted(storage.tags.list(project_id), key=lambda t: t.name.lower())
    tags = [t for t in all_tags if not selected_tag_ids or t.id in selected_tag_ids]
    column = {t.id: i for i, t in enumerate(tags)}
    image_ids: list[str] = []
    rows: list[list[int]] = []
    ambiguous: list[str] = []
    for image in storage.images.iter_images(project_id, TaggingStatus.TAGGED, oldest_first=True):
        columns = sorted({column[t] for t in image.tag_ids if t in column})
        if not columns:
            continue
        if classification is ClassificationType.MULTICLASS and len(columns) > 1:
            ambiguous.append(image.id)
            continue
        image_ids.append(image.id)
        rows.append(columns)

    with ThreadPoolExecutor(max_workers=8) as pool:
        decoded = list(pool.map(lambda i: load_resized(storage, project_id, i), image_ids))
    keep = [i for i, image in enumerate(decoded) if image is not None]
    unreadable = [image_ids[i] for i, image in enumerate(decoded) if image is None]
    if unreadable:
        log.warning("skipping %d unreadable images", len(unreadable))
    labels = np.zeros((len(keep), len(tags)), dtype=np.float32)
    for out_row, in_row in enumerate(keep):
        labels[out_row, rows[in_row]] = 1.0
    return TrainingSet(
        tags=tags,
        image_ids=[image_ids[i] for i in keep],
        images=[image for image in decoded if image is not None],
        labels=labels,
        skipped_unreadable=unreadable,
        skipped_ambiguous=ambiguous,
    )
