"""One training job: load the data, train, evaluate, export, record the iteration.

On failure the error is recorded on the iteration and re-raised, so the queue delivers the
message again; the caller gives up after a bounded number of deliveries.
"""

from __future__ import annotations

import io
import json
import logging
import math
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from functions.domain import artifacts, catalog, names
from functions.domain.clock import utcnow
from functions.domain.jobs import TrainingJob
from functions.domain.metrics import evaluate
from functions.domain.models import (
    ClassificationType,
    Iteration,
    IterationStatus,
    TrainingType,
)
from functions.domain.preprocessing import Preprocessing
from functions.storage.clients import Storage
from trainer_job.dataset import TrainingSet, load_training_set
from trainer_job.feature_cache import FeatureCache

log = logging.getLogger(__name__)


class JobCancelled(Exception):
    """The project or iteration is gone: nothing left to do."""


class Progress:
    """Writes the iteration's stage and fraction done, for the portal to poll."""

    def __init__(self, storage: Storage, project_id: str, iteration: Iteration) -> None:
        self.storage = storage
        self.project_id = project_id
        self.iteration = iteration

    def __call__(self, stage: str, fraction: float) -> None:
        attempt = self.iteration.attempt
        current = self.storage.iterations.edit(
            self.project_id,
            self.iteration.id,
            lambda it: replace(
                it,
                progress_stage=stage,
                progress_fraction=round(fraction, 3),
                attempt=attempt,
                last_modified=utcnow(),
            ),
        )
        if current is None or self.storage.projects.get(self.project_id) is None:
            raise JobCancelled(f"iteration {self.iteration.id} was deleted")
        self.iteration = current
        log.info("iteration %s: %s (%.0f%%)", self.iteration.id, stage, fraction * 100)


def run_job(storage: Storage, job: TrainingJob, attempt: int = 1) -> Iteration | None:
    """Train one iteration. Returns None when there was nothing to do."""
    project = storage.projects.get(job.project_id)
    iteration = storage.iterations.get(job.project_id, job.iteration_id)
    if project is None or iteration is None:
        log.info("project or iteration of job %s is gone; nothing to do", job.iteration_id)
        return None
    if iteration.status is not IterationStatus.TRAINING:
        return None  # a repeated delivery of a finished job
    started = time.monotonic()
    iteration = replace(iteration, attempt=attempt)
    progress = Progress(storage, job.project_id, iteration)
    try:
        finished = _train(storage, job, iteration, project.classification_type, progress, started)
    except JobCancelled:
        log.info("job %s cancelled: its project or iteration was deleted", job.iteration_id)
        storage.iterations.unlock(job.project_id, job.iteration_id)
        return None
    stored = storage.iterations.edit(
        job.project_id,
        job.iteration_id,
        lambda current: replace(
            current,
            status=finished.status,
            trained_at=finished.trained_at,
            training_time_in_minutes=finished.training_time_in_minutes,
            progress_stage=finished.progress_stage,
            progress_fraction=finished.progress_fraction,
            training_error_details=finished.training_error_details,
            last_modified=finished.last_modified,
        ),
    )
    storage.iterations.unlock(job.project_id, job.iteration_id)
    return stored


def record_failure(storage: Storage, job: TrainingJob, reason: str, final: bool) -> None:
    """Note why an attempt failed; when `final`, mark the iteration Failed and free the project."""

    def fail(iteration: Iteration) -> Iteration:
        if iteration.status is not IterationStatus.TRAINING:
            return iteration
        updated = replace(iteration, training_error_details=reason[:4000], last_modified=utcnow())
        if final:
            updated = replace(updated, status=IterationStatus.FAILED, progress_stage="Failed")
        return updated

    stored = storage.iterations.edit(job.project_id, job.iteration_id, fail)
    if final or stored is None or stored.status is not IterationStatus.TRAINING:
        storage.iterations.unlock(job.project_id, job.iteration_id)


