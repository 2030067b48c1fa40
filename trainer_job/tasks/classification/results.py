"""What the Regular and the Advanced recipes return (their own module, so neither imports the
other for it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from trainer_job.ml.export import ClassifierNet
from trainer_job.ml.head import LinearHead
from trainer_job.tasks.classification.evaluate import CrossValidation
from trainer_job.tasks.classification.scoring import Comparison

Kept = Literal["FineTuned", "Regular"]
Progress = Callable[[str, float], None]  # (stage, fraction done); may raise to cancel


@dataclass(frozen=True)
class RegularResult:
    backbone: str  # the served backbone(s): the spec's, or its primary alone
    head: LinearHead  # trained with the cross-validation's chosen setting, on every image
    cross_validation: CrossValidation
    features: np.ndarray  # (N, views, D) float32, known rows included
    computed_indices: list[int]  # the rows of `features` computed now (not given as known)
    multilabel: bool
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    @property
    def probabilities(self) -> np.ndarray:
        """Out-of-fold probabilities (N, T), for honest metrics."""
        return self.cross_validation.probabilities

    @property
    def folds(self) -> np.ndarray:
        return self.cross_validation.fold


@dataclass(frozen=True)
class EpochRecord:
    epoch: int  # 0 is the network as initialised, before any step
    train_loss: float  # mean training loss of the epoch (NaN for epoch 0)
    held_out_loss: float
    held_out_score: float
    seconds: float  # since fine_tune started, when the record was made


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
    best_epoch: int  # the epochs chosen out of fold for the refit (0: none)
    seconds_used: float
    stopped_by: str  # early-stopping | max-epochs | budget | too-few-images
    fine_tuned: ClassifierNet | None = None
    history: list[list[EpochRecord]] = field(default_factory=list)  # per fold
    refit_images: int = 0  # images the served network was trained again on (0: no refit)
    comparison: Comparison | None = None  # the candidate against Regular, image by image
    fold_epochs: list[int] = field(default_factory=list)  # fold k scored after fold_epochs[k]

    def summary(self) -> dict[str, object]:
        """What fine-tuning did, for the manifest: which model was kept and why."""
        return {
            "kept": self.kept,
            "heldOutMetric": self.metric,
            "heldOutImages": len(self.fold),  # every image, scored out of fold
            "folds": int(self.fold.max()) + 1 if len(self.fold) else 0,
            "regularHeldOutScore": self.regular_score,
            "fineTunedHeldOutScore": self.fine_tuned_score,
            "epochs": self.epochs,
            "bestEpoch": self.best_epoch,
            "stoppedBy": self.stopped_by,
            "refitImages": self.refit_images,
            "foldEpochs": self.fold_epochs,
            "comparison": self.comparison.to_dict() if self.comparison is not None else None,
            "seconds": round(self.seconds_used, 2),
        }
