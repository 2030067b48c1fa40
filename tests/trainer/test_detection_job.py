"""Object detection end to end with the official SDKs, on fixture photos with boxes: train
through the queue (the trainer in-process, as the container job runs it), the iteration's
files, performance at both thresholds, publish, detect (stored, not stored, by URL), stored
predictions with boxes, back into training with their boxes, the smart labeler's suggested
regions, and the refusals of classify on a detector and of detect on a classifier."""

from __future__ import annotations

import io
import json
import subprocess
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import onnxruntime
import pytest
from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from azure.cognitiveservices.vision.customvision.prediction.models import (
    CustomVisionErrorException,
)
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    ImageIdCreateBatch,
    ImageIdCreateEntry,
    PredictionQueryTag,
    PredictionQueryToken,
    Region,
    SuggestedTagAndRegionQueryToken,
)
from PIL import Image

from functions.domain import artifacts
from functions.domain.detection_decode import decode
from functions.domain.detection_evaluation import DetectionEvaluation
from functions.settings import Settings
from functions.storage.clients import Storage
from tests.conftest import PREDICTION_KEY, ROOT
from tests.detection_data import LabelledPhoto, detection_set
from trainer_job.__main__ import process_one
from trainer_job.tasks.detection import train as detection_train

COMPACT_DETECTION = "a27d5ca5-bb19-49d8-a70a-fec086c47f5b"


@dataclass(frozen=True)
class Detector:
    project_id: str
    iteration_id: str
    tag_id: str
    photos: list[LabelledPhoto]  # the 15 it was trained on, then 3 uploaded untagged


@pytest.fixture(scope="module")
def detector(
    trainer: CustomVisionTrainingClient, storage: Storage, settings: Settings
) -> Iterator[Detector]:
    """One raccoon detector trained on 15 photos through the queue (quick budget cut short),
    published as "detector", with three more photos uploaded untagged."""
    project = trainer.create_project(f"od-job-{uuid.uuid4().hex[:8]}", domain_id=COMPACT_DETECTION)
    tag = trainer.create_tag(project.id, "raccoon")
    photos = detection_set("raccoon")[:18]
    entries = [
        ImageFileCreateEntry(
            name=p.path.name,
            contents=p.path.read_bytes(),
            regions=[
                Region(tag_id=tag.id, left=x, top=y, width=w, height=h)
                for _, x, y, w, h in p.regions
            ],
        )
        for p in photos[:15]  # Custom Vision's minimum per tag
    ]
    assert trainer.create_images_from_files(
        project.id, ImageFileCreateBatch(images=entries)
    ).is_batch_successful
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(detection_train, "QUICK_SECONDS", 12.0)
        iteration_id = trainer.train_project(project.id).id
        while process_one(storage, settings):
            pass
    iteration = trainer.get_iteration(project.id, iteration_id)
    assert iteration.status == "Completed", iteration.training_error_details
    trainer.publish_iteration(project.id, iteration_id, "detector", "local")
    untagged = [
        ImageFileCreateEntry(name=p.path.name, contents=p.path.read_bytes()) for p in photos[15:]
    ]
    assert trainer.create_images_from_files(
        project.id, ImageFileCreateBatch(images=untagged)
    ).is_batch_successful
    yield Detector(project.id, iteration_id, tag.id, photos)
    trainer.delete_project(project.id)


def test_train_evaluate_publish_and_detect(
    trainer: CustomVisionTrainingClient,
    predictor: CustomVisionPredictionClient,
    storage: Storage,
    detector: Detector,
) -> None:
    project_id, iteration_id, tag_id = detector.project_id, detector.iteration_id, detector.tag_id
    _check_files(storage, project_id, iteration_id, tag_id, detector.photos[0].path)
    _check_performance(trainer, project_id, iteration_id, tag_id)
    _check_detect(predictor, project_id, detector.photos[0].path, tag_id)


