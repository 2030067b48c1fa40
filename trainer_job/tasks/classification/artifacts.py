"""A trained classifier's files: model.onnx, labels.json, manifest.json, metrics.json and
evaluation.npz (the out-of-fold scores the performance endpoints recompute from)."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from functions.domain import artifacts
from functions.domain.metrics import evaluate
from trainer_job.ml.artifacts import Artifact
from trainer_job.ml.export import VerifiedModel, runtime_versions
from trainer_job.ml.spec import TrainingSpec
from trainer_job.tasks import TaskRun
from trainer_job.tasks.classification.dataset import TrainingSet
from trainer_job.tasks.classification.results import AdvancedResult, RegularResult

JSON = "application/json"
BINARY = "application/octet-stream"


def iteration_files(
    run: TaskRun,
    spec: TrainingSpec,
    data: TrainingSet,
    result: RegularResult,
    model: VerifiedModel,
    elapsed: float,
    advanced: AdvancedResult | None,
) -> list[Artifact]:
    """The files; the metrics are the out-of-fold predictions of the model served (Regular's
    cross-validation, or Advanced's candidate when it is served)."""
    summary = advanced.summary() if advanced is not None else None
    probabilities, folds = reported(result, advanced)
    labels = [{"id": t.id, "name": t.name, "type": t.type.value} for t in data.tags]
    manifest = artifacts.ModelManifest(
        backbone=advanced.net.backbone if advanced is not None else result.backbone,
        domain_id=run.domain.id,
        domain_name=run.domain.name,
        classification_type="Multilabel" if result.multilabel else "Multiclass",
        training_type=run.job.training_type,
        preprocessing=spec.model.preprocessing,
        labels=labels,
        seed=spec.model.seed,
        image_count=len(data.image_ids),
        skipped_unreadable=len(data.skipped_unreadable),
        skipped_ambiguous=len(data.skipped_ambiguous),
        training_seconds=round(elapsed, 2),
        timings=result.timings,
        onnx_max_abs_difference=model.max_abs_difference,
        versions=runtime_versions(),
        evaluation=evaluation_description(result.cross_validation.folds, summary),
        advanced=summary,
        choices=result.cross_validation.choices(),
    )
    metrics = evaluate(probabilities, data.labels, folds, 0.5)
    return [
        Artifact(artifacts.MODEL, model.onnx, BINARY),
        Artifact(artifacts.LABELS, json.dumps(labels).encode(), JSON),
        Artifact(artifacts.MANIFEST, json.dumps(manifest.to_dict(), indent=2).encode(), JSON),
        Artifact(artifacts.METRICS, json.dumps(_metrics_json(metrics, labels)).encode(), JSON),
        Artifact(artifacts.EVALUATION, _evaluation_npz(data, probabilities, folds), BINARY),
    ]


def reported(
    result: RegularResult, advanced: AdvancedResult | None
) -> tuple[np.ndarray, np.ndarray]:
    """(out-of-fold probabilities (N, T), folds (N,)) of the served model's recipe: Advanced's
    candidate when it is served, else Regular's 5-fold cross-validation (not Advanced's
    reference heads, which are not what is served)."""
    if advanced is not None and advanced.kept == "FineTuned":
        candidate = advanced.fine_tuned_probabilities
        if candidate is not None:  # always set when fine-tuning is served
            return candidate, advanced.fold
    return result.probabilities, result.folds


def _evaluation_npz(data: TrainingSet, probabilities: np.ndarray, folds: np.ndarray) -> bytes:
    evaluation = io.BytesIO()
    np.savez_compressed(
        evaluation,
        image_ids=np.asarray(data.image_ids),
        labels=data.labels.astype(np.uint8),
        probabilities=probabilities.astype(np.float32),
        folds=folds.astype(np.int16),
    )
    return evaluation.getvalue()


def evaluation_description(folds: int, advanced: dict[str, Any] | None) -> str:
    """How the metrics were measured; for Advanced, also how the served model was chosen."""
    regular = (
        f"{folds}-fold cross-validation of the linear head on frozen features, each fold's "
        "L2 penalty and training views chosen on the other folds' images"
    )
    if advanced is None:
        return regular
    chosen = (
        f"the served model ({advanced['kept']}) was chosen by comparing the fine-tuned ensemble "
        f"with the linear head out of fold ({advanced['folds']} folds, every image scored, "
        "kept only if its calibrated loss per image was lower by more than the noise of the "
        "paired comparison)"
    )
    if advanced["kept"] != "FineTuned":
        return f"metrics: {regular} (the Regular model, served); {chosen}"
    described = (
        f"{advanced['folds']}-fold cross-validation of the fine-tuned ensemble, each fold's "
        "epochs chosen on the other folds' images (the served model's recipe, each fold's "
        "model trained on fewer images than it)"
    )
    if advanced["refitImages"]:
        chosen += f", then fine-tuned again on all {advanced['refitImages']} images"
    return f"metrics: {described}; {chosen}"


def skipped_note(data: TrainingSet) -> str | None:
    notes = []
    if data.skipped_unreadable:
        notes.append(f"{len(data.skipped_unreadable)} unreadable images were skipped")
    if data.skipped_ambiguous:
        notes.append(
            f"{len(data.skipped_ambiguous)} images with several tags were skipped (Multiclass)"
        )
    return "; ".join(notes) + "." if notes else None


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
