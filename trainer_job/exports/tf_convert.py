"""TensorFlow work in its own process: onnx2tf's conversion, and running a SavedModel.

    python tf_convert.py convert MODEL.onnx OUT_FOLDER CHECK.npy
    python tf_convert.py predict SAVED_MODEL IMAGES.npy OUT.npy [TIMED_RUNS]

Run as a script by tensorflow_format.py. TensorFlow stays out of the caller's process: its import
is slow and loud, and once it is loaded, loading triton (which torch and coremltools import)
crashes the process (their LLVM copies clash). `convert` writes OUT_FOLDER/saved_model/,
OUT_FOLDER/model_float32.tflite and the outputs of both on CHECK.npy (NCHW images, fed as NHWC):
check_saved_model.npy and check_tflite.npy. Nothing is downloaded: onnx2tf's test-image download
is replaced by an error. `predict` writes the SavedModel's probabilities for IMAGES.npy (NCHW)
to OUT.npy and, given TIMED_RUNS, the seconds of that many batch-1 calls (one thread) to
OUT.npy.times.npy.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")


def _refuse_download() -> None:
    raise RuntimeError("onnx2tf asked to download test images; exports must work offline")


def _nhwc(path: Path) -> Any:
    import numpy as np

    return np.ascontiguousarray(np.load(path).transpose(0, 2, 3, 1), dtype=np.float32)


def convert(model: Path, out: Path, check: Path) -> None:
    import numpy as np
    import onnx2tf

    sys.modules["onnx2tf.onnx2tf"].download_test_image_data = _refuse_download  # type: ignore[attr-defined]
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

    images = _nhwc(check)
    np.save(out / "check_saved_model.npy", _serve(out / "saved_model")(images))
    interpreter = Interpreter(model_path=str(out / "model_float32.tflite"))
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(source["index"], list(images.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(source["index"], images)
    interpreter.invoke()
    np.save(out / "check_tflite.npy", interpreter.get_tensor(target["index"]))


def _serve(saved_model: Path) -> Any:
    import tensorflow as tf

    signature = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
    # One input and one output (the service's tensor names, which onnx2tf keeps): used by
    # position, so this script needs nothing from the service's code.
    (input_name,) = signature.structured_input_signature[1]

    def serve(batch: Any) -> Any:
        (output,) = signature(**{input_name: tf.constant(batch)}).values()
        return output.numpy()

    return serve


def predict(saved_model: Path, images_path: Path, out: Path, timed_runs: int) -> None:
    import numpy as np

    if timed_runs:  # timed on one thread, as the benchmark times every runtime
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)

    serve = _serve(saved_model)
    images = _nhwc(images_path)
    np.save(out, serve(images).astype(np.float32))
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
