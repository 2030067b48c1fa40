"""Exports through the official SDK: requested, built by the trainer job from the queue,
listed with a download link; the downloaded ONNX agrees with the prediction API."""

from __future__ import annotations

import io
import uuid
import zipfile

import httpx
import numpy as np
import onnxruntime
import pytest
from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    CustomVisionErrorException,
)
from PIL import Image

from functions.domain.preprocessing import Preprocessing
from functions.settings import Settings
from functions.storage.clients import Storage
from tests.conftest import PublishedModel, held_out_flowers
from trainer_job.__main__ import process_one


def _code(error: CustomVisionErrorException) -> str:
    return str(error.error.code)


def _run_queue(storage: Storage, settings: Settings) -> None:
    while process_one(storage, settings):
        pass


def test_onnx_export_round_trip(
    trainer: CustomVisionTrainingClient,
    predictor: CustomVisionPredictionClient,
    published_model: PublishedModel,
    storage: Storage,
    settings: Settings,
) -> None:
    project_id, iteration_id = published_model.project_id, published_model.iteration_id
    started = trainer.export_iteration(project_id, iteration_id, "ONNX")
    assert (started.platform, started.status, started.download_uri) == ("ONNX", "Exporting", None)
    again = trainer.export_iteration(project_id, iteration_id, "onnx")  # running: the same one
    assert again.status == "Exporting"
    queued = storage.training_queue.peek(32)
    assert [(j.kind, j.platform) for j in queued if j.iteration_id == iteration_id] == [
        ("export", "ONNX")
    ]
    _run_queue(storage, settings)

    (done,) = [e for e in trainer.get_exports(project_id, iteration_id) if e.platform == "ONNX"]
    assert done.status == "Done" and done.newer_version_available is False
    package = httpx.get(done.download_uri, timeout=60)
    assert package.status_code == 200
    assert "attachment" in package.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(package.content)) as archive:
        files = set(archive.namelist())
        assert {"labels.txt", "preprocessing.json", "MODEL_CARD.md", "predict.py"} <= files
        model_name = next(n for n in files if n.endswith(".onnx"))
        session = onnxruntime.InferenceSession(archive.read(model_name))
        labels = archive.read("labels.txt").decode().split()
    preprocessing = Preprocessing.for_size(224)
    for _, data in held_out_flowers(per_flower=2):
        with Image.open(io.BytesIO(data)) as image:
            batch = preprocessing(image)[np.newaxis]
        (probabilities,) = session.run(None, {session.get_inputs()[0].name: batch})
        served = predictor.classify_image_with_no_store(
            project_id, published_model.publish_name, data
        )
        assert labels[int(np.argmax(probabilities[0]))] == served.predictions[0].tag_name
        top = served.predictions[0].probability
        assert float(np.max(probabilities[0])) == pytest.approx(top, abs=1e-5)


def test_bad_export_requests(
    trainer: CustomVisionTrainingClient, published_model: PublishedModel
) -> None:
    project_id, iteration_id = published_model.project_id, published_model.iteration_id
    cases = [
        ((iteration_id, "Hologram", None), "BadRequestProjectUnsupportedExportPlatform"),
        ((iteration_id, "DockerFile", "Windows"), "BadRequestExportValidationFailed"),
        ((str(uuid.uuid4()), "ONNX", None), "NotFoundIteration"),
    ]
    for (iteration, platform, flavor), code in cases:
        with pytest.raises(CustomVisionErrorException) as raised:
            trainer.export_iteration(project_id, iteration, platform, flavor=flavor)
        assert _code(raised.value) == code
    with pytest.raises(CustomVisionErrorException) as raised:
        trainer.get_exports(project_id, str(uuid.uuid4()))
    assert _code(raised.value) == "NotFoundIteration"


def test_a_failing_export_ends_failed_with_its_reason(
    trainer: CustomVisionTrainingClient,
    published_model: PublishedModel,
    storage: Storage,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import trainer_job.exports

    def broken(*_: object) -> bytes:
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(trainer_job.exports, "build_export", broken)
    project_id, iteration_id = published_model.project_id, published_model.iteration_id
    trainer.export_iteration(project_id, iteration_id, "OpenVino")
    once = settings.model_copy(update={"trainer_max_deliveries": 1})
    _run_queue(storage, once)
    (failed,) = [
        e for e in trainer.get_exports(project_id, iteration_id) if e.platform == "OpenVino"
    ]
    assert failed.status == "Failed" and failed.download_uri is None
    raw = httpx.get(
        f"{trainer.config.endpoint}/customvision/v3.3/training/projects/{project_id}"
        f"/iterations/{iteration_id}/export",
        headers={"Training-Key": settings.training_key},
    ).json()
    assert any("converter crashed" in (e.get("error") or "") for e in raw)
