"""Export jobs: build the requested package from a trained iteration's artifacts and store it.

The function app records the request (status Exporting) and queues a message of kind
"export"; this turns it into exports/{projectId}/{iterationId}/{platform}[-{flavor}].zip and
marks it Done, or Failed with the reason.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import replace

import numpy as np
from PIL import Image

from functions.domain import artifacts, names
from functions.domain.clock import utcnow
from functions.domain.exports import (
    EXPORTER_VERSION,
    ExportRecord,
    ExportStatus,
    export_blob_path,
)
from functions.domain.jobs import TrainingJob
from functions.domain.preprocessing import Preprocessing
from functions.storage.clients import Storage

log = logging.getLogger(__name__)

CALIBRATION_IMAGES = 32  # training images that calibrate int8 quantisation


def _record(storage: Storage, job: TrainingJob) -> ExportRecord | None:
    return storage.exports.get(job.project_id, job.iteration_id, job.platform, job.flavor)


def _artifact(storage: Storage, job: TrainingJob, name: str) -> bytes:
    path = artifacts.artifact_path(job.project_id, job.iteration_id, name)
    data = storage.blobs.get(names.CONTAINER_MODELS, path)
    if data is None:
        raise FileNotFoundError(f"the iteration's {name} is missing")
    return data


def _manifest(storage: Storage, job: TrainingJob) -> artifacts.ModelManifest:
    from trainer_job.exports import ExportError

    try:
        return artifacts.ModelManifest.from_dict(
            json.loads(_artifact(storage, job, artifacts.MANIFEST))
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ExportError(f"the iteration's manifest cannot be read ({error})") from error


def _calibration(storage: Storage, job: TrainingJob, preprocessing: Preprocessing) -> np.ndarray:
    """Preprocessed training images of the iteration (its resized copies), evenly spread: the
    images its evaluation lists (a classifier's: all, cross-validated; a detector's: the photos
    held out, which the served detector was also trained on)."""
    evaluation = np.load(io.BytesIO(_artifact(storage, job, artifacts.EVALUATION)))
    image_ids = [str(i) for i in evaluation["image_ids"]]
    step = max(1, len(image_ids) // CALIBRATION_IMAGES)
    arrays = []
    for image_id in image_ids[::step][:CALIBRATION_IMAGES]:
        path = names.image_blob_path(job.project_id, image_id, "resized")
        data = storage.blobs.get(names.CONTAINER_IMAGES, path)
        if data is not None:
            with Image.open(io.BytesIO(data)) as image:
                arrays.append(preprocessing(image))
    size = preprocessing.size
    return np.stack(arrays) if arrays else np.zeros((0, 3, size, size), np.float32)


def run_export_job(storage: Storage, job: TrainingJob, attempt: int = 1) -> ExportRecord | None:
    """Build and store one export. Returns None when there was nothing to do."""
    from trainer_job.exports import ExportInputs, build_export

    record = _record(storage, job)
    if record is None or storage.projects.get(job.project_id) is None:
        log.info("export %s of %s is gone; nothing to do", job.platform, job.iteration_id)
        return None
    if record.status is not ExportStatus.EXPORTING:
        return None  # a repeated delivery of a finished export
    log.info("exporting %s (attempt %d)", record.file_name, attempt)
    manifest = replace(
        _manifest(storage, job), project_id=job.project_id, iteration_id=job.iteration_id
    )
    inputs = ExportInputs(
        model_onnx=_artifact(storage, job, artifacts.MODEL),
        labels=json.loads(_artifact(storage, job, artifacts.LABELS)),
        manifest=manifest,
        metrics=json.loads(_artifact(storage, job, artifacts.METRICS)),
        calibration=_calibration(storage, job, manifest.preprocessing),
    )
    package = build_export(job.platform, job.flavor or None, inputs)
    path = export_blob_path(job.project_id, job.iteration_id, record.file_name)
    storage.blobs.put(names.CONTAINER_EXPORTS, path, package, "application/zip")
    done = replace(
        record,
        status=ExportStatus.DONE,
        last_modified=utcnow(),
        exporter_version=EXPORTER_VERSION,
        error=None,
        size_bytes=len(package),
    )
    storage.exports.finish(done)
    log.info("exported %s: %d bytes", record.file_name, len(package))
    return done


def record_export_failure(storage: Storage, job: TrainingJob, reason: str, final: bool) -> None:
    """When `final`, mark the export Failed with the reason; earlier attempts are retried."""
    record = _record(storage, job)
    if record is None or record.status is not ExportStatus.EXPORTING or not final:
        return
    failed = replace(
        record, status=ExportStatus.FAILED, error=reason[:4000], last_modified=utcnow()
    )
    storage.exports.finish(failed)