def _train(
    storage: Storage,
    job: TrainingJob,
    iteration: Iteration,
    classification: ClassificationType,
    progress: Progress,
    started: float,
) -> Iteration:
    import trainer_job.ml.recipe as recipe  # torch loads here, not when the module loads
    from trainer_job.ml.spec import TrainingSpec

    domain = catalog.find_domain(iteration.domain_id) or catalog.DOMAINS[0]
    progress("Loading images", 0.05)
    data = load_training_set(storage, job.project_id, classification, job.selected_tag_ids)
    if len(data.image_ids) < 2 or len(data.tags) < 2:
        raise ValueError(
            f"Too few usable images ({len(data.image_ids)}) or tags ({len(data.tags)}) to train."
        )
    spec = TrainingSpec.create(
        data.images,
        data.labels,
        multilabel=classification is ClassificationType.MULTILABEL,
        backbone=domain.backbone,
        image_size=domain.image_size,
        seed=job.seed,
        budget_seconds=job.reserved_budget_in_hours * 3600,
    )
    preprocessing = spec.model.preprocessing
    cache = FeatureCache(storage, job.project_id, domain.backbone)
    known = cache.load(data.image_ids, recipe.DEFAULT_VIEWS)
    progress(f"Computing features ({len(data.image_ids) - len(known)} new images)", 0.15)
    advanced_summary: dict[str, Any] | None = None
    if job.training_type == TrainingType.ADVANCED.value:
        result, advanced = recipe.train_advanced(
            spec,
            known_features=known,
            progress=lambda stage, done: progress(stage, 0.15 + 0.7 * done),
        )
        net = advanced.net
        advanced_summary = advanced.summary()
    else:
        result = recipe.train_regular(spec, known_features=known)
        net = recipe.build_classifier(domain.backbone, result.head)
    cache.save({data.image_ids[i]: result.features[i] for i in result.computed_indices})
    progress("Exporting the model", 0.85)
    with tempfile.TemporaryDirectory() as folder:
        model_path = Path(folder) / artifacts.MODEL
        sample = np.stack([preprocessing(image) for image in data.images[:4]])
        recipe.export_onnx(net, model_path, preprocessing.size)
        difference = recipe.verify_onnx(model_path, net, sample)
        if difference > 1e-4:
            raise RuntimeError(f"ONNX and torch disagree by {difference:.2e}")
        model_bytes = model_path.read_bytes()
    metrics = evaluate(result.probabilities, data.labels, result.folds, 0.5)
    elapsed = time.monotonic() - started
    _write_artifacts(
        storage,
        job,
        data,
        result,
        preprocessing,
        domain,
        model_bytes,
        metrics,
        elapsed,
        difference,
        advanced_summary,
    )
    finished = replace(
        progress.iteration,
        status=IterationStatus.COMPLETED,
        trained_at=utcnow(),
        training_time_in_minutes=max(1, math.ceil(elapsed / 60)),
        progress_stage="Completed",
        progress_fraction=1.0,
        training_error_details=_skipped_note(data),
        last_modified=utcnow(),
    )
    return finished


def evaluation_description(folds: int, advanced: dict[str, Any] | None) -> str:
    """How the metrics were measured; for Advanced, also how the served model was chosen."""
    regular = f"{folds}-fold cross-validation of the linear head on frozen features"
    if advanced is None:
        return regular
    chosen = (
        f"the served model ({advanced['kept']}) was chosen by comparing the fine-tuned ensemble "
        f"with the linear head out of fold ({advanced['folds']} folds, every image scored, "
        f"{advanced['heldOutMetric']})"
    )
    if advanced["refitImages"]:
        chosen += f", then fine-tuned again on all {advanced['refitImages']} images"
    return f"metrics: {regular} (the Regular model); {chosen}"


def _skipped_note(data: TrainingSet) -> str | None:
    notes = []
    if data.skipped_unreadable:
        notes.append(f"{len(data.skipped_unreadable)} unreadable images were skipped")
    if data.skipped_ambiguous:
        notes.append(
            f"{len(data.skipped_ambiguous)} images with several tags were skipped (Multiclass)"
        )
    return "; ".join(notes) + "." if notes else None


def _write_artifacts(
    storage: Storage,
    job: TrainingJob,
    data: TrainingSet,
    result: Any,
    preprocessing: Preprocessing,
    domain: catalog.Domain,
    model_bytes: bytes,
    metrics: Any,
    elapsed: float,
    difference: float,
    advanced: dict[str, Any] | None,
) -> None:
    import onnxruntime
    import torch

    def put(name: str, payload: bytes, content_type: str) -> None:
        path = artifacts.artifact_path(job.project_id, job.iteration_id, name)
        storage.blobs.put(names.CONTAINER_MODELS, path, payload, content_type)

    labels = [{"id": t.id, "name": t.name, "type": t.type.value} for t in data.tags]
    evaluation = io.BytesIO()
    np.savez_compressed(
        evaluation,
        image_ids=np.asarray(data.image_ids),
        labels=data.labels.astype(np.uint8),
        probabilities=result.probabilities.astype(np.float32),
        folds=result.folds.astype(np.int16),
    )
    manifest = artifacts.ModelManifest(
        backbone=domain.backbone,
        domain_id=domain.id,
        domain_name=domain.name,
        classification_type="Multilabel" if result.multilabel else "Multiclass",
        training_type=job.training_type,
        preprocessing=preprocessing,
        labels=labels,
        seed=job.seed,
        image_count=len(data.image_ids),
        skipped_unreadable=len(data.skipped_unreadable),
        skipped_ambiguous=len(data.skipped_ambiguous),
        training_seconds=round(elapsed, 2),
        timings=result.timings,
        onnx_max_abs_difference=difference,
        versions={
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
            "python": platform.python_version(),
        },
        evaluation=evaluation_description(result.cross_validation.folds, advanced),
        advanced=advanced,
    )
    put(artifacts.MODEL, model_bytes, "application/octet-stream")
    put(artifacts.LABELS, json.dumps(labels).encode(), "application/json")
    put(artifacts.MANIFEST, json.dumps(manifest.to_dict(), indent=2).encode(), "application/json")
    put(artifacts.METRICS, json.dumps(_metrics_json(metrics, labels)).encode(), "application/json")
    put(artifacts.EVALUATION, evaluation.getvalue(), "application/octet-stream")


def _metrics_json(metrics: Any, labels: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "threshold": 0.5,
        "precision": metrics.precision,
        "recall": metrics.recall,
        "averagePrecision": metrics.average_precision,
        "perTag": [
            {
                "id": label["id"],
                "name": label["name"],
                "precision": m.precision,
                "recall": m.recall,
                "averagePrecision": m.average_precision,
            }
            for label, m in zip(labels, metrics.per_tag, strict=True)
        ],
    }
