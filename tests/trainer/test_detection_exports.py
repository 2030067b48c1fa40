"""Exports of an object detector to every platform: a tiny detector trained on raccoon photos and
its artifacts built as the trainer builds them, then each export unzipped, its predict.py run
as a user would run it, and its boxes compared with the service's own decoding of model.onnx."""

from __future__ import annotations

import ast
import io
import json
import subprocess
import sys
import time
import urllib.request
import uuid
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from functions.domain import artifacts, catalog
from functions.domain.detection_decode import Detections
from functions.domain.jobs import TrainingJob
from functions.domain.models import ClassificationType, Tag, TagType
from functions.domain.preprocessing import Preprocessing
from functions.services import prediction
from tests.detection_data import detection_set
from tests.trainer.export_helpers import serving_app, unzip_with_modes
from trainer_job.exports import FLAVORS, ExportError, ExportInputs, build_export
from trainer_job.exports.bundle import unpack
from trainer_job.exports.coreml_format import spec_summary
from trainer_job.exports.detection_bundle import POSTPROCESS_SOURCE
from trainer_job.exports.detection_check import (
    MAX_DETECTIONS,
    NMS_IOU,
    SCORE_FLOOR,
    box_agreement,
    box_iou,
    service_decode,
)
from trainer_job.exports.group_norm import rewrite
from trainer_job.exports.platforms import resolve, run_outputs
from trainer_job.exports.reference import outputs_of, verify
from trainer_job.ml.export import export_verified
from trainer_job.tasks import TaskRun
from trainer_job.tasks.detection import artifacts as detection_artifacts
from trainer_job.tasks.detection import train as detection_train
from trainer_job.tasks.detection.data import NO_AUGMENTATION, LabelledImage, input_tensor
from trainer_job.tasks.detection.dataset import DetectionSet
from trainer_job.tasks.detection.fit import FitConfig, fit
from trainer_job.tasks.detection.model import DenseDetector

SIZE = 128  # small inputs keep the conversions fast
PHOTOS = 6
COMPACT_DETECTION = "a27d5ca5-bb19-49d8-a70a-fec086c47f5b"
# A few seconds of training without augmentation: enough for confident boxes on these photos.
CONFIG = FitConfig(
    image_size=SIZE,
    epochs=30,
    budget_seconds=float("inf"),
    batch_size=4,
    lr=4e-3,
    warmup_steps=3,
    ema_decay=0.0,
    augmentation=NO_AUGMENTATION,
)
EVALUATION_CONFIG = replace(CONFIG, epochs=2)


@dataclass
class Trained:
    inputs: ExportInputs
    photos: list[Path]
    zips: dict[str, bytes] = field(default_factory=dict)

    def export(self, name: str) -> bytes:
        """Each export is built once per module (by its concrete flavor)."""
        if name not in self.zips:
            self.zips[name] = build_export(*EXPORTS[name], self.inputs)
        return self.zips[name]

    def served(self, index: int) -> Detections:
        """What the service's detect endpoint answers for photo `index`: model.onnx in
        onnxruntime on the manifest's preprocessing, decoded by the service's decoding."""
        with Image.open(self.photos[index]) as image:
            batch = self.inputs.preprocessing(image)[None]
        outputs = outputs_of(self.inputs.model_onnx, batch)
        return service_decode(outputs["boxes"][0], outputs["scores"][0])


def _exports() -> dict[str, tuple[str, str | None]]:
    exports: dict[str, tuple[str, str | None]] = {}
    for platform, flavors in FLAVORS.items():
        for flavor in flavors:
            exports.setdefault(resolve(platform, flavor), (platform, flavor))
    return exports


EXPORTS = _exports()
FLOAT32 = {"ONNXFloat32", "OpenVino", "TensorFlowNormal", "TensorFlowLite", "Linux", "ARM"}


def _labelled(
    paths: list[Path], regions: list[list[tuple[str, float, float, float, float]]]
) -> list[LabelledImage]:
    photos = []
    for path, boxes in zip(paths, regions, strict=True):
        with Image.open(path) as image:
            photos.append(
                LabelledImage(
                    image.convert("RGB"),
                    np.array([b[1:] for b in boxes], dtype=np.float64),
                    np.zeros(len(boxes), dtype=np.int64),
                )
            )
    return photos


