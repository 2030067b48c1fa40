"""Honest metrics and the head's settings (its L2 penalty, and whether the mirror image is a
training view): k-fold cross-validation of the head for every candidate setting, every image
scored by heads blind to it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from trainer_job.ml.head import LinearHead, train_head
from trainer_job.tasks.classification.scoring import (
    cross_choice,
    image_losses,
    lowest_mean,
    score,
    unless_clearly_beaten,
)

DEFAULT_FOLDS = 5
# The candidate penalties, strongest first (at an equal held-out loss the simpler head wins),
# a decade apart across the range where the class-balanced loss on centred EfficientNet-Lite
# features goes from nearly unregularised (every training image fitted) to a head that barely
# leaves the class priors.
L2_GRID = (10.0, 1.0, 0.1, 1e-2, 1e-3, 1e-4)


@dataclass(frozen=True)
class Candidate:
    """One candidate setting, judged out of fold over every image."""

    views: int  # training views per image: features[:, :views]
    l2: float
    score: float  # scoring.score: accuracy, or mean average precision for Multilabel
    loss: float  # the mean of scoring.image_losses

    def to_dict(self) -> dict[str, float]:
        return {
            "views": self.views,
            "l2": self.l2,
            "score": round(self.score, 4),
            "loss": round(self.loss, 4),
        }


@dataclass(frozen=True)
class CrossValidation:
    """Out-of-fold probabilities for honest metrics, and the setting chosen for the served head.

    Image i is scored by the head trained without its fold, with the setting that won on the
    other folds' images (`fold_choices[fold[i]]`): the choice never sees the images it is
    judged on, so the metrics are not flattered by it. `chosen` is the choice over every
    image."""

    probabilities: np.ndarray  # (N, T) float32
    fold: np.ndarray  # (N,) int: the fold each image was held out in
    folds: int  # the number of folds used
    chosen: Candidate  # the setting the served head is trained with
    fold_choices: tuple[Candidate, ...] = ()  # per fold: chosen without that fold's images
    candidates: tuple[Candidate, ...] = ()
    heads: list[LinearHead] = field(default_factory=list)  # heads[k]: fold k's choice, without it

    @property
    def l2(self) -> float:
        return self.chosen.l2

    @property
    def views(self) -> int:
        return self.chosen.views

    def choices(self) -> dict[str, object]:
        """What the cross-validation chose, for the manifest."""
        return {
            "l2": self.l2,
            "views": self.views,
            "foldL2": [c.l2 for c in self.fold_choices],
            "foldViews": [c.views for c in self.fold_choices],
            "candidates": [c.to_dict() for c in self.candidates],
        }


def fold_count(labels: np.ndarray, multilabel: bool, folds: int = DEFAULT_FOLDS) -> int:
    """min(folds, smallest tag count), at least 2 and at most the number of images."""
    counts = labels.sum(axis=0)
    counts = counts[counts > 0]
    smallest = int(counts.min()) if len(counts) else folds
    return max(2, min(folds, smallest, int(labels.shape[0])))


def _stratified_multiclass(labels: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Deal each class's images (in random order) round-robin, continuing across classes."""
    fold = np.full(labels.shape[0], -1, dtype=np.int64)
    classes = labels.argmax(axis=1)
    start = int(rng.integers(k))
    for c in rng.permutation(labels.shape[1]):
        members = rng.permutation(np.flatnonzero(classes == c))
        fold[members] = (start + np.arange(len(members))) % k
        start = (start + len(members)) % k
    return fold


