"""Counters and views stay exact under concurrent writers; deletion leaves no orphans."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import httpx
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient

from functions.domain import names
from functions.domain.models import ProjectState
from functions.services.projects import ProjectService
from functions.storage.clients import Storage
from tests.conftest import jpeg_bytes


def test_concurrent_uploads_and_tagging_keep_counts_exact(
    trainer: CustomVisionTrainingClient, http: httpx.Client
) -> None:
    project_id = trainer.create_project(f"race-{uuid.uuid4().hex[:8]}").id
    tags = [trainer.create_tag(project_id, f"t{i}").id for i in range(3)]

    def upload(i: int) -> str:
        tag = tags[i % 3]
        response = http.post(
            f"/projects/{project_id}/images?tagIds={tag}",
            content=jpeg_bytes((i, 255 - i, (i * 7) % 256)),
            headers={"Content-Type": "application/octet-stream"},
        )
        assert response.status_code == 200, response.text
        return str(response.json()["images"][0]["image"]["id"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(upload, range(24)))

    def tag_extra(image_id: str) -> None:
        body = {"tags": [{"imageId": image_id, "tagId": tags[0]}]}
        assert http.post(f"/projects/{project_id}/images/tags", json=body).status_code == 200

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(tag_extra, ids[:12]))

    assert trainer.get_image_count(project_id) == 24
    assert trainer.get_tagged_image_count(project_id) == 24
    counts = {t.name: t.image_count for t in trainer.get_tags(project_id)}
    listed = {
        name: len(trainer.get_tagged_images(project_id, tag_ids=[tag_id], take=256))
        for name, tag_id in zip(("t0", "t1", "t2"), tags, strict=True)
    }
    assert counts == listed
    # t0 had 8 images; tagging ids[:12] with t0 adds the 8 of those 12 not already in t0.
    assert counts == {"t0": 16, "t1": 8, "t2": 8}


def test_interrupted_project_deletion_is_resumed(
    trainer: CustomVisionTrainingClient, storage: Storage
) -> None:
    project_id = str(trainer.create_project(f"gone-{uuid.uuid4().hex[:8]}").id)
    tag = trainer.create_tag(project_id, "x")
    trainer.create_images_from_data(project_id, jpeg_bytes((3, 3, 3)), tag_ids=[tag.id])

    # Simulate a crash right after the project was marked for deletion.
    project = storage.projects.get(project_id)
    assert project is not None
    storage.projects.edit(project_id, lambda p: replace(p, state=ProjectState.DELETING))
    assert project_id not in {p.id for p in trainer.get_projects()}

    assert ProjectService(storage).resume_deletions() >= 1

    assert storage.projects.get(project_id) is None
    images_table = storage.clients.tables.get_table_client(names.TABLE_IMAGES)
    tags_table = storage.clients.tables.get_table_client(names.TABLE_TAGS)
    for table in (images_table, tags_table):
        rows = table.query_entities("PartitionKey eq @pk", parameters={"pk": project_id})
        assert list(rows) == []
    container = storage.clients.blobs.get_container_client(names.CONTAINER_IMAGES)
    assert list(container.list_blobs(name_starts_with=project_id)) == []
    # The project name is free again.
    trainer.create_project(project.name)


def test_openapi_and_docs_are_served(endpoint: str) -> None:
    spec = httpx.get(endpoint + "/openapi.json").json()
    assert "/customvision/v3.3/training/projects/{projectId}/images/tagged" in spec["paths"]
    assert httpx.get(endpoint + "/docs").status_code == 200
