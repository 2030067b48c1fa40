"""DockerFile exports: model.onnx served over HTTP by app.py, like Custom Vision's containers.

The zip is a Docker build context (Linux: amd64; ARM: arm64): a Dockerfile on a Python slim base
with pinned onnxruntime, Pillow and numpy, app.py (standard-library HTTP server), preprocess.py,
the model and its labels. `python app.py --port N` runs the same server without Docker.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

from trainer_job.exports.bundle import TEMPLATES, Converted, package_version
from trainer_job.exports.inputs import ExportInputs, OutputsRunner
from trainer_job.exports.onnx_formats import float32

BASE_IMAGES = {
    "Linux": "python:3.11.14-slim-bookworm",
    "ARM": "arm64v8/python:3.11.14-slim-bookworm",
}
SERVER_PACKAGES = ("onnxruntime", "pillow", "numpy")


def dockerfile(flavor: str) -> str:
    pins = " ".join(f"{name}=={package_version(name)}" for name in SERVER_PACKAGES)
    # Port 80 as Custom Vision's containers use it: Docker (20.10 on) lets a non-root user bind
    # it, as it sets net.ipv4.ip_unprivileged_port_start=0 in the container's network namespace.
    # The base image is the trainer's (trainer_job/Dockerfile). onnxruntime (1.31 on Linux) would
    # otherwise persist a telemetry device id and event cache under $HOME, which uid 10001 has not:
    # it warns on every start, and a self-hosted model has nothing to report.
    return (
        f"# Open Custom Vision export ({flavor}): docker build -t classifier . && "
        "docker run -p 8080:80 classifier\n"
        f"FROM {BASE_IMAGES[flavor]}\n"
        "ENV ORT_DISABLE_TELEMETRY=1\n"
        "WORKDIR /app\n"
        f"RUN pip install --no-cache-dir {pins} \\\n"
        "    && useradd --no-create-home --uid 10001 --user-group classifier\n"
        "COPY . /app\n"
        "USER 10001:10001\n"
        "EXPOSE 80\n"
        'CMD ["python", "app.py", "--port", "80"]\n'
    )


def convert(inputs: ExportInputs, flavor: str) -> Converted:
    onnx = float32(inputs)
    labels = json.dumps(inputs.labels, indent=2) + "\n"
    return Converted(
        files=onnx.files,
        model_path=onnx.model_path,
        format_name=f"Docker build context ({flavor}, {BASE_IMAGES[flavor]}) serving the float32 "
        'ONNX model over HTTP: POST /image (bytes or multipart), POST /url ({"url"})',
        runtime=onnx.runtime,
        input_layout="NCHW",
        predict_template="predict_onnx.py",
        requirements=[f"{name}=={package_version(name)}" for name in SERVER_PACKAGES],
        notes=[
            "Build and run: `docker build -t classifier . && docker run -p 8080:80 classifier`; "
            "or without Docker: `pip install -r requirements.txt && python app.py --port 8080`.",
            "Then `curl -X POST --data-binary @photo.jpg http://localhost:8080/image` or "
            '`curl -X POST -H "Content-Type: application/json" -d \'{"url": "https://..."}\' '
            "http://localhost:8080/url`. The answer is Custom Vision's ImagePrediction JSON.",
            "URLs are fetched over http/https only, with a 10 s timeout, a 6 MB cap and at most 3 "
            "redirects; the container does not refuse private addresses, so do not expose /url "
            "to callers you do not trust inside your network.",
        ],
        extra_files={
            "Dockerfile": dockerfile(flavor).encode(),
            "app.py": (TEMPLATES / "app.py").read_bytes(),
            "labels.json": labels.encode(),
        },
    )


def load(folder: Path, model_path: str, threads: int = 0) -> OutputsRunner:
    """app.py's model, as the server loads it (its predict path without HTTP)."""
    saved = sys.modules.get("preprocess")
    try:
        # app.py imports `preprocess`: this export's copy, for as long as app.py loads.
        _load("preprocess", folder / "preprocess.py")
        app = _load("_exported_app", folder / "app.py")
    finally:
        sys.modules.pop("_exported_app", None)
        if saved is None:
            sys.modules.pop("preprocess", None)
        else:
            sys.modules["preprocess"] = saved
    model = app.Model(folder)
    return lambda images: {
        name: np.asarray(value, dtype=np.float32)
        for name, value in model.outputs(np.ascontiguousarray(images, dtype=np.float32)).items()
    }


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
