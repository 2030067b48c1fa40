"""Advanced training: fine-tune the last stages of the backbone with their own head, serve them
as an ensemble with the Regular model, and keep that only if it beats the Regular head out of
fold (on images neither was trained on) by more than the noise of the comparison; then train
the kept recipe again on every image.

1. The images are split into `folds` (5) stratified folds (`evaluate.assign_folds`, fixed by
   the images: `TrainingData.split_seed`); each fold's run (tuner.py) trains on the other folds
   and scores that one after every epoch.
2. The reference is a Regular head trained on the other folds' cached features, scored on the
   fold's images (the served input only, as the Regular model is served).
3. The candidate (`EnsembleNet`): one frozen trunk, the tuned last stages with their head and
   the frozen last stages (and the other backbones, when Regular reads them) with the Regular
   head, averaged over the input and its mirror. How
   many epochs to train is chosen out of fold too (`choose_epochs`): the whole schedule unless
   an earlier epoch is clearly better; each fold's images are scored after the epochs chosen
   on the other folds' images, and the refit trains for the epochs chosen on every image.
4. The candidate is kept only if its mean loss per image, each model's probabilities
   calibrated by one temperature (`scoring.calibrated_losses`), is lower than the reference's
   by more than `scoring.NOISE_Z` standard errors of the paired differences
   (`scoring.compare`); otherwise Regular is served.
5. When kept (and `refit`), the run is trained again on every image for the chosen epochs and
   served; if that would not fit in the budget, the first fold's network (at its own lowest
   held-out loss) is served. Each run gets the share of the budget left that its work (images
   x epochs) is of the work left, the refit included.

Scores: Multiclass accuracy (top-1); Multilabel the mean average precision over tags. The
iteration's metrics are the served model's out-of-fold predictions (`artifacts.reported`).
README ("Training", "Accuracy") has the measurements.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from trainer_job.ml.export import build_classifier
from trainer_job.ml.head import LinearHead, train_head
from trainer_job.ml.spec import TrainingSpec
from trainer_job.tasks.classification.ensemble import EnsembleNet
from trainer_job.tasks.classification.evaluate import Candidate, CrossValidation, cross_validate
from trainer_job.tasks.classification.results import (
    AdvancedResult,
    EpochRecord,
    Kept,
    Progress,
    RegularResult,
)
from trainer_job.tasks.classification.scoring import (
    calibrated_losses,
    compare,
    cross_choice,
    score,
    unless_clearly_beaten,
)
from trainer_job.tasks.classification.training_loop import fit, prepare
from trainer_job.tasks.classification.tuner import (
    FINISH_SECONDS,
    Budget,
    FineTuneConfig,
    Tuner,
    deterministic,
)


@dataclass(frozen=True)
class Reference:
    """The Regular model of each fold, trained on the other folds, scored out of fold; and
    the heads the folds' fine-tuning starts from (on the primary backbone's features: the same
    heads when Regular reads no other backbone)."""

    fold: np.ndarray  # (N,) the fold each image was held out in
    folds: list[np.ndarray]  # the images held out in each fold
    heads: list[LinearHead]  # per fold: the fine-tuning's starting head
    probabilities: np.ndarray  # (N, T) out of fold, view 0
    mirrored: np.ndarray  # (N, T) out of fold, view 1
    score: float

    def branch(self, mirror: bool) -> np.ndarray:
        """The candidate's Regular branch out of fold: averaged over the mirror image too."""
        return 0.5 * (self.probabilities + self.mirrored) if mirror else self.probabilities


def _folds_of(
    spec: TrainingSpec, regular: RegularResult, candidate: Candidate, folds: int
) -> CrossValidation:
    """`candidate`'s setting alone, cross-validated on `folds` folds of the cached features."""
    validation = regular.cross_validation
    return cross_validate(
        regular.features[:, :, : validation.columns(candidate)],
        spec.data.labels,
        spec.data.multilabel,
        spec.data.split_seed,
        folds,
        l2_grid=(candidate.l2,),
        view_options=(candidate.views,),
    )


