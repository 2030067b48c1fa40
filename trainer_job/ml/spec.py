"""The frozen training spec, built once per job: the data and the model every stage trains."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from functions.domain.artifacts import CLASSIFICATION
from functions.domain.preprocessing import Preprocessing
from trainer_job.ml.features import DEFAULT_VIEWS


@dataclass(frozen=True)
class TrainingData:
    images: Sequence[Image.Image]
    labels: np.ndarray  # (N, T) 0/1 float32, one column per tag in output order
    multilabel: bool
    # Seeds the cross-validation's folds. The trainer derives it from the image ids
    # (`dataset.split_seed`), so every iteration on the same images splits them alike: the
    # Regular model is a function of the images alone, and Advanced, when it serves Regular,
    # serves exactly what a Regular iteration would.
    split_seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", np.asarray(self.labels, dtype=np.float32))
        if len(self.images) != self.labels.shape[0]:
            raise ValueError(f"{len(self.images)} images but {self.labels.shape[0]} label rows")


@dataclass(frozen=True)
class ModelSpec:
    backbone: str
    preprocessing: Preprocessing  # the served input, built once
    seed: int
    budget_seconds: float = math.inf  # wall clock for the whole training (Advanced)
    views: int = DEFAULT_VIEWS  # feature views per image for the linear head

    @property
    def image_size(self) -> int:
        return self.preprocessing.size


@dataclass(frozen=True)
class TrainingSpec:
    data: TrainingData
    model: ModelSpec
    task: str = CLASSIFICATION

    @classmethod
    def create(
        cls,
        images: Sequence[Image.Image],
        labels: np.ndarray,
        multilabel: bool,
        backbone: str,
        image_size: int,
        seed: int,
        budget_seconds: float = math.inf,
        views: int = DEFAULT_VIEWS,
        split_seed: int = 0,
    ) -> TrainingSpec:
        preprocessing = Preprocessing.for_size(image_size)
        return cls(
            TrainingData(images, labels, multilabel, split_seed),
            ModelSpec(backbone, preprocessing, seed, budget_seconds, views),
        )
