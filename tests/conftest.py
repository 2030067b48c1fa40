"""Shared fixtures: real photos, generated images, and one Azurite and one API server
(uvicorn) per test session for the tests that need them."""

from __future__ import annotations

import functools
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from msrest.authentication import ApiKeyCredentials
from PIL import Image

from functions.api.app import create_app
from functions.settings import Settings
from functions.storage.clients import Storage
from tools.azurite import Azurite, free_port, start_azurite
from tools.serve import serve_in_thread

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
FLOWER_PHOTOS = FIXTURES / "flowers"  # the first 20 photos of each class; see its README.md


def jpeg_bytes(
    color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (320, 240)
) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def photo_paths(label: str, count: int, start: int = 0) -> list[Path]:
    """`count` photos of a flower class from the `start`th on, in file-name order."""
    files = sorted((FLOWER_PHOTOS / label).glob("*.jpg"))[start : start + count]
    if len(files) != count:  # the fixtures lack what a test relies on: fail, never skip
        raise FileNotFoundError(f"{FLOWER_PHOTOS / label} lacks photos {start} to {start + count}")
    return files


def real_photos(label: str, count: int, start: int = 0) -> list[bytes]:
    return [path.read_bytes() for path in photo_paths(label, count, start)]


def photo_images(label: str, count: int, start: int = 0) -> list[Image.Image]:
    """The photos decoded to RGB, as the trainer sees them."""
    images = []
    for path in photo_paths(label, count, start):
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    return images


@functools.cache
def registered_functions() -> dict[str, Any]:
    """The functions the Functions host would index (get_functions() may run once a process)."""
    import function_app

    return {f.get_function_name(): f for f in function_app.app.get_functions()}


TRAINING_KEY = "integration-training-key"
PREDICTION_KEY = "integration-prediction-key"
TRAINING_PREFIX = "/customvision/v3.3/training"


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    emulator = start_azurite(None, free_port(), free_port(), free_port())
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def settings(azurite: Azurite) -> Settings:
    return Settings(
        storage_connection_string=azurite.connection_string,
        training_key=TRAINING_KEY,
        prediction_key=PREDICTION_KEY,
        url_allowlist=["127.0.0.0/8", "localhost"],
        url_timeout_seconds=5,
        training_seed=7,  # trained models, and so the accuracy checks, are reproducible
    )


@pytest.fixture(scope="session")
def storage(settings: Settings) -> Storage:
    store = Storage.from_settings(settings)
    store.prepare()
    return store


@pytest.fixture(scope="session")
def endpoint(settings: Settings, storage: Storage) -> Iterator[str]:
    """The API served over real HTTP, as the SDK and browsers reach it."""
    with serve_in_thread(create_app(settings, storage)) as url:
        yield url


@pytest.fixture(scope="session")
def trainer(endpoint: str) -> CustomVisionTrainingClient:
    credentials = ApiKeyCredentials(in_headers={"Training-key": TRAINING_KEY})
    return CustomVisionTrainingClient(endpoint, credentials)


@pytest.fixture()
def http(endpoint: str) -> Iterator[httpx.Client]:
    headers = {"Training-Key": TRAINING_KEY}
    with httpx.Client(base_url=endpoint + TRAINING_PREFIX, headers=headers, timeout=60) as client:
        yield client


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is exactly Custom Vision's error body, with this status and code."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict), body
    assert set(body) == {"code", "message"}, body
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"].strip(), body
    assert "Traceback" not in response.text and 'File "' not in response.text, response.text
    return body


GENERAL_COMPACT = "0732100f-1a38-4e49-a514-c9b44c697ab5"
FLOWERS = ("daisy", "sunflower", "tulip")
TRAIN_PER_FLOWER = 10
PUBLISH_NAME = "flowers-live"


@dataclass(frozen=True)
class PublishedModel:
    """A project trained on real photos (10 per flower) whose iteration is published."""

    project_id: str
    iteration_id: str
    publish_name: str
    tags: dict[str, str]  # flower -> tag id


def held_out_flowers(per_flower: int) -> list[tuple[str, bytes]]:
    """Photos of each flower that the published model was not trained on."""
    return [
        (flower, data)
        for flower in FLOWERS
        for data in real_photos(flower, per_flower, start=TRAIN_PER_FLOWER)
    ]


@pytest.fixture(scope="session")
def published_model(
    trainer: CustomVisionTrainingClient, storage: Storage, settings: Settings
) -> PublishedModel:
    from azure.cognitiveservices.vision.customvision.training.models import (
        ImageFileCreateBatch,
        ImageFileCreateEntry,
    )

    from trainer_job.__main__ import process_one

    project = trainer.create_project(f"predict-{uuid.uuid4().hex[:8]}", domain_id=GENERAL_COMPACT)
    tags = {}
    for flower in FLOWERS:
        tag = trainer.create_tag(project.id, flower)
        tags[flower] = tag.id
        entries = [
            ImageFileCreateEntry(name=f"{flower}{i}.jpg", contents=photo, tag_ids=[tag.id])
            for i, photo in enumerate(real_photos(flower, TRAIN_PER_FLOWER))
        ]
        summary = trainer.create_images_from_files(project.id, ImageFileCreateBatch(images=entries))
        assert summary.is_batch_successful
    iteration = trainer.train_project(project.id)
    while process_one(storage, settings):
        pass
    iteration = trainer.get_iteration(project.id, iteration.id)
    assert iteration.status == "Completed", iteration.training_error_details
    trainer.publish_iteration(project.id, iteration.id, PUBLISH_NAME, "local-prediction-resource")
    return PublishedModel(project.id, iteration.id, PUBLISH_NAME, tags)


@pytest.fixture(scope="session")
def predictor(endpoint: str) -> CustomVisionPredictionClient:
    credentials = ApiKeyCredentials(in_headers={"Prediction-key": PREDICTION_KEY})
    return CustomVisionPredictionClient(endpoint, credentials)
