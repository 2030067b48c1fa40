"""Custom Vision's per-project and per-image limits, with its error codes.

The real limits (100,000 images, 500 tags, 100 tags per image) are lowered here so the tests
stay fast; the code paths are the same.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    CustomVisionErrorException,
    ImageTagCreateEntry,
)

from functions.services import images as image_service
from functions.services import tags as tag_service
from tests.conftest import jpeg_bytes


def _project(trainer: CustomVisionTrainingClient) -> str:
    return str(trainer.create_project(f"limits-{uuid.uuid4().hex[:8]}").id)


def test_tags_per_project(
    trainer: CustomVisionTrainingClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tag_service, "MAX_TAGS_PER_PROJECT", 3)
    project_id = _project(trainer)
    for i in range(3):
        trainer.create_tag(project_id, f"t{i}")
    with pytest.raises(CustomVisionErrorException) as error:
        trainer.create_tag(project_id, "one-too-many")
    assert error.value.error.code == "BadRequestExceedTagPerProjectLimit"
    assert len(trainer.get_tags(project_id)) == 3


def test_images_per_project(
    trainer: CustomVisionTrainingClient, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(image_service, "MAX_IMAGES_PER_PROJECT", 2)
    project_id = _project(trainer)
    files = [(f"f{i}", (f"{i}.jpg", jpeg_bytes((i * 60, 0, 0)), "image/jpeg")) for i in range(3)]
    response = http.post(f"/projects/{project_id}/images", files=files)
    assert response.status_code == 207
    statuses = [i["status"] for i in response.json()["images"]]
    assert statuses == ["OK", "OK", "ErrorLimitExceed"]
    assert trainer.get_image_count(project_id) == 2


def test_tags_per_image(
    trainer: CustomVisionTrainingClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(image_service, "MAX_TAGS_PER_IMAGE", 2)
    project_id = _project(trainer)
    tags = [trainer.create_tag(project_id, f"t{i}").id for i in range(3)]
    image = trainer.create_images_from_data(project_id, jpeg_bytes()).images[0].image
    result = trainer.create_image_tags(
        project_id, [ImageTagCreateEntry(image_id=image.id, tag_id=t) for t in tags]
    )
    assert len(result.created) == 2
    assert [(e.image_id, e.tag_id) for e in result.exceeded] == [(image.id, tags[2])]
    stored = trainer.get_images_by_ids(project_id, [image.id])[0]
    assert {t.tag_id for t in stored.tags} == set(tags[:2])


def test_tags_per_upload_entry(
    trainer: CustomVisionTrainingClient, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(image_service, "MAX_TAGS_PER_ENTRY", 2)
    project_id = _project(trainer)
    tags = [trainer.create_tag(project_id, f"t{i}").id for i in range(3)]
    body = {"images": [{"name": "a.jpg", "contents": _b64(jpeg_bytes()), "tagIds": tags}]}
    response = http.post(f"/projects/{project_id}/images/files", json=body)
    assert response.status_code == 207
    assert response.json()["images"][0]["status"] == "ErrorTagLimitExceed"
    assert trainer.get_image_count(project_id) == 0


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()
