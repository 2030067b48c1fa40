"""Advanced training: fine-tune the last stages of the backbone with their own head, serve them
as an ensemble with the Regular model, and keep that only if it beats the Regular head out of
fold (on images neither was trained on); then train the kept recipe again on every image.

The recipe, in order:

1. Split the images into `folds` (2) stratified folds (`evaluate.assign_folds`, fixed by the
   seed). Steps 2 to 5 run once per fold, training on the other folds and scoring that one, so
   every image is scored by models that never saw it.
2. The reference: a Regular head (`train_head`) trained on the other folds' cached features
   (`RegularResult.features`, every view), scored on the fold's images.
3. The network: a private copy of the backbone (`build_backbone`, batch norms folded into the
   convolutions, which stay trainable: plain convolutions with a bias) with a linear layer
   initialised from that reference head, so before the first step it predicts exactly what the
   reference does (LP-FT). Only the last `trainable_stages` (3) MBConv stages (Lite0: blocks 8
   to 15) and the 1x1 head convolution are trained; the frozen trunk before them runs once per
   image view and its output is cached, so an epoch costs the trainable part only. The frozen
   BN-free network has no batch statistics to drift, which suits batches of a few images.
4. Each epoch shows every training image once, as a view drawn (seeded) from a pool of
   `pool_views` (8): the served input, its mirror image and random resized crops of 25 to 100%
   of the area of the central square, flipped half the time, with colour jitter of 0.2
   (`training_view`). Mixup of the trunk outputs within a batch (Beta(0.4, 0.4), the losses
   mixed likewise). AdamW with layer-wise learning rates (5e-4 for the head convolution, each
   block below 0.85 times the one above it; 1e-3 for the head), a linear warm-up then cosine
   decay over `max_epochs` (20), dropout before the head, class-balanced losses as in
   `head.py`, and label smoothing for Multiclass.
5. No early stopping by default (`patience=None`): the schedule runs to its end, or until the
   time budget is used up, and the last epoch is kept (`keep="last"`), so only that epoch is
   evaluated on the held-out fold; `patience` and `keep="lowest-loss"` evaluate every epoch,
   stop after `patience` epochs without a lower held-out loss and keep the lowest. Each run
   gets the share of the budget left that its work (images x epochs) is of the work left, the
   refit included; the wall clock is checked before every step against that deadline less
   what it takes to evaluate and finish, so the call ends within its budget (give or take one
   step).
6. The candidate (`EnsembleNet`, one module, exported like ClassifierNet): one trunk, two
   branches on it, the tuned last stages with their tuned head and the frozen last stages with
   the Regular head; the output is the mean of their probabilities over the input and its
   mirror image (`ensemble`, `mirror`). Its out-of-fold score over every image (each fold's
   candidate, its Regular branch's head trained on the other folds too) is compared with the
   reference's; it is kept only if it beats it (`keep_fine_tuned`): a higher score, or the same
   score with a loss lower by more than `LOSS_MARGIN`; otherwise the served model is the
   Regular one. Scoring every image rather than a 20% hold-out makes the decision about twice
   as precise (a 36-image hold-out moves 2.8 points per image and chose Regular in two of three
   intel_scenes runs where the ensemble was better on the test photos).
7. When kept (and `refit`), steps 3 to 5 run again on every image, for the epochs the folds
   kept, starting from the Regular head trained on every image and reusing the cached trunk
   outputs; that network, with the Regular head (`regular.head`) on its frozen branch, is
   served. With 30 photos per tag a fold's run sees 15; the refit sees all 30 (training on 30
   rather than 24 was worth about 1.5 points of test accuracy in the exploration below). If the
   refit would not fit in what is left of the budget (estimated from the folds' steps), the
   first fold's network is served; `AdvancedResult.refit_images` says which.

Scores: Multiclass accuracy (top-1); Multilabel the mean average precision over tags (as the
service reports it), since a thresholded accuracy says little there.

What the service reports as an Advanced iteration's metrics: the Regular 5-fold
cross-validation (`regular.probabilities` / `regular.folds`) still; it describes the Regular
model exactly when that is kept, and a model that scored lower than the fine-tuned one out of
fold otherwise (so a conservative figure). The candidate's 2-fold out-of-fold probabilities
describe networks trained on half the images, not the served one. `AdvancedResult` carries the
comparison (both scores and both models' out-of-fold probabilities) for the manifest.

Measured: README ("Accuracy") has the figures through the API (`bench.accuracy`). Exploring on
cached features and trunk outputs (Lite0, 30 photos per tag, flowers5 and intel_scenes, seeds 0
and 1, test accuracy): the tuned branch alone is about as good as Regular (+1.5 / -1.0 points);
the gain comes from averaging the two (+2.6 / +1.4 over Regular) and from the refit.

Tried and not kept: the earlier recipe (2 stages, 12 epochs, `backbone_lr` 1e-4, early stopping
on the held-out loss, a head refitted by LBFGS on the tuned features), no better than Regular;
30 epochs and 12 views instead of 20 and 8 (flowers5: +0.5 and -2.0 points on two seeds, twice
the time); a third branch, the Regular head on frozen EfficientNet-Lite2 features (-0.3 to +0.3);
for the Regular head, 12 augmented views instead of 2 (+0.8 / -0.2), pooled features of blocks
10, 14 and 15 concatenated (-0.4 / +0.2), the input upsampled to 256 or 288 px inside the
network (-1.1 to +0.9, noise).

On CUDA the trunk and the training steps run under autocast (bfloat16 where supported, else
float16 with loss scaling), with float32 weights; on the CPU everything is float32 and
channels-last. The served network is returned in float32 on the CPU, in eval mode.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from PIL import Image

from trainer_job.ml.ensemble import EnsembleNet
from trainer_job.ml.evaluate import cross_validate
from trainer_job.ml.export import ClassifierNet, build_classifier
from trainer_job.ml.head import LinearHead
from trainer_job.ml.tuner import (
    FINISH_SECONDS,
    EpochRecord,
    FineTuneConfig,
    Tuner,
    deterministic,
    score,
)

if TYPE_CHECKING:
    from trainer_job.ml.recipe import RegularResult

Kept = Literal["FineTuned", "Regular"]
Progress = Callable[[str, float], None]

LOSS_MARGIN = 1e-3  # a tie on score is broken by a held-out loss lower by more than this


@dataclass(frozen=True)
class AdvancedResult:
    """The outcome of `fine_tune`; `net` is the model to serve either way.

    `regular_score` / `fine_tuned_score` are out-of-fold scores (`metric`) over every image:
    `fold[i]` is the fold image i was held out in, scored by the Regular head and by the
    Advanced candidate (an `EnsembleNet`, its Regular branch's head likewise) trained on the
    other folds; the probabilities (N, T) are those out-of-fold outputs. `fine_tuned` is the
    Advanced network (an `EnsembleNet`) whether kept or not (None when no step ran).
    """

    kept: Kept
    net: ClassifierNet  # eval mode, CPU, float32; exportable by export.export_onnx
    metric: str  # "accuracy" (Multiclass) | "meanAveragePrecision" (Multilabel)
    regular_score: float
    fine_tuned_score: float | None
    fold: np.ndarray  # (N,) int: the fold each image was held out in
    regular_probabilities: np.ndarray  # (N, T) float32
    fine_tuned_probabilities: np.ndarray | None  # (N, T) float32
    epochs: int  # full epochs run (the fewest of the folds)
    steps: int  # optimiser steps run, all folds
    best_epoch: int  # the epoch kept (the earliest of the folds; 0: none)
    seconds_used: float
    stopped_by: str  # early-stopping | max-epochs | budget | too-few-images
    fine_tuned: ClassifierNet | None = None
    history: list[list[EpochRecord]] = field(default_factory=list)  # per fold
    refit_images: int = 0  # images the served network was trained again on (0: no refit)

    @property
    def probabilities(self) -> np.ndarray:
        """Out-of-fold probabilities (N, T) of the kept model."""
        if self.kept == "FineTuned" and self.fine_tuned_probabilities is not None:
            return self.fine_tuned_probabilities
        return self.regular_probabilities


def held_out_loss(probabilities: np.ndarray, labels: np.ndarray, multilabel: bool) -> float:
    """Mean cross-entropy of probabilities (H, T) against 0/1 labels: per image for
    Multiclass, per image and tag (binary) for Multilabel."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-7, 1 - 1e-7)
    y = np.asarray(labels, dtype=np.float64)
    if multilabel:
        return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())
    return float(-(y * np.log(p)).sum(axis=1).mean())