@pytest.fixture(scope="module")
def trained() -> Trained:
    """The iteration's artifacts as trainer_job/tasks/detection/train.py makes them."""
    labelled = detection_set("raccoon")[:PHOTOS]
    tag = Tag(str(uuid.uuid4()), "raccoon", "", TagType.REGULAR)
    paths = [p.path for p in labelled]
    data = DetectionSet(
        [tag], [str(uuid.uuid4()) for _ in paths], _labelled(paths, [p.regions for p in labelled])
    )
    started = time.monotonic()
    held = detection_train.held_out(data, seed=0)
    evaluation, _ = detection_train.evaluation_of(data, held, EVALUATION_CONFIG)
    model = fit(data.photos, 1, CONFIG).model
    dense = DenseDetector(model.cpu().float()).eval()
    sample = np.stack([input_tensor(p.image, SIZE).numpy() for p in data.photos[:2]])
    verified = export_verified(dense, sample, SIZE, (artifacts.BOXES_NAME, artifacts.SCORES_NAME))
    domain = catalog.find_domain(COMPACT_DETECTION)
    assert domain is not None
    run = TaskRun(
        storage=None,  # type: ignore[arg-type]  # the artifacts are made, not stored
        job=TrainingJob(str(uuid.uuid4()), str(uuid.uuid4()), "Regular", 0),
        domain=domain,
        classification_type=ClassificationType.MULTICLASS,
        progress=lambda stage, fraction: None,
        started=started,
    )
    preprocessing = Preprocessing.stretched(SIZE)
    files = {
        f.name: f.payload
        for f in detection_artifacts.iteration_files(
            run, data, evaluation, verified, preprocessing, time.monotonic() - started
        )
    }
    manifest = artifacts.ModelManifest.from_dict(json.loads(files[artifacts.MANIFEST]))
    calibration = np.stack([manifest.preprocessing(p.image) for p in data.photos])
    inputs = ExportInputs(
        model_onnx=files[artifacts.MODEL],
        labels=json.loads(files[artifacts.LABELS]),
        manifest=replace(
            manifest, project_id=run.job.project_id, iteration_id=run.job.iteration_id
        ),
        metrics=json.loads(files[artifacts.METRICS]),
        calibration=calibration,
    )
    return Trained(inputs, paths)


PREDICT_PHOTO = 0  # a training photo, as the exports were checked on


def _read(zip_bytes: bytes, name: str) -> str:
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        return archive.read(name).decode("utf-8")


def _parse(stdout: str) -> Detections:
    """predict.py's lines: tag, probability, left top width height."""
    boxes, scores, tags = [], [], []
    for line in stdout.splitlines():
        *name, probability, left, top, width, height = line.split()
        assert name == ["raccoon"], line
        tags.append(0)
        scores.append(float(probability))
        boxes.append([float(left), float(top), float(width), float(height)])
    return Detections(
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(scores, np.float32),
        np.asarray(tags, np.int64),
    )


def _found(box: np.ndarray, tag: int, among: Detections) -> float:
    """The best IoU of `box` with a detection of the same tag in `among`."""
    same = among.classes == tag
    return float(box_iou(box, among.boxes[same]).max()) if same.any() else 0.0


# The shipped decoding is the service's


def test_the_bundle_ships_the_services_own_decoding(trained: Trained) -> None:
    zip_bytes = trained.export("ONNXFloat32")
    assert _read(zip_bytes, "postprocess.py") == POSTPROCESS_SOURCE.read_text("utf-8")
    assert POSTPROCESS_SOURCE.samefile(
        Path(prediction.__file__).parents[1] / "domain" / "detection_decode.py"
    )
    # numpy and the standard library only, so that it runs without this repository
    tree = ast.parse(POSTPROCESS_SOURCE.read_text("utf-8"))
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= {"__future__", "dataclasses", "numpy"}, imported


