"""Blob-drop ingestion: the registered blob trigger and the local polling loop."""

from __future__ import annotations

import json
import uuid

import azure.functions as func
import pytest
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient

from functions.api.deps import Services
from functions.domain import names
from functions.services.images import ImageService, NewImage
from functions.services.ingest import IngestService
from functions.services.projects import ProjectService
from functions.services.tags import TagService
from functions.settings import Settings
from functions.storage.clients import Storage
from tests.conftest import jpeg_bytes, real_photos, registered_functions
from tests.detection_data import detection_set


def _project(trainer: CustomVisionTrainingClient) -> str:
    return str(trainer.create_project(f"ingest-{uuid.uuid4().hex[:8]}").id)


def _drop(storage: Storage, path: str, data: bytes) -> None:
    storage.blobs.put(names.CONTAINER_INGEST, path, data, "application/octet-stream")


def _ingest(storage: Storage) -> IngestService:
    return IngestService(
        storage, ProjectService(storage), TagService(storage), ImageService(storage)
    )


def _blob_exists(storage: Storage, container: str, path: str) -> bool:
    return storage.blobs.get(container, path) is not None


def test_registered_blob_trigger_ingests_and_removes_source(
    trainer: CustomVisionTrainingClient,
    settings: Settings,
    storage: Storage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import function_app

    monkeypatch.setattr(function_app, "_services", Services.build(settings, storage))
    project_id = _project(trainer)
    photo = real_photos("tulip", 1)[0]
    path = f"{project_id}/tulip/t1.jpg"
    _drop(storage, path, photo)
    trigger = registered_functions()["ingest_blob"].get_user_function()
    blob = func.blob.InputStream(data=photo, name=f"{names.CONTAINER_INGEST}/{path}")
    trigger(blob)

    tags = trainer.get_tags(project_id)
    assert [(t.name, t.image_count) for t in tags] == [("tulip", 1)]
    assert not _blob_exists(storage, names.CONTAINER_INGEST, path)

    # Idempotent: the same event delivered again changes nothing.
    trigger(func.blob.InputStream(data=photo, name=f"{names.CONTAINER_INGEST}/{path}"))
    assert trainer.get_image_count(project_id) == 1
    assert trainer.get_tag(project_id, tags[0].id).image_count == 1


def test_polling_loop_ingests_tags_and_rejects(
    trainer: CustomVisionTrainingClient, storage: Storage
) -> None:
    project_id = _project(trainer)
    existing = trainer.create_tag(project_id, "Sea")
    _drop(storage, f"{project_id}/sea/a.jpg", jpeg_bytes((0, 0, 200)))
    _drop(storage, f"{project_id}/glacier/b.jpg", jpeg_bytes((220, 220, 255)))
    _drop(storage, f"{project_id}/glacier/broken.jpg", b"\xff\xd8\xff\xe0 not really a jpeg")
    _drop(storage, f"{uuid.uuid4()}/sea/orphan.jpg", jpeg_bytes((1, 1, 1)))

    results = {r.blob_name: r for r in _ingest(storage).poll_once()}

    assert results[f"{project_id}/sea/a.jpg"].status == "OK"
    assert results[f"{project_id}/glacier/b.jpg"].status == "OK"
    assert results[f"{project_id}/glacier/broken.jpg"].status == "ErrorImageFormat"
    counts = {t.name: t.image_count for t in trainer.get_tags(project_id)}
    assert counts == {"Sea": 1, "glacier": 1}  # "sea" matched the existing tag ignoring case
    assert trainer.get_tag(project_id, existing.id).image_count == 1

    rejected = storage.clients.blobs.get_blob_client(
        names.CONTAINER_INGEST_REJECTED, f"{project_id}/glacier/broken.jpg"
    )
    metadata = rejected.get_blob_properties().metadata
    assert metadata["status"] == "ErrorImageFormat"
    assert metadata["reason"]
    container = storage.clients.blobs.get_container_client(names.CONTAINER_INGEST)
    assert not [b.name for b in container.list_blobs(name_starts_with=project_id)]
    assert _ingest(storage).poll_once() == []


def test_a_bad_blob_never_blocks_the_others(
    trainer: CustomVisionTrainingClient, storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    project_id = _project(trainer)
    good = f"{project_id}/C# & what?/good.jpg"  # a name Table keys could not hold
    long_tag = f"{project_id}/{'x' * 300}/long.jpg"  # no such tag can be created
    failing = f"{project_id}/sea/failing.jpg"  # storing it fails unexpectedly
    unreadable = f"{project_id}/sea/unreadable.jpg"  # it cannot even be read
    for n, path in enumerate((good, long_tag, failing, unreadable)):
        _drop(storage, path, jpeg_bytes((40 * n, 10, 10)))
    service = _ingest(storage)
    create = service.images.create

    def create_or_fail(project: str, entries: list[NewImage], *args: object) -> object:
        if entries[0].source_url == "failing.jpg":
            raise RuntimeError("storage hiccup")
        return create(project, entries, *args)

    read = storage.blobs.get

    def read_or_fail(container: str, path: str) -> bytes | None:
        if path == unreadable:
            raise OSError("cannot read")
        return read(container, path)

    monkeypatch.setattr(service.images, "create", create_or_fail)
    monkeypatch.setattr(storage.blobs, "get", read_or_fail)
    results = {r.blob_name: r.status for r in service.poll_once()}

    assert results[good] == "OK"
    assert results[long_tag] == "BadRequestTagName"
    assert results[failing] == "ErrorUnknown"
    assert unreadable not in results
    counts = {t.name: t.image_count for t in trainer.get_tags(project_id)}
    assert counts == {"C# & what?": 1, "sea": 0}  # "sea" was created for the failing blob
    rejected = storage.clients.blobs.get_container_client(names.CONTAINER_INGEST_REJECTED)
    assert sorted(b.name for b in rejected.list_blobs(name_starts_with=project_id)) == sorted(
        [long_tag, failing]
    )
    # The unreadable blob stays where it was and is left alone for a while.
    monkeypatch.setattr(storage.blobs, "get", read)
    assert _blob_exists(storage, names.CONTAINER_INGEST, unreadable)
    assert unreadable not in {r.blob_name for r in service.poll_once()}
    assert unreadable in {r.blob_name for r in _ingest(storage).poll_once()}

    # Deleting the project removes its rejected blobs too.
    trainer.delete_project(project_id)
    assert list(rejected.list_blobs(name_starts_with=project_id)) == []


def test_detection_photos_take_their_boxes_from_a_sidecar(
    trainer: CustomVisionTrainingClient, storage: Storage
) -> None:
    project_id = str(
        trainer.create_project(
            f"ingest-od-{uuid.uuid4().hex[:8]}", domain_id="a27d5ca5-bb19-49d8-a70a-fec086c47f5b"
        ).id
    )
    boxed, plain, broken = detection_set("raccoon")[:3]
    sidecar = [
        {"tagName": tag, "left": x, "top": y, "width": w, "height": h}
        for tag, x, y, w, h in boxed.regions
    ]
    _drop(storage, f"{project_id}/boxed.jpg.regions.json", json.dumps(sidecar).encode())
    _drop(storage, f"{project_id}/boxed.jpg", boxed.path.read_bytes())
    _drop(storage, f"{project_id}/plain.jpg", plain.path.read_bytes())
    bad = [{"tagName": "raccoon", "left": 0.5, "top": 0, "width": 0.7, "height": 0.5}]
    _drop(storage, f"{project_id}/broken.jpg.regions.json", json.dumps(bad).encode())
    _drop(storage, f"{project_id}/broken.jpg", broken.path.read_bytes())
    _drop(storage, f"{project_id}/raccoon/tagged.jpg", broken.path.read_bytes())
    results = {r.blob_name.split("/", 1)[1]: r for r in _ingest(storage).poll_once()}

    assert results["boxed.jpg"].status == "OK" and results["plain.jpg"].status == "OK"
    assert results["broken.jpg"].status == "BadRequestImageRegions"
    assert results["raccoon/tagged.jpg"].status == "BadRequestImageUrl"
    assert trainer.get_tagged_image_count(project_id) == 1
    assert trainer.get_untagged_image_count(project_id) == 1
    (image,) = trainer.get_tagged_images(project_id)
    assert len(image.regions) == len(boxed.regions)
    assert {r.tag_name for r in image.regions} == {"raccoon"}
    assert [t.name for t in trainer.get_tags(project_id)] == ["raccoon"]
    assert list(storage.blobs.list_names(names.CONTAINER_INGEST, f"{project_id}/")) == []
    for name in ("broken.jpg", "broken.jpg.regions.json", "raccoon/tagged.jpg"):
        assert _blob_exists(storage, names.CONTAINER_INGEST_REJECTED, f"{project_id}/{name}")
