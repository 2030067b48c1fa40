"""The official SDK trains a real model on real photos, end to end through the queue.

The trainer runs in-process (`process_one`), exactly the code a Container Apps Job runs.
"""

from __future__ import annotations

import io
import json
import uuid

import numpy as np
import onnxruntime
import pytest
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    CustomVisionErrorException,
    ImageFileCreateBatch,
    ImageFileCreateEntry,
)
from PIL import Image

from functions.domain import artifacts, names
from functions.domain.preprocessing import Preprocessing
from functions.settings import Settings
from functions.storage.clients import Storage
from tests.conftest import real_photos
from trainer_job.__main__ import process_one

GENERAL_COMPACT = "0732100f-1a38-4e49-a514-c9b44c697ab5"
CLASSES = ("daisy", "sunflower", "tulip")


def _upload(trainer: CustomVisionTrainingClient, project_id: str, per_class: int) -> dict[str, str]:
    tags = {}
    for name in CLASSES:
        tag = trainer.create_tag(project_id, name)
        tags[name] = tag.id
        entries = [
            ImageFileCreateEntry(name=f"{name}{i}.jpg", contents=photo, tag_ids=[tag.id])
            for i, photo in enumerate(real_photos(name, per_class))
        ]
        summary = trainer.create_images_from_files(project_id, ImageFileCreateBatch(images=entries))
        assert summary.is_batch_successful
    return tags


def test_train_evaluate_publish_and_artifacts(
    trainer: CustomVisionTrainingClient, storage: Storage, settings: Settings
) -> None:
    project = trainer.create_project(f"e2e-{uuid.uuid4().hex[:8]}", domain_id=GENERAL_COMPACT)
    tags = _upload(trainer, project.id, per_class=8)

    iteration = trainer.train_project(project.id)
    assert iteration.status == "Training"
    while process_one(storage, settings):
        pass
    iteration = trainer.get_iteration(project.id, iteration.id)
    assert iteration.status == "Completed", iteration.training_error_details
    assert iteration.exportable and "ONNX" in iteration.exportable_to
    assert iteration.trained_at is not None

    performance = trainer.get_iteration_performance(project.id, iteration.id)
    assert {t.name for t in performance.per_tag_performance} == set(CLASSES)
    assert 0.0 <= performance.precision <= 1.0 and 0.0 <= performance.recall <= 1.0
    assert performance.average_precision > 0.5  # three distinct flowers: far above chance
    strict = trainer.get_iteration_performance(project.id, iteration.id, threshold=0.99)
    assert strict.recall <= performance.recall

    count = trainer.get_image_performance_count(project.id, iteration.id)
    assert count == 24
    daisies = trainer.get_image_performances(project.id, iteration.id, tag_ids=[tags["daisy"]])
    assert len(daisies) == 8
    first = daisies[0]
    assert [p.probability for p in first.predictions] == sorted(
        (p.probability for p in first.predictions), reverse=True
    )
    assert sum(p.probability for p in first.predictions) == pytest.approx(1.0, abs=1e-4)
    assert first.tags[0].tag_name == "daisy"

    # Artifacts: the ONNX model runs in onnxruntime with the manifest's preprocessing.
    def artifact(name: str) -> bytes:
        data = storage.blobs.get(
            names.CONTAINER_MODELS, artifacts.artifact_path(project.id, iteration.id, name)
        )
        assert data is not None, name
        return data

    manifest = json.loads(artifact(artifacts.MANIFEST))
    labels = json.loads(artifact(artifacts.LABELS))
    assert manifest["backbone"] == "efficientnet-lite0"
    assert manifest["preprocessing"]["size"] == 224
    assert manifest["imageCount"] == 24
    session = onnxruntime.InferenceSession(artifact(artifacts.MODEL))
    preprocessing = Preprocessing.from_manifest(manifest["preprocessing"])
    (photo,) = real_photos("sunflower", 1, start=19)  # not among the training images
    tensor = preprocessing(Image.open(io.BytesIO(photo)))[None]
    (probabilities,) = session.run(None, {"image": tensor})
    assert [label["name"] for label in labels] == sorted(CLASSES)
    assert probabilities.shape == (1, 3)
    assert labels[int(np.argmax(probabilities))]["name"] == "sunflower"

    # Publish, unpublish, rename, and the rules around them.
    assert trainer.publish_iteration(project.id, iteration.id, "flowers", "local") is True
    assert trainer.get_iteration(project.id, iteration.id).publish_name == "flowers"
    with pytest.raises(CustomVisionErrorException) as error:
        trainer.delete_iteration(project.id, iteration.id)
    assert error.value.error.code == "BadRequestIterationIsPublished"
    trainer.unpublish_iteration(project.id, iteration.id)
    with pytest.raises(CustomVisionErrorException) as error:
        trainer.unpublish_iteration(project.id, iteration.id)
    assert error.value.error.code == "BadRequestIterationNotPublished"
    renamed = trainer.update_iteration(project.id, iteration.id, "first flowers")
    assert renamed.name == "first flowers"

    # Nothing changed: a second training is refused unless forced.
    with pytest.raises(CustomVisionErrorException) as error:
        trainer.train_project(project.id)
    assert error.value.error.code == "BadRequestTrainingNotNeeded"

    trainer.delete_iteration(project.id, iteration.id)
    assert trainer.get_iterations(project.id) == []
    assert (
        storage.blobs.get(
            names.CONTAINER_MODELS,
            artifacts.artifact_path(project.id, iteration.id, artifacts.MODEL),
        )
        is None
    )