def test_detect_by_url_and_stored_predictions(
    trainer: CustomVisionTrainingClient,
    predictor: CustomVisionPredictionClient,
    detector: Detector,
) -> None:
    """Stored detections keep their boxes; predictions/query filters them by tag and
    probability; detect by URL answers what detect on the bytes did."""
    project_id, tag_id = detector.project_id, detector.tag_id
    application = f"od-url-{uuid.uuid4().hex[:6]}"
    with detector.photos[1].path.open("rb") as data:
        stored = predictor.detect_image(project_id, "detector", data, application=application)
    found = trainer.query_predictions(
        project_id, PredictionQueryToken(application=application)
    ).results
    assert [p.id for p in found] == [stored.id]
    kept = found[0].predictions
    assert [(p.probability, p.bounding_box.left, p.bounding_box.width) for p in kept] == [
        pytest.approx((p.probability, p.bounding_box.left, p.bounding_box.width), abs=1e-6)
        for p in stored.predictions
    ]
    top = stored.predictions[0].probability
    above = PredictionQueryTag(id=tag_id, min_threshold=top + 1e-3, max_threshold=1.0)
    none = trainer.query_predictions(
        project_id, PredictionQueryToken(application=application, tags=[above])
    )
    assert none.results == []  # no box of the tag scores above the best one
    at = PredictionQueryTag(id=tag_id, min_threshold=top - 1e-3, max_threshold=1.0)
    some = trainer.query_predictions(
        project_id, PredictionQueryToken(application=application, tags=[at])
    )
    assert [p.id for p in some.results] == [stored.id]

    url = found[0].original_image_uri  # a link served by this API, so reachable in tests
    by_url = predictor.detect_image_url(project_id, "detector", url, application=application)
    unstored = predictor.detect_image_url_with_no_store(project_id, "detector", url)
    for answer in (by_url, unstored):
        assert [p.probability for p in answer.predictions] == pytest.approx(
            [p.probability for p in stored.predictions], abs=1e-5
        )
        assert answer.predictions[0].bounding_box.left == pytest.approx(
            stored.predictions[0].bounding_box.left, abs=1e-5
        )
    after = trainer.query_predictions(project_id, PredictionQueryToken(application=application))
    assert [p.id for p in after.results] == [by_url.id, stored.id]  # nostore is not kept


def test_a_stored_prediction_becomes_a_training_image_with_its_boxes(
    trainer: CustomVisionTrainingClient,
    predictor: CustomVisionPredictionClient,
    detector: Detector,
) -> None:
    project_id, tag_id = detector.project_id, detector.tag_id
    photo = detection_set("raccoon")[18]  # not in the project yet
    with photo.path.open("rb") as data:
        stored = predictor.detect_image(project_id, "detector", data)
    boxes = [p.bounding_box for p in stored.predictions[:2]]
    regions = [
        Region(tag_id=tag_id, left=b.left, top=b.top, width=b.width, height=b.height) for b in boxes
    ]
    batch = ImageIdCreateBatch(images=[ImageIdCreateEntry(id=stored.id, regions=regions)])
    answer = trainer.create_images_from_predictions(project_id, batch)
    assert answer.is_batch_successful, [i.status for i in answer.images]
    image = trainer.get_images_by_ids(project_id, [answer.images[0].image.id])[0]
    np.testing.assert_allclose(
        sorted(_ltwh(r) for r in image.regions), sorted(_ltwh(b) for b in boxes), atol=1e-6
    )
    assert [t.tag_id for t in image.tags] == [tag_id]
    trainer.delete_images(project_id, [image.id])


def test_suggested_regions_and_proposals_come_from_the_detector(
    trainer: CustomVisionTrainingClient, detector: Detector
) -> None:
    """The smart labeler: suggested regions for untagged images are the latest detector's
    boxes, and so are the region proposals' best ones."""
    project_id, iteration_id, tag_id = detector.project_id, detector.iteration_id, detector.tag_id
    untagged = trainer.get_untagged_images(project_id)
    assert len(untagged) == 3
    ids = [i.id for i in untagged]
    suggested = trainer.suggest_tags_and_regions(project_id, iteration_id, ids)
    assert sorted(s.id for s in suggested) == sorted(ids)
    for suggestion in suggested:
        assert suggestion.predictions and all(p.tag_id == tag_id for p in suggestion.predictions)
        assert all(p.bounding_box is not None for p in suggestion.predictions)
        probabilities = [p.probability for p in suggestion.predictions]
        assert probabilities == sorted(probabilities, reverse=True)
    best = max(suggested, key=lambda s: s.predictions[0].probability)
    top = best.predictions[0]
    assert top.probability >= 0.05, top.probability  # a trained detector finds a raccoon

    proposals = trainer.get_image_region_proposals(project_id, best.id).proposals
    first = proposals[0].bounding_box
    assert proposals[0].confidence == pytest.approx(top.probability, abs=1e-6)
    assert (first.left, first.top, first.width, first.height) == pytest.approx(
        (
            top.bounding_box.left,
            top.bounding_box.top,
            top.bounding_box.width,
            top.bounding_box.height,
        ),
        abs=1e-6,
    )

    query = SuggestedTagAndRegionQueryToken(tag_ids=[tag_id], threshold=top.probability - 1e-3)
    page = trainer.query_suggested_images(project_id, iteration_id, query)
    assert best.id in [r.id for r in page.results]
    assert all(r.predictions[0].probability >= top.probability - 1e-3 for r in page.results)
    counts = trainer.query_suggested_image_count(
        project_id, iteration_id, tag_ids=[tag_id], threshold=0.0
    )
    assert counts == {tag_id: 3}  # each image once, however many boxes it has


