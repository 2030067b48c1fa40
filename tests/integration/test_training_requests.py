"""Training requests: Custom Vision's validation, one iteration per race, the queued job."""

from __future__ import annotations

import base64
import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    CustomVisionErrorException,
    ImageFileCreateBatch,
    ImageFileCreateEntry,
)

from functions.domain import names
from functions.storage.clients import Storage
from tests.conftest import jpeg_bytes


def _project_with_images(
    trainer: CustomVisionTrainingClient, per_tag: int, tags: int = 2, kind: str = "Multiclass"
) -> tuple[str, list[str]]:
    project_id = str(
        trainer.create_project(f"train-{uuid.uuid4().hex[:8]}", classification_type=kind).id
    )
    tag_ids = []
    for t in range(tags):
        tag = trainer.create_tag(project_id, f"tag{t}")
        tag_ids.append(tag.id)
        entries = [
            ImageFileCreateEntry(
                name=f"{t}-{i}.jpg", contents=jpeg_bytes((t * 90, i * 20, 40)), tag_ids=[tag.id]
            )
            for i in range(per_tag)
        ]
        trainer.create_images_from_files(project_id, ImageFileCreateBatch(images=entries))
    return project_id, tag_ids


def _drain(storage: Storage) -> list[dict[str, object]]:
    queue = storage.clients.queues.get_queue_client(names.QUEUE_TRAINING)
    found = []
    for message in queue.receive_messages(max_messages=32, visibility_timeout=1):
        found.append(json.loads(base64.b64decode(message.content)))
        queue.delete_message(message)
    return found


def test_too_few_images_per_tag(trainer: CustomVisionTrainingClient) -> None:
    project_id, _ = _project_with_images(trainer, per_tag=4)
    with pytest.raises(CustomVisionErrorException) as error:
        trainer.train_project(project_id)
    assert error.value.error.code == "BadRequestMultiClassClassificationTrainingValidationFailed"
    assert "at least 5 images" in error.value.error.message
    assert trainer.get_iterations(project_id) == []


def test_no_tags(trainer: CustomVisionTrainingClient) -> None:
    project_id = trainer.create_project(
        f"empty-{uuid.uuid4().hex[:8]}", classification_type="Multilabel"
    ).id
    with pytest.raises(CustomVisionErrorException) as error:
        trainer.train_project(project_id)
    assert error.value.error.code == "BadRequestMultiLabelClassificationTrainingValidationFailed"


def test_queued_job_then_in_progress_then_one_iteration_per_race(
    trainer: CustomVisionTrainingClient, storage: Storage, http: httpx.Client
) -> None:
    project_id, _ = _project_with_images(trainer, per_tag=5)
    racers = 4
    with ThreadPoolExecutor(max_workers=racers) as pool:
        responses = list(
            pool.map(lambda _: http.post(f"/projects/{project_id}/train"), range(racers))
        )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [400] * (racers - 1), [r.text for r in responses]
    refused = [r.json()["code"] for r in responses if r.status_code == 400]
    assert set(refused) == {"BadRequestTrainingAlreadyInProgress"}
    iterations = trainer.get_iterations(project_id)
    assert len(iterations) == 1
    iteration = iterations[0]
    assert iteration.status == "Training"
    assert iteration.training_type == "Regular"
    assert iteration.classification_type == "Multiclass"
    raw = http.get(f"/projects/{project_id}/iterations/{iteration.id}").json()
    assert raw["progress"] == {"stage": "Queued", "fraction": 0.0, "attempt": 0}

    jobs = [j for j in _drain(storage) if j["project_id"] == project_id]
    assert len(jobs) == 1
    assert jobs[0]["iteration_id"] == iteration.id
    assert jobs[0]["training_type"] == "Regular"

    with pytest.raises(CustomVisionErrorException) as error:
        trainer.delete_iteration(project_id, iteration.id)
    assert error.value.error.code == "BadRequestTrainingAlreadyInProgress"


def test_unknown_iteration_and_bad_parameters(
    trainer: CustomVisionTrainingClient, http: httpx.Client
) -> None:
    project_id, _ = _project_with_images(trainer, per_tag=5)
    with pytest.raises(CustomVisionErrorException) as error:
        trainer.get_iteration(project_id, str(uuid.uuid4()))
    assert error.value.error.code == "NotFoundIteration"
    bad_type = http.post(f"/projects/{project_id}/train?trainingType=Quantum")
    assert bad_type.status_code == 400
    bad_email = http.post(f"/projects/{project_id}/train?notificationEmailAddress=nope")
    assert bad_email.json()["code"] == "BadRequestInvalidEmailAddress"
    unknown_tag = http.post(
        f"/projects/{project_id}/train", json={"selectedTags": [str(uuid.uuid4())]}
    )
    assert unknown_tag.json()["code"] == "NotFoundTag"
    assert trainer.get_iterations(project_id) == []
