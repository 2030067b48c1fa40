"""What an export is made from: one trained iteration's artifacts, plus calibration images."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from functions.domain.artifacts import ModelManifest
from functions.domain.preprocessing import Preprocessing

# A loaded export: preprocessed images (N, 3, S, S) float32 -> probabilities (N, T) float32.
Runner = Callable[[np.ndarray], np.ndarray]


class ExportError(Exception):
    """An export that cannot be made; the message says why, in words a user can read."""


@dataclass(frozen=True)
class ExportInputs:
    model_onnx: bytes  # model.onnx: float32 (N, 3, S, S) in, probabilities out (manifest's names)
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
