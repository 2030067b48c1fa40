"""The detector: EfficientNet-Lite features at strides 8/16/32, an FPN-lite neck and an FCOS head.

Why FCOS (per-point classes, box distances and centerness) rather than CenterNet or YOLOX: with
15-50 photos per tag there is too little data to learn a heatmap peak per object (CenterNet's
single positive per box) and SimOTA's dynamic assignment is unstable while the predictions are
still poor; FCOS's fixed assignment (points near a box's centre, on the level its size belongs
to) gives each box several positives from the first step, needs no anchors to tune, and its
output is plain convolutions. The score of a point is sqrt(sigmoid(class) * sigmoid(centerness)).

The backbone is `build_backbone`'s network (batch norms folded into the convolutions, as the
classification fine-tuning uses it); the stem and the blocks of output stride up to
`frozen_stride` (FitConfig's 8: the high-resolution stages up to the first output level) are
frozen, the rest trains. Neck and head use depthwise-separable 3x3 convolutions with
`channels` (64 for Lite0, 96 for Lite2) channels; the two towers are shared across levels,
with GroupNorm (batch statistics of a few photos would be noise) and a learnt scale per level
for the distances.

Inputs are the photo resized (stretched) to `image_size` x `image_size`, normalised as
(x - 0.5) / 0.5: box fractions of the input are then box fractions of the photo.

Export: `DenseDetector` (the graph that goes to ONNX) outputs every point's box, as xyxy
fractions of the image, and its per-tag scores; `decode` (the service's numpy decoding: the
top-k, threshold and per-class NMS) is a separate post-process, so the graph stays plain tensor
arithmetic that every runtime and converter reads the same way, and the NMS parameters can
change without a new export.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from functions.domain.detection_decode import decode as decode_dense
from trainer_job.ml.backbone import build_backbone

STRIDES = (8, 16, 32)
PRIOR = 0.01  # initial class probability (focal loss's prior), so early losses are small


def separable(in_channels: int, out_channels: int, norm: str = "batch") -> nn.Sequential:
    """Depthwise 3x3 then pointwise 1x1, each normalised, ReLU after."""

    def normal(channels: int) -> nn.Module:
        if norm == "group":
            return nn.GroupNorm(min(16, channels // 4), channels)
        return nn.BatchNorm2d(channels)

    return nn.Sequential(
        nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False),
        normal(in_channels),
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
        normal(out_channels),
        nn.ReLU(inplace=True),
    )


class Trunk(nn.Module):
    """The backbone's stem and blocks, returning the last block output at each of STRIDES."""

    def __init__(self, backbone: str, frozen_stride: int) -> None:
        super().__init__()
        network: Any = build_backbone(backbone).network
        self.stem = nn.Sequential(network._conv_stem, network._bn0, network._swish)
        self.blocks = nn.ModuleList(network._blocks)
        strides, channels = self._block_shapes()
        self.taps = [max(i for i, s in enumerate(strides) if s == level) for level in STRIDES]
        self.channels = [channels[i] for i in self.taps]
        self.requires_grad_(True)
        if frozen_stride >= 2:
            self.stem.requires_grad_(False)
        for block, stride in zip(self.blocks, strides, strict=True):
            if stride <= frozen_stride:
                block.requires_grad_(False)

    @torch.no_grad()
    def _block_shapes(self) -> tuple[list[int], list[int]]:
        """Each block's output stride and channels."""
        x = self.stem(torch.zeros(1, 3, 64, 64))
        strides, channels = [], []
        for block in self.blocks:
            x = block(x)
            strides.append(64 // x.shape[-1])
            channels.append(x.shape[1])
        return strides, channels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        features = []
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in self.taps:
                features.append(x)
            if index == self.taps[-1]:
                break
        return features


class Neck(nn.Module):
    """FPN-lite: 1x1 laterals to `channels`, top-down nearest upsampling, a separable conv."""

    def __init__(self, in_channels: list[int], channels: int) -> None:
        super().__init__()
        self.laterals = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.smooth = nn.ModuleList(separable(channels, channels) for _ in in_channels)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        laterals = [conv(f) for conv, f in zip(self.laterals, features, strict=True)]
        for i in range(len(laterals) - 2, -1, -1):
            up = nn.functional.interpolate(laterals[i + 1], size=laterals[i].shape[-2:])
            laterals[i] = laterals[i] + up
        return [smooth(x) for smooth, x in zip(self.smooth, laterals, strict=True)]


class Head(nn.Module):
    """Shared towers: classes from one, box distances (in pixels) and centerness from the other."""

    def __init__(self, channels: int, num_classes: int, depth: int = 2) -> None:
        super().__init__()
        self.class_tower = nn.Sequential(
            *(separable(channels, channels, "group") for _ in range(depth))
        )
        self.box_tower = nn.Sequential(
            *(separable(channels, channels, "group") for _ in range(depth))
        )
        self.classes = nn.Conv2d(channels, num_classes, 3, padding=1)
        self.distances = nn.Conv2d(channels, 4, 3, padding=1)
        self.centerness = nn.Conv2d(channels, 1, 3, padding=1)
        self.scales = nn.Parameter(torch.ones(len(STRIDES)))
        for conv in (self.classes, self.distances, self.centerness):
            nn.init.normal_(conv.weight, std=0.01)
            assert conv.bias is not None
            nn.init.constant_(
                conv.bias, 0.0 if conv is not self.classes else -math.log(1 / PRIOR - 1)
            )

    def forward(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        logits, distances, centerness = [], [], []
        for level, x in enumerate(features):
            cls, box = self.class_tower(x), self.box_tower(x)
            # e^6 strides is past any image, and stays finite in float16 (autocast on CUDA)
            raw = (self.scales[level] * self.distances(box)).clamp(max=6.0)
            logits.append(self.classes(cls).flatten(2))
            distances.append((torch.exp(raw) * STRIDES[level]).flatten(2))
            centerness.append(self.centerness(box).flatten(2))
        return (
            torch.cat(logits, 2).transpose(1, 2),
            torch.cat(distances, 2).transpose(1, 2),
            torch.cat(centerness, 2)[:, 0],
        )


@dataclass(frozen=True)
class RawOutput:
    logits: torch.Tensor  # (N, A, K) class logits per point
    distances: torch.Tensor  # (N, A, 4) left, top, right, bottom distances in input pixels
    centerness: torch.Tensor  # (N, A) centerness logits


class Detector(nn.Module):
    """forward(x: (N, 3, S, S) normalised) -> RawOutput over the A points of every level."""

    points: torch.Tensor  # (A, 2) x, y in input pixels, level by level, row by row
    strides: torch.Tensor  # (A,)

    def __init__(
        self,
        backbone: str,
        num_classes: int,
        image_size: int,
        channels: int | None = None,
        frozen_stride: int = 8,
    ) -> None:
        super().__init__()
        self.backbone_name, self.num_classes, self.image_size = backbone, num_classes, image_size
        channels = channels or (64 if backbone.endswith("lite0") else 96)
        self.trunk = Trunk(backbone, frozen_stride)
        self.neck = Neck(self.trunk.channels, channels)
        self.head = Head(channels, num_classes)
        points, strides = self._points()
        self.register_buffer("points", points, persistent=False)
        self.register_buffer("strides", strides, persistent=False)

    @torch.no_grad()
    def _points(self) -> tuple[torch.Tensor, torch.Tensor]:
        was_training = self.training
        self.eval()
        sample = torch.zeros(1, 3, self.image_size, self.image_size)
        shapes = [f.shape[-2:] for f in self.trunk(sample)]
        self.train(was_training)
        points, strides = [], []
        for (height, width), stride in zip(shapes, STRIDES, strict=True):
            ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
            grid = torch.stack([xs.flatten(), ys.flatten()], 1).float()
            points.append((grid + 0.5) * (self.image_size / width))
            strides.append(torch.full((height * width,), float(stride)))
        return torch.cat(points), torch.cat(strides)

    def forward(self, x: torch.Tensor) -> RawOutput:
        logits, distances, centerness = self.head(self.neck(self.trunk(x)))
        return RawOutput(logits, distances, centerness)


def boxes_from_distances(points: torch.Tensor, distances: torch.Tensor) -> torch.Tensor:
    """(…, 4) xyxy boxes in pixels from points (A, 2) and distances (…, A, 4)."""
    return torch.cat([points - distances[..., :2], points + distances[..., 2:]], -1)


class DenseDetector(nn.Module):
    """The exported graph: image -> (boxes (N, A, 4) xyxy fractions in [0, 1], scores (N, A, K))."""

    def __init__(self, detector: Detector) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw = self.detector(x)
        size = float(self.detector.image_size)
        boxes = boxes_from_distances(self.detector.points, raw.distances) / size
        scores = torch.sqrt(torch.sigmoid(raw.logits) * torch.sigmoid(raw.centerness)[..., None])
        return boxes.clamp(0.0, 1.0), scores


@dataclass(frozen=True)
class Detections:
    """One image's detections, best first."""

    boxes: torch.Tensor  # (D, 4) left, top, width, height fractions
    scores: torch.Tensor  # (D,)
    classes: torch.Tensor  # (D,) int64 tag index


def decode(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    score_threshold: float = 0.05,
    nms_iou: float = 0.5,
    max_detections: int = 100,
    pre_nms: int = 1000,
) -> list[Detections]:
    """Post-process `DenseDetector`'s outputs, per image, with the service's own decoding
    (functions/domain/detection_decode.py: threshold, the best `pre_nms`, NMS per tag, the
    best `max_detections`), so held-out scores and served predictions are decoded alike."""
    found = []
    for image_boxes, image_scores in zip(boxes.float().cpu(), scores.float().cpu(), strict=True):
        d = decode_dense(
            image_boxes.numpy(), image_scores.numpy(), score_threshold, nms_iou, max_detections,
            pre_nms,
        )  # fmt: skip
        found.append(
            Detections(
                torch.from_numpy(d.boxes), torch.from_numpy(d.scores), torch.from_numpy(d.classes)
            )
        )
    return found


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
