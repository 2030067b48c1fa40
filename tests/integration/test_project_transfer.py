"""Custom Vision's export_project -> import_project and get_artifact, through the SDK: the
import equals the original (settings, tags, every image's bytes, tags, regions, metadata);
tokens that are forged, expired or another service's are refused; artifacts come back by path."""

from __future__ import annotations

import time
import uuid

import httpx
import onnx
import pytest
from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    CustomVisionErrorException,
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    Region,
)

from functions.domain import artifacts, names
from functions.domain.jobs import TrainingJob
from functions.services.project_copy import Copied, copy_project
from functions.services.project_transfer import IMPORTING, ImportTokens, set_status
from functions.settings import Settings
from functions.storage.clients import Storage
from tests.conftest import (
    GENERAL_COMPACT,
    TRAINING_KEY,
    PublishedModel,
    assert_error,
    held_out_flowers,
    real_photos,
)
from tests.detection_data import detection_set
from tests.integration.checks import project_contents
from trainer_job.__main__ import process_one

GENERAL_DETECTION = "da2e3a8a-40a5-4171-82f4-58522f70fbc1"


def _code(error: pytest.ExceptionInfo[CustomVisionErrorException]) -> str:
    return str(error.value.error.code)


def run_queue(storage: Storage, settings: Settings) -> None:
    while process_one(storage, settings):
        pass


def test_an_imported_project_equals_the_exported_one(
    trainer: CustomVisionTrainingClient, storage: Storage, settings: Settings
) -> None:
    name = f"transfer-{uuid.uuid4().hex[:8]}"
    project = trainer.create_project(name, description="to move", domain_id=GENERAL_COMPACT)
    for n, flower in enumerate(("daisy", "tulip")):
        tag = trainer.create_tag(project.id, flower, description=f"{flower}s")
        entries = [
            ImageFileCreateEntry(contents=p, tag_ids=[tag.id]) for p in real_photos(flower, 3)
        ]
        batch = ImageFileCreateBatch(images=entries, metadata={"set": str(n)})
        assert trainer.create_images_from_files(project.id, batch).is_batch_successful
    untagged = ImageFileCreateBatch(
        images=[ImageFileCreateEntry(contents=real_photos("rose", 1)[0])]
    )
    assert trainer.create_images_from_files(project.id, untagged).is_batch_successful

    export = trainer.export_project(project.id)
    assert (export.image_count, export.tag_count, export.region_count) == (7, 2, 0)
    assert export.iteration_count == 0 and export.estimated_import_time_in_ms > 0
    imported = trainer.import_project(export.token)
    assert imported.id != project.id and imported.status == "Importing"
    assert imported.name == f"{name} (2)"  # the name is taken: the next free one
    run_queue(storage, settings)
    assert trainer.get_project(imported.id).status == "Succeeded"
    assert project_contents(trainer, imported.id) == project_contents(trainer, project.id)
    # A name of one's own, and the token used again (it stays valid until it expires).
    named = trainer.import_project(export.token, name=f"{name}-copy")
    run_queue(storage, settings)
    assert trainer.get_project(named.id).name == f"{name}-copy"
    assert project_contents(trainer, named.id) == project_contents(trainer, project.id)


def test_a_detection_project_keeps_its_regions(
    trainer: CustomVisionTrainingClient, storage: Storage, settings: Settings
) -> None:
    project = trainer.create_project(f"boxes-{uuid.uuid4().hex[:8]}", domain_id=GENERAL_DETECTION)
    tag = trainer.create_tag(project.id, "raccoon")
    entries = [
        ImageFileCreateEntry(
            contents=photo.path.read_bytes(),
            regions=[
                Region(tag_id=tag.id, left=x, top=y, width=w, height=h)
                for _, x, y, w, h in photo.regions
            ],
        )
        for photo in detection_set("raccoon")[:4]
    ]
    assert trainer.create_images_from_files(project.id, ImageFileCreateBatch(images=entries))
    export = trainer.export_project(project.id)
    assert export.region_count == sum(len(p.regions) for p in detection_set("raccoon")[:4])
    imported = trainer.import_project(export.token, name=f"{project.name}-copy")
    run_queue(storage, settings)
    assert project_contents(trainer, imported.id) == project_contents(trainer, project.id)


def _iteration_view(trainer: CustomVisionTrainingClient, project_id: str) -> list[object]:
    """Each iteration's settings and what it answers: performance, images as of it."""
    views = []
    for it in sorted(trainer.get_iterations(project_id), key=lambda i: i.id):
        performance = trainer.get_iteration_performance(project_id, it.id)
        images = trainer.get_images(project_id, iteration_id=it.id, take=256)
        views.append(
            (
                it.id, it.name, it.status, it.domain_id, it.classification_type,
                it.training_type, it.trained_at,
                (performance.precision, performance.recall, performance.average_precision),
                sorted((t.name, t.precision, t.recall) for t in performance.per_tag_performance),
                sorted((i.id, tuple(sorted(t.tag_id for t in i.tags))) for i in images),
            )
        )  # fmt: skip
    return views


