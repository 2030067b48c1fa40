"""Dataset jobs (queued by `functions/services/datasets.py`): write a project's labelled images
into an archive of the job's format, or import an uploaded archive into the project.

Progress is recorded every PROGRESS_EVERY images, under the job row's ETag; a job deleted
meanwhile stops there. An import that is delivered again (its worker died) resumes after the
last recorded batch: what it added after that record comes back as duplicates.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from functions.dataset_formats import ArchivedImage, DatasetArchive, LabelledImage, read, write
from functions.domain import names
from functions.domain.batches import by_metadata
from functions.domain.clock import utcnow
from functions.domain.dataset_jobs import (
    EXPORT,
    PROGRESS_EVERY,
    REPORT_FILE,
    UPLOAD_FILE,
    DatasetJob,
    DatasetJobStatus,
    job_blob_path,
)
from functions.domain.detection_metrics import LabelledBox
from functions.domain.errors import DomainError
from functions.domain.jobs import TrainingJob
from functions.domain.models import Box, Image, ImageCreateStatus
from functions.domain.regions import NewRegion
from functions.services.datasets import read_report
from functions.services.images import ImageService, NewImage
from functions.services.tags import TagService
from functions.storage.clients import Storage

log = logging.getLogger(__name__)
SUFFIXES = {"image/png": ".png", "image/bmp": ".bmp", "image/gif": ".gif", "image/webp": ".webp"}


class JobGone(Exception):
    """The job's record was deleted while it ran."""


def _edit(
    storage: Storage, job: DatasetJob, change: Callable[[DatasetJob], DatasetJob]
) -> DatasetJob:
    def stamped(current: DatasetJob) -> DatasetJob:
        return replace(change(current), last_modified=utcnow())

    edited = storage.dataset_jobs.edit(job.project_id, job.id, stamped)
    if edited is None:
        raise JobGone(job.id)
    return edited


def run_dataset_job(storage: Storage, message: TrainingJob, attempt: int = 1) -> None:
    job = storage.dataset_jobs.get(message.project_id, message.iteration_id)
    if job is None or job.finished or storage.projects.get(job.project_id) is None:
        return  # deleted meanwhile, or a repeated delivery of a finished job
    log.info("dataset %s %s of %s (delivery %d)", job.operation, job.format, job.id, attempt)
    try:
        if job.operation == EXPORT:
            _export(storage, job)
        else:
            _import(storage, job)
    except JobGone:
        log.info("dataset job %s was deleted while it ran", job.id)


def record_dataset_failure(
    storage: Storage, message: TrainingJob, reason: str, final: bool
) -> None:
    """When `final`, the job is Failed with the reason; earlier attempts are retried."""
    job = storage.dataset_jobs.get(message.project_id, message.iteration_id)
    if job is None or job.finished or not final:
        return
    failed = DatasetJobStatus.FAILED
    storage.dataset_jobs.edit(
        job.project_id,
        job.id,
        lambda j: replace(j, status=failed, error=reason, last_modified=utcnow()),
    )
    storage.blobs.delete(names.CONTAINER_EXPORTS, job_blob_path(job, UPLOAD_FILE))


# ---------------------------------------------------------------- export


def _export(storage: Storage, job: DatasetJob) -> None:
    tag_names = {t.id: t.name for t in storage.tags.list(job.project_id)}
    images = list(storage.images.iter_images(job.project_id, oldest_first=True))
    job = _edit(
        storage,
        job,
        lambda j: replace(j, status=DatasetJobStatus.RUNNING, total=len(images), processed=0),
    )
    with tempfile.TemporaryFile() as out:
        write(out, list(tag_names.values()), _labelled(storage, job, images, tag_names), job.format)
        size = out.tell()
        out.seek(0)
        path = job_blob_path(job, job.file_name)
        storage.blobs.put(names.CONTAINER_EXPORTS, path, out, "application/zip")
    done = DatasetJobStatus.DONE
    _edit(storage, job, lambda j: replace(j, status=done, processed=len(images), size_bytes=size))
    log.info("dataset export %s: %d images, %d bytes", job.id, len(images), size)


def _labelled(
    storage: Storage, job: DatasetJob, images: list[Image], tag_names: dict[str, str]
) -> Iterator[LabelledImage]:
    """The project's images with their labels, as the archive holds them: original bytes under
    the image's id; progress recorded as they go."""
    for n, image in enumerate(images, start=1):
        path = names.image_blob_path(job.project_id, image.id, "original")
        data = storage.blobs.get(names.CONTAINER_IMAGES, path)
        if data is not None:  # an image deleted while the export runs is left out
            regions = [
                LabelledBox(tag_names[r.tag_id], r.box.left, r.box.top, r.box.width, r.box.height)
                for r in image.regions
                if r.tag_id in tag_names
            ]
            tags = [] if image.regions else [tag_names[t] for t in image.tag_ids if t in tag_names]
            name = image.id + SUFFIXES.get(image.content_type, ".jpg")
            yield LabelledImage(name, data, tags, regions, dict(image.metadata))
        if n % PROGRESS_EVERY == 0:
            _edit(storage, job, _processed(n))


