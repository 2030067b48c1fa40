"""Object detection end to end with the official SDKs, on fixture photos with boxes: train
through the queue (the trainer in-process, as the container job runs it), the iteration's
files, performance at both thresholds, publish, detect (stored, not stored, by URL), and the
refusals of classify on a detector and of detect on a classifier."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from azure.cognitiveservices.vision.customvision.prediction.models import (
    CustomVisionErrorException,
)
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    Region,
)
from PIL import Image

from functions.domain import artifacts
from functions.domain.detection_decode import decode
from functions.domain.detection_evaluation import DetectionEvaluation
from functions.settings import Settings
from functions.storage.clients import Storage
from tests.detection_data import detection_set
from trainer_job.__main__ import process_one
from trainer_job.tasks.detection import train as detection_train

COMPACT_DETECTION = "a27d5ca5-bb19-49d8-a70a-fec086c47f5b"


def test_train_evaluate_publish_and_detect(
    trainer: CustomVisionTrainingClient,
    predictor: CustomVisionPredictionClient,
    storage: Storage,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(detection_train, "QUICK_SECONDS", 12.0)
    project = trainer.create_project(f"od-job-{uuid.uuid4().hex[:8]}", domain_id=COMPACT_DETECTION)
    tag = trainer.create_tag(project.id, "raccoon")
    photos = detection_set("raccoon")[:15]  # Custom Vision's minimum per tag
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
    iteration_id = trainer.train_project(project.id).id
    while process_one(storage, settings):
        pass
    iteration = trainer.get_iteration(project.id, iteration_id)
    assert iteration.status == "Completed", iteration.training_error_details
    _check_files(storage, project.id, iteration_id, tag.id, photos[0].path)
    _check_performance(trainer, project.id, iteration_id, tag.id)
    trainer.publish_iteration(project.id, iteration_id, "detector", "local")
    _check_detect(predictor, project.id, photos[0].path, tag.id)
    trainer.delete_project(project.id)


def _check_files(
    storage: Storage, project_id: str, iteration_id: str, tag_id: str, photo: Path
) -> None:

    def read(name: str) -> bytes:
        data = storage.blobs.get("models", artifacts.artifact_path(project_id, iteration_id, name))
        assert data is not None, name
        return data

    manifest = artifacts.ModelManifest.from_dict(json.loads(read(artifacts.MANIFEST)))
    assert manifest.task == artifacts.DETECTION and manifest.boxes_name == "boxes"
    assert manifest.preprocessing.size == 320 and manifest.preprocessing.crop == "none"
    assert [label["name"] for label in manifest.labels] == ["raccoon"]

    evaluation = DetectionEvaluation.from_arrays(
        [tag_id], np.load(io.BytesIO(read(artifacts.EVALUATION)))
    )
    assert len(evaluation.images) == 3  # one photo in five held out
    assert sum(len(i.labelled) for i in evaluation.images) >= 2
    metrics = json.loads(read(artifacts.METRICS))
    recomputed = evaluation.metrics(0.5, 0.3)
    assert metrics["averagePrecision"] == pytest.approx(recomputed.mean_average_precision)
    assert metrics["perTag"][0]["recall"] == pytest.approx(recomputed.per_tag[tag_id].recall)

    session = onnxruntime.InferenceSession(
        read(artifacts.MODEL), providers=["CPUExecutionProvider"]
    )
    with Image.open(photo) as image:
        batch = manifest.preprocessing(image)[None]
    boxes, scores = session.run(["boxes", "scores"], {"image": batch})
    assert boxes.shape[-1] == 4 and scores.shape[-1] == 1 and boxes.shape[1] == scores.shape[1]
    found = decode(boxes[0], scores[0], score_threshold=0.0, max_detections=5)
    assert len(found.scores) == 5 and np.all(found.boxes[:, 2:] >= 0)
    assert np.all(found.boxes[:, :2] >= 0) and np.all(
        found.boxes[:, :2] + found.boxes[:, 2:] <= 1 + 1e-6
    )


def _check_performance(
    trainer: CustomVisionTrainingClient, project_id: str, iteration_id: str, tag_id: str
) -> None:
    default = trainer.get_iteration_performance(project_id, iteration_id)
    strict = trainer.get_iteration_performance(
        project_id, iteration_id, threshold=0.5, overlap_threshold=0.9
    )
    assert [t.id for t in default.per_tag_performance] == [tag_id]
    assert 0 <= default.average_precision <= 1 and 0 <= default.recall <= 1
    assert strict.recall <= default.recall  # a stricter overlap never finds more boxes
    everything = trainer.get_iteration_performance(
        project_id, iteration_id, threshold=0.0, overlap_threshold=0.0
    )
    assert everything.recall == 1.0  # any box touching a labelled one counts, at overlap 0
    assert trainer.get_image_performance_count(project_id, iteration_id) == 3
    held = trainer.get_image_performances(project_id, iteration_id)
    assert all(p.regions for p in held)  # the labelled boxes beside the predicted ones
    for image in held:
        scores = [p.probability for p in image.predictions]
        assert scores == sorted(scores, reverse=True)
        assert all(p.bounding_box is not None for p in image.predictions)


def _check_detect(
    predictor: CustomVisionPredictionClient, project_id: str, photo: Path, tag_id: str
) -> None:
    with photo.open("rb") as data:
        stored = predictor.detect_image(project_id, "detector", data)
    assert stored.predictions and all(p.tag_id == tag_id for p in stored.predictions)
    probabilities = [p.probability for p in stored.predictions]
    assert probabilities == sorted(probabilities, reverse=True) and len(probabilities) <= 100
    for p in stored.predictions:
        b = p.bounding_box
        assert b.left >= 0 and b.top >= 0 and b.width >= 0 and b.height >= 0
        assert b.left + b.width <= 1 + 1e-5 and b.top + b.height <= 1 + 1e-5
    with photo.open("rb") as data:
        again = predictor.detect_image_with_no_store(project_id, "detector", data)
    assert [p.probability for p in again.predictions] == pytest.approx(probabilities, abs=1e-6)
    with photo.open("rb") as data, pytest.raises(CustomVisionErrorException) as refused:
        predictor.classify_image(project_id, "detector", data)
    assert refused.value.error.code == "BadRequestNotSupported"
