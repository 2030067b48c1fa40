"""The project-import job's work: copy an exported project into the new one that
`ProjectTransfer.start_import` made (its settings and tags, under the same tag ids, are there
already). Images keep their ids, times, tags, regions and metadata, and their stored variants
are copied as they are (nothing is decoded again); the trained iterations keep their ids and
settings, and their artifacts and the feature cache are copied, so the copy's models,
metrics, per-image performance and `iterationId` queries answer as the original's do. The
copy is not published: publishing is tied to a prediction resource.

Safe to run again after a crash: an image's blobs are written before its rows, so a row never
lacks its bytes; images and iterations copied already are skipped."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from functions.domain import artifacts, names
from functions.domain.batches import chunked
from functions.domain.image_edits import with_regions
from functions.domain.jobs import TrainingJob
from functions.domain.models import Image, IterationStatus
from functions.services.project_transfer import IMPORTING, SUCCEEDED, set_status
from functions.storage.clients import Storage

BATCH = 64
_WORKERS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="project-copy")


@dataclass(frozen=True)
class Copied:
    images: int
    iterations: int


class CopyIncomplete(Exception):
    """Some image rows could not be stored: the job is delivered again."""


def copy_project(storage: Storage, job: TrainingJob) -> Copied:
    """Copy what the new project lacks, then mark it Succeeded (nothing when it was deleted
    meanwhile or an earlier delivery finished)."""
    target = storage.projects.get(job.project_id)
    if target is None or target.status != IMPORTING:
        return Copied(0, 0)
    images = _copy_images(storage, job.source_project_id, job.project_id)
    iterations = _copy_iterations(storage, job.source_project_id, job.project_id)
    set_status(storage, job.project_id, SUCCEEDED)
    return Copied(images, iterations)


def _copy_images(storage: Storage, source: str, target: str) -> int:
    tag_ids = {t.id for t in storage.tags.list(target)}
    copied = 0
    for batch in chunked(storage.images.iter_images(source, oldest_first=True), BATCH):
        kept = [i for i in _WORKERS.map(lambda i: _copy_blobs(storage, source, target, i), batch)
                if i is not None]  # fmt: skip
        if not kept:
            continue
        result = storage.images.create_many(target, [_labelled(i, tag_ids) for i in kept])
        if result.failed:
            raise CopyIncomplete(f"{len(result.failed)} image rows could not be stored")
        copied += len(kept) - len(result.duplicates)
    return copied


def _copy_blobs(storage: Storage, source: str, target: str, image: Image) -> Image | None:
    """The image, once its variants are stored in the target; None when the source lost its
    bytes meanwhile (deleted during the copy)."""
    for variant in names.IMAGE_VARIANTS:  # the original first
        copied = storage.blobs.copy(
            names.CONTAINER_IMAGES,
            names.image_blob_path(source, image.id, variant),
            names.image_blob_path(target, image.id, variant),
        )
        if variant == "original" and not copied:
            return None
    return image


def _copy_prefix(storage: Storage, container: str, source: str, target: str) -> None:
    found = list(storage.blobs.list_names(container, source))
    copies = [(name, target + name.removeprefix(source)) for name in found]
    list(_WORKERS.map(lambda pair: storage.blobs.copy(container, *pair), copies))


def _labelled(image: Image, tag_ids: set[str]) -> Image:
    """The image with only the tags the target has (a source tag deleted since the export
    is not there)."""
    if image.regions:
        return with_regions(image, [r for r in image.regions if r.tag_id in tag_ids])
    return replace(image, tags=[t for t in image.tags if t.tag_id in tag_ids])


def _copy_iterations(storage: Storage, source: str, target: str) -> int:
    """Finished iterations, each row written after its artifacts; then the feature cache."""
    have = {it.id for it in storage.iterations.list(target)}
    copied = 0
    for iteration in storage.iterations.list(source):
        if iteration.status is IterationStatus.TRAINING or iteration.id in have:
            continue
        if iteration.status is IterationStatus.COMPLETED:
            _copy_prefix(
                storage,
                names.CONTAINER_MODELS,
                artifacts.iteration_prefix(source, iteration.id),
                artifacts.iteration_prefix(target, iteration.id),
            )
        unpublished = replace(iteration, publish_name=None, original_publish_resource_id=None)
        copied += storage.iterations.insert_if_absent(target, unpublished)
    _copy_prefix(storage, names.CONTAINER_MODELS, f"{source}/features/", f"{target}/features/")
    return copied
