"""How a set of out-of-sample predictions is judged: the score users read (top-1 accuracy, or
mean average precision for Multilabel), the held-out loss per image, the out-of-fold choice
among candidates, and the paired comparison that decides whether a candidate beats a default
on the same images."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from functions.domain import metrics

# A one-sided test at the 5% level: the candidate's mean loss gain per image must exceed this
# many standard errors of the paired differences (the textbook normal quantile, not a figure
# tuned on any dataset).
NOISE_Z = 1.645
LOSS_MARGIN = 1e-3  # two mean held-out losses closer than this are a tie
# The temperatures tried by `calibrated_losses`: 1/4 to 4, log-spaced.
TEMPERATURES = np.exp(np.linspace(np.log(0.25), np.log(4.0), 41))


def score(probabilities: np.ndarray, labels: np.ndarray, multilabel: bool) -> float:
    """Multiclass: top-1 accuracy. Multilabel: mean average precision over tags."""
    if multilabel:
        return float(metrics.evaluate(probabilities, labels, None, 0.5).average_precision)
    return float((probabilities.argmax(axis=1) == labels.argmax(axis=1)).mean())


def image_losses(probabilities: np.ndarray, labels: np.ndarray, multilabel: bool) -> np.ndarray:
    """Cross-entropy (N,) of each image's probabilities (N, T) against its 0/1 labels: of the
    true tag for Multiclass, the mean binary cross-entropy over tags for Multilabel."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-7, 1 - 1e-7)
    y = np.asarray(labels, dtype=np.float64)
    if multilabel:
        losses: np.ndarray = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(axis=1)
    else:
        losses = -(y * np.log(p)).sum(axis=1)
    return losses


def calibrated_losses(
    probabilities: np.ndarray, labels: np.ndarray, multilabel: bool
) -> np.ndarray:
    """`image_losses` (N,) after rescaling the logits of `probabilities` (N, T) by the one
    temperature of `TEMPERATURES` that minimises their mean: two models compared on these are
    compared on how well they tell tags apart, not on how confident their training left them
    (label smoothing and averaging make a fine-tuned ensemble less confident than a linear
    head that is as often right)."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-7, 1 - 1e-7)
    logits = np.log(p / (1 - p)) if multilabel else np.log(p)

    def rescaled(temperature: float) -> np.ndarray:
        scaled = logits / temperature
        if multilabel:
            q: np.ndarray = 1 / (1 + np.exp(-scaled))
        else:
            q = np.exp(scaled - scaled.max(axis=1, keepdims=True))
            q = q / q.sum(axis=1, keepdims=True)
        return q

    losses = [image_losses(rescaled(t), labels, multilabel) for t in TEMPERATURES]
    return min(losses, key=lambda row: float(row.mean()))


def lowest_mean(losses: np.ndarray) -> int:
    """The candidate (row of `losses` (C, M)) with the lowest mean loss, the earliest unless a
    later one is lower by more than `LOSS_MARGIN` (candidates go simplest first)."""
    means = losses.mean(axis=1)
    best = 0
    for index in range(1, len(means)):
        if means[index] < means[best] - LOSS_MARGIN:
            best = index
    return best


def unless_clearly_beaten(losses: np.ndarray) -> int:
    """Candidate 0 (the default, a row of `losses` (C, M)) unless others beat it image by image
    by more than the noise (`Comparison.clear`); then the one with the lowest mean of those."""
    gains = [paired(losses[0] - row) for row in losses]
    clear = [c for c in range(1, len(losses)) if gains[c].clear]
    return min(clear, key=lambda c: (-gains[c].loss_gain, c)) if clear else 0


def cross_choice(
    losses: np.ndarray, fold: np.ndarray, rule: Callable[[np.ndarray], int] = lowest_mean
) -> tuple[int, list[int]]:
    """Choose among candidates by their out-of-sample losses (C, N) on N images in folds
    `fold` (N,): (the `rule`'s choice over every image, and for each fold k its choice over the
    other folds' images, a choice that never saw fold k's images)."""
    folds = int(fold.max()) + 1 if len(fold) else 0
    per_fold = [rule(losses[:, fold != k]) if np.any(fold != k) else 0 for k in range(folds)]
    return rule(losses), per_fold


@dataclass(frozen=True)
class Comparison:
    """Paired per-image loss differences (reference minus candidate) on the same images."""

    loss_gain: float  # their mean: how much lower the candidate's loss is per image
    standard_error: float  # of that mean
    images: int

    @property
    def z(self) -> float:
        """The loss gain in standard errors (infinite for a gain without spread)."""
        if self.standard_error > 0:
            return self.loss_gain / self.standard_error
        return math.copysign(math.inf, self.loss_gain) if self.loss_gain else 0.0

    @property
    def clear(self) -> bool:
        """The gain exceeds the noise of the comparison (`NOISE_Z` standard errors) and float
        noise (`LOSS_MARGIN`); a tie is not a gain."""
        return self.loss_gain > LOSS_MARGIN and self.z > NOISE_Z

    def to_dict(self) -> dict[str, float | int | bool | None]:
        return {
            "images": self.images,
            "lossGain": round(self.loss_gain, 5),
            "standardError": round(self.standard_error, 5),
            "z": round(self.z, 3) if math.isfinite(self.z) else None,
            "threshold": NOISE_Z,
            "better": self.clear,
        }


def paired(differences: np.ndarray) -> Comparison:
    count = len(differences)
    error = float(differences.std(ddof=1) / math.sqrt(count)) if count > 1 else math.inf
    return Comparison(float(differences.mean()) if count else 0.0, error, count)


def compare(
    reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray, multilabel: bool
) -> Comparison:
    """Paired comparison of two sets of out-of-sample probabilities (N, T) of the same images,
    by their `calibrated_losses`."""
    return paired(
        calibrated_losses(reference, labels, multilabel)
        - calibrated_losses(candidate, labels, multilabel)
    )
