"""TensorFlow work in its own process: onnx2tf's conversion, and running a SavedModel.

    python tf_convert.py convert MODEL.onnx OUT_FOLDER CHECK.npy
    python tf_convert.py predict SAVED_MODEL IMAGES.npy OUT.npz [TIMED_RUNS]

Run as a script by tensorflow_format.py. TensorFlow stays out of the caller's process: its import
is slow and loud, and once it is loaded, loading triton (which torch and coremltools import)
crashes the process (their LLVM copies clash). `convert` writes OUT_FOLDER/saved_model/,
OUT_FOLDER/model_float32.tflite and the outputs of both on CHECK.npy (NCHW images, fed as NHWC),
every output by its name: check_saved_model.npz (the SavedModel's signature keeps the ONNX
graph's names) and check_tflite.npz (the TensorFlow Lite model names its outputs Identity,
Identity_1, ... in the ONNX graph's order). Nothing is downloaded: where onnx2tf would download
test images (to check each operation of a model whose batch is fixed, and correct its layout),
it is given CHECK.npy's images instead. `predict` writes the SavedModel's outputs for IMAGES.npy
(NCHW) to OUT.npz and, given TIMED_RUNS, the seconds of that many batch-1 calls (one thread) to
OUT.npz.times.npy.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")


def _nhwc(path: Path) -> Any:
    import numpy as np

    return np.ascontiguousarray(np.load(path).transpose(0, 2, 3, 1), dtype=np.float32)


def convert(model: Path, out: Path, check: Path) -> None:
    import numpy as np
    import onnx2tf

    images = _nhwc(check)
    sys.modules["onnx2tf.onnx2tf"].download_test_image_data = lambda: images  # type: ignore[attr-defined]
    onnx2tf.convert(
        input_onnx_file_path=str(model),
        output_folder_path=str(out / "saved_model"),
        not_use_onnxsim=True,  # the caller simplified the model already (onnxslim)
        non_verbose=True,
    )
    (out / "saved_model" / f"{model.stem}_float32.tflite").rename(out / "model_float32.tflite")
    for extra in (out / "saved_model").glob("*.tflite"):
        extra.unlink()

    from ai_edge_litert.interpreter import Interpreter

    np.savez(out / "check_saved_model.npz", **_serve(out / "saved_model")(images))
    interpreter = Interpreter(model_path=str(out / "model_float32.tflite"))
    source = interpreter.get_input_details()[0]
    targets = {d["name"]: d["index"] for d in interpreter.get_output_details()}
    outputs: dict[str, list[Any]] = {name: [] for name in targets}
    for index in range(len(images)):  # one at a time: a detector's batch is fixed to 1
        interpreter.resize_tensor_input(source["index"], [1, *images.shape[1:]])
        interpreter.allocate_tensors()
        interpreter.set_tensor(source["index"], images[index : index + 1])
        interpreter.invoke()
        for tflite_name, target in targets.items():
            outputs[tflite_name].append(interpreter.get_tensor(target))
    batched = {name: np.concatenate(values) for name, values in outputs.items()}
    np.savez(out / "check_tflite.npz", **batched)  # type: ignore[arg-type]


def _serve(saved_model: Path) -> Any:
    import tensorflow as tf

    signature = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
    # One input (the service's name, which onnx2tf keeps): used by position, so this script
    # needs nothing from the service's code. The outputs keep their names too.
    (input_name,) = signature.structured_input_signature[1]

    def serve(batch: Any) -> dict[str, Any]:
        import numpy as np

        fixed = signature.structured_input_signature[1][input_name].shape[0] == 1
        if fixed and len(batch) > 1:  # a model whose batch is fixed to 1: one at a time
            parts = [serve(batch[i : i + 1]) for i in range(len(batch))]
            return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
        outputs = signature(**{input_name: tf.constant(batch)})
        return {name: value.numpy() for name, value in outputs.items()}

    return serve


def predict(saved_model: Path, images_path: Path, out: Path, timed_runs: int) -> None:
    import numpy as np

    if timed_runs:  # timed on one thread, as the benchmark times every runtime
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)

    serve = _serve(saved_model)
    images = _nhwc(images_path)
    np.savez(out, **serve(images))
    if timed_runs:
        serve(images[:1])  # the first call traces the function
        times = []
        for i in range(timed_runs):
            start = time.perf_counter()
            serve(images[i % len(images) : i % len(images) + 1])
            times.append(time.perf_counter() - start)
        np.save(f"{out}.times.npy", np.asarray(times))


if __name__ == "__main__":
    command, arguments = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("", [])
    if command == "convert" and len(arguments) == 3:
        convert(Path(arguments[0]), Path(arguments[1]), Path(arguments[2]))
    elif command == "predict" and len(arguments) in (3, 4):
        runs = int(arguments[3]) if len(arguments) == 4 else 0
        predict(Path(arguments[0]), Path(arguments[1]), Path(arguments[2]), runs)
    else:
        sys.exit(__doc__)
