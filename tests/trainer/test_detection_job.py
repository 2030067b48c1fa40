"""The trainer's detection task, end to end through the queue on fixture photos with boxes:
the iteration completes, and its files are what the service will read (manifest, graph,
labels, metrics at 0.5/0.3, held-out predictions)."""

from __future__ import annotations

import io
import json
import uuid

import numpy as np
import onnxruntime
import pytest
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    Region,
)
from PIL import Image

from functions.domain import artifacts
from functions.domain.clock import utcnow
from functions.domain.detection_decode import decode
from functions.domain.detection_evaluation import DetectionEvaluation
from functions.domain.models import ClassificationType, Iteration, IterationStatus, TrainingType
from functions.services.training import TrainingService
from functions.settings import Settings
from functions.storage.clients import Storage
from tests.detection_data import detection_set
from trainer_job.__main__ import process_one
from trainer_job.tasks.detection import train as detection_train

COMPACT_DETECTION = "a27d5ca5-bb19-49d8-a70a-fec086c47f5b"


def _queue_training(storage: Storage, project_id: str) -> str:
    """What POST /train will do once detectors are served (the API refuses it until then)."""
    now = utcnow()
    iteration = Iteration(
        id=str(uuid.uuid4()), name="Iteration 1", status=IterationStatus.TRAINING,
        created=now, last_modified=now, domain_id=COMPACT_DETECTION,
        classification_type=ClassificationType.MULTICLASS, training_type=TrainingType.REGULAR,
        reserved_budget_in_hours=0, seed=7,
    )  # fmt: skip
    TrainingService(storage)._queue(project_id, iteration)
    return iteration.id


def test_a_detection_job_trains_and_writes_what_the_service_reads(
    trainer: CustomVisionTrainingClient,
    storage: Storage,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(detection_train, "QUICK_SECONDS", 12.0)
    project = trainer.create_project(f"od-job-{uuid.uuid4().hex[:8]}", domain_id=COMPACT_DETECTION)
    tag = trainer.create_tag(project.id, "raccoon")
    photos = detection_set("raccoon")[:10]
    entries = [
        ImageFileCreateEntry(
            name=p.path.name,
            contents=p.path.read_bytes(),
            regions=[
                Region(tag_id=tag.id, left=x, top=y, width=w, height=h)
                for _, x, y, w, h in p.regions
            ],
        )
        for p in photos
    ]
    assert trainer.create_images_from_files(
        project.id, ImageFileCreateBatch(images=entries)
    ).is_batch_successful
    iteration_id = _queue_training(storage, project.id)
    while process_one(storage, settings):
        pass
    iteration = trainer.get_iteration(project.id, iteration_id)
    assert iteration.status == "Completed", iteration.training_error_details

    def read(name: str) -> bytes:
        data = storage.blobs.get("models", artifacts.artifact_path(project.id, iteration_id, name))
        assert data is not None, name
        return data

    manifest = artifacts.ModelManifest.from_dict(json.loads(read(artifacts.MANIFEST)))
    assert manifest.task == artifacts.DETECTION and manifest.boxes_name == "boxes"
    assert manifest.preprocessing.size == 320 and manifest.preprocessing.crop == "none"
    assert [label["name"] for label in manifest.labels] == ["raccoon"]

    evaluation = DetectionEvaluation.from_arrays(
        [tag.id], np.load(io.BytesIO(read(artifacts.EVALUATION)))
    )
    assert len(evaluation.images) == 2  # one photo in five held out
    assert sum(len(i.labelled) for i in evaluation.images) >= 2
    metrics = json.loads(read(artifacts.METRICS))
    recomputed = evaluation.metrics(0.5, 0.3)
    assert metrics["averagePrecision"] == pytest.approx(recomputed.mean_average_precision)
    assert metrics["perTag"][0]["recall"] == pytest.approx(recomputed.per_tag[tag.id].recall)

    session = onnxruntime.InferenceSession(
        read(artifacts.MODEL), providers=["CPUExecutionProvider"]
    )
    with Image.open(photos[0].path) as image:
        batch = manifest.preprocessing(image)[None]
    boxes, scores = session.run(["boxes", "scores"], {"image": batch})
    assert boxes.shape[-1] == 4 and scores.shape[-1] == 1 and boxes.shape[1] == scores.shape[1]
    found = decode(boxes[0], scores[0], score_threshold=0.0, max_detections=5)
    assert len(found.scores) == 5 and np.all(found.boxes[:, 2:] >= 0)
    assert np.all(found.boxes[:, :2] >= 0) and np.all(
        found.boxes[:, :2] + found.boxes[:, 2:] <= 1 + 1e-6
    )
