"""Evaluation numbers of an object detector: IoU, matching, precision, recall, AP and mAP.

Pure numpy (it runs in the function app). Boxes are (left, top, width, height) fractions of the
image, as Custom Vision's `Region` and `BoundingBox` give them.

Conventions:
- Matching is per image and per tag, greedy by descending probability (ties keep the order
  given): each prediction takes the still unmatched labelled box of that tag with the highest
  IoU, if that IoU is >= the overlap threshold (0.5 by default); it is then a true positive,
  otherwise a false positive. Each labelled box is matched at most once, so a duplicate of a
  found box is a false positive. (PASCAL VOC's matcher would instead count a prediction whose
  best box is taken as false even if another box fits; taking the best free box, as COCO does,
  scores crowded scenes such as blood cells more fairly.)
- A prediction counts at a probability threshold when probability >= threshold.
- precision = TP / (TP + FP). With no predictions it is 1.0 when the tag has no labelled boxes
  either (nothing was claimed, nothing was missed) and 0.0 when labelled boxes were missed, as
  in `functions.domain.metrics` for classification.
- recall = TP / labelled boxes; 1.0 when the tag has no labelled boxes.
- Average precision is PASCAL VOC's all-point interpolated area (VOC 2010 onwards): precision
  is made monotone (each point takes the highest precision at any greater recall), then summed
  over the recall steps. It does not depend on the threshold: every prediction enters.
  It is 0.0 for a tag without labelled boxes; mAP is the mean over the tags that have labelled
  boxes (0.0 when none has), so a tag nobody labelled neither helps nor hurts it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

IOU_THRESHOLD = 0.5


@dataclass(frozen=True)
class LabelledBox:
    tag: str
    left: float
    top: float
    width: float
    height: float


@dataclass(frozen=True)
class PredictedBox:
    tag: str
    probability: float
    left: float
    top: float
    width: float
    height: float


@dataclass(frozen=True)
class TagDetectionMetrics:
    precision: float
    recall: float
    average_precision: float
    labelled: int  # labelled boxes of the tag over every image
    predicted: int  # predictions of the tag at or above the threshold


@dataclass(frozen=True)
class DetectionMetrics:
    per_tag: dict[str, TagDetectionMetrics]
    mean_average_precision: float  # over the tags that have labelled boxes
    precision: float  # micro-averaged over every tag, at the threshold
    recall: float


def box_iou(a: np.ndarray, b: np.ndarray) -> FloatArray:
    """(N, M) intersection over union of (N, 4) and (M, 4) boxes as (left, top, width, height).
    Boxes of no area overlap nothing (IoU 0)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    a_right, a_bottom = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    b_right, b_bottom = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    width = np.minimum(a_right[:, None], b_right[None]) - np.maximum(a[:, None, 0], b[None, :, 0])
    height = np.minimum(a_bottom[:, None], b_bottom[None]) - np.maximum(
        a[:, None, 1], b[None, :, 1]
    )
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def match(
    predicted: np.ndarray,
    probabilities: np.ndarray,
    labelled: np.ndarray,
    iou_threshold: float = IOU_THRESHOLD,
) -> BoolArray:
    """Which predictions (N, 4) of one tag in one image are true positives against its labelled
    boxes (M, 4): greedy by descending probability, each labelled box matched at most once."""
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    hits = np.zeros(probabilities.shape[0], dtype=np.bool_)
    overlaps = box_iou(predicted, labelled)
    if overlaps.shape[1] == 0:
        return hits
    free = np.ones(overlaps.shape[1], dtype=np.bool_)
    for i in np.argsort(-probabilities, kind="stable"):
        candidates = np.where(free, overlaps[i], -1.0)
        best = int(np.argmax(candidates))
        if candidates[best] >= iou_threshold:
            hits[i], free[best] = True, False
    return hits


def average_precision(probabilities: np.ndarray, hits: np.ndarray, labelled: int) -> float:
    """VOC all-point interpolated AP of one tag's predictions (probabilities, true-positive
    flags) pooled over images, against `labelled` boxes."""
    if labelled == 0:
        return 0.0
    order = np.argsort(-np.asarray(probabilities, dtype=np.float64), kind="stable")
    tp = np.cumsum(np.asarray(hits, dtype=np.float64)[order])
    fp = np.cumsum(1.0 - np.asarray(hits, dtype=np.float64)[order])
    recall = np.concatenate([[0.0], tp / labelled, [1.0]])
    precision = np.concatenate([[1.0], tp / np.maximum(tp + fp, 1e-12), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def _precision(tp: int, predicted: int, labelled: int) -> float:
    if predicted == 0:
        return 1.0 if labelled == 0 else 0.0
    return tp / predicted


def _recall(tp: int, labelled: int) -> float:
    return 1.0 if labelled == 0 else tp / labelled


def _as_array(boxes: Sequence[LabelledBox | PredictedBox]) -> FloatArray:
    return np.array([[b.left, b.top, b.width, b.height] for b in boxes], dtype=np.float64)


def _pool(
    predictions: Sequence[Sequence[PredictedBox]],
    labels: Sequence[Sequence[LabelledBox]],
    tag: str,
    iou_threshold: float,
) -> tuple[FloatArray, BoolArray, int]:
    """One tag's probabilities and true-positive flags over every image, and its box count."""
    scores, hits, labelled = [], [], 0
    for predicted, truth in zip(predictions, labels, strict=True):
        mine = [p for p in predicted if p.tag == tag]
        boxes = _as_array([t for t in truth if t.tag == tag])
        probabilities = np.array([p.probability for p in mine], dtype=np.float64)
        hits.append(match(_as_array(mine), probabilities, boxes, iou_threshold))
        scores.append(probabilities)
        labelled += boxes.shape[0]
    empty = np.zeros(0)
    return np.concatenate([empty, *scores]), np.concatenate([empty > 0, *hits]), labelled


def evaluate_detections(
    predictions: Sequence[Sequence[PredictedBox]],
    labels: Sequence[Sequence[LabelledBox]],
    tags: Sequence[str],
    threshold: float = 0.5,
    iou_threshold: float = IOU_THRESHOLD,
) -> DetectionMetrics:
    """Per-tag precision and recall at `threshold`, AP and mAP at `iou_threshold`, of each
    image's predictions against its labelled boxes (both lists in the same image order)."""
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} images of predictions but {len(labels)} of labels")
    per_tag: dict[str, TagDetectionMetrics] = {}
    totals = np.zeros(3, dtype=np.int64)  # true positives, predicted, labelled
    for tag in tags:
        scores, hits, labelled = _pool(predictions, labels, tag, iou_threshold)
        counted = scores >= threshold
        tp, predicted = int(np.sum(hits & counted)), int(np.sum(counted))
        totals += (tp, predicted, labelled)
        per_tag[tag] = TagDetectionMetrics(
            _precision(tp, predicted, labelled),
            _recall(tp, labelled),
            average_precision(scores, hits, labelled),
            labelled,
            predicted,
        )
    scored = [m.average_precision for m in per_tag.values() if m.labelled > 0]
    tp, predicted, labelled = (int(v) for v in totals)
    return DetectionMetrics(
        per_tag,
        float(np.mean(scored)) if scored else 0.0,
        _precision(tp, predicted, labelled),
        _recall(tp, labelled),
    )
