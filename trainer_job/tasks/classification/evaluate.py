"""Honest metrics and the head's settings (its L2 penalty, whether the mirror image is a
training view, and which backbones' features it reads): k-fold cross-validation of the head
for every candidate setting, every image scored by heads blind to it."""

from __future__ import annotations

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

    parts: int  # the backbones whose features the head reads: the first `parts` of them
    views: int  # training views per image: features[:, :views]
    l2: float
    score: float  # scoring.score: accuracy, or mean average precision for Multilabel
    loss: float  # the mean of scoring.image_losses

    def to_dict(self) -> dict[str, float]:
        return {
            "backbones": self.parts,
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
    primary: Candidate  # the setting chosen among those that read the first backbone only
    widths: tuple[int, ...]  # the feature columns of each backbone, in order
    fold_choices: tuple[Candidate, ...] = ()  # per fold: chosen without that fold's images
    candidates: tuple[Candidate, ...] = ()
    heads: list[LinearHead] = field(default_factory=list)  # heads[k]: fold k's choice, without it

    @property
    def l2(self) -> float:
        return self.chosen.l2

    @property
    def views(self) -> int:
        return self.chosen.views

    @property
    def parts(self) -> int:
        return self.chosen.parts

    def columns(self, candidate: Candidate | None = None) -> int:
        """The feature columns `candidate` (default: the chosen one) reads."""
        return sum(self.widths[: (candidate or self.chosen).parts])

    def inputs(self, features: np.ndarray, candidate: Candidate | None = None) -> np.ndarray:
        """The training inputs of `candidate` (default: the chosen one) in `features`
        (N, V, D): its views, and the columns of its backbones."""
        return features[:, : (candidate or self.chosen).views, : self.columns(candidate)]

    def choices(self) -> dict[str, object]:
        """What the cross-validation chose, for the manifest."""
        return {
            "backbones": self.parts,
            "l2": self.l2,
            "views": self.views,
            "foldBackbones": [c.parts for c in self.fold_choices],
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
    widths: tuple[int, ...] | None = None,
    part_options: tuple[int, ...] | None = None,
) -> CrossValidation:
    """Out-of-fold probabilities (N, T) from features (N, V, D) and the chosen setting: for
    each fold, each of `part_options` (default: the first backbone's columns alone, then every
    backbone's; `widths` are each one's columns, default all D as one), each of `view_options`
    (default: all V views, the image, its mirror image and any augmented views, then view 0
    alone, for tags that a mirror image changes) and each penalty of `l2_grid` (in order, each
    fit starting from the previous penalty's), a head is trained on those columns and views of
    the other folds' images and scores view 0 of its own; the settings are then judged as
    `CrossValidation` says, by the held-out loss (`_Rule`). The loss, not the score: with a
    few dozen images accuracy moves in steps of one image and picks among near ties at random,
    while the loss sees how confidently each image is right or wrong."""
    widths = widths or (features.shape[2],)
    settings = _settings(features.shape, l2_grid, view_options, widths, part_options)
    fold = assign_folds(labels, multilabel, seed, folds)
    k = int(fold.max()) + 1
    outputs = np.zeros((len(settings), *labels.shape), dtype=np.float32)
    heads: list[list[LinearHead]] = [[] for _ in settings]
    for held_out in range(k):
        test = fold == held_out
        previous = None
        for g, (parts, views, l2) in enumerate(settings):
            if g and settings[g][:2] != settings[g - 1][:2]:
                previous = None
            columns = sum(widths[:parts])
            train = features[~test, :views, :columns]
            head = train_head(train, labels[~test], multilabel, seed=seed, l2=l2, start=previous)
            outputs[g, test] = head.predict(features[test, 0, :columns])
            heads[g].append(head)
            previous = head
    losses = np.stack([image_losses(p, labels, multilabel) for p in outputs])
    candidates = tuple(
        Candidate(parts, views, l2, score(p, labels, multilabel), float(row.mean()))
        for (parts, views, l2), p, row in zip(settings, outputs, losses, strict=True)
    )
    rule = _Rule(settings)
    served, chosen = cross_choice(losses, fold, rule)
    probabilities = np.zeros(labels.shape, dtype=np.float32)
    for j, g in enumerate(chosen):
        probabilities[fold == j] = outputs[g, fold == j]
    return CrossValidation(
        probabilities=probabilities,
        fold=fold,
        folds=k,
        chosen=candidates[served],
        primary=candidates[rule.within(losses, settings[0][0])],
        widths=widths,
        fold_choices=tuple(candidates[g] for g in chosen),
        candidates=candidates,
        heads=[heads[g][j] for j, g in enumerate(chosen)],
    )


def _settings(
    shape: tuple[int, ...],
    l2_grid: tuple[float, ...],
    view_options: tuple[int, ...] | None,
    widths: tuple[int, ...],
    part_options: tuple[int, ...] | None,
) -> list[tuple[int, int, float]]:
    """The candidate settings (backbones, views, l2) of `cross_validate`, defaults filled in."""
    if sum(widths) != shape[2]:
        raise ValueError(f"backbone widths {widths} of features with {shape[2]} columns")
    if part_options is None:
        part_options = tuple(dict.fromkeys((1, len(widths))))
    if view_options is None:
        view_options = tuple(dict.fromkeys((shape[1], 1)))
    if not l2_grid or not view_options or not part_options:
        raise ValueError("no candidate settings")
    if max(view_options) > shape[1] or min(view_options) < 1:
        raise ValueError(f"views {view_options} of features with {shape[1]} views")
    if max(part_options) > len(widths) or min(part_options) < 1:
        raise ValueError(f"backbones {part_options} of features with {len(widths)}")
    return [(p, v, l2) for p in part_options for v in view_options for l2 in l2_grid]


class _Rule:
    """How `cross_choice` picks a setting from their losses (C, M): for each backbones option
    and views option the penalty with the lowest mean loss (`lowest_mean`); then the first
    views option (every view) unless another one's beats it clearly, image by image
    (`unless_clearly_beaten`); then the first backbones option (the fewest, the cheapest to
    serve) unless another one's mean loss is lower (`lowest_mean`)."""

    def __init__(self, settings: list[tuple[int, int, float]]) -> None:
        self.settings = settings
        self.part_options = list(dict.fromkeys(parts for parts, _, _ in settings))

    def within(self, losses: np.ndarray, parts: int) -> int:
        """The setting chosen among those reading `parts` backbones."""
        options = dict.fromkeys(views for p, views, _ in self.settings if p == parts)
        groups = [
            [g for g, (p, v, _) in enumerate(self.settings) if (p, v) == (parts, views)]
            for views in options
        ]
        best = [group[lowest_mean(losses[group])] for group in groups]
        return best[unless_clearly_beaten(losses[best])]

    def __call__(self, losses: np.ndarray) -> int:
        best = [self.within(losses, parts) for parts in self.part_options]
        return best[lowest_mean(losses[best])]