def _processed(count: int) -> Callable[[DatasetJob], DatasetJob]:
    return lambda job: replace(job, processed=count)


# ---------------------------------------------------------------- import


def _import(storage: Storage, job: DatasetJob) -> None:
    upload_path = job_blob_path(job, UPLOAD_FILE)
    with tempfile.TemporaryFile() as upload:
        if not storage.blobs.download_to(names.CONTAINER_EXPORTS, upload_path, upload):
            raise FileNotFoundError("the uploaded archive is gone")
        upload.seek(0)
        with read(upload, job.format) as archive:
            _import_archive(storage, job, archive)
    storage.blobs.delete(names.CONTAINER_EXPORTS, upload_path)


def _import_archive(storage: Storage, job: DatasetJob, archive: DatasetArchive) -> None:
    tags, created = TagService(storage).ensure(job.project_id, archive.tags)
    resumed = job.status is DatasetJobStatus.RUNNING
    report = read_report(storage, job) if resumed else {"duplicates": [], "failures": []}

    def start(current: DatasetJob) -> DatasetJob:
        if not resumed:
            current = replace(current, processed=0, imported=0, duplicates=0, failed=0)
        made = sorted({*current.tags_created, *created}) if resumed else created
        running = DatasetJobStatus.RUNNING
        return replace(current, status=running, total=len(archive.entries), tags_created=made)

    job = _edit(storage, job, start)
    service = ImageService(storage)
    done = 0
    for metadata, batch in by_metadata(archive.entries, lambda entry: entry.metadata):
        if done + len(batch) <= job.processed:  # recorded by an earlier delivery
            done += len(batch)
            continue
        imported, duplicates, failures = _import_batch(service, archive, job, batch, metadata, tags)
        done += len(batch)
        report["duplicates"] += duplicates
        report["failures"] += failures
        _save_report(storage, job, report)
        job = _edit(storage, job, _counted(done, imported, len(duplicates), len(failures)))
    _edit(storage, job, lambda j: replace(j, status=DatasetJobStatus.DONE))
    log.info(
        "dataset import %s: %d images, %d duplicates, %d failed",
        *(job.id, job.imported, job.duplicates, job.failed),
    )


def _counted(
    processed: int, imported: int, duplicates: int, failed: int
) -> Callable[[DatasetJob], DatasetJob]:
    return lambda job: replace(
        job,
        processed=processed,
        imported=job.imported + imported,
        duplicates=job.duplicates + duplicates,
        failed=job.failed + failed,
    )


def _import_batch(
    service: ImageService,
    archive: DatasetArchive,
    job: DatasetJob,
    batch: list[ArchivedImage],
    metadata: dict[str, str],
    tags: dict[str, Any],
) -> tuple[int, list[str], list[dict[str, str]]]:
    """One upload batch: (images added, names of duplicates, failures as {name, message})."""
    failures: list[dict[str, str]] = []
    entries: list[tuple[str, NewImage]] = []
    for entry in batch:
        try:
            image = archive.load(entry)
        except DomainError as error:
            failures.append({"name": entry.name, "message": error.message})
            continue
        regions = [
            NewRegion(tags[r.tag.lower()].id, Box(r.left, r.top, r.width, r.height))
            for r in image.regions
        ]
        tag_ids = [tags[t.lower()].id for t in image.tags]
        entries.append((entry.name, NewImage(image.data, tag_ids, regions=regions)))
    if not entries:
        return 0, [], failures
    try:
        outcomes = service.create(job.project_id, [e for _, e in entries], metadata)
    except DomainError as error:  # the whole batch refused (its metadata, say)
        return 0, [], failures + [{"name": n, "message": error.message} for n, _ in entries]
    duplicates = []
    for (name, _), outcome in zip(entries, outcomes, strict=True):
        if outcome.status is ImageCreateStatus.OK_DUPLICATE:
            duplicates.append(name)
        elif not outcome.ok:
            failures.append({"name": name, "message": outcome.message or outcome.status.value})
    added = sum(o.ok for o in outcomes)
    return added, duplicates, failures


def _save_report(storage: Storage, job: DatasetJob, report: dict[str, Any]) -> None:
    data = json.dumps(report).encode()
    path = job_blob_path(job, REPORT_FILE)
    storage.blobs.put(names.CONTAINER_EXPORTS, path, data, "application/json")
