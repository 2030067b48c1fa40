"""ONNX exports: the model as trained (float32), float16 weights, and int8 (static QDQ)."""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx

from functions.domain.artifacts import INPUT_NAME
from trainer_job.exports.bundle import Converted, package_version
from trainer_job.exports.inputs import ExportError, ExportInputs, OutputsRunner
from trainer_job.exports.reference import (
    FLOAT16_TOLERANCE,
    FLOAT32_TOLERANCE,
    check_agreement,
    check_sample,
    outputs_of,
    probabilities,
    run_session,
    session,
    verify,
)

MODEL_FILE = "model.onnx"
ONNX_REQUIREMENTS = ["onnxruntime", "pillow", "numpy"]
# int8 keeps the first convolutions (the stem and the first block, at full resolution) in
# float: on flowers5 this cut the mean probability error from 0.05 to 0.015 and raised top-1
# agreement with float32 on held-out photos from 95 to 98 %, for a little speed.
FLOAT_CONVOLUTIONS = 3
# Of a detector's boxes that count (detection_check.py), the share its int8 model must find.
INT8_MIN_BOX_RATE = 0.9
INT8_CHECK_IMAGES = 32  # at most: the calibration images

# The checks every format uses, importable from here as they were before reference.py.
__all__ = [
    "FLOAT16_TOLERANCE",
    "FLOAT32_TOLERANCE",
    "check_agreement",
    "check_sample",
    "float16",
    "float32",
    "int8",
    "load",
    "probabilities",
    "session",
    "simplified",
]


def simplified(model: bytes) -> bytes:
    """The model with shape computations folded (the exporter's dynamic "same" paddings become
    plain Conv paddings), which converters to other formats handle far better."""
    import onnxslim

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        slim = onnxslim.slim(onnx.load_from_string(model))
    onnx.checker.check_model(slim)
    return bytes(slim.SerializeToString())


def float32(inputs: ExportInputs) -> Converted:
    return Converted(
        files={MODEL_FILE: inputs.model_onnx},
        model_path=MODEL_FILE,
        format_name="ONNX (opset 17), float32: the model exactly as the service serves it",
        runtime=f"onnxruntime {package_version('onnxruntime')}",
        input_layout="NCHW",
        predict_template="predict_onnx.py",
        requirements=ONNX_REQUIREMENTS,
    )


def float16(inputs: ExportInputs) -> Converted:
    from onnxconverter_common import float16 as converter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it warns about every value it clips to float16
        model = converter.convert_float_to_float16(
            onnx.load_from_string(inputs.model_onnx), keep_io_types=True
        )
    data = bytes(model.SerializeToString())
    sample = check_sample(inputs)
    measured = verify(
        inputs, sample, run_session(session(data), sample), FLOAT16_TOLERANCE, "float16"
    )
    return Converted(
        files={MODEL_FILE: data},
        model_path=MODEL_FILE,
        format_name="ONNX (opset 17), float16 weights and activations, float32 input and output",
        runtime=f"onnxruntime {package_version('onnxruntime')}",
        input_layout="NCHW",
        predict_template="predict_onnx.py",
        requirements=ONNX_REQUIREMENTS,
        notes=[
            f"Converted with onnxconverter-common {package_version('onnxconverter-common')}; "
            f"{measured}."
        ],
    )


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over a preprocessed batch, one at a time."""

    def __init__(self, images: np.ndarray) -> None:
        self._batches: Iterator[np.ndarray] = iter(
            np.ascontiguousarray(images[i : i + 1], dtype=np.float32) for i in range(len(images))
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: batch}


def int8(inputs: ExportInputs) -> Converted:
    """Static QDQ quantization (weights int8 per channel, activations uint8) calibrated on the
    training images; dynamic quantization of the weights only when there are none."""
    from onnxruntime import quantization as q

    quantization_logger = logging.getLogger("onnxruntime.quantization")
    with tempfile.TemporaryDirectory() as folder:
        simple, source = Path(folder) / "simple.onnx", Path(folder) / "model.onnx"
        target = Path(folder) / "int8.onnx"
        simple.write_bytes(simplified(inputs.model_onnx))
        # Shape inference and graph optimisation first, as onnxruntime recommends.
        q.shape_inference.quant_pre_process(str(simple), str(source), skip_symbolic_shape=True)
        convolutions = [n.name for n in onnx.load(str(source)).graph.node if n.op_type == "Conv"]
        calibration = inputs.calibration
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantization_logger.disabled = True
            try:
                if calibration is not None and len(calibration):
                    method = (
                        f"static QDQ, calibrated (min-max) on {len(calibration)} images; weights "
                        f"int8 per channel, activations uint8; the first {FLOAT_CONVOLUTIONS} "
                        "convolutions stay float32"
                    )
                    q.quantize_static(
                        str(source),
                        str(target),
                        _Calibration(calibration),
                        quant_format=q.QuantFormat.QDQ,
                        per_channel=True,
                        activation_type=q.QuantType.QUInt8,
                        weight_type=q.QuantType.QInt8,
                        nodes_to_exclude=convolutions[:FLOAT_CONVOLUTIONS],
                    )
                else:
                    method = "dynamic (weights only; no calibration images were given)"
                    q.quantize_dynamic(str(source), str(target), weight_type=q.QuantType.QUInt8)
            except Exception as error:  # onnxruntime raises many kinds; the reason is what counts
                raise ExportError(f"int8 quantization failed: {error}") from error
            finally:
                quantization_logger.disabled = False
        data = target.read_bytes()
    notes = [f"Quantized with onnxruntime {package_version('onnxruntime')}: {method}."]
    if inputs.detects:
        notes.append(_int8_boxes(inputs, data))
    elif calibration is not None and len(calibration):
        notes.append(_int8_top1(inputs, data, calibration))
    return Converted(
        files={MODEL_FILE: data},
        model_path=MODEL_FILE,
        format_name="ONNX (opset 17), int8-quantized (QDQ), float32 input and output",
        runtime=f"onnxruntime {package_version('onnxruntime')}",
        input_layout="NCHW",
        predict_template="predict_onnx.py",
        requirements=ONNX_REQUIREMENTS,
        notes=notes,
    )


def _int8_top1(inputs: ExportInputs, data: bytes, calibration: np.ndarray) -> str:
    reference = probabilities(inputs.model_onnx, calibration).argmax(axis=1)
    agreement = float(np.mean(probabilities(data, calibration).argmax(axis=1) == reference))
    return (
        f"Top-1 agreement with the float32 model on the {len(calibration)} calibration "
        f"(training) images: {100 * agreement:.1f} %. On images it was not calibrated on "
        "expect a little less (97 to 100 % was measured on held-out flowers5 photos); "
        "use the float32 or float16 export where every prediction must match the service."
    )


def _int8_boxes(inputs: ExportInputs, data: bytes) -> str:
    """A detector's int8 model must find INT8_MIN_BOX_RATE of the float32 model's boxes."""
    sample = check_sample(inputs, count=INT8_CHECK_IMAGES)
    measured = verify(
        inputs, sample, outputs_of(data, sample), float("inf"), "int8", INT8_MIN_BOX_RATE
    )
    return (
        f"Checked against the float32 model: {measured} (required: "
        f"{100 * INT8_MIN_BOX_RATE:g} % found). Use the float32 or float16 export where every "
        "box must match the service."
    )


def load(folder: Path, model_path: str, threads: int = 0) -> OutputsRunner:
    loaded = session(folder / model_path, threads)
    return lambda images: run_session(loaded, images)
