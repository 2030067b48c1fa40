"""The served classifier (backbone, linear head, softmax|sigmoid in one module), and the ONNX export
and its verification against torch that every task's graph goes through."""

from __future__ import annotations

import platform
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from torch import nn

from functions.domain.artifacts import INPUT_NAME, OUTPUT_NAME
from trainer_job.ml.backbone import FeatureExtractor, build_backbone
from trainer_job.ml.head import LinearHead

OPSET = 17
ONNX_TOLERANCE = 1e-4  # max abs difference allowed between onnxruntime and torch


class ClassifierNet(nn.Module):
    """forward(x: (N, 3, S, S) float32 normalised like Preprocessing) -> probabilities (N, T)."""

    def __init__(self, extractor: FeatureExtractor, head: LinearHead) -> None:
        super().__init__()
        weight, bias = head.folded()
        self.extractor = extractor
        self.backbone = extractor.name  # what the manifest names
        self.linear = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(torch.from_numpy(weight))
            self.linear.bias.copy_(torch.from_numpy(bias))
        self.multilabel = head.multilabel
        self.image_size = extractor.image_size
        self.eval()
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.linear(self.extractor(x))
        if self.multilabel:
            return torch.sigmoid(logits)
        return torch.softmax(logits, dim=1)


def build_classifier(backbone_name: str, head: LinearHead) -> ClassifierNet:
    """The served model on the CPU: a private copy of the backbone with `head` on top."""
    return ClassifierNet(build_backbone(backbone_name), head)


def export_onnx(
    net: nn.Module, path: str | Path, image_size: int, outputs: tuple[str, ...] = (OUTPUT_NAME,)
) -> None:
    """Write `net` as ONNX (opset 17): input "image" (N, 3, S, S), outputs named `outputs`
    (a classifier's "probabilities"; a detector's "boxes" and "scores")."""
    net = net.cpu().eval()
    sample = torch.zeros((1, 3, image_size, image_size), dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter warns it is legacy
        torch.onnx.export(
            net,
            (sample,),
            str(path),
            dynamo=False,  # the dynamo exporter needs onnxscript, which is not installed
            input_names=[INPUT_NAME],
            output_names=list(outputs),
            dynamic_axes={name: {0: "batch"} for name in (INPUT_NAME, *outputs)},
            opset_version=OPSET,
            do_constant_folding=True,
        )


def onnx_session(path: str | Path) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def verify_onnx(
    path: str | Path, net: nn.Module, sample: np.ndarray, outputs: tuple[str, ...] = (OUTPUT_NAME,)
) -> float:
    """Max abs difference between torch's and onnxruntime's (CPU) outputs on `sample`."""
    batch = np.ascontiguousarray(sample, dtype=np.float32)
    on = next(net.parameters()).device
    with torch.inference_mode():
        answer = net(torch.from_numpy(batch).to(on))
    expected = answer if isinstance(answer, tuple) else (answer,)
    actual = onnx_session(path).run(list(outputs), {INPUT_NAME: batch})
    return max(
        float(np.abs(np.asarray(a) - e.float().cpu().numpy()).max())
        for a, e in zip(actual, expected, strict=True)
    )


@dataclass(frozen=True)
class VerifiedModel:
    onnx: bytes
    max_abs_difference: float  # onnxruntime against torch on the sample


def export_verified(
    net: nn.Module, sample: np.ndarray, image_size: int, outputs: tuple[str, ...] = (OUTPUT_NAME,)
) -> VerifiedModel:
    """`net` as ONNX bytes, refused when onnxruntime and torch disagree on `sample`."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        export_onnx(net, path, image_size, outputs)
        difference = verify_onnx(path, net, sample, outputs)
        if difference > ONNX_TOLERANCE:
            raise RuntimeError(f"ONNX and torch disagree by {difference:.2e}")
        return VerifiedModel(path.read_bytes(), difference)


def runtime_versions() -> dict[str, str]:
    """The versions a manifest records."""
    return {
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }
