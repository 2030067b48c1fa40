"""Which exports exist (Custom Vision's platform and flavor names) and the two entry points."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from functions.domain.exports import EXPORT_FLAVORS
from trainer_job.exports import (
    converters,
    coreml_format,
    docker_format,
    onnx_formats,
    openvino_format,
    tensorflow_format,
)
from trainer_job.exports.bundle import Converted, build_zip, unpack
from trainer_job.exports.inputs import ExportError, ExportInputs, Outputs, OutputsRunner, Runner

# platform -> accepted flavors (the function app's list, functions/domain/exports.py). None is
# the platform's default: DEFAULT_FLAVORS names what it makes (ONNX float32, the TensorFlow
# SavedModel as TensorFlowNormal, Docker for Linux amd64).
FLAVORS: dict[str, tuple[str | None, ...]] = {
    platform: (None, *(f for f in flavors if f)) for platform, flavors in EXPORT_FLAVORS.items()
}
DEFAULT_FLAVORS = {
    "ONNX": "ONNXFloat32",
    "OpenVino": "OpenVino",
    "TensorFlow": "TensorFlowNormal",
    "CoreML": "CoreML",
    "DockerFile": "Linux",
}

_CONVERTERS: dict[str, Callable[[ExportInputs], Converted]] = {
    "ONNXFloat32": onnx_formats.float32,
    "ONNXFloat16": onnx_formats.float16,
    "ONNXInt8": onnx_formats.int8,
    "OpenVino": openvino_format.convert,
    "TensorFlowNormal": tensorflow_format.saved_model,
    "TensorFlowLite": tensorflow_format.tflite,
    "CoreML": coreml_format.convert,
    "Linux": lambda inputs: docker_format.convert(inputs, "Linux"),
    "ARM": lambda inputs: docker_format.convert(inputs, "ARM"),
}


def resolve(platform: str, flavor: str | None) -> str:
    """The concrete flavor of (platform, flavor); ExportError if that export does not exist."""
    if platform not in FLAVORS:
        raise ExportError(
            f"unknown export platform {platform!r}; expected one of {', '.join(FLAVORS)}"
        )
    if flavor not in FLAVORS[platform]:
        named = [f for f in FLAVORS[platform] if f is not None]
        raise ExportError(
            f"platform {platform} has no flavor {flavor!r}; "
            + (f"expected none or one of {', '.join(named)}" if named else "give no flavor")
        )
    return flavor or DEFAULT_FLAVORS[platform]


def _check_inputs(inputs: ExportInputs) -> None:
    if not inputs.model_onnx:
        raise ExportError("the iteration has no model.onnx")
    if not inputs.labels:
        raise ExportError("the iteration has no labels")
    if inputs.calibration is not None:
        size = inputs.preprocessing.size
        if inputs.calibration.ndim != 4 or inputs.calibration.shape[1:] != (3, size, size):
            raise ExportError(
                f"calibration images must be (K, 3, {size}, {size}), got {inputs.calibration.shape}"
            )


def build_export(platform: str, flavor: str | None, inputs: ExportInputs) -> bytes:
    """The export of `inputs` for (platform, flavor) as a zip; ExportError saying why not."""
    concrete = resolve(platform, flavor)
    _check_inputs(inputs)
    converters.ensure(concrete)
    return build_zip(inputs, _CONVERTERS[concrete](inputs), platform, concrete)


_LOADERS: dict[str, Callable[[Path, str, int], OutputsRunner]] = {
    "ONNXFloat32": onnx_formats.load,
    "ONNXFloat16": onnx_formats.load,
    "ONNXInt8": onnx_formats.load,
    "OpenVino": openvino_format.load,
    "TensorFlowNormal": tensorflow_format.load_saved_model,
    "TensorFlowLite": tensorflow_format.load_tflite,
    "CoreML": coreml_format.load,
    "Linux": docker_format.load,
    "ARM": docker_format.load,
}


def load_outputs(
    platform: str, flavor: str | None, folder: Path, threads: int = 0
) -> OutputsRunner:
    """The unpacked export in `folder`, loaded once with its format's runtime (`threads`: the
    runtime's thread count, 0 = its default), answering every output by the service's names;
    ExportError where it cannot run here (Core ML)."""
    concrete = resolve(platform, flavor)
    converters.ensure(concrete)
    settings = json.loads((folder / "preprocessing.json").read_text("utf-8"))
    return _LOADERS[concrete](folder, str(settings["model"]["file"]), threads)


def load_export(platform: str, flavor: str | None, folder: Path, threads: int = 0) -> Runner:
    """A classifier's export in `folder`, loaded as `load_outputs` does: its probabilities."""
    run = load_outputs(platform, flavor, folder, threads)

    def probabilities(images: np.ndarray) -> np.ndarray:
        (result,) = run(images).values()
        return result

    return probabilities


def run_outputs(platform: str, flavor: str | None, zip_bytes: bytes, images: np.ndarray) -> Outputs:
    """Every output (by the service's names) of preprocessed images (N, 3, S, S) from the
    exported model, loaded with that format's own runtime (Core ML: only on macOS)."""
    resolve(platform, flavor)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        unpack(zip_bytes, folder)
        return load_outputs(platform, flavor, folder)(images)


def run_export(
    platform: str, flavor: str | None, zip_bytes: bytes, images: np.ndarray
) -> np.ndarray:
    """A classifier's probabilities (N, T) of preprocessed images (N, 3, S, S), as run_outputs."""
    (result,) = run_outputs(platform, flavor, zip_bytes, images).values()
    return result
