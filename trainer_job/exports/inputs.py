"""What an export is made from: one trained iteration's artifacts, plus calibration images."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from functions.domain.artifacts import BOXES_NAME, DETECTION, ModelManifest
from functions.domain.preprocessing import Preprocessing

# A loaded export: preprocessed images (N, 3, S, S) float32 -> probabilities (N, T) float32.
Runner = Callable[[np.ndarray], np.ndarray]
# Every output of a loaded export by name (a detector's: boxes (N, A, 4), scores (N, A, T)).
Outputs = dict[str, np.ndarray]
OutputsRunner = Callable[[np.ndarray], Outputs]


class ExportError(Exception):
    """An export that cannot be made; the message says why, in words a user can read."""


@dataclass(frozen=True)
class ExportInputs:
    model_onnx: bytes  # model.onnx: float32 (N, 3, S, S) in; probabilities, or a detector's
    # dense boxes and scores, out (the manifest's names)
    labels: list[dict[str, str]]  # labels.json: [{"id", "name", "type"}] in output order
    manifest: ModelManifest  # manifest.json (the export job sets project_id and iteration_id)
    metrics: dict[str, Any]  # metrics.json
    calibration: np.ndarray | None  # (K, 3, S, S) float32 preprocessed training images, for int8

    @property
    def preprocessing(self) -> Preprocessing:
        return self.manifest.preprocessing

    @property
    def tag_names(self) -> list[str]:
        return [label["name"] for label in self.labels]

    @property
    def detects(self) -> bool:
        return self.manifest.task == DETECTION

    @property
    def output_names(self) -> tuple[str, ...]:
        """The service's model's outputs, in the order the service reads them."""
        if self.detects:
            return (self.manifest.boxes_name or BOXES_NAME, self.manifest.output_name)
        return (self.manifest.output_name,)