def _ltwh(box: Any) -> tuple[float, float, float, float]:
    return (box.left, box.top, box.width, box.height)


def _check_files(
    storage: Storage, project_id: str, iteration_id: str, tag_id: str, photo: Path
) -> None:

    def read(name: str) -> bytes:
        data = storage.blobs.get("models", artifacts.artifact_path(project_id, iteration_id, name))
        assert data is not None, name
        return data

    manifest = artifacts.ModelManifest.from_dict(json.loads(read(artifacts.MANIFEST)))
    assert manifest.task == artifacts.DETECTION and manifest.boxes_name == "boxes"
    assert manifest.preprocessing.size == 320 and manifest.preprocessing.crop == "none"
    assert [label["name"] for label in manifest.labels] == ["raccoon"]

    evaluation = DetectionEvaluation.from_arrays(
        [tag_id], np.load(io.BytesIO(read(artifacts.EVALUATION)))
    )
    assert len(evaluation.images) == 3  # one photo in five held out
    assert sum(len(i.labelled) for i in evaluation.images) >= 2
    metrics = json.loads(read(artifacts.METRICS))
    recomputed = evaluation.metrics(0.5, 0.3)
    assert metrics["averagePrecision"] == pytest.approx(recomputed.mean_average_precision)
    assert metrics["perTag"][0]["recall"] == pytest.approx(recomputed.per_tag[tag_id].recall)

    session = onnxruntime.InferenceSession(
        read(artifacts.MODEL), providers=["CPUExecutionProvider"]
    )
    with Image.open(photo) as image:
        batch = manifest.preprocessing(image)[None]
    boxes, scores = session.run(["boxes", "scores"], {"image": batch})
    assert boxes.shape[-1] == 4 and scores.shape[-1] == 1 and boxes.shape[1] == scores.shape[1]
    found = decode(boxes[0], scores[0], score_threshold=0.0, max_detections=5)
    assert len(found.scores) == 5 and np.all(found.boxes[:, 2:] >= 0)
    assert np.all(found.boxes[:, :2] >= 0) and np.all(
        found.boxes[:, :2] + found.boxes[:, 2:] <= 1 + 1e-6
    )


def _check_performance(
    trainer: CustomVisionTrainingClient, project_id: str, iteration_id: str, tag_id: str
) -> None:
    default = trainer.get_iteration_performance(project_id, iteration_id)
    strict = trainer.get_iteration_performance(
        project_id, iteration_id, threshold=0.5, overlap_threshold=0.9
    )
    assert [t.id for t in default.per_tag_performance] == [tag_id]
    assert 0 <= default.average_precision <= 1 and 0 <= default.recall <= 1
    assert strict.recall <= default.recall  # a stricter overlap never finds more boxes
    everything = trainer.get_iteration_performance(
        project_id, iteration_id, threshold=0.0, overlap_threshold=0.0
    )
    assert everything.recall == 1.0  # any box touching a labelled one counts, at overlap 0
    assert trainer.get_image_performance_count(project_id, iteration_id) == 3
    held = trainer.get_image_performances(project_id, iteration_id)
    assert all(p.regions for p in held)  # the labelled boxes beside the predicted ones
    for image in held:
        scores = [p.probability for p in image.predictions]
        assert scores == sorted(scores, reverse=True)
        assert all(p.bounding_box is not None for p in image.predictions)


