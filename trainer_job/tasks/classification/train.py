"""The classification task of a job: load the tagged images, build the spec, train the recipe,
export and verify the graph, and return the iteration's files."""

from __future__ import annotations

import time

import numpy as np

from functions.domain.models import ClassificationType, TrainingType
from trainer_job.feature_cache import FeatureCache
from trainer_job.ml.export import export_verified
from trainer_job.ml.spec import TrainingSpec
from trainer_job.tasks import TaskOutput, TaskRun
from trainer_job.tasks.classification import artifacts, recipe
from trainer_job.tasks.classification.dataset import load_training_set, split_seed


def train(run: TaskRun) -> TaskOutput:
    job, domain, progress = run.job, run.domain, run.progress
    progress("Loading images", 0.05)
    data = load_training_set(
        run.storage, job.project_id, run.classification_type, job.selected_tag_ids
    )
    if len(data.image_ids) < 2 or len(data.tags) < 2:
        raise ValueError(
            f"Too few usable images ({len(data.image_ids)}) or tags ({len(data.tags)}) to train."
        )
    spec = TrainingSpec.create(
        data.images,
        data.labels,
        multilabel=run.classification_type is ClassificationType.MULTILABEL,
        backbone=domain.backbone,
        image_size=domain.image_size,
        seed=job.seed,
        budget_seconds=job.reserved_budget_in_hours * 3600,
        split_seed=split_seed(data.image_ids),
    )
    cache = FeatureCache(run.storage, job.project_id, domain.backbone)
    known = cache.load(data.image_ids, recipe.DEFAULT_VIEWS)
    progress(f"Computing features ({len(data.image_ids) - len(known)} new images)", 0.15)
    advanced = None
    if job.training_type == TrainingType.ADVANCED.value:
        result, advanced = recipe.train_advanced(
            spec,
            known_features=known,
            progress=lambda stage, done: progress(stage, 0.15 + 0.7 * done),
        )
        net = advanced.net
    else:
        result = recipe.train_regular(spec, known_features=known)
        net = recipe.build_classifier(result.backbone, result.head)
    cache.save({data.image_ids[i]: result.features[i] for i in result.computed_indices})
    progress("Exporting the model", 0.85)
    preprocessing = spec.model.preprocessing
    sample = np.stack([preprocessing(image) for image in data.images[:4]])
    model = export_verified(net, sample, preprocessing.size)
    elapsed = time.monotonic() - run.started
    files = artifacts.iteration_files(run, spec, data, result, model, elapsed, advanced)
    return TaskOutput(files, elapsed, artifacts.skipped_note(data))
