"""Evaluation numbers of a classification iteration, as Custom Vision reports them.

Inputs are out-of-sample per-image probabilities (N images x T tags), 0/1 labels of the same
shape and, optionally, the cross-validation fold of each image. All values are fractions in
[0, 1], matching `IterationPerformance` / `TagPerformance` of the Custom Vision API.

Conventions:
- A prediction for (image, tag) is positive when probability >= threshold. The comparison is
  made in the precision of the probabilities (a float32 probability stored as 0.7 is >= 0.7).
- precision = TP / (TP + FP). With no predicted positives it is 1.0 when there are no actual
  positives either (nothing was claimed, nothing was missed) and 0.0 when positives were missed.
- recall = TP / (TP + FN); 1.0 when there are no actual positives.
- Overall precision and recall are micro-averaged over every (image, tag) pair.
- Average precision (threshold independent) is the non-interpolated step-wise area under the
  precision-recall curve, sum over distinct scores of (R_k - R_{k-1}) * P_k; images with equal
  scores enter together. It is 0.0 for a tag without positives; the overall value is the mean
  over tags that have at least one positive (0.0 when none has).
- The precision-recall curve of a tag lists (threshold, precision, recall) for each distinct
  score used as threshold, descending, preceded by threshold 1.0 when every score is below 1.0
  (nothing predicted). Each point is exactly what `evaluate` reports at its threshold, edge
  cases included (recall 1.0 without positives; with nothing predicted, precision 1.0 without
  positives and 0.0 with). `evaluate` at any threshold t equals the point with the smallest
  listed threshold >= t, so a threshold's precision and recall always lie on the curve.
- Standard deviations are population (ddof=0) deviations across folds of the per-fold values.
  A fold counts for recall when it holds positives, and for precision when it holds positives
  or predicted positives (folds where the value is only vacuously defined are left out). The
  deviation is 0.0 when folds is None or fewer than two folds count.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]

_FEW_FOLDS = 64  # Up to this many folds count each fold's slice; beyond, one bincount.


@dataclass(frozen=True)
class TagMetrics:
    """Performance of one tag (Custom Vision's TagPerformance, without id and name)."""

    precision: float
    precision_std: float
    recall: float
    recall_std: float
    average_precision: float


@dataclass(frozen=True)
class Metrics:
    """Performance of an iteration (Custom Vision's IterationPerformance); per_tag by column."""

    per_tag: list[TagMetrics]
    precision: float
    precision_std: float
    recall: float
    recall_std: float
    average_precision: float


def evaluate(
    probabilities: np.ndarray,
    labels: np.ndarray,
    folds: np.ndarray | None,
    threshold: float = 0.5,
) -> Metrics:
    """Precision, recall, their spread across folds and AP of (N, T) probabilities vs labels."""
    probs = _probabilities(probabilities)
    truth = _binary(labels, "labels", probs.shape)
    threshold = _threshold(threshold)
    n, t = probs.shape
    fold_index, fold_count = _fold_index(folds, n)

    predicted = probs >= np.asarray(threshold, dtype=probs.dtype)
    tp, pp, pos = _fold_counts(predicted, truth, fold_index, fold_count)  # each (K, T)

    tag_tp, tag_pp, tag_pos = tp.sum(axis=0), pp.sum(axis=0), pos.sum(axis=0)
    tag_precision = _precision(tag_tp, tag_pp, tag_pos)
    tag_recall = _recall(tag_tp, tag_pos)
    tag_precision_std = _spread(_precision(tp, pp, pos), (pp > 0) | (pos > 0))
    tag_recall_std = _spread(_recall(tp, pos), pos > 0)
    tag_ap = _average_precision_columns(probs, truth)

    fold_tp, fold_pp, fold_pos = tp.sum(axis=1), pp.sum(axis=1), pos.sum(axis=1)
    all_tp, all_pp, all_pos = tag_tp.sum(), tag_pp.sum(), tag_pos.sum()
    has_positives = tag_pos > 0
    per_tag = [
        TagMetrics(
            precision=float(tag_precision[j]),
            precision_std=float(tag_precision_std[j]),
            recall=float(tag_recall[j]),
            recall_std=float(tag_recall_std[j]),
            average_precision=float(tag_ap[j]),
        )
        for j in range(t)
    ]
    return Metrics(
        per_tag=per_tag,
        precision=float(_precision(all_tp, all_pp, all_pos)),
        precision_std=float(
            _spread(_precision(fold_tp, fold_pp, fold_pos), (fold_pp > 0) | (fold_pos > 0))
        ),
        recall=float(_recall(all_tp, all_pos)),
        recall_std=float(_spread(_recall(fold_tp, fold_pos), fold_pos > 0)),
        average_precision=float(tag_ap[has_positives].mean()) if has_positives.any() else 0.0,
    )


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """Step-wise AP of 1-D scores against 0/1 positives, ties grouped; 0.0 without positives."""
    values, truth = _scores_and_positives(scores, positives)
    return float(_average_precision_columns(values[:, None], truth[:, None])[0])


def precision_recall_curve(
    scores: np.ndarray, positives: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and thresholds of one tag's curve (see the module's conventions)."""
    values, truth = _scores_and_positives(scores, positives)
    return _curve(values, truth)


def precision_recall_curves(
    probabilities: np.ndarray, labels: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The curve of every column of (N, T) probabilities against 0/1 labels, by column."""
    probs = _probabilities(probabilities)
    truth = _binary(labels, "labels", probs.shape)
    return [_curve(probs[:, j], truth[:, j]) for j in range(probs.shape[1])]


def _curve(values: np.ndarray, truth: BoolArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    order = np.argsort(-values, kind="stable")
    ranked = values[order]
    cumulative_tp = np.cumsum(truth[order], dtype=np.int64)
    is_end = np.ones(ranked.shape, dtype=bool)
    np.not_equal(ranked[:-1], ranked[1:], out=is_end[:-1])
    ends = np.flatnonzero(is_end)
    tp = cumulative_tp[ends]
    predicted = ends + 1
    thresholds = ranked[ends].astype(np.float64)
    if not ranked.size or ranked[0] < 1.0:  # threshold 1.0 predicts nothing
        tp = np.concatenate([[0], tp])
        predicted = np.concatenate([[0], predicted])
        thresholds = np.concatenate([[1.0], thresholds])
    total = np.full(tp.shape, cumulative_tp[-1] if cumulative_tp.size else 0, dtype=np.int64)
    return _precision(tp, predicted, total), _recall(tp, total), thresholds


def _precision(tp: np.ndarray, pp: np.ndarray, pos: np.ndarray) -> FloatArray:
    """TP / predicted positives; 1.0 with nothing predicted nor present, 0.0 when all missed."""
    ratio = np.divide(tp, pp, out=np.zeros(np.shape(tp), dtype=np.float64), where=pp > 0)
    return np.where(pp > 0, ratio, np.where(pos > 0, 0.0, 1.0))


def _recall(tp: np.ndarray, pos: np.ndarray) -> FloatArray:
    """TP / actual positives; 1.0 when there are no positives."""
    ratio = np.divide(tp, pos, out=np.zeros(np.shape(tp), dtype=np.float64), where=pos > 0)
    return np.where(pos > 0, ratio, 1.0)


def _spread(values: FloatArray, counts: np.ndarray) -> FloatArray:
    """Population std along axis 0 over entries where `counts`; 0.0 with fewer than two."""
    n = counts.sum(axis=0)
    mean = np.where(counts, values, 0.0).sum(axis=0) / np.maximum(n, 1)
    variance = np.where(counts, (values - mean) ** 2, 0.0).sum(axis=0) / np.maximum(n, 1)
    result: FloatArray = np.where(n >= 2, np.sqrt(variance), 0.0)
    return result


def _fold_counts(
    predicted: BoolArray, truth: BoolArray, fold_index: IntArray | None, fold_count: int
) -> tuple[IntArray, IntArray, IntArray]:
    """True positives, predicted positives and actual positives per (fold, tag)."""
    t = predicted.shape[1]
    arrays = (predicted & truth, predicted, truth)
    if fold_index is None:
        sums = np.stack([np.count_nonzero(a, axis=0) for a in arrays]).reshape(1, 3 * t)
    elif fold_count <= _FEW_FOLDS:
        # Put each fold's images in consecutive rows, then count every fold's slice.
        order = np.argsort(fold_index, kind="stable")
        bounds = np.searchsorted(fold_index[order], np.arange(fold_count + 1))
        grouped = np.concatenate(arrays, axis=1)[order]  # (N, 3T)
        sums = np.stack([np.count_nonzero(grouped[a:b], axis=0) for a, b in pairwise(bounds)])
    else:
        rows, cols = np.nonzero(np.concatenate(arrays, axis=1))
        cells = fold_index[rows] * (3 * t) + cols
        sums = np.bincount(cells, minlength=fold_count * 3 * t).reshape(fold_count, 3 * t)
    sums = sums.astype(np.int64)
    return sums[:, :t], sums[:, t : 2 * t], sums[:, 2 * t :]


def _average_precision_columns(scores: np.ndarray, truth: BoolArray) -> FloatArray:
    """AP of every column of (N, T) scores against (N, T) boolean truth.

    Each positive contributes the precision at its own score used as threshold (images with the
    same score enter together), so AP = mean over positives of TP(>= s) / predicted(>= s).
    """
    n, t = scores.shape
    result = np.zeros(t, dtype=np.float64)
    by_tag = np.ascontiguousarray(scores.T)
    truth_by_tag = np.ascontiguousarray(truth.T)
    for j in range(t):  # A loop over tags; every image-level step is vectorised.
        ranked = np.sort(by_tag[j])
        positive_scores = np.sort(by_tag[j][truth_by_tag[j]])
        if positive_scores.size == 0:
            continue
        predicted = n - np.searchsorted(ranked, positive_scores, side="left")
        hits = positive_scores.size - np.searchsorted(positive_scores, positive_scores, "left")
        result[j] = float(np.mean(hits / predicted))
    return result


def _probabilities(probabilities: np.ndarray) -> np.ndarray:
    """Validated (N, T) probabilities within [0, 1], floating point."""
    probs = np.asarray(probabilities)
    if probs.ndim != 2:
        raise ValueError(f"probabilities must be 2-D (images, tags), got shape {probs.shape}")
    if probs.dtype.kind not in "biuf":
        raise ValueError(f"probabilities must be real numbers, got dtype {probs.dtype}")
    if probs.dtype.kind != "f":
        probs = probs.astype(np.float64)
    if probs.size and not (np.all(probs >= 0.0) and np.all(probs <= 1.0)):
        raise ValueError("probabilities must lie within [0, 1] (and not be NaN)")
    return probs


def _binary(values: np.ndarray, name: str, shape: tuple[int, ...]) -> BoolArray:
    """Validated 0/1 array of the given shape, as booleans."""
    array = np.asarray(values)
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be 0/1 numbers, got dtype {array.dtype}")
    if array.dtype.kind == "b":
        return array
    truth: BoolArray = np.equal(array, 1)
    if not np.all(truth | (array == 0)):
        raise ValueError(f"{name} must contain only 0 and 1")
    return truth


def _threshold(threshold: float) -> float:
    """Validated threshold within [0, 1]."""
    if isinstance(threshold, bool) or not isinstance(threshold, int | float | np.number):
        raise ValueError(f"threshold must be a number, got {threshold!r}")
    value = float(threshold)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"threshold must be within [0, 1], got {threshold!r}")
    return value


def _fold_index(folds: np.ndarray | None, n: int) -> tuple[IntArray | None, int]:
    """Fold of each image renumbered 0..K-1 and K; (None, 1) without folds."""
    if folds is None:
        return None, 1
    array = np.asarray(folds)
    if array.shape != (n,):
        raise ValueError(f"folds must have shape ({n},), one per image, got {array.shape}")
    if array.dtype.kind not in "iu":
        raise ValueError(f"folds must be integers, got dtype {array.dtype}")
    unique, inverse = np.unique(array, return_inverse=True)
    return inverse.astype(np.int64).reshape(n), max(len(unique), 1)


def _scores_and_positives(
    scores: np.ndarray, positives: np.ndarray
) -> tuple[np.ndarray, BoolArray]:
    """Validated 1-D finite scores and 0/1 positives of the same length."""
    values = np.asarray(scores)
    if values.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {values.shape}")
    if values.dtype.kind not in "biuf":
        raise ValueError(f"scores must be real numbers, got dtype {values.dtype}")
    if values.dtype.kind != "f":
        values = values.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError("scores must be finite")
    return values, _binary(positives, "positives", values.shape)
