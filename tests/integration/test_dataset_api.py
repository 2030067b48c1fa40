"""Datasets through the API (our extension): each format's export, imported into a new project,
equals the original (bytes, tags, regions; metadata where the format keeps it); importing it
again reports every image as a duplicate by name; two imports racing add each image once;
bad requests get Custom Vision's errors and change nothing."""

from __future__ import annotations

import io
import threading
import uuid
import zipfile
from typing import Any

import httpx
import pytest
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    Region,
)

from functions.dataset_formats import DETECTION_FORMATS, FOLDERS
from functions.services.images import ImageService
from functions.settings import Settings
from functions.storage.clients import Storage
from tests.conftest import GENERAL_COMPACT, assert_error, real_photos
from tests.detection_data import detection_set
from tests.integration.checks import assert_consistent, labelled_contents
from trainer_job.__main__ import process_one

GENERAL_DETECTION = "da2e3a8a-40a5-4171-82f4-58522f70fbc1"
ZIP = {"Content-Type": "application/zip"}


def run_queue(storage: Storage, settings: Settings) -> None:
    while process_one(storage, settings):
        pass


def finished(http: httpx.Client, project_id: str, job: dict[str, Any]) -> dict[str, Any]:
    response = http.get(f"/projects/{project_id}/datasets/jobs/{job['id']}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def export(
    http: httpx.Client, storage: Storage, settings: Settings, project_id: str, fmt: str
) -> bytes:
    response = http.post(f"/projects/{project_id}/datasets/export", params={"format": fmt})
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "Queued" and response.json()["downloadUri"] is None
    run_queue(storage, settings)
    job = finished(http, project_id, response.json())
    assert job["status"] == "Done", job
    assert job["processed"] == job["total"] > 0
    archive = httpx.get(job["downloadUri"], timeout=60)
    assert archive.status_code == 200 and len(archive.content) == job["sizeBytes"]
    return archive.content


def import_(http: httpx.Client, project_id: str, fmt: str, archive: bytes) -> dict[str, Any]:
    response = http.post(
        f"/projects/{project_id}/datasets/import",
        params={"format": fmt},
        content=archive,
        headers=ZIP,
    )
    assert response.status_code == 202, response.text
    return dict(response.json())


@pytest.fixture(scope="module")
def detection_project(trainer: CustomVisionTrainingClient) -> str:
    project = trainer.create_project(
        f"ds-boxes-{uuid.uuid4().hex[:8]}", domain_id=GENERAL_DETECTION
    )
    tag = trainer.create_tag(project.id, "raccoon")
    photos = detection_set("raccoon")[:4]
    for n in (0, 1):  # two batches: with and without metadata
        entries = [
            ImageFileCreateEntry(
                contents=photo.path.read_bytes(),
                regions=[
                    Region(tag_id=tag.id, left=x, top=y, width=w, height=h)
                    for _, x, y, w, h in photo.regions
                ],
            )
            for photo in photos[2 * n : 2 * n + 2]
        ]
        batch = ImageFileCreateBatch(images=entries, metadata={"camera": "a"} if n else None)
        assert trainer.create_images_from_files(project.id, batch).is_batch_successful
    empty = ImageFileCreateBatch(images=[ImageFileCreateEntry(contents=real_photos("rose", 1)[0])])
    assert trainer.create_images_from_files(project.id, empty).is_batch_successful
    return str(project.id)