def keep_fine_tuned(
    regular_score: float,
    fine_tuned_score: float | None,
    regular_loss: float = math.inf,
    fine_tuned_loss: float = math.inf,
) -> bool:
    """Fine-tuning is kept only when it beats Regular on the held-out images: a higher score,
    or the same score with a lower held-out loss (accuracy on a few dozen images ties often)."""
    if fine_tuned_score is None:
        return False
    if fine_tuned_score != regular_score:
        return fine_tuned_score > regular_score
    return fine_tuned_loss < regular_loss - LOSS_MARGIN


def fine_tune(
    images: Sequence[Image.Image],
    labels: np.ndarray,
    multilabel: bool,
    backbone_name: str,
    image_size: int,
    seed: int,
    regular: RegularResult,
    budget_seconds: float,
    progress: Progress | None = None,
    config: FineTuneConfig = FineTuneConfig(),
) -> AdvancedResult:
    """Fine-tune the last stages of `backbone_name` with a head started from a Regular head, in
    at most `budget_seconds` of wall-clock time; keep it only if it beats Regular out of fold
    (see the module docstring). `regular` is `train_regular`'s result for the same images and
    labels. `progress(stage, fraction)` is called with the fraction of fine-tuning done (0 to
    1) after each epoch; it may raise to cancel.
    """
    started = time.perf_counter()
    deadline = started + max(0.0, budget_seconds)
    labels = np.asarray(labels, dtype=np.float32)
    if len(images) != labels.shape[0] or regular.features.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{len(images)} images, {labels.shape[0]} label rows, "
            f"{regular.features.shape[0]} feature rows"
        )
    if regular.features.shape[1] < 2:
        raise ValueError("the Regular features need views 0 and 1")
    metric = "meanAveragePrecision" if multilabel else "accuracy"
    count = len(images)
    # The Regular head of each fold (trained on the other folds), scored over the image and
    # its mirror like the candidate's branches.
    fold = np.zeros(count, dtype=np.int64)
    folds: list[np.ndarray] = []
    split_heads: list[LinearHead] = []
    regular_probabilities = np.zeros(labels.shape, dtype=np.float32)
    regular_mirrored = np.zeros(labels.shape, dtype=np.float32)
    if count >= 2:
        cv = cross_validate(regular.features, labels, multilabel, seed, config.folds)
        fold, split_heads, regular_probabilities = cv.fold, cv.heads, cv.probabilities
        folds = [np.flatnonzero(fold == k) for k in range(cv.folds)]
        for held, head in zip(folds, split_heads, strict=True):
            regular_mirrored[held] = head.predict(regular.features[held, 1])
    regular_score = score(regular_probabilities, labels, multilabel) if folds else math.nan

    def keep_regular(stopped_by: str, history: list[list[EpochRecord]]) -> AdvancedResult:
        return AdvancedResult(
            kept="Regular",
            net=build_classifier(backbone_name, regular.head),
            metric=metric,
            regular_score=regular_score,
            fine_tuned_score=None,
            fold=fold,
            regular_probabilities=regular_probabilities,
            fine_tuned_probabilities=None,
            epochs=0,
            steps=0,
            best_epoch=0,
            seconds_used=time.perf_counter() - started,
            stopped_by=stopped_by,
            history=history,
        )

    if len(folds) < 2:
        return keep_regular("too-few-images", [])
    # Work in images per epoch: each fold's run, then the refit on every image. Each run gets
    # the share of what is left of the budget that its work is of the work left.
    work = [count - len(held) for held in folds] + ([count] if config.refit else [])

    def report(phase: str, index: int) -> Callable[[int, int], None]:
        done, share = sum(work[:index]) / sum(work), work[index] / sum(work)

        def on_epoch(epoch: int, epochs: int) -> None:
            if progress is not None:
                used = (time.perf_counter() - started) / max(1e-9, deadline - started)
                fraction = min(1.0, max(done + share * epoch / epochs, used))
                progress(f"Fine-tuning {phase}: epoch {epoch} of {epochs}", fraction)

        return on_epoch

    def run_deadline(index: int) -> float:
        now = time.perf_counter()
        return now + max(0.0, deadline - now) * work[index] / sum(work[index:])

    cache: dict[tuple[int, int], torch.Tensor] = {}
    tuners: list[Tuner] = []
    tuned_probabilities = np.zeros(labels.shape, dtype=np.float32)
    with deterministic():
        for index, held in enumerate(folds):
            if time.perf_counter() + FINISH_SECONDS >= deadline:
                return keep_regular("budget", [t.history for t in tuners])
            torch.manual_seed(seed)
            tuner = Tuner(
                images,
                labels,
                multilabel,
                backbone_name,
                image_size,
                seed,
                split_heads[index],
                config,
                np.setdiff1d(np.arange(count), held),
                held,
                started,
                run_deadline(index),
                cache=cache,
            )
            tuners.append(tuner)
            tuner.prepare()
            tuner.train(report(f"(fold {index + 1} of {len(folds)})", index))
            if tuner.best_state is None or tuner.best_probabilities is None:
                return keep_regular(tuner.stopped_by, [t.history for t in tuners])
            tuner.load(tuner.best_state)
            tuned = [tuner.best_probabilities]
            if config.mirror:
                tuned.append(tuner.mirror_probabilities())
            tuned_probabilities[held] = np.mean(tuned, axis=0)
    # The candidate's out-of-fold probabilities: its tuned branch (each averaged over the image
    # and its mirror image when `mirror`) and, when `ensemble`, the Regular branch, averaged.
    branches = [tuned_probabilities]
    if config.ensemble:
        branches.append(
            0.5 * (regular_probabilities + regular_mirrored)
            if config.mirror
            else regular_probabilities
        )
    fine_tuned_probabilities = np.mean(branches, axis=0).astype(np.float32)
    fine_tuned_score = score(fine_tuned_probabilities, labels, multilabel)
    kept: Kept = (
        "FineTuned"
        if keep_fine_tuned(
            regular_score,
            fine_tuned_score,
            held_out_loss(regular_probabilities, labels, multilabel),
            held_out_loss(fine_tuned_probabilities, labels, multilabel),
        )
        else "Regular"
    )
    refit = None
    if kept == "FineTuned" and config.refit:
        refit = _refit(
            tuners, images, labels, regular, deadline, report("(all images)", len(folds))
        )
    # Without a refit, the candidate is the first fold's network (assembled only then).
    served = refit or tuners[0].served(regular.head if config.ensemble else None)
    stopped = [t.stopped_by for t in tuners if t.stopped_by != "max-epochs"]
    return AdvancedResult(
        kept=kept,
        net=served if kept == "FineTuned" else build_classifier(backbone_name, regular.head),
        metric=metric,
        regular_score=regular_score,
        fine_tuned_score=fine_tuned_score,
        fold=fold,
        regular_probabilities=regular_probabilities,
        fine_tuned_probabilities=fine_tuned_probabilities,
        epochs=min(t.epochs for t in tuners),
        steps=sum(t.steps for t in tuners),
        best_epoch=min(t.best_epoch for t in tuners),
        seconds_used=time.perf_counter() - started,
        stopped_by=stopped[0] if stopped else "max-epochs",
        fine_tuned=served,
        history=[t.history for t in tuners],
        refit_images=len(images) if refit is not None else 0,
    )


