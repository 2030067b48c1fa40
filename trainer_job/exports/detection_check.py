"""Whether a converted detector finds the boxes the service's model finds.

Both models' dense outputs are decoded as the service decodes them for the detect endpoints
(functions/domain/detection_decode.py with the floor, NMS overlap and box count below, which
tests/trainer/test_detection_exports.py holds equal to functions/services/prediction.py's). The
rule, on each check image:
- the boxes that count are the service model's detections at probability COMPARED_PROBABILITY
  or more, and its best detection whatever its probability (so that a detector that is still
  unsure is compared too);
- each must be found by the converted model: a detection of the same tag at IoU MATCH_IOU or
  more (each converted detection stands for one box at most, the best overlap first);
- and each converted detection at COMPARED_PROBABILITY or more must likewise be one of the
  service model's detections at half that probability or more (a box the service would not
  answer, or would answer only as a faint one, is a disagreement too; the half leaves room
  for the rounding of float16 and int8).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from functions.domain.detection_decode import Detections, decode

SCORE_FLOOR = 0.01  # the service answers boxes scoring at least 1 %,
NMS_IOU = 0.5  # suppressed per tag at this overlap,
MAX_DETECTIONS = 100  # at most this many
COMPARED_PROBABILITY = 0.3
MATCH_IOU = 0.9


def service_decode(boxes: np.ndarray, scores: np.ndarray) -> Detections:
    """One image's detections (boxes (A, 4), scores (A, T)) as the detect endpoints answer them."""
    return decode(boxes, scores, SCORE_FLOOR, NMS_IOU, MAX_DETECTIONS)


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one left, top, width, height box with each of `others` (M, 4), same form."""
    x0, y0 = np.maximum(box[0], others[:, 0]), np.maximum(box[1], others[:, 1])
    x1 = np.minimum(box[0] + box[2], others[:, 0] + others[:, 2])
    y1 = np.minimum(box[1] + box[3], others[:, 1] + others[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = box[2] * box[3] + others[:, 2] * others[:, 3] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _find(wanted: Detections, among: Detections) -> list[float]:
    """The probability differences of the boxes of `wanted` found in `among` (same tag, IoU at
    least MATCH_IOU, one to one, the best overlap taken)."""
    free = np.ones(len(among.scores), dtype=bool)
    differences = []
    for box, score, tag in zip(wanted.boxes, wanted.scores, wanted.classes, strict=True):
        overlap = box_iou(box, among.boxes) if len(among.scores) else np.zeros(0)
        candidates = free & (among.classes == tag) & (overlap >= MATCH_IOU)
        if candidates.any():
            best = int(np.flatnonzero(candidates)[np.argmax(overlap[candidates])])
            free[best] = False
            differences.append(abs(float(score) - float(among.scores[best])))
    return differences


def _subset(found: Detections, keep: np.ndarray) -> Detections:
    return Detections(found.boxes[keep], found.scores[keep], found.classes[keep])


def counted(found: Detections) -> Detections:
    """The detections that count: those at COMPARED_PROBABILITY or more, and the best one."""
    keep = found.scores >= COMPARED_PROBABILITY
    keep[:1] = True
    return _subset(found, keep)


@dataclass(frozen=True)
class BoxAgreement:
    images: int
    compared: int  # the service model's boxes that count
    found: int  # of them, found by the converted model
    unexpected: int  # the converted model's confident boxes the service model does not answer
    probability_difference: float  # the largest, over the boxes found

    @property
    def rate(self) -> float:
        return self.found / self.compared if self.compared else 1.0

    def summary(self) -> str:
        return (
            f"of the {self.compared} detections compared on {self.images} check images (the "
            f"service model's at probability {COMPARED_PROBABILITY:g} or more, and each image's "
            f"best), {self.found} ({100 * self.rate:.1f} %) were found with the same tag at IoU "
            f"{MATCH_IOU:g} or more (largest probability difference "
            f"{self.probability_difference:.2g}); {self.unexpected} confident boxes were found "
            "that the service model does not answer"
        )


def box_agreement(
    reference: tuple[np.ndarray, np.ndarray], converted: tuple[np.ndarray, np.ndarray]
) -> BoxAgreement:
    """The agreement of two detectors' (boxes (N, A, 4), scores (N, A, T)) on the same images."""
    compared = found = unexpected = 0
    differences = [0.0]
    for index in range(len(reference[0])):
        served = service_decode(reference[0][index], reference[1][index])
        other = service_decode(converted[0][index], converted[1][index])
        wanted = counted(served)
        matched = _find(wanted, other)
        compared, found = compared + len(wanted.scores), found + len(matched)
        differences += matched
        confident = _subset(other, other.scores >= COMPARED_PROBABILITY)
        likely = _subset(served, served.scores >= COMPARED_PROBABILITY / 2)
        unexpected += len(confident.scores) - len(_find(confident, likely))
    return BoxAgreement(len(reference[0]), compared, found, unexpected, max(differences))