@pytest.mark.parametrize("fmt", DETECTION_FORMATS)
def test_a_detection_dataset_round_trips_in_each_format(
    trainer: CustomVisionTrainingClient,
    http: httpx.Client,
    storage: Storage,
    settings: Settings,
    detection_project: str,
    fmt: str,
) -> None:
    archive = export(http, storage, settings, detection_project, fmt)
    copy = trainer.create_project(f"ds-{fmt}-{uuid.uuid4().hex[:8]}", domain_id=GENERAL_DETECTION)
    job = import_(http, copy.id, fmt, archive)
    assert job["operation"] == "Import" and job["status"] == "Queued"
    run_queue(storage, settings)
    done = finished(http, copy.id, job)
    assert (done["status"], done["imported"], done["duplicates"], done["failed"]) == (
        "Done",
        5,
        0,
        0,
    )
    assert done["tagsCreated"] == ["raccoon"] and done["processed"] == done["total"] == 5
    keeps_metadata = fmt == "coco"
    assert labelled_contents(trainer, copy.id, keeps_metadata) == labelled_contents(
        trainer, detection_project, keeps_metadata
    )
    # The same archive again: nothing added, every image named as a duplicate.
    again = import_(http, copy.id, fmt, archive)
    run_queue(storage, settings)
    repeated = finished(http, copy.id, again)
    assert (repeated["imported"], repeated["duplicates"], repeated["tagsCreated"]) == (0, 5, [])
    names = zipfile.ZipFile(io.BytesIO(archive)).namelist()
    assert all(any(n.endswith(d) for n in names) for d in repeated["duplicateNames"])
    assert len(repeated["duplicateNames"]) == 5 and repeated["failures"] == []
    assert len(trainer.get_images(copy.id, take=256)) == 5
    listed = http.get(f"/projects/{copy.id}/datasets/jobs").json()
    assert [j["id"] for j in listed] == [again["id"], job["id"]]  # newest first


def test_a_classification_dataset_round_trips_as_folders(
    trainer: CustomVisionTrainingClient, http: httpx.Client, storage: Storage, settings: Settings
) -> None:
    project = trainer.create_project(
        f"ds-tags-{uuid.uuid4().hex[:8]}",
        domain_id=GENERAL_COMPACT,
        classification_type="Multilabel",
    )
    daisy, tulip = (trainer.create_tag(project.id, name) for name in ("daisy", "tulip/red"))
    trainer.create_tag(project.id, "empty")  # no images: its folder is kept
    entries = [
        ImageFileCreateEntry(contents=real_photos("daisy", 2)[0], tag_ids=[daisy.id]),
        ImageFileCreateEntry(contents=real_photos("daisy", 2)[1], tag_ids=[daisy.id, tulip.id]),
        ImageFileCreateEntry(contents=real_photos("tulip", 1)[0], tag_ids=[tulip.id]),
        ImageFileCreateEntry(contents=real_photos("rose", 1)[0]),
    ]
    batch = ImageFileCreateBatch(images=entries)
    assert trainer.create_images_from_files(project.id, batch).is_batch_successful
    archive = export(http, storage, settings, project.id, FOLDERS)
    copy = trainer.create_project(
        f"ds-copy-{uuid.uuid4().hex[:8]}",
        domain_id=GENERAL_COMPACT,
        classification_type="Multilabel",
    )
    trainer.create_tag(copy.id, "DAISY")  # an existing tag is used, whatever its case
    job = import_(http, copy.id, FOLDERS, archive)
    run_queue(storage, settings)
    done = finished(http, copy.id, job)
    assert (done["status"], done["imported"]) == ("Done", 4)
    assert sorted(done["tagsCreated"]) == ["empty", "tulip/red"]
    original, copied = (
        labelled_contents(trainer, project.id, False),
        labelled_contents(trainer, copy.id, False),
    )
    rename = {"DAISY": "daisy"}
    assert {
        key: ([rename.get(t, t) for t in tags], regions, meta)
        for key, (tags, regions, meta) in copied[0].items()
    } == original[0]
    assert sorted((rename.get(n, n), c) for n, c in copied[1]) == original[1]


def test_two_imports_racing_add_each_image_once(
    trainer: CustomVisionTrainingClient,
    http: httpx.Client,
    storage: Storage,
    settings: Settings,
    detection_project: str,
) -> None:
    archive = export(http, storage, settings, detection_project, "coco")
    copy = trainer.create_project(f"ds-race-{uuid.uuid4().hex[:8]}", domain_id=GENERAL_DETECTION)
    jobs = [import_(http, copy.id, "coco", archive) for _ in range(2)]
    workers = [threading.Thread(target=process_one, args=(storage, settings)) for _ in jobs]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    run_queue(storage, settings)  # a job retried after losing a race, if any
    outcomes = [finished(http, copy.id, job) for job in jobs]
    assert all(o["status"] == "Done" for o in outcomes), outcomes
    assert sum(o["imported"] for o in outcomes) == 5
    assert sum(o["imported"] + o["duplicates"] for o in outcomes) == 10
    assert len(trainer.get_tags(copy.id)) == 1  # both created "raccoon": one tag
    assert labelled_contents(trainer, copy.id, True) == labelled_contents(
        trainer, detection_project, True
    )
    assert_consistent(http, copy.id)