def _check_detect(
    predictor: CustomVisionPredictionClient, project_id: str, photo: Path, tag_id: str
) -> None:
    with photo.open("rb") as data:
        stored = predictor.detect_image(project_id, "detector", data)
    assert stored.predictions and all(p.tag_id == tag_id for p in stored.predictions)
    probabilities = [p.probability for p in stored.predictions]
    assert probabilities == sorted(probabilities, reverse=True) and len(probabilities) <= 100
    for p in stored.predictions:
        b = p.bounding_box
        assert b.left >= 0 and b.top >= 0 and b.width >= 0 and b.height >= 0
        assert b.left + b.width <= 1 + 1e-5 and b.top + b.height <= 1 + 1e-5
    with photo.open("rb") as data:
        again = predictor.detect_image_with_no_store(project_id, "detector", data)
    assert [p.probability for p in again.predictions] == pytest.approx(probabilities, abs=1e-6)
    with photo.open("rb") as data, pytest.raises(CustomVisionErrorException) as refused:
        predictor.classify_image(project_id, "detector", data)
    assert refused.value.error.code == "BadRequestNotSupported"


def test_the_javascript_sdk_detects(
    predictor: CustomVisionPredictionClient, endpoint: str, detector: Detector
) -> None:
    """Microsoft's JavaScript Prediction SDK (npm, v3.1 routes, multipart) gets the boxes the
    Python SDK gets."""
    photo = detector.photos[3].path
    script = ROOT / "tests" / "js" / "detect_image.js"
    command = ["node", str(script), endpoint, PREDICTION_KEY, detector.project_id, "detector"]
    done = subprocess.run(
        [*command, str(photo)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["predictions"] and answer["id"]
    with photo.open("rb") as data:
        expected = predictor.detect_image_with_no_store(detector.project_id, "detector", data)
    assert [p["tagId"] for p in answer["predictions"]] == [p.tag_id for p in expected.predictions]
    assert [p["probability"] for p in answer["predictions"]] == pytest.approx(
        [p.probability for p in expected.predictions], abs=1e-6
    )
    got = [_ltwh(SimpleNamespace(**p["boundingBox"])) for p in answer["predictions"]]
    np.testing.assert_allclose(
        got, [_ltwh(p.bounding_box) for p in expected.predictions], atol=1e-6
    )


def test_export_a_detector_and_download_it(
    trainer: CustomVisionTrainingClient,
    predictor: CustomVisionPredictionClient,
    storage: Storage,
    settings: Settings,
    detector: Detector,
) -> None:
    """The SDK exports a detector as ONNX and downloads it; the zip's model, decoded with its
    own postprocess.py, gives the detect endpoint's boxes."""
    project_id, iteration_id = detector.project_id, detector.iteration_id
    iteration = trainer.get_iteration(project_id, iteration_id)
    assert iteration.exportable and "ONNX" in iteration.exportable_to
    started = trainer.export_iteration(project_id, iteration_id, "ONNX")
    assert (started.platform, started.status) == ("ONNX", "Exporting")
    while process_one(storage, settings):
        pass
    (done,) = [e for e in trainer.get_exports(project_id, iteration_id) if e.platform == "ONNX"]
    assert done.status == "Done" and done.download_uri
    package = zipfile.ZipFile(io.BytesIO(httpx.get(done.download_uri, timeout=60).content))
    names = set(package.namelist())
    assert {"model.onnx", "postprocess.py", "predict.py", "labels.txt", "MODEL_CARD.md"} <= names
    assert package.read("labels.txt").decode().split() == ["raccoon"]

    namespace: dict[str, Any] = {}
    exec(compile(package.read("postprocess.py"), "postprocess.py", "exec"), namespace)
    session = onnxruntime.InferenceSession(
        package.read("model.onnx"), providers=["CPUExecutionProvider"]
    )
    photo = detector.photos[4].path
    manifest = artifacts.ModelManifest.from_dict(json.loads(_manifest_bytes(storage, detector)))
    with Image.open(photo) as image:
        batch = manifest.preprocessing(image)[None]
    boxes, scores = session.run(["boxes", "scores"], {"image": batch})
    found = namespace["decode"](boxes[0], scores[0], 0.01, 0.5, 100)
    with photo.open("rb") as data:
        served = predictor.detect_image_with_no_store(project_id, "detector", data).predictions
    assert len(found.scores) == len(served)
    np.testing.assert_allclose(found.scores, [p.probability for p in served], atol=1e-4)
    np.testing.assert_allclose(found.boxes[0], _ltwh(served[0].bounding_box), atol=1e-3)


def _manifest_bytes(storage: Storage, detector: Detector) -> bytes:
    path = artifacts.artifact_path(detector.project_id, detector.iteration_id, artifacts.MANIFEST)
    data = storage.blobs.get("models", path)
    assert data is not None
    return data
