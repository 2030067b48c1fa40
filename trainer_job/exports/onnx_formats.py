"""ONNX exports: the model as trained (float32), float16 weights, and int8 (static QDQ)."""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import onnxruntime

from functions.domain.artifacts import INPUT_NAME
from trainer_job.exports.bundle import Converted, package_version
from trainer_job.exports.inputs import ExportError, ExportInputs, Runner

MODEL_FILE = "model.onnx"
ONNX_REQUIREMENTS = ["onnxruntime", "pillow", "numpy"]
# The outputs of a float32 conversion may differ from the original by rounding only; float16
# weights and activations by about 1e-2 at most on these models (measured: 3e-3).
FLOAT32_TOLERANCE = 1e-3
FLOAT16_TOLERANCE = 5e-2
# int8 keeps the first convolutions (the stem and the first block, at full resolution) in
# float: on flowers5 this cut the mean probability error from 0.05 to 0.015 and raised top-1
# agreement with float32 on held-out photos from 95 to 98 %, for a little speed.
FLOAT_CONVOLUTIONS = 3


def session(model: bytes | str | Path, threads: int = 0) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    source = model if isinstance(model, bytes) else str(model)
    return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def probabilities(model: bytes | str | Path, images: np.ndarray) -> np.ndarray:
    batch = np.ascontiguousarray(images, dtype=np.float32)
    (result,) = session(model).run(None, {INPUT_NAME: batch})
    return np.asarray(result, dtype=np.float32)


def check_sample(inputs: ExportInputs, count: int = 8) -> np.ndarray:
    """Images to check a conversion on: calibration images, or seeded noise when there are none."""
    if inputs.calibration is not None and len(inputs.calibration):
        return np.ascontiguousarray(inputs.calibration[:count], dtype=np.float32)
    size = inputs.preprocessing.size
    noise = np.random.default_rng(0).standard_normal((count, 3, size, size))
    return np.clip(noise, -1.0, 1.0).astype(np.float32)


def check_agreement(
    reference: np.ndarray, converted: np.ndarray, tolerance: float, what: str
) -> float:
    """The max abs difference; ExportError if the conversion changed the model's outputs."""
    if converted.shape != reference.shape:
        raise ExportError(
            f"the {what} conversion is wrong: it outputs shape {converted.shape} "
            f"where the model outputs {reference.shape}"
        )
    difference = float(np.abs(converted - reference).max())
    if not difference <= tolerance:
        raise ExportError(
            f"the {what} conversion changed the model's outputs (max difference {difference:.3g}"
            f" > {tolerance:g} on {len(reference)} images); this export cannot be trusted"
        )
    return difference


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
    difference = check_agreement(
        probabilities(inputs.model_onnx, sample),
        probabilities(data, sample),
        FLOAT16_TOLERANCE,
        "float16",
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
            f"largest probability difference from the float32 model on {len(sample)} check "
            f"images: {difference:.2g}."
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
    if calibration is not None and len(calibration):
        reference = probabilities(inputs.model_onnx, calibration).argmax(axis=1)
        agreement = float(np.mean(probabilities(data, calibration).argmax(axis=1) == reference))
        notes.append(
            f"Top-1 agreement with the float32 model on the {len(calibration)} calibration "
            f"(training) images: {100 * agreement:.1f} %. On images it was not calibrated on "
            "expect a little less (97 to 100 % was measured on held-out flowers5 photos); "
            "use the float32 or float16 export where every prediction must match the service."
        )
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


def load(folder: Path, model_path: str, threads: int = 0) -> Runner:
    loaded = session(folder / model_path, threads)

    def run(images: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(images, dtype=np.float32)
        (result,) = loaded.run(None, {INPUT_NAME: batch})
        return np.asarray(result, dtype=np.float32)

    return run
