"""Faults: a killed trainer is retried, repeated failure ends in Failed + poison queue, a
deleted project ends the job cleanly, unreadable images are skipped."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
)

from functions.domain import names
from functions.settings import Settings
from functions.storage.clients import Storage
from tests.conftest import ROOT, jpeg_bytes
from trainer_job.__main__ import process_one

COMPACT = "0732100f-1a38-4e49-a514-c9b44c697ab5"


@pytest.fixture(autouse=True)
def _empty_queue(storage: Storage, settings: Settings) -> None:
    """Jobs other tests of this session left queued are done first: each worker here handles
    one message, which must be this test's."""
    while process_one(storage, settings):
        pass


def _project(trainer: CustomVisionTrainingClient, per_tag: int = 5) -> str:
    project_id = str(trainer.create_project(f"fault-{uuid.uuid4().hex[:8]}", domain_id=COMPACT).id)
    for t, color in enumerate(((220, 30, 30), (30, 30, 220))):
        tag = trainer.create_tag(project_id, f"tag{t}")
        entries = [
            ImageFileCreateEntry(
                name=f"{t}-{i}.jpg",
                contents=jpeg_bytes((color[0], color[1] + i * 9, color[2]), size=(200, 150)),
                tag_ids=[tag.id],
            )
            for i in range(per_tag)
        ]
        trainer.create_images_from_files(project_id, ImageFileCreateBatch(images=entries))
    return project_id


def _wait(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _wait_visible_again(storage: Storage, iteration_id: str) -> None:
    """Until the killed worker's message is on the queue again (visible: its visibility
    timeout has passed), so the next worker finds it."""
    queue = storage.clients.queues.get_queue_client(names.QUEUE_TRAINING)

    def visible() -> bool:
        contents = [m.content for m in queue.peek_messages(max_messages=32)]
        return any(iteration_id in base64.b64decode(c).decode() for c in contents)

    _wait(visible, 60, "the message to become visible again")


def _worker(settings: Settings, max_deliveries: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CV_STORAGE_CONNECTION_STRING": settings.storage_connection_string or "",
        "CV_TRAINER_VISIBILITY_SECONDS": "5",
        "CV_TRAINER_MAX_DELIVERIES": str(max_deliveries),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "trainer_job"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _kill_once_started(
    worker: subprocess.Popen[bytes],
    trainer: CustomVisionTrainingClient,
    project_id: str,
    it: str,
    attempt: int,
) -> None:
    def started() -> bool:
        progress = trainer.get_iteration(project_id, it).additional_properties["progress"]
        return bool(progress["attempt"] == attempt)

    _wait(started, 120, f"a worker to start attempt {attempt}")
    worker.send_signal(signal.SIGKILL)
    worker.wait()


def test_killed_worker_is_retried_then_completes(
    trainer: CustomVisionTrainingClient, settings: Settings, storage: Storage
) -> None:
    project_id = _project(trainer)
    iteration = trainer.train_project(project_id)
    _kill_once_started(_worker(settings, 3), trainer, project_id, iteration.id, attempt=1)
    assert trainer.get_iteration(project_id, iteration.id).status == "Training"

    _wait_visible_again(storage, iteration.id)
    assert _worker(settings, 3).wait(timeout=300) == 0
    finished = trainer.get_iteration(project_id, iteration.id)
    assert finished.status == "Completed", finished.training_error_details
    assert finished.additional_properties["progress"]["attempt"] == 2


def test_repeated_failure_marks_failed_and_poisons(
    trainer: CustomVisionTrainingClient, settings: Settings, storage: Storage
) -> None:
    project_id = _project(trainer)
    iteration = trainer.train_project(project_id)
    for attempt in (1, 2):
        _kill_once_started(_worker(settings, 2), trainer, project_id, iteration.id, attempt)
        _wait_visible_again(storage, iteration.id)
    final = _worker(settings, 2)
    assert final.wait(timeout=120) == 0
    failed = trainer.get_iteration(project_id, iteration.id)
    assert failed.status == "Failed"
    assert "stopped 2 times without finishing" in failed.training_error_details
    poison = storage.clients.queues.get_queue_client(names.QUEUE_TRAINING_POISON)
    contents = [m.content for m in poison.peek_messages(max_messages=32)]
    assert any(iteration.id in base64.b64decode(c).decode() for c in contents)
    # The project is free to train again.
    assert trainer.train_project(project_id, force_train=True).status == "Training"


def test_deleted_project_ends_the_job_cleanly(
    trainer: CustomVisionTrainingClient, settings: Settings, storage: Storage
) -> None:
    project_id = _project(trainer)
    trainer.train_project(project_id)
    trainer.delete_project(project_id)
    while process_one(storage, settings):  # other tests' jobs may be queued too
        pass
    queue = storage.clients.queues.get_queue_client(names.QUEUE_TRAINING)
    assert not [m for m in queue.peek_messages(max_messages=32) if project_id in m.content]
    assert storage.iterations.list(project_id) == []


def test_unreadable_images_are_skipped_and_counted(
    trainer: CustomVisionTrainingClient, settings: Settings, storage: Storage
) -> None:
    project_id = _project(trainer, per_tag=6)
    victim = trainer.get_tagged_images(project_id, take=1)[0].id
    storage.blobs.put(
        names.CONTAINER_IMAGES,
        names.image_blob_path(project_id, victim, "resized"),
        b"not an image any more",
        "image/jpeg",
    )
    iteration = trainer.train_project(project_id)
    while process_one(storage, settings):
        pass
    finished = trainer.get_iteration(project_id, iteration.id)
    assert finished.status == "Completed"
    assert "1 unreadable images were skipped" in finished.training_error_details
    assert trainer.get_image_performance_count(project_id, iteration.id) == 11


assert Path(ROOT).is_dir()


def test_advanced_training_records_what_it_kept(
    trainer: CustomVisionTrainingClient, settings: Settings, storage: Storage
) -> None:
    import json

    from functions.domain import artifacts

    project_id = _project(trainer, per_tag=6)
    iteration = trainer.train_project(project_id, training_type="Advanced")
    assert iteration.training_type == "Advanced"
    assert iteration.reserved_budget_in_hours == 1  # the default budget
    while process_one(storage, settings):
        pass
    finished = trainer.get_iteration(project_id, iteration.id)
    assert finished.status == "Completed", finished.training_error_details
    raw = storage.blobs.get(
        names.CONTAINER_MODELS,
        artifacts.artifact_path(project_id, iteration.id, artifacts.MANIFEST),
    )
    assert raw is not None
    manifest = artifacts.ModelManifest.from_dict(json.loads(raw))
    assert manifest.version == artifacts.MANIFEST_VERSION and manifest.advanced is not None
    assert "out of fold" in manifest.evaluation  # says how the served model was chosen
    advanced = manifest.advanced
    assert advanced["kept"] in ("Regular", "FineTuned")
    assert advanced["heldOutImages"] >= 2
    # The decision is recorded: the paired comparison and each fold's epochs, chosen out of fold.
    comparison = advanced["comparison"]
    assert comparison["better"] == (advanced["kept"] == "FineTuned")
    assert comparison["images"] == advanced["heldOutImages"]
    assert len(advanced["foldEpochs"]) == advanced["folds"]
    # A kept fine-tuning is trained again on every image before it is served.
    images = trainer.get_image_count(project_id)
    assert advanced["refitImages"] == (images if advanced["kept"] == "FineTuned" else 0)
    assert trainer.get_iteration_performance(project_id, iteration.id).precision >= 0.0
