"""TensorFlow exports, from ONNX by onnx2tf: TensorFlow Lite (model.tflite) and SavedModel.

Both take NHWC input, (N, S, S, 3): onnx2tf transposes the whole network to TensorFlow's layout.
The conversion runs in a child process (tf_convert.py) with a time limit; both results are
checked against onnxruntime there before they are bundled.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from trainer_job.exports.bundle import Converted, package_version
from trainer_job.exports.inputs import ExportError, ExportInputs, Runner
from trainer_job.exports.onnx_formats import (
    FLOAT32_TOLERANCE,
    check_agreement,
    check_sample,
    probabilities,
    simplified,
)

CONVERTER = Path(__file__).resolve().parent / "tf_convert.py"
CONVERT_TIMEOUT_SECONDS = 900
TFLITE_FILE = "model.tflite"
SAVED_MODEL = "saved_model"


def _tensorflow(*arguments: str) -> None:
    """Run tf_convert.py with `arguments` in a child process; ExportError if it fails."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="-1")
    try:
        done = subprocess.run(
            [sys.executable, str(CONVERTER), *arguments],
            capture_output=True,
            text=True,
            timeout=CONVERT_TIMEOUT_SECONDS,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise ExportError(
            f"TensorFlow ({arguments[0]}) took longer than {CONVERT_TIMEOUT_SECONDS} s"
        ) from error
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise ExportError(f"TensorFlow ({arguments[0]}, onnx2tf) failed: {reason}")


def _convert(inputs: ExportInputs, folder: Path) -> tuple[np.ndarray, float, float]:
    """Run tf_convert.py into `folder`; the check sample and both conversions' differences."""
    model, check = folder / "model.onnx", folder / "check.npy"
    model.write_bytes(simplified(inputs.model_onnx))
    sample = check_sample(inputs)
    np.save(check, sample)
    _tensorflow("convert", str(model), str(folder), str(check))
    reference = probabilities(inputs.model_onnx, sample)
    saved = check_agreement(
        reference, np.load(folder / "check_saved_model.npy"), FLOAT32_TOLERANCE, "SavedModel"
    )
    lite = check_agreement(
        reference, np.load(folder / "check_tflite.npy"), FLOAT32_TOLERANCE, "TensorFlow Lite"
    )
    return sample, saved, lite


def _note(what: str, count: int, difference: float) -> str:
    return (
        f"Converted from ONNX with onnx2tf {package_version('onnx2tf')} and TensorFlow "
        f"{package_version('tensorflow-cpu')}; largest probability difference of the {what} "
        f"from the ONNX model on {count} check images: {difference:.2g}. The input is NHWC: "
        "transpose the preprocessed (3, S, S) image to (S, S, 3)."
    )


def tflite(inputs: ExportInputs) -> Converted:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        sample, _, difference = _convert(inputs, folder)
        data = (folder / "model_float32.tflite").read_bytes()
    return Converted(
        files={TFLITE_FILE: data},
        model_path=TFLITE_FILE,
        format_name="TensorFlow Lite (LiteRT) flatbuffer, float32, NHWC input",
        runtime=f"ai-edge-litert {package_version('ai-edge-litert')} (LiteRT interpreter)",
        input_layout="NHWC",
        predict_template="predict_tflite.py",
        requirements=["ai-edge-litert", "pillow", "numpy"],
        output_name="Identity",
        notes=[_note("TensorFlow Lite model", len(sample), difference)],
    )


def saved_model(inputs: ExportInputs) -> Converted:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        sample, difference, _ = _convert(inputs, folder)
        root = folder / SAVED_MODEL
        files = {
            f"{SAVED_MODEL}/{path.relative_to(root).as_posix()}": path.read_bytes()
            for path in sorted(root.rglob("*"))
            if path.is_file()
        }
    return Converted(
        files=files,
        model_path=SAVED_MODEL,
        format_name="TensorFlow SavedModel (signature serving_default), float32, NHWC input",
        runtime=f"TensorFlow {package_version('tensorflow-cpu')}",
        input_layout="NHWC",
        predict_template="predict_savedmodel.py",
        requirements=["tensorflow", "pillow", "numpy"],
        notes=[_note("SavedModel", len(sample), difference)],
    )


def _nhwc(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(images, dtype=np.float32).transpose(0, 2, 3, 1))


def load_tflite(folder: Path, model_path: str, threads: int = 0) -> Runner:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(
        model_path=str(folder / model_path), num_threads=threads if threads else None
    )
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    shape: list[int] = []

    def run(images: np.ndarray) -> np.ndarray:
        batch = _nhwc(images)
        if list(batch.shape) != shape:  # reallocate only when the batch size changes
            interpreter.resize_tensor_input(source["index"], list(batch.shape))
            interpreter.allocate_tensors()
            shape[:] = batch.shape
        interpreter.set_tensor(source["index"], batch)
        interpreter.invoke()
        return np.array(interpreter.get_tensor(target["index"]), dtype=np.float32)

    return run


def load_saved_model(folder: Path, model_path: str, threads: int = 0) -> Runner:
    """Each call runs TensorFlow in a child process (see tf_convert.py for why)."""
    return lambda images: run_saved_model(folder, model_path, images)[0]


def run_saved_model(
    folder: Path, model_path: str, images: np.ndarray, timed_runs: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of `images` from the SavedModel, run by TensorFlow in a child process, and
    the seconds of `timed_runs` batch-1 calls there on one thread (for the benchmark)."""
    with tempfile.TemporaryDirectory() as name:
        source, target = Path(name) / "images.npy", Path(name) / "probabilities.npy"
        np.save(source, np.asarray(images, dtype=np.float32))
        arguments = [str(folder / model_path), str(source), str(target)]
        _tensorflow("predict", *arguments, *([str(timed_runs)] if timed_runs else []))
        times = np.load(f"{target}.times.npy") if timed_runs else np.zeros(0)
        return np.load(target), times
