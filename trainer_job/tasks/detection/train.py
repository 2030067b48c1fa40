"""The detection task of a job: load the images with regions, measure a detector on held-out
photos, train the served one on every photo, export and verify its graph, return the files.

Evaluation is a held-out split, not cross-validation: a detector costs minutes to train, and
k folds would cost k trainings. One photo in `HOLD_OUT` (chosen by the job's seed, never all of
a tag's) is held out; a first detector, trained on the rest with `EVALUATION_SHARE` of the
budget, predicts them: those predictions are the iteration's evaluation. The served detector
starts from that one's weights and goes on training on every photo with the rest of the
budget, so the figures are, if anything, pessimistic: they describe an earlier state of the
served model, with less data and less training.
"""

from __future__ import annotations

import random
import time
from dataclasses import replace

import numpy as np

from functions.domain.artifacts import BOXES_NAME, SCORES_NAME
from functions.domain.detection_evaluation import DetectionEvaluation, ImageBoxes
from functions.domain.detection_metrics import LabelledBox, PredictedBox
from functions.domain.models import TrainingType
from functions.domain.preprocessing import Preprocessing
from trainer_job.ml.export import export_verified
from trainer_job.tasks import TaskOutput, TaskRun
from trainer_job.tasks.detection import artifacts
from trainer_job.tasks.detection.data import input_tensor
from trainer_job.tasks.detection.dataset import DetectionSet, load_detection_set
from trainer_job.tasks.detection.fit import FitConfig, fit, predict
from trainer_job.tasks.detection.model import DenseDetector, Detector

HOLD_OUT = 5  # one photo in five is held out for the evaluation
EVALUATION_SHARE = 0.4  # of the budget, for the detector that is evaluated
QUICK_SECONDS = 240.0  # a Regular (Quick) training's budget, both detectors together
EVALUATION_SCORE_FLOOR = 0.01  # held-out predictions kept, so that AP sees the low ones too


def held_out(data: DetectionSet, seed: int) -> list[int]:
    """Indices of the held-out photos: every HOLD_OUT-th in a seeded order, skipping a photo
    whose tags would be left with no training photo."""
    order = list(range(len(data.photos)))
    random.Random(seed).shuffle(order)
    remaining = {t: sum(t in p.tags for p in data.photos) for t in range(len(data.tags))}
    chosen = []
    for position, index in enumerate(order):
        tags = set(int(t) for t in data.photos[index].tags)
        if position % HOLD_OUT == 0 and all(remaining[t] > 1 for t in tags):
            chosen.append(index)
            for t in tags:
                remaining[t] -= 1
    return sorted(chosen)


def evaluation_of(
    data: DetectionSet, held: list[int], config: FitConfig
) -> tuple[DetectionEvaluation, Detector]:
    """Train on the photos not held out; the held-out photos' predictions and labelled boxes,
    and the detector that made them."""
    train_photos = [p for i, p in enumerate(data.photos) if i not in set(held)]
    model = fit(train_photos, len(data.tags), config).model
    found = predict(
        model, [data.photos[i].image for i in held], score_threshold=EVALUATION_SCORE_FLOOR
    )
    tag_ids = [t.id for t in data.tags]
    images = []
    for index, detections in zip(held, found, strict=True):
        photo = data.photos[index]
        predicted = [
            PredictedBox(tag_ids[int(c)], float(s), *(float(v) for v in b))
            for b, s, c in zip(detections.boxes, detections.scores, detections.classes, strict=True)
        ]
        labelled = [
            LabelledBox(tag_ids[int(t)], *(float(v) for v in b))
            for b, t in zip(photo.boxes, photo.tags, strict=True)
        ]
        images.append(ImageBoxes(data.image_ids[index], predicted, labelled))
    return DetectionEvaluation(tag_ids, images), model


def train(run: TaskRun) -> TaskOutput:
    job, domain, progress = run.job, run.domain, run.progress
    progress("Loading images", 0.05)
    data = load_detection_set(run.storage, job.project_id, job.selected_tag_ids)
    if len(data.photos) < 2 or not data.tags:
        raise ValueError(f"Too few usable images ({len(data.photos)}) with regions to train.")
    advanced = job.training_type == TrainingType.ADVANCED.value
    budget = job.reserved_budget_in_hours * 3600.0 if advanced else QUICK_SECONDS
    base = FitConfig(backbone=domain.backbone, image_size=domain.image_size, seed=job.seed)
    held = held_out(data, job.seed)
    progress(f"Training a detector to evaluate ({len(held)} photos held out)", 0.1)
    evaluation, evaluated = evaluation_of(
        data, held, replace(base, budget_seconds=budget * EVALUATION_SHARE)
    )
    progress("Training the detector on every photo", 0.45)
    rest = replace(base, budget_seconds=budget * (1 - EVALUATION_SHARE))
    model = fit(data.photos, len(data.tags), rest, start=evaluated).model
    progress("Exporting the model", 0.9)
    dense = DenseDetector(model.cpu().float()).eval()
    sample = np.stack([input_tensor(p.image, domain.image_size).numpy() for p in data.photos[:2]])
    verified = export_verified(dense, sample, domain.image_size, (BOXES_NAME, SCORES_NAME))
    elapsed = time.monotonic() - run.started
    files = artifacts.iteration_files(
        run, data, evaluation, verified, Preprocessing.stretched(domain.image_size), elapsed
    )
    note = (
        f"{len(data.skipped_unreadable)} unreadable images were skipped."
        if data.skipped_unreadable
        else None
    )
    return TaskOutput(files, elapsed, note)