def test_the_exports_decode_with_the_services_numbers() -> None:
    assert SCORE_FLOOR == prediction.DETECT_SCORE_FLOOR
    assert NMS_IOU == prediction.DETECT_NMS_IOU
    assert MAX_DETECTIONS == prediction.MAX_DETECTIONS


def test_a_conversion_that_moves_or_adds_boxes_is_refused(trained: Trained) -> None:
    sample = trained.inputs.calibration
    assert sample is not None
    reference = outputs_of(trained.inputs.model_onnx, sample)
    assert "found with the same tag" in verify(trained.inputs, sample, reference, 1e-6, "same")
    moved = dict(reference, boxes=np.clip(reference["boxes"] + 0.1, 0.0, 1.0))
    with pytest.raises(ExportError, match="does not find the model's boxes"):
        verify(trained.inputs, sample, moved, float("inf"), "moved")
    # A confident box where the service model answers none.
    scores = reference["scores"].copy()
    best = scores[0, :, 0].argmax()
    far = int(np.argmax(box_iou(reference["boxes"][0, best], reference["boxes"][0]) == 0))
    scores[0, far, 0] = 0.9
    found = box_agreement((reference["boxes"], reference["scores"]), (reference["boxes"], scores))
    assert found.unexpected >= 1 and found.rate == 1.0
    with pytest.raises(ExportError, match="does not find the model's boxes"):
        verify(trained.inputs, sample, dict(reference, scores=scores), float("inf"), "extra")


def test_group_norm_rewrite_keeps_the_outputs(trained: Trained) -> None:
    import onnx

    from trainer_job.exports.onnx_formats import simplified

    rewritten = rewrite(simplified(trained.inputs.model_onnx))
    ops = {node.op_type for node in onnx.load_from_string(rewritten).graph.node}
    assert "InstanceNormalization" not in ops
    sample = trained.inputs.calibration
    assert sample is not None
    before, after = outputs_of(trained.inputs.model_onnx, sample), outputs_of(rewritten, sample)
    for name in ("boxes", "scores"):
        np.testing.assert_allclose(after[name], before[name], atol=1e-5)


# The bundle says what the outputs are


def test_the_bundle_describes_a_detector(trained: Trained) -> None:
    zip_bytes = trained.export("ONNXFloat16")
    settings = json.loads(_read(zip_bytes, "preprocessing.json"))
    assert settings["task"] == "detection"
    assert settings["boxes"]["name"] == "boxes" and settings["output"]["name"] == "scores"
    assert settings["boxes"]["shape"] == ["N", "A", 4]
    assert settings["output"]["shape"] == ["N", "A", 1]
    assert settings["postprocess"] == dict(
        settings["postprocess"],
        script="postprocess.py",
        scoreThreshold=SCORE_FLOOR,
        nmsIou=NMS_IOU,
        maxDetections=MAX_DETECTIONS,
    )
    assert "stretched" in settings["description"] and "shorter side" not in settings["description"]
    card = _read(zip_bytes, "MODEL_CARD.md")
    for words in (
        "object detection",
        "x0, y0, x1, y1",
        "postprocess.py",
        "IoU above 0.5",
        "sigmoid",
        "--draw",
        "found with the same tag at IoU 0.9",
    ):
        assert words in card, words
    assert "| raccoon |" in card

    folder = Path(__file__).resolve().parents[2] / "trainer_job" / "exports" / "templates"
    sys.path.insert(0, str(folder))
    try:
        import preprocess  # the file every export ships beside predict.py
    finally:
        sys.path.remove(str(folder))
    for path in trained.photos[:3]:
        with Image.open(path) as image:
            expected = trained.inputs.preprocessing(image)
        assert np.array_equal(preprocess.load_input(path, settings)[0], expected)


# Every format: predict.py as a user runs it, against the service's own answer


