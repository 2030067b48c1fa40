"""Core ML export: ONNX -> PyTorch (onnx2torch) -> TorchScript -> Core ML (coremltools).

coremltools converts from PyTorch, not ONNX, so the ONNX graph is first rebuilt as a torch
module (and checked against onnxruntime), then traced. The result is an ML Program
(`model.mlpackage`, iOS 15 / macOS 12 and later) declared as a classifier: outputs `classLabel`
(the most probable tag) and `classLabel_probs` (every tag's probability). Core ML runs only on
Apple platforms, so here the model is checked by loading its spec, not by predicting.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from functions.domain.artifacts import INPUT_NAME
from trainer_job.exports.bundle import Converted, package_version
from trainer_job.exports.inputs import ExportError, ExportInputs, Runner
from trainer_job.exports.onnx_formats import (
    FLOAT32_TOLERANCE,
    check_agreement,
    check_sample,
    probabilities,
    simplified,
)

PACKAGE = "model.mlpackage"
OUTPUT_NAME = "classLabel_probs"


def import_coremltools() -> Any:
    """coremltools, imported without its TensorFlow frontend: with TensorFlow loaded, importing
    triton afterwards (torch.jit does) crashes the process, and only the torch frontend is used."""
    if "coremltools" in sys.modules or "tensorflow" in sys.modules:
        import coremltools

        return coremltools
    logging.getLogger("coremltools").setLevel(logging.ERROR)  # "Torch version not tested"...
    sys.modules["tensorflow"] = None  # type: ignore[assignment]  # makes `import tensorflow` fail
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            import coremltools  # prints that its native runtime is missing (Linux)
    finally:
        del sys.modules["tensorflow"]
    return coremltools


def convert(inputs: ExportInputs) -> Converted:
    import onnx
    import torch
    from onnx2torch import convert as onnx_to_torch

    size = inputs.preprocessing.size
    coremltools = import_coremltools()
    sample = check_sample(inputs)
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.getLogger("coremltools").setLevel(logging.ERROR)
        try:
            net = onnx_to_torch(onnx.load_from_string(simplified(inputs.model_onnx))).eval()
            with torch.inference_mode():
                rebuilt = net(torch.from_numpy(sample)).numpy()
            difference = check_agreement(
                probabilities(inputs.model_onnx, sample), rebuilt, FLOAT32_TOLERANCE, "onnx2torch"
            )
            traced = torch.jit.trace(net, torch.from_numpy(sample[:1]))  # type: ignore[no-untyped-call]
            model = coremltools.convert(
                traced,
                inputs=[coremltools.TensorType(name=INPUT_NAME, shape=(1, 3, size, size))],
                classifier_config=coremltools.ClassifierConfig(inputs.tag_names),
                convert_to="mlprogram",
                minimum_deployment_target=coremltools.target.iOS15,
            )
        except ExportError:
            raise
        except Exception as error:  # the converters raise many kinds; the reason is what counts
            raise ExportError(f"the Core ML conversion failed: {error}") from error
    model.short_description = f"{inputs.manifest.backbone} classifier"
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / PACKAGE
        model.save(str(root))
        files = {
            f"{PACKAGE}/{path.relative_to(root).as_posix()}": path.read_bytes()
            for path in sorted(root.rglob("*"))
            if path.is_file()
        }
    version = package_version("coremltools")
    return Converted(
        files=files,
        model_path=PACKAGE,
        format_name="Core ML ML Program (.mlpackage, iOS 15+ / macOS 12+), classifier, "
        "float16 compute precision, NCHW input",
        runtime=f"Core ML (macOS / iOS); converted with coremltools {version}",
        input_layout="NCHW",
        predict_template="predict_coreml.py",
        requirements=["coremltools", "pillow", "numpy"],
        output_name=OUTPUT_NAME,
        notes=[
            f"Converted ONNX -> PyTorch with onnx2torch {package_version('onnx2torch')} (largest "
            f"probability difference from the ONNX model on {len(sample)} check images: "
            f"{difference:.2g}), then TorchScript -> Core ML with coremltools {version}.",
            "Core ML predicts only on Apple platforms: this export was checked by loading its "
            "spec (input, outputs, class labels), not by running it. Core ML computes in "
            "float16 by default; the ONNX float16 export, which rounds the same way, agreed "
            "with the float32 model on every test photo.",
            "The input is the preprocessed tensor (1, 3, S, S), not an image: preprocess as "
            "preprocessing.json says (predict.py shows how).",
        ],
    )


def spec_summary(folder: Path, model_path: str) -> dict[str, Any]:
    """The model's inputs, outputs and class labels, read with coremltools (any OS)."""
    model = import_coremltools().models.MLModel(str(folder / model_path), skip_model_load=True)
    spec = model.get_spec()
    description = spec.description
    return {
        "inputs": {item.name: list(item.type.multiArrayType.shape) for item in description.input},
        "outputs": [item.name for item in description.output],
        "predicted_feature": description.predictedFeatureName,
        "probabilities_output": description.predictedProbabilitiesName,
        "labels": _class_labels(spec),
    }


def _class_labels(spec: Any) -> list[str]:
    """The classes of the program's `classify` op (where an ML Program classifier keeps them)."""
    for function in spec.mlProgram.functions.values():
        block = function.block_specializations[function.opset]
        for operation in block.operations:
            if operation.type != "classify":
                continue
            for argument in operation.inputs["classes"].arguments:
                items = argument.value.immediateValue.list.values
                return [str(item.immediateValue.tensor.strings.values[0]) for item in items]
    return []


def load(folder: Path, model_path: str, threads: int = 0) -> Runner:
    if sys.platform != "darwin":
        raise ExportError(
            "Core ML models run only on macOS or iOS (coremltools cannot predict on "
            f"{sys.platform}); check the export with spec_summary() instead"
        )
    model = import_coremltools().models.MLModel(str(folder / model_path))
    labels = (folder / "labels.txt").read_text("utf-8").splitlines()

    def run(images: np.ndarray) -> np.ndarray:
        rows = []
        for image in np.asarray(images, dtype=np.float32):
            scores = model.predict({INPUT_NAME: image[None]})[OUTPUT_NAME]
            rows.append([scores[name] for name in labels])
        return np.asarray(rows, dtype=np.float32)

    return run
