"""A detector's held-out predictions, as the trainer stores them (evaluation.npz of a detection
iteration) and the service reads them to answer performance at any thresholds.

The arrays, all flat so that numpy stores them without pickling:
  image_ids          (N,) str    the evaluated images, in order
  predicted_image    (P,) int    index into image_ids of each predicted box
  predicted_boxes    (P, 4)      left, top, width, height fractions
  predicted_scores   (P,)        probability
  predicted_classes  (P,) int    index into the iteration's labels (labels.json order)
  labelled_image     (L,) int    index into image_ids of each labelled box
  labelled_boxes     (L, 4)
  labelled_classes   (L,) int
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from functions.domain.detection_metrics import (
    DetectionMetrics,
    LabelledBox,
    PredictedBox,
    evaluate_detections,
)

KEYS = (
    "image_ids",
    "predicted_image",
    "predicted_boxes",
    "predicted_scores",
    "predicted_classes",
    "labelled_image",
    "labelled_boxes",
    "labelled_classes",
)


@dataclass(frozen=True)
class ImageBoxes:
    """One evaluated image: its predicted and its labelled boxes."""

    image_id: str
    predicted: list[PredictedBox]
    labelled: list[LabelledBox]


@dataclass(frozen=True)
class DetectionEvaluation:
    tags: list[str]  # tag ids in output order
    images: list[ImageBoxes]

    def metrics(self, threshold: float, overlap: float) -> DetectionMetrics:
        return evaluate_detections(
            [i.predicted for i in self.images],
            [i.labelled for i in self.images],
            self.tags,
            threshold=threshold,
            iou_threshold=overlap,
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """The npz arrays (see the module docstring)."""
        index = {tag: t for t, tag in enumerate(self.tags)}
        predicted = [(n, p) for n, i in enumerate(self.images) for p in i.predicted]
        labelled = [(n, b) for n, i in enumerate(self.images) for b in i.labelled]
        return {
            "image_ids": np.asarray([i.image_id for i in self.images], dtype=str),
            "predicted_image": np.asarray([n for n, _ in predicted], dtype=np.int64),
            "predicted_boxes": _boxes([p for _, p in predicted]),
            "predicted_scores": np.asarray([p.probability for _, p in predicted], np.float32),
            "predicted_classes": np.asarray([index[p.tag] for _, p in predicted], np.int64),
            "labelled_image": np.asarray([n for n, _ in labelled], dtype=np.int64),
            "labelled_boxes": _boxes([b for _, b in labelled]),
            "labelled_classes": np.asarray([index[b.tag] for _, b in labelled], np.int64),
        }

    @classmethod
    def from_arrays(cls, tags: list[str], data: Mapping[str, np.ndarray]) -> DetectionEvaluation:
        missing = [k for k in KEYS if k not in data]
        if missing:
            raise ValueError(f"not a detection evaluation: no {', '.join(missing)}")
        ids = [str(i) for i in data["image_ids"]]
        images = [ImageBoxes(image_id, [], []) for image_id in ids]
        for n, box, score, c in zip(
            data["predicted_image"],
            data["predicted_boxes"],
            data["predicted_scores"],
            data["predicted_classes"],
            strict=True,
        ):
            images[int(n)].predicted.append(
                PredictedBox(tags[int(c)], float(score), *map(float, box))
            )
        for n, box, c in zip(
            data["labelled_image"], data["labelled_boxes"], data["labelled_classes"], strict=True
        ):
            images[int(n)].labelled.append(LabelledBox(tags[int(c)], *map(float, box)))
        return cls(list(tags), images)


def _boxes(boxes: list[PredictedBox] | list[LabelledBox]) -> np.ndarray:
    rows = [(b.left, b.top, b.width, b.height) for b in boxes]
    return np.asarray(rows, dtype=np.float32).reshape(-1, 4)