def reference(spec: TrainingSpec, regular: RegularResult, config: FineTuneConfig) -> Reference:
    labels, multilabel = spec.data.labels, spec.data.multilabel
    count = len(spec.data.images)
    fold = np.zeros(count, dtype=np.int64)
    folds: list[np.ndarray] = []
    heads: list[LinearHead] = []
    probabilities = np.zeros(labels.shape, dtype=np.float32)
    mirrored = np.zeros(labels.shape, dtype=np.float32)
    if count >= 2:
        validation = regular.cross_validation
        served = _folds_of(spec, regular, validation.chosen, config.folds)
        fold, probabilities = served.fold, served.probabilities
        folds = [np.flatnonzero(fold == k) for k in range(served.folds)]
        columns = validation.columns()
        for held, head in zip(folds, served.heads, strict=True):
            mirrored[held] = head.predict(regular.features[held, 1, :columns])
        heads = served.heads
        if validation.primary != validation.chosen:
            heads = _folds_of(spec, regular, validation.primary, config.folds).heads
    value = score(probabilities, labels, multilabel) if folds else math.nan
    return Reference(fold, folds, heads, probabilities, mirrored, value)


def primary_head(spec: TrainingSpec, regular: RegularResult) -> LinearHead:
    """The Regular head on the primary backbone's features of every image (the refit's start):
    `regular.head` itself unless Regular reads other backbones too."""
    validation = regular.cross_validation
    if validation.primary == validation.chosen:
        return regular.head
    inputs = validation.inputs(regular.features, validation.primary)
    data = spec.data
    return train_head(
        inputs, data.labels, data.multilabel, seed=spec.model.seed, l2=validation.primary.l2
    )


class Schedule:
    """The budget shared among the runs (in images per epoch: each fold's, then the refit's)
    and the progress each run reports."""

    def __init__(
        self, budget: Budget, work: list[int], progress: Progress | None, started: float
    ) -> None:
        self.budget, self.work, self.progress, self.started = budget, work, progress, started

    def deadline(self, index: int) -> float:
        now = time.perf_counter()
        left = max(0.0, self.budget.deadline - now)
        return now + left * self.work[index] / sum(self.work[index:])

    def reporter(self, phase: str, index: int) -> Callable[[int, int], None]:
        work, deadline = self.work, self.budget.deadline
        done, share = sum(work[:index]) / sum(work), work[index] / sum(work)

        def on_epoch(epoch: int, epochs: int) -> None:
            if self.progress is not None:
                used = (time.perf_counter() - self.started) / max(1e-9, deadline - self.started)
                fraction = min(1.0, max(done + share * epoch / epochs, used))
                self.progress(f"Fine-tuning {phase}: epoch {epoch} of {epochs}", fraction)

        return on_epoch


def fine_tune(
    spec: TrainingSpec,
    regular: RegularResult,
    budget_seconds: float,
    progress: Progress | None = None,
    config: FineTuneConfig = FineTuneConfig(),
) -> AdvancedResult:
    """Fine-tune the last stages of the spec's backbone with a head started from a Regular
    head, in at most `budget_seconds` of wall-clock time; keep it only if it beats Regular out
    of fold (see the module docstring). `regular` is `train_regular`'s result for the spec.
    `progress(stage, fraction)` is called with the fraction of fine-tuning done (0 to 1) after
    each epoch; it may raise to cancel.
    """
    started = time.perf_counter()
    budget = Budget(started, started + max(0.0, budget_seconds))
    data = spec.data
    if regular.features.shape[0] != data.labels.shape[0]:
        raise ValueError(
            f"{len(data.images)} images, {data.labels.shape[0]} label rows, "
            f"{regular.features.shape[0]} feature rows"
        )
    if regular.features.shape[1] < 2:
        raise ValueError("the Regular features need views 0 and 1")
    ref = reference(spec, regular, config)
    if len(ref.folds) < 2:
        return _keep_regular(spec, regular, ref, "too-few-images", [], started)
    count = len(data.images)
    work = [count - len(held) for held in ref.folds] + ([count] if config.refit else [])
    schedule = Schedule(budget, work, progress, started)
    tuners, failed = _run_folds(spec, ref, config, schedule)
    if failed is not None:
        return _keep_regular(spec, regular, ref, failed, [t.history for t in tuners], started)
    return _candidate(spec, regular, ref, config, tuners, schedule, started)


