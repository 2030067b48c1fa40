"""The training recipes in memory: Regular (features, cross-validation, final head) and
Advanced (Regular, then fine-tuning in the time left: finetune.py)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
from PIL import Image

from trainer_job.ml.backbone import load_backbone, part_dims, stacked
from trainer_job.ml.export import ClassifierNet, build_classifier, export_onnx, verify_onnx
from trainer_job.ml.features import DEFAULT_VIEWS, compute_features
from trainer_job.ml.head import train_head
from trainer_job.ml.spec import ModelSpec, TrainingSpec
from trainer_job.tasks.classification.evaluate import cross_validate
from trainer_job.tasks.classification.finetune import fine_tune
from trainer_job.tasks.classification.results import AdvancedResult, Progress, RegularResult
from trainer_job.tasks.classification.tuner import FineTuneConfig

__all__ = [
    "DEFAULT_VIEWS",
    "ClassifierNet",
    "RegularResult",
    "build_classifier",
    "export_onnx",
    "features_for",
    "train_advanced",
    "train_regular",
    "verify_onnx",
]


def features_for(
    images: Sequence[Image.Image], known: Mapping[int, np.ndarray], model: ModelSpec
) -> tuple[np.ndarray, list[int]]:
    """Features (N, views, D) of `images`, taking row i from `known[i]` (a (views, D) array)
    where given and computing the rest; also returns the indices computed."""
    views = model.views
    missing = [i for i in range(len(images)) if i not in known]
    extractor = load_backbone(model.backbone) if missing else None
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
            model.preprocessing,
            views=views,
            seed=model.seed,
            indices=missing,
        )
        result[missing] = computed
    return result, missing


def train_regular(
    spec: TrainingSpec, known_features: Mapping[int, np.ndarray] | None = None
) -> RegularResult:
    """Features of every image (reusing `known_features`), cross-validated out-of-fold
    probabilities and the head's setting they choose (L2 penalty, training views, backbones:
    the primary alone or every backbone of a stacked name), and the final head trained on all
    images with that setting."""
    data = spec.data
    timings: dict[str, float] = {}
    started = time.perf_counter()
    features, computed = features_for(data.images, known_features or {}, spec.model)
    timings["features"] = time.perf_counter() - started
    started = time.perf_counter()
    widths = part_dims(spec.model.backbone)
    validation = cross_validate(
        features, data.labels, data.multilabel, data.split_seed, widths=widths
    )
    timings["crossValidation"] = time.perf_counter() - started
    started = time.perf_counter()
    inputs = validation.inputs(features)
    head = train_head(inputs, data.labels, data.multilabel, seed=spec.model.seed, l2=validation.l2)
    timings["head"] = time.perf_counter() - started
    return RegularResult(
        backbone=stacked(spec.model.backbone, validation.parts),
        head=head,
        cross_validation=validation,
        features=features,
        computed_indices=computed,
        multilabel=data.multilabel,
        timings={k: round(v, 3) for k, v in timings.items()},
    )


def train_advanced(
    spec: TrainingSpec,
    known_features: Mapping[int, np.ndarray] | None = None,
    progress: Progress | None = None,
    config: FineTuneConfig = FineTuneConfig(),
) -> tuple[RegularResult, AdvancedResult]:
    """`train_regular` (reusing `known_features`), then `fine_tune` for the rest of the spec's
    budget (which counts the Regular part too).

    Serve `advanced.net` (the fine-tuned network, or the Regular one when fine-tuning did not
    beat it out of fold); report metrics from `regular.probabilities` / `regular.folds`
    (the Regular cross-validation) and the out-of-fold comparison from `advanced`.
    """
    started = time.perf_counter()
    regular = train_regular(spec, known_features)
    if regular.cross_validation.views < 2:  # the mirror image hurt the head: no mirror here
        config = replace(config, mirror=False)
    left = spec.model.budget_seconds - (time.perf_counter() - started)
    advanced = fine_tune(spec, regular, max(0.0, left), progress, config)
    return regular, advanced
