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
from trainer_job.exports.inputs import ExportError, ExportInputs, Outputs, OutputsRunner
from trainer_job.exports.onnx_formats import simplified
from trainer_job.exports.reference import FLOAT32_TOLERANCE, check_sample, verify

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


def explicit_clip_bounds(model: Any) -> Any:
    """The ONNX model with each Clip's omitted bound given as a constant: onnx2torch takes an
    omitted input for a computed one ("Dynamic value of min/max"); the detector's head clamps
    its box distances with a maximum only."""
    import onnx
    from onnx import numpy_helper

    bounds = {1: np.finfo(np.float32).min, 2: np.finfo(np.float32).max}
    for position, value in bounds.items():
        name = f"clip_bound_{position}"
        model.graph.initializer.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        for node in model.graph.node:
            if node.op_type == "Clip" and len(node.input) > position and not node.input[position]:
                node.input[position] = name
    onnx.checker.check_model(model)
    return model


def _rebuilt(inputs: ExportInputs, sample: np.ndarray) -> tuple[Any, str]:
    """The ONNX model as a torch module, checked against onnxruntime; what was measured."""
    import onnx
    import torch
    from onnx2torch import convert as onnx_to_torch

    model = explicit_clip_bounds(onnx.load_from_string(simplified(inputs.model_onnx)))
    net = onnx_to_torch(model).eval()
    with torch.inference_mode():
        rebuilt = net(torch.from_numpy(sample))
    tensors = rebuilt if isinstance(rebuilt, tuple | list) else (rebuilt,)
    outputs = {name: t.numpy() for name, t in zip(inputs.output_names, tensors, strict=True)}
    return net, verify(inputs, sample, outputs, FLOAT32_TOLERANCE, "onnx2torch")


def _task_options(coremltools: Any, inputs: ExportInputs) -> dict[str, Any]:
    """A classifier is declared as one (classLabel, classLabel_probs); a detector keeps the
    service model's two outputs and their names."""
    if inputs.detects:
        return {"outputs": [coremltools.TensorType(name=name) for name in inputs.output_names]}
    return {"classifier_config": coremltools.ClassifierConfig(inputs.tag_names)}


def _package_files(model: Any) -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / PACKAGE
        model.save(str(root))
        return {
            f"{PACKAGE}/{path.relative_to(root).as_posix()}": path.read_bytes()
            for path in sorted(root.rglob("*"))
            if path.is_file()
        }


def convert(inputs: ExportInputs) -> Converted:
    import torch

    size = inputs.preprocessing.size
    coremltools = import_coremltools()
    sample = check_sample(inputs)
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.getLogger("coremltools").setLevel(logging.ERROR)
        try:
            net, measured = _rebuilt(inputs, sample)
            traced = torch.jit.trace(net, torch.from_numpy(sample[:1]))  # type: ignore[no-untyped-call]
            model = coremltools.convert(
                traced,
                inputs=[coremltools.TensorType(name=INPUT_NAME, shape=(1, 3, size, size))],
                convert_to="mlprogram",
                minimum_deployment_target=coremltools.target.iOS15,
                **_task_options(coremltools, inputs),
            )
        except ExportError:
            raise
        except Exception as error:  # the converters raise many kinds; the reason is what counts
            raise ExportError(f"the Core ML conversion failed: {error}") from error
    kind = "detector" if inputs.detects else "classifier"
    model.short_description = f"{inputs.manifest.backbone} {kind}"
    version = package_version("coremltools")
    outputs = f"outputs {' and '.join(inputs.output_names)}" if inputs.detects else "classifier"
    return Converted(
        files=_package_files(model),
        model_path=PACKAGE,
        format_name=f"Core ML ML Program (.mlpackage, iOS 15+ / macOS 12+), {outputs}, "
        "float16 compute precision, NCHW input",
        runtime=f"Core ML (macOS / iOS); converted with coremltools {version}",
        input_layout="NCHW",
        predict_template="predict_coreml.py",
        requirements=["coremltools", "pillow", "numpy"],
        output_name=None if inputs.detects else OUTPUT_NAME,
        notes=[
            f"Converted ONNX -> PyTorch with onnx2torch {package_version('onnx2torch')} "
            f"({measured}), then TorchScript -> Core ML with coremltools {version}.",
            "Core ML predicts only on Apple platforms: this export was checked by loading its "
            f"spec (input, outputs{'' if inputs.detects else ', class labels'}), not by running "
            "it. Core ML computes in float16 by default; the ONNX float16 export, which rounds "
            "the same way, agreed with the float32 model on every test photo.",
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


def load(folder: Path, model_path: str, threads: int = 0) -> OutputsRunner:
    if sys.platform != "darwin":
        raise ExportError(
            "Core ML models run only on macOS or iOS (coremltools cannot predict on "
            f"{sys.platform}); check the export with spec_summary() instead"
        )
    model = import_coremltools().models.MLModel(str(folder / model_path))
    labels = (folder / "labels.txt").read_text("utf-8").splitlines()
    detects = spec_summary(folder, model_path)["probabilities_output"] == ""

    def run(images: np.ndarray) -> Outputs:
        rows: list[Any] = []
        for image in np.asarray(images, dtype=np.float32):
            result = model.predict({INPUT_NAME: image[None]})
            rows.append(result if detects else [result[OUTPUT_NAME][name] for name in labels])
        if detects:
            return {name: np.concatenate([r[name] for r in rows]) for name in rows[0]}
        return {OUTPUT_NAME: np.asarray(rows, dtype=np.float32)}

    return run
