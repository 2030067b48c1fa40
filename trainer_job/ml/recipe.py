"""The Regular training recipe in memory: features, cross-validation, final head, classifier."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from functions.domain.preprocessing import Preprocessing
from trainer_job.ml.backbone import load_backbone
from trainer_job.ml.evaluate import CrossValidation, cross_validate
from trainer_job.ml.export import ClassifierNet, build_classifier, export_onnx, verify_onnx
from trainer_job.ml.features import DEFAULT_VIEWS, compute_features
from trainer_job.ml.head import LinearHead, train_head

__all__ = [
    "DEFAULT_VIEWS",
    "ClassifierNet",
    "RegularResult",
    "build_classifier",
    "export_onnx",
    "features_for",
    "train_regular",
    "verify_onnx",
]


@dataclass(frozen=True)
class RegularResult:
    head: LinearHead  # trained on every view of every image
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


def features_for(
    images: Sequence[Image.Image],
    known: Mapping[int, np.ndarray],
    backbone_name: str,
    image_size: int,
    seed: int,
    views: int = DEFAULT_VIEWS,
) -> tuple[np.ndarray, list[int]]:
    """Features (N, views, D) of `images`, taking row i from `known[i]` (a (views, D) array)
    where given and computing the rest; also returns the indices computed."""
    missing = [i for i in range(len(images)) if i not in known]
    extractor = load_backbone(backbone_name) if missing else None
    dim = extractor.feature_dim if extractor is not None else None
    for i, row in known.items():
        if not 0 <= i < len(images):
            raise ValueError(f"known features for image {i}, but there are {len(images)}")
        if row.ndim != 2 or row.shape[0] != views or (dim is not None and row.shape[1] != dim):
            raise ValueError(f"known features of image {i} have shape {row.shape}")
        dim = row.shape[1]
    if dim is None:
        raise ValueError("no images")
    result = np.zeros((len(images), views, dim), dtype=np.float32)
    for i, row in known.items():
        result[i] = row
    if extractor is not None:
        computed = compute_features(
            extractor,
            [images[i] for i in missing],
            Preprocessing.for_size(image_size),
            views=views,
            seed=seed,
            indices=missing,
        )
        result[missing] = computed
    return result, missing


def train_regular(
    images: Sequence[Image.Image],
    labels: np.ndarray,
    multilabel: bool,
    backbone_name: str,
    image_size: int,
    seed: int,
    known_features: Mapping[int, np.ndarray] | None = None,
    views: int = DEFAULT_VIEWS,
) -> RegularResult:
    """Features of every image (reusing `known_features`), cross-validated out-of-fold
    probabilities, and the final head trained on all images."""
    if len(images) != labels.shape[0]:
        raise ValueError(f"{len(images)} images but {labels.shape[0]} label rows")
    timings: dict[str, float] = {}
    started = time.perf_counter()
    features, computed = features_for(
        images, known_features or {}, backbone_name, image_size, seed, views
    )
    timings["features"] = time.perf_counter() - started
    started = time.perf_counter()
    validation = cross_validate(features, labels, multilabel, seed)
    timings["crossValidation"] = time.perf_counter() - started
    started = time.perf_counter()
    head = train_head(features, labels, multilabel, seed=seed)
    timings["head"] = time.perf_counter() - started
    return RegularResult(
        head=head,
        cross_validation=validation,
        features=features,
        computed_indices=computed,
        multilabel=multilabel,
        timings={k: round(v, 3) for k, v in timings.items()},
    )


# Advanced training: Regular first, then fine-tuning in the time left (trainer_job/ml/finetune.py)

from trainer_job.ml.finetune import AdvancedResult, Progress, fine_tune  # noqa: E402
from trainer_job.ml.tuner import FineTuneConfig  # noqa: E402


def train_advanced(
    images: Sequence[Image.Image],
    labels: np.ndarray,
    multilabel: bool,
    backbone_name: str,
    image_size: int,
    seed: int,
    budget_seconds: float,
    known_features: Mapping[int, np.ndarray] | None = None,
    views: int = DEFAULT_VIEWS,
    progress: Progress | None = None,
    config: FineTuneConfig = FineTuneConfig(),
) -> tuple[RegularResult, AdvancedResult]:
    """`train_regular` (reusing `known_features`), then `fine_tune` for the rest of
    `budget_seconds` (which counts the Regular part too).

    Serve `advanced.net` (the fine-tuned network, or the Regular one when fine-tuning did not
    beat it out of fold); report metrics from `regular.probabilities` / `regular.folds`
    (the Regular cross-validation) and the out-of-fold comparison from `advanced`.
    """
    started = time.perf_counter()
    regular = train_regular(
        images, labels, multilabel, backbone_name, image_size, seed, known_features, views
    )
    left = budget_seconds - (time.perf_counter() - started)
    advanced = fine_tune(
        images,
        labels,
        multilabel,
        backbone_name,
        image_size,
        seed,
        regular,
        max(0.0, left),
        progress,
        config,
    )
    return regular, advanced