def _refit(
    folds: list[Tuner],
    images: Sequence[Image.Image],
    labels: np.ndarray,
    regular: RegularResult,
    deadline: float,
    on_epoch: Callable[[int, int], None],
) -> EnsembleNet | None:
    """The kept fine-tuning run again on every image, for the epochs every fold's run kept,
    starting from the Regular head trained on every image and reusing the cached trunk
    outputs; None when it would not fit in what is left of the budget (then the first fold's
    network is served)."""
    first = folds[0]
    everything = np.arange(len(images))
    epochs = min(t.best_epoch for t in folds)
    # The folds' step time per image and epoch, scaled to every image, with the margin
    # `per_image` uses.
    per_image_epoch = sum(t.step_total for t in folds) / sum(
        len(t.train_index) * max(1, t.epochs) for t in folds
    )
    needed = 1.25 * per_image_epoch * len(everything) * epochs
    if time.perf_counter() + needed + FINISH_SECONDS > deadline:
        return None
    torch.manual_seed(first.seed)
    with deterministic():
        tuner = Tuner(
            images,
            labels,
            first.multilabel,
            first.extractor.name,
            first.preprocessing.size,
            first.seed,
            regular.head,
            first.config,
            everything,
            np.zeros(0, dtype=np.int64),
            first.started,
            deadline,
            cache=first.cache,
        )
        tuner.prepare()
        tuner.train(on_epoch, epochs)
        if tuner.epochs < epochs or tuner.best_state is None:  # out of time after all
            return None
        tuner.load(tuner.best_state)
    return tuner.served(regular.head if first.config.ensemble else None)
