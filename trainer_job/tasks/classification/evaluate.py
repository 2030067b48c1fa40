"""Honest metrics: k-fold cross-validation of the head, every image scored by a head blind to it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trainer_job.ml.head import LinearHead, train_head

DEFAULT_FOLDS = 5


@dataclass(frozen=True)
class CrossValidation:
    probabilities: np.ndarray  # (N, T) float32: image i scored by the head of fold[i]
    fold: np.ndarray  # (N,) int: the fold each image was held out in
    folds: int  # the number of folds used
    heads: list[LinearHead] = field(default_factory=list)  # heads[k] was trained without fold k


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
) -> CrossValidation:
    """Out-of-fold probabilities (N, T) from features (N, V, D): each fold's head is trained on
    every view of the other folds' images and scores view 0 of its own."""
    fold = assign_folds(labels, multilabel, seed, folds)
    k = int(fold.max()) + 1
    probabilities = np.zeros(labels.shape, dtype=np.float32)
    heads = []
    for held_out in range(k):
        test = fold == held_out
        head = train_head(features[~test], labels[~test], multilabel, seed=seed)
        probabilities[test] = head.predict(features[test, 0])
        heads.append(head)
    return CrossValidation(probabilities=probabilities, fold=fold, folds=k, heads=heads)
