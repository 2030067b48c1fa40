"""TensorFlow exports, from ONNX by onnx2tf: TensorFlow Lite (model.tflite) and SavedModel.

Both take NHWC input, (N, S, S, 3): onnx2tf transposes the whole network to TensorFlow's layout.
The conversion runs in a child process (tf_convert.py) with a time limit; both results are
checked against onnxruntime before they are bundled. A detector's graph is prepared for onnx2tf
(`for_onnx2tf`): its batch fixed to 1 and its GroupNorms written in 4-D operations.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

from functions.domain import artifacts
from trainer_job.exports import group_norm
from trainer_job.exports.bundle import Converted, package_version
from trainer_job.exports.inputs import ExportError, ExportInputs, Outputs, OutputsRunner
from trainer_job.exports.onnx_formats import simplified
from trainer_job.exports.reference import FLOAT32_TOLERANCE, check_sample, verify

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


def for_onnx2tf(inputs: ExportInputs) -> bytes:
    """The model as onnx2tf converts it correctly. A detector's has its batch fixed to 1: its
    reshapes then fold to constants, and onnx2tf checks each operation against onnxruntime on
    the check images and corrects the layouts it got wrong (with a free batch it checks nothing,
    and the head's (N, A, 4) boxes came out transposed); and its GroupNorms are written in 4-D
    operations (group_norm.py). A classifier's keeps its free batch."""
    if not inputs.detects:
        return simplified(inputs.model_onnx)
    model = onnx.load_from_string(inputs.model_onnx)
    (batch, *_) = model.graph.input[0].type.tensor_type.shape.dim
    batch.Clear()
    batch.dim_value = 1
    for output in model.graph.output:  # inferred again, with the batch fixed
        output.type.tensor_type.shape.Clear()
    return group_norm.rewrite(simplified(model.SerializeToString()))


def _convert(inputs: ExportInputs, folder: Path) -> tuple[str, str]:
    """Run tf_convert.py into `folder`; what was measured of the SavedModel and of the
    TensorFlow Lite model against the ONNX model."""
    model, check = folder / "model.onnx", folder / "check.npy"
    model.write_bytes(for_onnx2tf(inputs))
    sample = check_sample(inputs)
    np.save(check, sample)
    _tensorflow("convert", str(model), str(folder), str(check))
    measured = []
    service = {name: name for name in inputs.output_names}  # the SavedModel keeps the names
    lite = {tflite: name for name, tflite in tflite_names(inputs).items()}
    for what, name, names in (
        ("SavedModel", "saved_model", service),
        ("TensorFlow Lite", "tflite", lite),
    ):
        with np.load(folder / f"check_{name}.npz") as stored:
            outputs = {names.get(key, key): stored[key] for key in stored.files}
        measured.append(verify(inputs, sample, outputs, FLOAT32_TOLERANCE, what))
    return measured[0], measured[1]


def _note(measured: str) -> str:
    return (
        f"Converted from ONNX with onnx2tf {package_version('onnx2tf')} and TensorFlow "
        f"{package_version('tensorflow-cpu')}; {measured}. The input is NHWC: transpose the "
        "preprocessed (3, S, S) image to (S, S, 3)."
    )


def tflite(inputs: ExportInputs) -> Converted:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        _, measured = _convert(inputs, folder)
        data = (folder / "model_float32.tflite").read_bytes()
    names = tflite_names(inputs)
    return Converted(
        files={TFLITE_FILE: data},
        model_path=TFLITE_FILE,
        format_name="TensorFlow Lite (LiteRT) flatbuffer, float32, NHWC input",
        runtime=f"ai-edge-litert {package_version('ai-edge-litert')} (LiteRT interpreter)",
        input_layout="NHWC",
        predict_template="predict_tflite.py",
        requirements=["ai-edge-litert", "pillow", "numpy"],
        output_name=names[inputs.manifest.output_name],
        boxes_name=names.get(inputs.output_names[0]) if inputs.detects else None,
        notes=[_note(measured)],
    )


def saved_model(inputs: ExportInputs) -> Converted:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        measured, _ = _convert(inputs, folder)
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
        notes=[_note(measured)],
    )


def _nhwc(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(images, dtype=np.float32).transpose(0, 2, 3, 1))


def tflite_output_name(position: int) -> str:
    """The name onnx2tf gives the TensorFlow Lite model's output at `position` in the graph."""
    return "Identity" if position == 0 else f"Identity_{position}"


def tflite_names(inputs: ExportInputs) -> dict[str, str]:
    """The service model's output names -> the TensorFlow Lite model's (onnx2tf's Identity,
    Identity_1, ... in the ONNX graph's order)."""
    order = [output.name for output in onnx.load_from_string(inputs.model_onnx).graph.output]
    return {name: tflite_output_name(order.index(name)) for name in inputs.output_names}


def load_tflite(folder: Path, model_path: str, threads: int = 0) -> OutputsRunner:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(
        model_path=str(folder / model_path), num_threads=threads if threads else None
    )
    source = interpreter.get_input_details()[0]
    targets = {d["name"]: d["index"] for d in interpreter.get_output_details()}
    # preprocessing.json names the bundled model's outputs; answered by the service's names
    settings = json.loads((folder / "preprocessing.json").read_text("utf-8"))
    service = {settings["output"]["name"]: artifacts.OUTPUT_NAME}
    if settings.get("task") == artifacts.DETECTION:
        service = {
            settings["boxes"]["name"]: artifacts.BOXES_NAME,
            settings["output"]["name"]: artifacts.SCORES_NAME,
        }

    def run(images: np.ndarray) -> Outputs:
        batch, outputs = _nhwc(images), dict[str, list[np.ndarray]]()
        for index in range(len(batch)):  # one at a time: a detector's batch is fixed to 1
            interpreter.resize_tensor_input(source["index"], [1, *batch.shape[1:]])
            interpreter.allocate_tensors()
            interpreter.set_tensor(source["index"], batch[index : index + 1])
            interpreter.invoke()
            for name, target in targets.items():
                value = np.array(interpreter.get_tensor(target), dtype=np.float32)
                outputs.setdefault(service[name], []).append(value)
        return {name: np.concatenate(values) for name, values in outputs.items()}

    return run


def load_saved_model(folder: Path, model_path: str, threads: int = 0) -> OutputsRunner:
    """Each call runs TensorFlow in a child process (see tf_convert.py for why)."""
    return lambda images: saved_model_outputs(folder, model_path, images)[0]


def saved_model_outputs(
    folder: Path, model_path: str, images: np.ndarray, timed_runs: int = 0
) -> tuple[Outputs, np.ndarray]:
    """Every output of the SavedModel for `images`, by name, run by TensorFlow in a child
    process, and the seconds of `timed_runs` batch-1 calls there on one thread."""
    with tempfile.TemporaryDirectory() as name:
        source, target = Path(name) / "images.npy", Path(name) / "outputs.npz"
        np.save(source, np.asarray(images, dtype=np.float32))
        arguments = [str(folder / model_path), str(source), str(target)]
        _tensorflow("predict", *arguments, *([str(timed_runs)] if timed_runs else []))
        times = np.load(f"{target}.times.npy") if timed_runs else np.zeros(0)
        with np.load(target) as stored:
            return {key: np.asarray(stored[key], np.float32) for key in stored.files}, times


def run_saved_model(
    folder: Path, model_path: str, images: np.ndarray, timed_runs: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A classifier's probabilities from the SavedModel, as saved_model_outputs does."""
    outputs, times = saved_model_outputs(folder, model_path, images, timed_runs)
    (probabilities,) = outputs.values()
    return probabilities, times