def _stratified_multilabel(labels: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Iterative stratification: rarest tag first, each image to the fold that needs it most.

    An image goes to the fold with the fewest positives of the tag being dealt, ties broken by
    the fewest images, then by a random order of folds. Images without tags come last and
    fill the smallest folds.
    """
    count, tags = labels.shape
    fold = np.full(count, -1, dtype=np.int64)
    positives = np.zeros((k, tags), dtype=np.int64)
    sizes = np.zeros(k, dtype=np.int64)
    tie_break = rng.permutation(k)
    totals = labels.sum(axis=0)
    order = sorted(range(tags), key=lambda t: (totals[t], rng.random()))
    for tag in [t for t in order if totals[t] > 0]:
        for image in rng.permutation(np.flatnonzero((labels[:, tag] > 0) & (fold < 0))):
            chosen = min(range(k), key=lambda f: (positives[f, tag], sizes[f], tie_break[f]))
            fold[image] = chosen
            positives[chosen] += labels[image] > 0
            sizes[chosen] += 1
    for image in rng.permutation(np.flatnonzero(fold < 0)):
        chosen = min(range(k), key=lambda f: (sizes[f], tie_break[f]))
        fold[image] = chosen
        sizes[chosen] += 1
    return fold


def assign_folds(labels: np.ndarray, multilabel: bool, seed: int, folds: int) -> np.ndarray:
    """The fold (0..k-1) of each image, stratified by tag; see `fold_count` for k."""
    if labels.shape[0] < 2:
        raise ValueError("cross-validation needs at least 2 images")
    k = fold_count(labels, multilabel, folds)
    rng = np.random.default_rng([seed, 0x5EED])
    if multilabel:
        return _stratified_multilabel(labels, k, rng)
    return _stratified_multiclass(labels, k, rng)


def cross_validate(
    features: np.ndarray,
    labels: np.ndarray,
    multilabel: bool,
    seed: int,
    folds: int = DEFAULT_FOLDS,
    l2_grid: tuple[float, ...] = L2_GRID,
    view_options: tuple[int, ...] | None = None,
) -> CrossValidation:
    """Out-of-fold probabilities (N, T) from features (N, V, D) and the chosen setting: for
    each fold, each of `view_options` (by default all V views, the image, its mirror image and
    any augmented views, then view 0 alone, for tags that a mirror image changes) and each
    penalty of `l2_grid` (in order, each fit starting from the previous penalty's), a head is
    trained on those views of the other folds' images and scores view 0 of its own; the
    settings are then judged as `CrossValidation` says, by the held-out loss (`_rule`: the
    penalty with the lowest, near ties to the stronger; the image alone only when it is clearly
    better than every view). The loss, not the score: with a few dozen images accuracy moves in
    steps of one image and picks among near ties at random, while the loss sees how
    confidently each image is right or wrong."""
    if view_options is None:
        view_options = tuple(dict.fromkeys((features.shape[1], 1)))
    if not l2_grid or not view_options:
        raise ValueError("no candidate settings")
    if max(view_options) > features.shape[1] or min(view_options) < 1:
        raise ValueError(f"views {view_options} of features with {features.shape[1]} views")
    settings = [(views, l2) for views in view_options for l2 in l2_grid]
    fold = assign_folds(labels, multilabel, seed, folds)
    k = int(fold.max()) + 1
    outputs = np.zeros((len(settings), *labels.shape), dtype=np.float32)
    heads: list[list[LinearHead]] = [[] for _ in settings]
    for held_out in range(k):
        test = fold == held_out
        previous = None
        for g, (views, l2) in enumerate(settings):
            if g and views != settings[g - 1][0]:
                previous = None
            train = features[~test, :views]
            head = train_head(train, labels[~test], multilabel, seed=seed, l2=l2, start=previous)
            outputs[g, test] = head.predict(features[test, 0])
            heads[g].append(head)
            previous = head
    losses = np.stack([image_losses(p, labels, multilabel) for p in outputs])
    candidates = tuple(
        Candidate(views, l2, score(p, labels, multilabel), float(row.mean()))
        for (views, l2), p, row in zip(settings, outputs, losses, strict=True)
    )
    served, chosen = cross_choice(losses, fold, _rule(settings))
    probabilities = np.zeros(labels.shape, dtype=np.float32)
    for j, g in enumerate(chosen):
        probabilities[fold == j] = outputs[g, fold == j]
    return CrossValidation(
        probabilities=probabilities,
        fold=fold,
        folds=k,
        chosen=candidates[served],
        fold_choices=tuple(candidates[g] for g in chosen),
        candidates=candidates,
        heads=[heads[g][j] for j, g in enumerate(chosen)],
    )


def _rule(settings: list[tuple[int, float]]) -> Callable[[np.ndarray], int]:
    """How `cross_choice` picks a setting from their losses (C, M): for each views option the
    penalty with the lowest mean loss (`lowest_mean`); then the first views option (every view)
    unless another one's beats it clearly, image by image (`unless_clearly_beaten`)."""
    options = dict.fromkeys(views for views, _ in settings)
    groups = [[g for g, (v, _) in enumerate(settings) if v == views] for views in options]

    def rule(losses: np.ndarray) -> int:
        best = [group[lowest_mean(losses[group])] for group in groups]
        return best[unless_clearly_beaten(losses[best])]

    return rule
