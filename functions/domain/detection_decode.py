"""Detections from a detector's dense outputs, in numpy: what the service (which has no torch)
does to the ONNX graph's answer, and what the trainer's evaluation does too, so held-out scores
and served predictions are decoded by one implementation.

The graph answers, per image, every point's box (A, 4) as x0, y0, x1, y1 fractions of the photo
and its score per tag (A, K). Decoding keeps the (point, tag) pairs scoring at least
`score_threshold` (the best `pre_nms` of them), suppresses per tag the boxes that overlap a
better one of the same tag at IoU above `nms_iou`, and answers the best `max_detections`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Detections:
    """One image's detections, best first."""

    boxes: np.ndarray  # (D, 4) left, top, width, height fractions
    scores: np.ndarray  # (D,) float
    classes: np.ndarray  # (D,) int tag index


def _iou_with(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one x0y0x1y1 box with each of `others` (M, 4)."""
    x0 = np.maximum(box[0], others[:, 0])
    y0 = np.maximum(box[1], others[:, 1])
    x1 = np.minimum(box[2], others[:, 2])
    y1 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression, best first."""
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        kept.append(int(best))
        order = rest[_iou_with(boxes[best], boxes[rest]) <= iou]
    return np.asarray(kept, dtype=np.int64)


def decode(
    boxes: np.ndarray,
    scores: np.ndarray,
    score_threshold: float = 0.05,
    nms_iou: float = 0.5,
    max_detections: int = 100,
    pre_nms: int = 1000,
) -> Detections:
    """One image's detections from its dense boxes (A, 4) and scores (A, K)."""
    flat = scores.reshape(-1)
    keep = np.flatnonzero(flat >= score_threshold)
    keep = keep[np.argsort(-flat[keep], kind="stable")[:pre_nms]]
    point, tag = keep // scores.shape[1], keep % scores.shape[1]
    chosen, chosen_scores = boxes[point].astype(np.float64), flat[keep]
    kept_parts = []
    for t in np.unique(tag):
        where = np.flatnonzero(tag == t)
        kept_parts.append(where[nms(chosen[where], chosen_scores[where], nms_iou)])
    kept = np.concatenate(kept_parts) if kept_parts else np.zeros(0, np.int64)
    kept = kept[np.argsort(-chosen_scores[kept], kind="stable")[:max_detections]]
    xyxy = chosen[kept]
    ltwh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
    return Detections(ltwh.astype(np.float32), chosen_scores[kept].astype(np.float32), tag[kept])
