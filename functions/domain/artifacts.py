"""Where a trained iteration's files live in the `models` container, and what they hold.

models/{projectId}/{iterationId}/
  model.onnx       the whole network: float32 NCHW input "image", output "probabilities"
  labels.json      [{"id": tagId, "name": tagName, "type": Regular|Negative}] in output order
  manifest.json    backbone, domain, preprocessing, versions, seed, image count, timings
  metrics.json     the evaluation at threshold 0.5 (as GET .../performance returns it)
  evaluation.npz   out-of-sample scores: image_ids, labels, probabilities, folds
models/{projectId}/features/{backbone}/{imageId}.npy   the feature cache
"""

from __future__ import annotations

MODEL = "model.onnx"
LABELS = "labels.json"
MANIFEST = "manifest.json"
METRICS = "metrics.json"
EVALUATION = "evaluation.npz"


def iteration_prefix(project_id: str, iteration_id: str) -> str:
    return f"{project_id}/{iteration_id}/"


def artifact_path(project_id: str, iteration_id: str, name: str) -> str:
    return iteration_prefix(project_id, iteration_id) + name


def feature_path(project_id: str, backbone: str, image_id: str) -> str:
    return f"{project_id}/features/{backbone}/{image_id}.npy"