def test_trained_iterations_come_along_and_answer_alike(
    trainer: CustomVisionTrainingClient,
    predictor: CustomVisionPredictionClient,
    storage: Storage,
    settings: Settings,
    published_model: PublishedModel,
) -> None:
    """The copy's iterations keep their ids and settings, their metrics and what they were
    trained on; its model answers as the original's does. It is not published until asked."""
    source = published_model.project_id
    export = trainer.export_project(source)
    assert export.iteration_count == len(trainer.get_iterations(source)) >= 1
    copy = trainer.import_project(export.token, name=f"copy-{uuid.uuid4().hex[:8]}")
    run_queue(storage, settings)
    assert trainer.get_project(copy.id).status == "Succeeded"
    assert project_contents(trainer, copy.id) == project_contents(trainer, source)
    assert _iteration_view(trainer, copy.id) == _iteration_view(trainer, source)
    assert not any(it.publish_name for it in trainer.get_iterations(copy.id))

    iteration_id = published_model.iteration_id
    _, photo = held_out_flowers(1)[0]
    answers = [
        trainer.quick_test_image(p, photo, iteration_id=iteration_id, store=False).predictions
        for p in (source, copy.id)
    ]
    assert [(a.tag_id, round(a.probability, 5)) for a in answers[0]] == [
        (a.tag_id, round(a.probability, 5)) for a in answers[1]
    ]
    trainer.publish_iteration(copy.id, iteration_id, "moved", "local-prediction-resource")
    served = predictor.classify_image_with_no_store(copy.id, "moved", photo).predictions
    assert served[0].tag_name == answers[0][0].tag_name

    # A second delivery of the job finds everything there and copies nothing again.
    set_status(storage, copy.id, IMPORTING)
    job = TrainingJob.of_kind("import", copy.id, copy.id, source_project_id=source)
    assert copy_project(storage, job) == Copied(0, 0)
    assert trainer.get_project(copy.id).status == "Succeeded"
    assert project_contents(trainer, copy.id) == project_contents(trainer, source)


def test_forged_expired_and_foreign_tokens_are_refused(
    trainer: CustomVisionTrainingClient, http: httpx.Client
) -> None:
    project = trainer.create_project(f"tokens-{uuid.uuid4().hex[:8]}", domain_id=GENERAL_COMPACT)
    token = trainer.export_project(project.id).token
    body, _, signature = token.partition(".")
    forged = [
        "",
        "nonsense",
        f"{body}.{signature[:-2]}xx",  # the signature changed
        f"{body[:-2]}AA.{signature}",  # the claims changed
        ImportTokens("another-service-training-key").issue(project.id),
        ImportTokens(TRAINING_KEY).issue(project.id, now=time.time() - 2 * 24 * 3600),  # expired
    ]
    before = len(trainer.get_projects())
    for bad in forged:
        response = http.post("/projects/import", params={"token": bad})
        code = "BadRequestRequiredParamIsNull" if not bad else "BadRequestInvalidImportToken"
        assert_error(response, 400, code)
    with pytest.raises(CustomVisionErrorException) as refused:
        trainer.import_project(forged[-1])
    assert _code(refused) == "BadRequestInvalidImportToken"
    # A token of a project deleted since is refused too.
    trainer.delete_project(project.id)
    assert_error(
        http.post("/projects/import", params={"token": token}), 400, "BadRequestInvalidImportToken"
    )
    assert len(trainer.get_projects()) == before - 1
    assert_error(http.get(f"/projects/{uuid.uuid4()}/export"), 404, "NotFoundProject")


def test_artifacts_come_back_by_path(
    trainer: CustomVisionTrainingClient,
    http: httpx.Client,
    storage: Storage,
    published_model: PublishedModel,
) -> None:
    project_id, iteration_id = published_model.project_id, published_model.iteration_id
    model = b"".join(trainer.get_artifact(project_id, f"{iteration_id}/model.onnx"))
    assert onnx.load_model_from_string(model).graph.input  # the iteration's own ONNX graph
    stored = storage.blobs.get(
        names.CONTAINER_MODELS, artifacts.artifact_path(project_id, iteration_id, "model.onnx")
    )
    assert model == stored
    path = f"{iteration_id}/manifest.json"
    manifest = http.get(f"/projects/{project_id}/artifacts", params={"path": path})
    assert manifest.status_code == 200 and "preprocessing" in manifest.json()
    for path, status, code in [
        (f"{iteration_id}/nothing.bin", 404, "NotFound"),
        (f"{iteration_id}/../{iteration_id}/model.onnx", 404, "NotFound"),
        (f"{uuid.uuid4()}/model.onnx", 404, "NotFoundIteration"),
        ("not-a-guid/model.onnx", 400, "BadRequestInvalidIds"),
        ("", 404, "NotFound"),
    ]:
        response = http.get(f"/projects/{project_id}/artifacts", params={"path": path})
        assert_error(response, status, code)