@pytest.mark.parametrize("name", list(EXPORTS))
def test_predict_prints_the_services_boxes(trained: Trained, name: str, tmp_path: Path) -> None:
    zip_bytes = trained.export(name)
    if name == "CoreML" and sys.platform != "darwin":
        pytest.skip("Core ML models run only on macOS (its spec is checked below)")
    folder = tmp_path / "export"
    folder.mkdir()
    unzip_with_modes(zip_bytes, folder)
    assert {"postprocess.py", "detections.py", "predict.py", "preprocess.py"} <= {
        p.name for p in folder.iterdir()
    }
    drawn = tmp_path / "boxes.jpg"
    photo = trained.photos[PREDICT_PHOTO]
    done = subprocess.run(
        [sys.executable, "predict.py", str(photo), "--draw", str(drawn)],
        cwd=folder,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed, served = _parse(done.stdout), trained.served(PREDICT_PHOTO)
    print(
        f"{name}: {len(printed.scores)} boxes, best {printed.scores[:3]}, "
        f"the service's {served.scores[:3]}"
    )
    assert len(printed.scores) and list(printed.scores) == sorted(printed.scores, reverse=True)
    assert printed.classes[0] == served.classes[0]
    assert _found(served.boxes[0], int(served.classes[0]), printed) >= 0.9
    assert _found(printed.boxes[0], int(printed.classes[0]), served) >= 0.9
    tolerance = 1e-3 if name in FLOAT32 else 5e-2
    assert abs(float(printed.scores[0]) - float(served.scores[0])) <= tolerance
    for box, score, tag in zip(served.boxes, served.scores, served.classes, strict=True):
        if score >= 0.3:  # every confident box the service answers, printed too
            assert _found(box, int(tag), printed) >= 0.9
    with Image.open(photo) as original, Image.open(drawn) as boxes:
        assert boxes.size == original.size
        assert (
            np.abs(
                np.asarray(boxes, np.int16) - np.asarray(original.convert("RGB"), np.int16)
            ).max()
            > 100
        )


def test_coreml_detector_keeps_both_outputs(trained: Trained, tmp_path: Path) -> None:
    zip_bytes = trained.export("CoreML")
    settings = unpack(zip_bytes, tmp_path)
    summary = spec_summary(tmp_path, settings["model"]["file"])
    assert summary["inputs"] == {"image": [1, 3, SIZE, SIZE]}
    assert summary["outputs"] == ["boxes", "scores"]
    assert summary["probabilities_output"] == "" and summary["labels"] == []
    assert "found with the same tag" in _read(zip_bytes, "MODEL_CARD.md")
    if sys.platform != "darwin":
        with pytest.raises(ExportError, match="only on macOS"):
            run_outputs("CoreML", None, zip_bytes, trained.inputs.calibration[:1])


def test_int8_export_is_smaller_and_finds_the_boxes(trained: Trained) -> None:
    zip_bytes = trained.export("ONNXInt8")
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        assert archive.getinfo("model.onnx").file_size < len(trained.inputs.model_onnx) / 2
    card = _read(zip_bytes, "MODEL_CARD.md")
    assert "Checked against the float32 model" in card and "found with the same tag" in card


# The Docker export answers detect-shaped JSON


def test_docker_app_answers_custom_visions_detect_json(trained: Trained, tmp_path: Path) -> None:
    unpack(trained.export("Linux"), tmp_path)
    with serving_app(tmp_path) as url:
        photo = trained.photos[PREDICT_PHOTO]
        request = urllib.request.Request(
            url + "/image", photo.read_bytes(), {"Content-Type": "application/octet-stream"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.loads(response.read())
    assert body["project"] == trained.inputs.manifest.project_id
    served = trained.served(PREDICT_PHOTO)
    predictions = body["predictions"]
    assert len(predictions) == len(served.scores)
    tag = trained.inputs.labels[0]
    for p, box, score in zip(predictions, served.boxes, served.scores, strict=True):
        assert set(p) == {"probability", "tagId", "tagName", "tagType", "boundingBox"}
        assert (p["tagId"], p["tagName"], p["tagType"]) == (tag["id"], "raccoon", "Regular")
        assert p["probability"] == pytest.approx(float(score), abs=1e-5)
        bounding = [p["boundingBox"][k] for k in ("left", "top", "width", "height")]
        np.testing.assert_allclose(bounding, box, atol=1e-5)
