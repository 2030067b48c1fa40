"""OpenVINO export: the ONNX model converted to OpenVINO IR (model.xml + model.bin), float32."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from functions.domain.artifacts import INPUT_NAME
from trainer_job.exports.bundle import Converted, package_version
from trainer_job.exports.inputs import ExportError, ExportInputs, Outputs, OutputsRunner
from trainer_job.exports.onnx_formats import simplified
from trainer_job.exports.reference import FLOAT32_TOLERANCE, check_sample, verify

MODEL_FILE = "model.xml"


def convert(inputs: ExportInputs) -> Converted:
    import openvino

    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "model.onnx"
        source.write_bytes(simplified(inputs.model_onnx))
        try:
            model = openvino.convert_model(str(source))
            openvino.save_model(model, str(Path(folder) / MODEL_FILE), compress_to_fp16=False)
        except Exception as error:  # OpenVINO raises its own RuntimeError kinds
            raise ExportError(f"OpenVINO could not convert the model: {error}") from error
        files = {name: (Path(folder) / name).read_bytes() for name in (MODEL_FILE, "model.bin")}
        sample = check_sample(inputs)
        converted = load(Path(folder), MODEL_FILE)(sample)
        measured = verify(inputs, sample, converted, FLOAT32_TOLERANCE, "OpenVINO")
    version = package_version("openvino")
    return Converted(
        files=files,
        model_path=MODEL_FILE,
        format_name="OpenVINO IR (model.xml + model.bin), float32 weights",
        runtime=f"OpenVINO {version} (CPU plugin)",
        input_layout="NCHW",
        predict_template="predict_openvino.py",
        requirements=["openvino", "pillow", "numpy"],
        notes=[f"Converted with openvino {version} (convert_model from ONNX); {measured}."],
    )


def load(folder: Path, model_path: str, threads: int = 0) -> OutputsRunner:
    import openvino

    config: dict[str, object] = {"INFERENCE_PRECISION_HINT": "f32"}  # no bf16 on AMX CPUs
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = openvino.Core().compile_model(str(folder / model_path), "CPU", config)

    def run(images: np.ndarray) -> Outputs:
        results = compiled({INPUT_NAME: np.ascontiguousarray(images, dtype=np.float32)})
        return {
            output.get_any_name(): np.asarray(results[output], dtype=np.float32)
            for output in compiled.outputs
        }

    return run
