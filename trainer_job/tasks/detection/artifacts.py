"""A trained detector's files: model.onnx (dense boxes and scores), labels.json, manifest.json,
metrics.json (at probability 0.5 and overlap 0.3, Custom Vision's defaults) and evaluation.npz
(the held-out predictions the performance endpoints recompute from)."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from functions.domain import artifacts
from functions.domain.detection_evaluation import DetectionEvaluation
from functions.domain.preprocessing import Preprocessing
from trainer_job.ml.artifacts import Artifact
from trainer_job.ml.export import VerifiedModel, runtime_versions
from trainer_job.tasks import TaskRun
from trainer_job.tasks.detection.dataset import DetectionSet

JSON = "application/json"
BINARY = "application/octet-stream"
THRESHOLD = 0.5
OVERLAP = 0.3


def iteration_files(
    run: TaskRun,
    data: DetectionSet,
    evaluation: DetectionEvaluation,
    model: VerifiedModel,
    preprocessing: Preprocessing,
    elapsed: float,
) -> list[Artifact]:
    labels = [{"id": t.id, "name": t.name, "type": t.type.value} for t in data.tags]
    manifest = artifacts.ModelManifest(
        backbone=run.domain.backbone,
        domain_id=run.domain.id,
        domain_name=run.domain.name,
        classification_type="Multiclass",
        training_type=run.job.training_type,
        preprocessing=preprocessing,
        labels=labels,
        seed=run.job.seed,
        image_count=len(data.image_ids),
        task=artifacts.DETECTION,
        output="boxes: (N, A, 4) x0 y0 x1 y1 fractions of the photo per point; scores: (N, A, "
        "T) probability per point and tag; decode with a threshold and per-tag NMS",
        output_name=artifacts.SCORES_NAME,
        boxes_name=artifacts.BOXES_NAME,
        evaluation=(
            f"a detector trained on {len(data.image_ids) - len(evaluation.images)} photos, "
            f"measured on the {len(evaluation.images)} held out; the served one is trained on all"
        ),
        skipped_unreadable=len(data.skipped_unreadable),
        training_seconds=round(elapsed, 2),
        onnx_max_abs_difference=model.max_abs_difference,
        versions=runtime_versions(),
    )
    return [
        Artifact(artifacts.MODEL, model.onnx, BINARY),
        Artifact(artifacts.LABELS, json.dumps(labels).encode(), JSON),
        Artifact(artifacts.MANIFEST, json.dumps(manifest.to_dict(), indent=2).encode(), JSON),
        Artifact(artifacts.METRICS, json.dumps(metrics_json(evaluation, labels)).encode(), JSON),
        Artifact(artifacts.EVALUATION, _npz(evaluation), BINARY),
    ]


def metrics_json(evaluation: DetectionEvaluation, labels: list[dict[str, str]]) -> dict[str, Any]:
    metrics = evaluation.metrics(THRESHOLD, OVERLAP)
    return {
        "threshold": THRESHOLD,
        "overlapThreshold": OVERLAP,
        "precision": metrics.precision,
        "recall": metrics.recall,
        "averagePrecision": metrics.mean_average_precision,
        "perTag": [
            {
                "id": label["id"],
                "name": label["name"],
                "precision": metrics.per_tag[label["id"]].precision,
                "recall": metrics.per_tag[label["id"]].recall,
                "averagePrecision": metrics.per_tag[label["id"]].average_precision,
            }
            for label in labels
        ],
    }


def _npz(evaluation: DetectionEvaluation) -> bytes:
    stored = io.BytesIO()
    arrays: dict[str, Any] = evaluation.arrays()
    np.savez_compressed(stored, **arrays)
    return stored.getvalue()