def _keep_regular(
    spec: TrainingSpec,
    regular: RegularResult,
    ref: Reference,
    stopped_by: str,
    history: list[list[EpochRecord]],
    started: float,
) -> AdvancedResult:
    return AdvancedResult(
        kept="Regular",
        net=build_classifier(regular.backbone, regular.head),
        metric=_metric(spec),
        regular_score=ref.score,
        fine_tuned_score=None,
        fold=ref.fold,
        regular_probabilities=ref.probabilities,
        fine_tuned_probabilities=None,
        epochs=0,
        steps=0,
        best_epoch=0,
        seconds_used=time.perf_counter() - started,
        stopped_by=stopped_by,
        history=history,
    )


def _metric(spec: TrainingSpec) -> str:
    return "meanAveragePrecision" if spec.data.multilabel else "accuracy"


def _run_folds(
    spec: TrainingSpec, ref: Reference, config: FineTuneConfig, schedule: Schedule
) -> tuple[list[Tuner], str | None]:
    """One run per fold; (the runs, why they could not all make a step, or None)."""
    count = len(spec.data.images)
    cache: dict[tuple[int, int], torch.Tensor] = {}
    tuners: list[Tuner] = []
    with deterministic():
        for index, held in enumerate(ref.folds):
            if time.perf_counter() + FINISH_SECONDS >= schedule.budget.deadline:
                return tuners, "budget"
            torch.manual_seed(spec.model.seed)
            train = np.setdiff1d(np.arange(count), held)
            deadline = Budget(schedule.started, schedule.deadline(index))
            tuner = Tuner(spec, ref.heads[index], config, train, held, deadline, cache)
            tuners.append(tuner)
            prepare(tuner)
            fit(tuner, schedule.reporter(f"(fold {index + 1} of {len(ref.folds)})", index))
            if tuner.best.state is None:
                return tuners, tuner.stopped_by
    return tuners, None


@dataclass(frozen=True)
class EpochChoice:
    """The candidate's epochs chosen out of fold, and its out-of-fold probabilities."""

    served: int  # the epochs the refit trains, chosen over every image
    per_fold: list[int]  # fold k's images are scored after per_fold[k] epochs
    probabilities: np.ndarray  # (N, T)


def choose_epochs(
    ref: Reference, tuners: list[Tuner], config: FineTuneConfig, labels: np.ndarray
) -> EpochChoice:
    """The candidate after every epoch all folds reached (E; a partial last epoch counts),
    judged by its calibrated held-out losses per image: the whole schedule (E epochs) unless an
    earlier epoch is clearly better (`scoring.unless_clearly_beaten`), chosen out of fold by
    `cross_choice` (see the module docstring)."""
    multilabel = tuners[0].multilabel
    reached = min(len(t.curve) for t in tuners) - 1
    regular = ref.branch(config.mirror)
    epochs = list(range(reached, 0, -1))  # the default first
    candidates = np.zeros((len(epochs), *labels.shape), dtype=np.float32)
    for tuner, held in zip(tuners, ref.folds, strict=True):
        for c, epoch in enumerate(epochs):
            tuned = tuner.curve[epoch]
            both = 0.5 * (tuned + regular[held])
            candidates[c, held] = both if config.ensemble else tuned
    losses = np.stack([calibrated_losses(p, labels, multilabel) for p in candidates])
    served, per_fold = cross_choice(losses, ref.fold, unless_clearly_beaten)
    probabilities = np.zeros(labels.shape, dtype=np.float32)
    for k, held in enumerate(ref.folds):
        probabilities[held] = candidates[per_fold[k], held]
    return EpochChoice(epochs[served], [epochs[c] for c in per_fold], probabilities)


