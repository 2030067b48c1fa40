"""Where a trained iteration's files live in the `models` container, and what they hold.

models/{projectId}/{iterationId}/
  model.onnx       the whole network: float32 NCHW input "image", output "probabilities"
                   (detection: outputs "boxes" (N, A, 4) x0 y0 x1 y1 fractions and "scores"
                   (N, A, T), decoded by functions/domain/detection_decode.py)
  labels.json      [{"id": tagId, "name": tagName, "type": Regular|Negative}] in output order
  manifest.json    a `ModelManifest`: task, backbone, domain, preprocessing, tensor names,
                   versions, seed, image count, timings, how it was evaluated
  metrics.json     the evaluation at threshold 0.5 (as GET .../performance returns it)
  evaluation.npz   out-of-sample scores: image_ids, labels, probabilities, folds (detection:
                   held-out boxes, functions/domain/detection_evaluation.py)
models/{projectId}/features/{backbone}/{imageId}.npy   the feature cache
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from functions.domain.preprocessing import Preprocessing

MODEL = "model.onnx"
LABELS = "labels.json"
MANIFEST = "manifest.json"
METRICS = "metrics.json"
EVALUATION = "evaluation.npz"

# The served ONNX graph's tensors, named once for the trainer, the server and the exports.
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
BOXES_NAME = "boxes"  # detection: the boxes output; its scores output is SCORES_NAME
SCORES_NAME = "scores"

# 1: the untyped dicts written until the manifest had a version (no "version" key);
# 2: adds version, task, inputName and outputName.
MANIFEST_VERSION = 2
CLASSIFICATION = "classification"
DETECTION = "detection"


def iteration_prefix(project_id: str, iteration_id: str) -> str:
    return f"{project_id}/{iteration_id}/"


def artifact_path(project_id: str, iteration_id: str, name: str) -> str:
    return iteration_prefix(project_id, iteration_id) + name


def feature_path(project_id: str, backbone: str, image_id: str) -> str:
    return f"{project_id}/features/{backbone}/{image_id}.npy"


@dataclass(frozen=True)
class ModelManifest:
    """manifest.json: everything needed to use a model besides its graph and labels.

    Written by the trainer (`to_dict`), read by the model cache, the exports and the benchmarks
    (`from_dict`, which also reads the version 1 manifests, whose optional keys may be absent).
    """

    backbone: str
    domain_id: str
    classification_type: str  # "Multiclass" | "Multilabel"
    training_type: str  # "Regular" | "Advanced"
    preprocessing: Preprocessing
    labels: list[dict[str, str]]  # as labels.json
    seed: int | None = None
    image_count: int | None = None
    task: str = CLASSIFICATION
    domain_name: str = ""
    output: str = "probabilities (softmax for Multiclass, sigmoid per tag for Multilabel)"
    input_name: str = INPUT_NAME
    output_name: str = OUTPUT_NAME
    boxes_name: str | None = None  # detection only: the output holding the boxes
    evaluation: str = ""  # how the metrics were measured, in words
    skipped_unreadable: int = 0
    skipped_ambiguous: int = 0
    training_seconds: float | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    onnx_max_abs_difference: float | None = None
    versions: dict[str, str] = field(default_factory=dict)
    advanced: dict[str, Any] | None = None  # what fine-tuning did (Advanced only)
    choices: dict[str, Any] | None = None  # the settings training chose by cross-validation
    project_id: str | None = None  # set by the export job, not the trainer
    iteration_id: str | None = None
    version: int = MANIFEST_VERSION

    @property
    def multilabel(self) -> bool:
        return self.classification_type == "Multilabel"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "version": self.version,
            "task": self.task,
            "backbone": self.backbone,
            "domainId": self.domain_id,
            "domainName": self.domain_name,
            "classificationType": self.classification_type,
            "trainingType": self.training_type,
            "preprocessing": self.preprocessing.to_manifest(),
            "inputName": self.input_name,
            "outputName": self.output_name,
            "output": self.output,
            "labels": self.labels,
            "seed": self.seed,
            "imageCount": self.image_count,
            "skippedUnreadable": self.skipped_unreadable,
            "skippedAmbiguous": self.skipped_ambiguous,
            "trainingSeconds": self.training_seconds,
            "timings": self.timings,
            "onnxMaxAbsDifference": self.onnx_max_abs_difference,
            "versions": self.versions,
            "evaluation": self.evaluation,
            "advanced": self.advanced,
            "choices": self.choices,
        }
        if self.boxes_name is not None:
            data["boxesName"] = self.boxes_name
        if self.project_id is not None:
            data["projectId"] = self.project_id
        if self.iteration_id is not None:
            data["iterationId"] = self.iteration_id
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelManifest:
        version = int(data.get("version", 1))
        if version > MANIFEST_VERSION:
            raise ValueError(f"manifest version {version} is newer than {MANIFEST_VERSION}")
        return cls(
            version=version,
            task=str(data.get("task", CLASSIFICATION)),
            backbone=str(data.get("backbone", "unknown")),
            domain_id=str(data.get("domainId", "")),
            domain_name=str(data.get("domainName", "")),
            classification_type=str(data.get("classificationType", "Multiclass")),
            training_type=str(data.get("trainingType", "Regular")),
            preprocessing=Preprocessing.from_manifest(data["preprocessing"]),
            input_name=str(data.get("inputName", INPUT_NAME)),
            output_name=str(data.get("outputName", OUTPUT_NAME)),
            boxes_name=data.get("boxesName"),
            output=str(data.get("output", cls.output)),
            labels=list(data.get("labels", [])),
            seed=data.get("seed"),
            image_count=data.get("imageCount"),
            skipped_unreadable=int(data.get("skippedUnreadable", 0)),
            skipped_ambiguous=int(data.get("skippedAmbiguous", 0)),
            training_seconds=data.get("trainingSeconds"),
            timings=dict(data.get("timings") or {}),
            onnx_max_abs_difference=data.get("onnxMaxAbsDifference"),
            versions=dict(data.get("versions") or {}),
            evaluation=str(data.get("evaluation", "")),
            advanced=data.get("advanced"),
            choices=data.get("choices"),
            project_id=data.get("projectId"),
            iteration_id=data.get("iterationId"),
        )
