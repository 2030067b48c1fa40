"""How a set of out-of-sample predictions is judged: the score users read (top-1 accuracy, or
mean average precision for Multilabel), the held-out loss, and which of two is better."""

from __future__ import annotations

import numpy as np

from functions.domain import metrics

LOSS_MARGIN = 1e-3  # a tie on score is broken by a held-out loss lower by more than this


def score(probabilities: np.ndarray, labels: np.ndarray, multilabel: bool) -> float:
    """Multiclass: top-1 accuracy. Multilabel: mean average precision over tags."""
    if multilabel:
        return float(metrics.evaluate(probabilities, labels, None, 0.5).average_precision)
    return float((probabilities.argmax(axis=1) == labels.argmax(axis=1)).mean())


def held_out_loss(probabilities: np.ndarray, labels: np.ndarray, multilabel: bool) -> float:
    """Mean cross-entropy of probabilities (H, T) against 0/1 labels: per image for
    Multiclass, per image and tag (binary) for Multilabel."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-7, 1 - 1e-7)
    y = np.asarray(labels, dtype=np.float64)
    if multilabel:
        return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())
    return float(-(y * np.log(p)).sum(axis=1).mean())


def better(score_: float, loss: float, than_score: float, than_loss: float) -> bool:
    """Whether (score_, loss) beats (than_score, than_loss): a higher score, or the same score
    with a lower held-out loss (accuracy on a few dozen images ties often)."""
    if score_ != than_score:
        return score_ > than_score
    return loss < than_loss - LOSS_MARGIN
