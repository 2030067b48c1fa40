"""What every conversion is checked against: the service's own model in onnxruntime, on check
images, and the comparison that refuses a conversion that changed what the model answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime

from functions.domain.artifacts import INPUT_NAME
from trainer_job.exports.detection_check import MATCH_IOU, box_agreement
from trainer_job.exports.inputs import ExportError, ExportInputs, Outputs

# The outputs of a float32 conversion may differ from the original by rounding only; float16
# weights and activations by about 1e-2 at most on these models (measured: 3e-3).
FLOAT32_TOLERANCE = 1e-3
FLOAT16_TOLERANCE = 5e-2


def session(model: bytes | str | Path, threads: int = 0) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    source = model if isinstance(model, bytes) else str(model)
    return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def run_session(loaded: onnxruntime.InferenceSession, images: np.ndarray) -> Outputs:
    """Every output of a loaded ONNX model by name."""
    batch = np.ascontiguousarray(images, dtype=np.float32)
    names = [output.name for output in loaded.get_outputs()]
    results = loaded.run(names, {INPUT_NAME: batch})
    return {name: np.asarray(r, dtype=np.float32) for name, r in zip(names, results, strict=True)}


def outputs_of(model: bytes | str | Path, images: np.ndarray) -> Outputs:
    return run_session(session(model), images)


def probabilities(model: bytes | str | Path, images: np.ndarray) -> np.ndarray:
    (result,) = outputs_of(model, images).values()
    return result


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


def _output(outputs: Outputs, name: str, what: str) -> np.ndarray:
    if name not in outputs:
        raise ExportError(
            f"the {what} conversion lost the output {name!r} (it has {', '.join(outputs)})"
        )
    return outputs[name]


def verify(
    inputs: ExportInputs,
    sample: np.ndarray,
    converted: Outputs,
    tolerance: float,
    what: str,
    min_box_rate: float = 1.0,
) -> str:
    """Check the converted model's outputs on `sample` (keyed by the service's output names)
    against the service's model; ExportError if they disagree, else what was measured, in words
    for the export's notes. A detector's are also decoded and their boxes compared
    (detection_check.py): at least `min_box_rate` of them found, no unexpected one."""
    reference = outputs_of(inputs.model_onnx, sample)
    differences = {
        name: check_agreement(reference[name], _output(converted, name, what), tolerance, what)
        for name in inputs.output_names
    }
    measured = ", ".join(f"{name} {d:.2g}" for name, d in differences.items())
    summary = f"largest difference from the ONNX model on {len(sample)} check images: {measured}"
    if not inputs.detects:
        return summary
    boxes, scores = inputs.output_names
    agreement = box_agreement(
        (reference[boxes], reference[scores]), (converted[boxes], converted[scores])
    )
    if agreement.rate < min_box_rate or agreement.unexpected:
        raise ExportError(
            f"the {what} conversion does not find the model's boxes: {agreement.summary()} "
            f"(required: {100 * min_box_rate:g} % found at IoU {MATCH_IOU:g}, none unexpected); "
            "this export cannot be trusted"
        )
    return f"{summary}; {agreement.summary()}"
