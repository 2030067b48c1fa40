"""How a set of out-of-sample predictions is judged: the score users read (top-1 accuracy, or
mean average precision for Multilabel), the held-out loss per image, and the paired comparison
that decides whether a candidate beats a reference on the same images."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from functions.domain import metrics

# A one-sided test at the 5% level: the candidate's mean loss gain per image must exceed this
# many standard errors of the paired differences (the textbook normal quantile, not a figure
# tuned on any dataset).
NOISE_Z = 1.645
LOSS_MARGIN = 1e-3  # two mean held-out losses closer than this are a tie


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


def lowest(losses: list[float]) -> int:
    """The index of the lowest of `losses`, the earliest unless a later one is lower by more
    than `LOSS_MARGIN` (so candidates go simplest first: near ties go to the simpler)."""
    best = 0
    for index in range(1, len(losses)):
        if losses[index] < losses[best] - LOSS_MARGIN:
            best = index
    return best


def cross_choice(losses: np.ndarray, fold: np.ndarray) -> tuple[int, list[int]]:
    """Choose among candidates by their out-of-sample losses (C, N) on N images in folds
    `fold` (N,): (the `lowest` mean over every image, and for each fold k the `lowest` mean
    over the other folds' images, a choice that never saw fold k's images)."""
    folds = int(fold.max()) + 1 if len(fold) else 0
    per_fold = [
        lowest([float(row[fold != k].mean()) for row in losses]) if np.any(fold != k) else 0
        for k in range(folds)
    ]
    return lowest([float(row.mean()) for row in losses]), per_fold


def held_out_loss(probabilities: np.ndarray, labels: np.ndarray, multilabel: bool) -> float:
    """The mean of `image_losses`."""
    return float(image_losses(probabilities, labels, multilabel).mean())


@dataclass(frozen=True)
class Comparison:
    """A candidate against a reference on the same held-out images, image by image."""

    reference_score: float
    candidate_score: float
    loss_gain: float  # mean over images of (reference loss - candidate loss)
    standard_error: float  # of that mean, from the paired differences
    images: int

    @property
    def z(self) -> float:
        """The loss gain in standard errors (0 when there is no spread to measure it by)."""
        return self.loss_gain / self.standard_error if self.standard_error > 0 else 0.0

    @property
    def better(self) -> bool:
        """The candidate scores at least as well and its loss gain exceeds the noise of the
        comparison (`NOISE_Z` standard errors) and float noise (`LOSS_MARGIN`); a tie is not
        better."""
        return (
            self.candidate_score >= self.reference_score
            and self.loss_gain > LOSS_MARGIN
            and self.z > NOISE_Z
        )

    def to_dict(self) -> dict[str, float | int | bool]:
        return {
            "images": self.images,
            "lossGain": round(self.loss_gain, 5),
            "standardError": round(self.standard_error, 5),
            "z": round(self.z, 3),
            "threshold": NOISE_Z,
            "better": self.better,
        }


def compare(
    reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray, multilabel: bool
) -> Comparison:
    """Paired comparison of two sets of out-of-sample probabilities (N, T) of the same images."""
    differences = image_losses(reference, labels, multilabel) - image_losses(
        candidate, labels, multilabel
    )
    count = len(differences)
    error = float(differences.std(ddof=1) / math.sqrt(count)) if count > 1 else math.inf
    return Comparison(
        reference_score=score(reference, labels, multilabel),
        candidate_score=score(candidate, labels, multilabel),
        loss_gain=float(differences.mean()) if count else 0.0,
        standard_error=error,
        images=count,
    )