def _candidate(
    spec: TrainingSpec,
    regular: RegularResult,
    ref: Reference,
    config: FineTuneConfig,
    tuners: list[Tuner],
    schedule: Schedule,
    started: float,
) -> AdvancedResult:
    """The candidate judged against the reference, refitted on every image when kept."""
    labels, multilabel = spec.data.labels, spec.data.multilabel
    choice = choose_epochs(ref, tuners, config, labels)
    comparison = compare(ref.probabilities, choice.probabilities, labels, multilabel)
    kept: Kept = "FineTuned" if comparison.clear else "Regular"
    refit = None
    if kept == "FineTuned" and config.refit:
        refit = _refit(spec, tuners, regular, schedule, len(ref.folds), choice.served)
    served = refit
    if served is None:  # the first fold's network at its own lowest held-out loss
        first = tuners[0]
        if first.best.state is not None:
            first.net.load(first.best.state)
        served = first.served(*_regular_branch(regular, config))
    stopped = [t.stopped_by for t in tuners if t.stopped_by != "max-epochs"]
    return AdvancedResult(
        kept=kept,
        net=served if kept == "FineTuned" else build_classifier(regular.backbone, regular.head),
        metric=_metric(spec),
        regular_score=ref.score,
        fine_tuned_score=score(choice.probabilities, labels, multilabel),
        fold=ref.fold,
        regular_probabilities=ref.probabilities,
        fine_tuned_probabilities=choice.probabilities,
        epochs=min(t.epochs for t in tuners),
        steps=sum(t.steps for t in tuners),
        best_epoch=choice.served,
        seconds_used=time.perf_counter() - started,
        stopped_by=stopped[0] if stopped else "max-epochs",
        fine_tuned=served,
        history=[t.history for t in tuners],
        refit_images=len(spec.data.images) if refit is not None else 0,
        comparison=comparison,
        fold_epochs=choice.per_fold,
    )


def _refit(
    spec: TrainingSpec,
    folds: list[Tuner],
    regular: RegularResult,
    schedule: Schedule,
    index: int,
    epochs: int,
) -> EnsembleNet | None:
    """The kept fine-tuning run again on every image for `epochs`, starting from the Regular
    head trained on every image (`primary_head`) and reusing the cached trunk outputs; None
    when it would not fit in what is left of the budget."""
    first = folds[0]
    everything = np.arange(len(spec.data.images))
    # The folds' step time per image and epoch, scaled to every image, with the margin
    # `per_image` uses.
    per_image_epoch = sum(t.budget.step_total for t in folds) / sum(
        len(t.train_index) * max(1, t.epochs) for t in folds
    )
    needed = 1.25 * per_image_epoch * len(everything) * epochs
    deadline = schedule.budget.deadline
    if time.perf_counter() + needed + FINISH_SECONDS > deadline:
        return None
    torch.manual_seed(spec.model.seed)
    with deterministic():
        held = np.zeros(0, dtype=np.int64)
        budget = Budget(first.budget.started, deadline)
        start = primary_head(spec, regular)
        tuner = Tuner(spec, start, first.config, everything, held, budget, first.trunk.cache)
        prepare(tuner)
        fit(tuner, schedule.reporter("(all images)", index), epochs)
        if tuner.epochs < epochs or tuner.best.state is None:  # out of time after all
            return None
        tuner.net.load(tuner.best.state)
    return tuner.served(*_regular_branch(regular, first.config))


def _regular_branch(
    regular: RegularResult, config: FineTuneConfig
) -> tuple[LinearHead | None, str | None]:
    """The served ensemble's Regular branch: its head and backbones (none without one)."""
    return (regular.head, regular.backbone) if config.ensemble else (None, None)