def test_bad_requests_are_refused_and_change_nothing(
    trainer: CustomVisionTrainingClient,
    http: httpx.Client,
    storage: Storage,
    settings: Settings,
    detection_project: str,
) -> None:
    classification = trainer.create_project(
        f"ds-bad-{uuid.uuid4().hex[:8]}", domain_id=GENERAL_COMPACT
    )
    base = f"/projects/{classification.id}/datasets"
    for fmt in ("coco", "tfrecord", ""):  # a detection format, an unknown one, none
        assert_error(http.post(base + "/export", params={"format": fmt}), 400, "BadRequestInvalid")
    assert_error(
        http.post(f"/projects/{detection_project}/datasets/export", params={"format": FOLDERS}),
        400,
        "BadRequestInvalid",
    )
    not_zip = http.post(base + "/import", params={"format": FOLDERS}, content=b"plain text")
    assert_error(not_zip, 400, "BadRequestInvalid")
    assert_error(http.post(base + "/import", params={"format": FOLDERS}), 400, "BadRequestInvalid")
    empty = io.BytesIO()
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("notes.txt", "no photos")
    refused = http.post(base + "/import", params={"format": FOLDERS}, content=empty.getvalue())
    assert_error(refused, 400, "BadRequestInvalid")
    assert_error(http.get(base + f"/jobs/{uuid.uuid4()}"), 404, "NotFound")
    assert_error(http.get(base + "/jobs/not-an-id"), 400, "BadRequestInvalidIds")
    assert http.get(base + "/jobs").json() == []
    assert trainer.get_tags(classification.id) == []
    # A job deleted is gone with its files, and its queued message does nothing.
    job = http.post(f"/projects/{detection_project}/datasets/export", params={"format": "voc"})
    job_id = job.json()["id"]
    deleted = http.delete(f"/projects/{detection_project}/datasets/jobs/{job_id}")
    assert deleted.status_code == 204
    run_queue(storage, settings)
    assert_error(http.get(f"/projects/{detection_project}/datasets/jobs/{job_id}"), 404, "NotFound")
    assert list(storage.blobs.list_names("exports", f"{detection_project}/{job_id}/")) == []


def test_an_import_whose_worker_fails_resumes_after_its_last_batch(
    trainer: CustomVisionTrainingClient,
    http: httpx.Client,
    storage: Storage,
    settings: Settings,
    detection_project: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    archive = export(http, storage, settings, detection_project, "yolo")
    copy = trainer.create_project(f"ds-resume-{uuid.uuid4().hex[:8]}", domain_id=GENERAL_DETECTION)
    monkeypatch.setattr("functions.domain.batches.MAX_IMAGES_PER_BATCH", 2)
    monkeypatch.setattr("trainer_job.__main__.RETRY_DELAY_SECONDS", 0)
    create = ImageService.create
    calls: list[int] = []

    def dies_on_the_second_batch(self: ImageService, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise ConnectionError("the worker lost its storage")
        return create(self, *args, **kwargs)

    monkeypatch.setattr(ImageService, "create", dies_on_the_second_batch)
    job = import_(http, copy.id, "yolo", archive)
    assert process_one(storage, settings)  # the first delivery: one batch in, then it fails
    halfway = finished(http, copy.id, job)
    assert (halfway["status"], halfway["processed"], halfway["imported"]) == ("Running", 2, 2)
    run_queue(storage, settings)  # the second delivery resumes at the third image
    done = finished(http, copy.id, job)
    assert (done["status"], done["imported"], done["duplicates"], done["failed"]) == (
        "Done",
        5,
        0,
        0,
    )
    assert len(calls) == 4  # batches of 2, 2 and 1, and the one that failed
    assert labelled_contents(trainer, copy.id, False) == labelled_contents(
        trainer, detection_project, False
    )
