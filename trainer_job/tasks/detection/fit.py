"""Training and evaluation of the detector: FCOS target assignment and loss, `train_one_epoch`,
`evaluate`, and `fit` (AdamW, warm-up then cosine decay, within a wall-clock budget).

Assignment (FCOS with centre sampling): a point is a positive of a box when it lies inside the
box, within `CENTRE_RADIUS` strides of its centre, and the box's largest distance from it falls
in its level's range (S/8 and S/4 split the three levels, S the input side); a point claimed by
several boxes takes the smallest. Loss: sigmoid focal loss over every point and tag (divided by
the positives), GIoU on the positives' boxes weighted by their centerness target, and binary
cross-entropy of the centerness.

`fit` plans the epochs from the budget: after each epoch it sets the total to the epochs done
plus as many as the time left allows (at most `FitConfig.epochs`), and the cosine follows that
total. A parameter average (EMA) is what is returned. CPU by default; CUDA with autocast
(float16) when there is one. Tensors are channels-last: on the CPU that makes the depthwise
convolutions about 3 times faster, training included.

Measured with bench/detector_offline.py (Lite0 at 320 px, 30 photos per tag, seed 0, 180 s
budget on 2 shared CPU cores; mAP@0.5 on the held-out photos, raccoon / bccd):
- first recipe as it stands (mosaic 0.5, boxes kept down to 20% visible, EMA 0.995, AdamW
  2e-3 with the backbone at 0.25x, stride <= 4 frozen, batch 8): 0.815 / 0.733 in 20 / 22
  epochs.
- the same without mosaic, 20 epochs fixed (the machine was shared, so ablations fix the
  epochs rather than the budget): 0.848 / 0.741 (Platelets 0.53 instead of 0.59, RBC 0.73
  instead of 0.63): no gain from mosaic at this length of training, within one seed's noise.
  Seed 1, 20 epochs: mosaic 0.853 / 0.650, without 0.847 / 0.674 (Platelets 0.34 / 0.32).
  So mosaic is off by default (Augmentation.mosaic = 0; it stays available).
- without mosaic, seed 0, 20 epochs: batch 4 instead of 8 (twice the steps) 0.838 / 0.785;
  warm-up over 15 steps instead of 60 (60 was most of the ~80 steps, so the rate hardly
  reached its peak) 0.861 / 0.777. Kept: warm-up 15, batch 8 (the combination of both was
  not measured).
- the kept recipe, 180 s budget: seed 0 0.820 (16 epochs, the machine busy) / 0.821 (54
  epochs); seed 1 0.884 (55 epochs) / 0.824 (59 epochs; Platelets 0.76, RBC 0.73, WBC 0.98).
  The epochs the budget allows matter most: 16 epochs on raccoon gave 0.82, 55 gave 0.88.
- how much of the backbone to freeze, 25 epochs fixed, seed 0 (`--epochs 25 --budget 100000
  --set frozen_stride=N`): up to stride 4 (the earlier default) 0.795 / 0.780, up to 8
  0.837 / 0.780, up to 16 0.865 / 0.743 (BCCD's small Platelets lose: 0.52 against 0.63).
  Freezing through stride 8 is kept: never worse at equal epochs, and a step costs less
  (CPU seconds per batch of 8: Lite0 at 320 px 1.07 / 0.93 / 0.67 for 4 / 8 / 16, Lite2 at
  416 px 2.8 / 2.2 / 1.6), so the budget holds more epochs.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torchvision  # type: ignore[import-untyped]
from PIL import Image
from torch import nn

from functions.domain.detection_metrics import (
    DetectionMetrics,
    LabelledBox,
    PredictedBox,
    evaluate_detections,
)
from trainer_job.tasks.detection.data import (
    Augmentation,
    DetectionDataset,
    LabelledImage,
    Sample,
    collate,
    input_tensor,
)
from trainer_job.tasks.detection.model import (
    DenseDetector,
    Detections,
    Detector,
    RawOutput,
    boxes_from_distances,
    decode,
)

CENTRE_RADIUS = 1.5  # in strides


@dataclass(frozen=True)
class FitConfig:
    backbone: str = "efficientnet-lite0"
    image_size: int = 320
    seed: int = 0
    epochs: int = 300  # at most; the budget usually decides
    budget_seconds: float = 180.0
    batch_size: int = 8
    lr: float = 2e-3  # neck and head; the backbone's is `backbone_lr_scale` times this
    backbone_lr_scale: float = 0.25
    weight_decay: float = 0.01
    warmup_steps: int = 15
    ema_decay: float = 0.995
    frozen_stride: int = 8  # the stem and blocks up to this output stride do not train
    augmentation: Augmentation = field(default_factory=Augmentation)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def level_limits(strides: torch.Tensor, image_size: int) -> torch.Tensor:
    """(A, 2) the range of a box's largest point distance that each point's level predicts."""
    edges = torch.tensor([0.0, image_size / 8, image_size / 4, math.inf], device=strides.device)
    level = torch.bucketize(strides, torch.tensor([8.0, 16.0], device=strides.device))
    return torch.stack([edges[level], edges[level + 1]], 1)


def assign(
    points: torch.Tensor,
    strides: torch.Tensor,
    limits: torch.Tensor,
    boxes: torch.Tensor,
    tags: torch.Tensor,
    num_classes: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One image's targets: classes (A, K) 0/1, boxes (A, 4) xyxy pixels, positives (A,)."""
    count = points.shape[0]
    classes = torch.zeros(count, num_classes, device=points.device)
    if boxes.shape[0] == 0:
        return classes, torch.zeros(count, 4, device=points.device), classes[:, 0] > 0
    x, y = points[:, :1], points[:, 1:]
    ltrb = torch.stack([x - boxes[:, 0], y - boxes[:, 1], boxes[:, 2] - x, boxes[:, 3] - y], -1)
    centre_x, centre_y = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    radius = strides[:, None] * CENTRE_RADIUS
    near = ((x - centre_x).abs() < radius) & ((y - centre_y).abs() < radius)
    reach = ltrb.max(-1).values
    fits = (reach >= limits[:, :1]) & (reach <= limits[:, 1:])
    allowed = near & fits & (ltrb.min(-1).values > 0)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    cost = torch.where(allowed, area[None].expand_as(allowed), math.inf)
    best_cost, best = cost.min(1)
    positive = torch.isfinite(best_cost)
    classes[positive, tags[best[positive]]] = 1.0
    return classes, boxes[best], positive


def centerness_target(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    left, top = points[:, 0] - boxes[:, 0], points[:, 1] - boxes[:, 1]
    right, bottom = boxes[:, 2] - points[:, 0], boxes[:, 3] - points[:, 1]
    horizontal = left.minimum(right) / left.maximum(right).clamp(min=1e-6)
    vertical = top.minimum(bottom) / top.maximum(bottom).clamp(min=1e-6)
    return (horizontal.clamp(min=0) * vertical.clamp(min=0)).sqrt()


def detection_loss(
    model: Detector, raw: RawOutput, boxes: list[torch.Tensor], tags: list[torch.Tensor]
) -> tuple[torch.Tensor, dict[str, float]]:
    """The batch's loss and its parts (classes, boxes, centerness)."""
    points, strides = model.points, model.strides
    limits = level_limits(strides, model.image_size)
    targets = [
        assign(points, strides, limits, b, t, model.num_classes)
        for b, t in zip(boxes, tags, strict=True)
    ]
    classes = torch.stack([t[0] for t in targets])
    target_boxes = torch.stack([t[1] for t in targets])
    positive = torch.stack([t[2] for t in targets])
    positives = max(float(positive.sum()), 1.0)
    logits = raw.logits.float()
    class_loss = torchvision.ops.sigmoid_focal_loss(logits, classes, reduction="sum") / positives
    at = points.expand(positive.shape[0], -1, -1)[positive]
    predicted = boxes_from_distances(at, raw.distances.float()[positive])
    wanted = target_boxes[positive]
    centre = centerness_target(at, wanted)
    giou = torchvision.ops.generalized_box_iou_loss(predicted, wanted, reduction="none")
    box_loss = (giou * centre).sum() / centre.sum().clamp(min=1e-6)
    centre_loss = (
        nn.functional.binary_cross_entropy_with_logits(
            raw.centerness.float()[positive], centre, reduction="sum"
        )
        / positives
    )
    total = class_loss + box_loss + centre_loss
    parts = {
        "classes": class_loss.item(),
        "boxes": box_loss.item(),
        "centerness": centre_loss.item(),
    }
    return total, parts


class Schedule:
    """Linear warm-up then cosine decay to 5% over `total_steps` (which `fit` may re-plan)."""

    def __init__(self, optimiser: torch.optim.Optimizer, warmup: int, total_steps: int) -> None:
        self.optimiser, self.warmup, self.total_steps, self.step_count = (
            optimiser,
            warmup,
            total_steps,
            0,
        )
        self.base = [group["lr"] for group in optimiser.param_groups]

    def step(self) -> None:
        self.step_count += 1
        progress = min(self.step_count / max(self.total_steps, 1), 1.0)
        factor = 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))
        factor *= min(1.0, self.step_count / max(self.warmup, 1))
        for group, base in zip(self.optimiser.param_groups, self.base, strict=True):
            group["lr"] = base * factor


class ParameterAverage:
    """An exponential moving average of the model's parameters and buffers; its decay ramps up
    over the first updates so that the early, poor weights fade quickly."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = self.decay * (1 - math.exp(-self.updates / 50))
        mine = self.model.state_dict()
        for name, value in model.state_dict().items():
            if value.dtype.is_floating_point:
                mine[name].mul_(decay).add_(value.detach(), alpha=1 - decay)
            else:
                mine[name].copy_(value)


def train_one_epoch(
    model: Detector,
    loader: torch.utils.data.DataLoader[Sample],
    optimiser: torch.optim.Optimizer,
    schedule: Schedule,
    average: ParameterAverage | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> float:
    """One pass over the loader; the mean loss of its batches."""
    model.train()
    on = model.points.device
    losses = []
    for images, boxes, tags in loader:
        images = images.to(on, non_blocking=True).contiguous(memory_format=torch.channels_last)
        boxes, tags = [b.to(on) for b in boxes], [t.to(on) for t in tags]
        with torch.autocast(str(on.type), dtype=torch.float16, enabled=on.type == "cuda"):
            raw = model(images)
        loss, _ = detection_loss(model, raw, boxes, tags)
        optimiser.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
            scaler.unscale_(optimiser)
        else:
            loss.backward()  # type: ignore[no-untyped-call]
        nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        if scaler is not None:
            scaler.step(optimiser)
            scaler.update()
        else:
            optimiser.step()
        schedule.step()
        if average is not None:
            average.update(model)
        losses.append(loss.item())
    return float(np.mean(losses)) if losses else math.nan


@torch.inference_mode()
def predict(
    model: Detector,
    images: Sequence[Image.Image],
    batch_size: int = 8,
    score_threshold: float = 0.05,
) -> list[Detections]:
    """Detections of each PIL image, boxes as (left, top, width, height) fractions."""
    model.eval()
    dense = DenseDetector(model)
    on = model.points.device
    found: list[Detections] = []
    for start in range(0, len(images), batch_size):
        batch = torch.stack(
            [input_tensor(i, model.image_size) for i in images[start : start + batch_size]]
        )
        with torch.autocast(str(on.type), dtype=torch.float16, enabled=on.type == "cuda"):
            boxes, scores = dense(batch.to(on).contiguous(memory_format=torch.channels_last))
        found.extend(
            Detections(d.boxes.float().cpu(), d.scores.float().cpu(), d.classes.cpu())
            for d in decode(boxes.float(), scores.float(), score_threshold)
        )
    return found


def evaluate(
    model: Detector, photos: Sequence[LabelledImage], tag_names: Sequence[str]
) -> tuple[DetectionMetrics, list[Detections]]:
    """mAP@0.5 and per-tag AP (precision and recall at 0.5) of the model on `photos`."""
    detections = predict(model, [p.image for p in photos])
    predictions = [
        [
            PredictedBox(tag_names[int(c)], float(s), *(float(v) for v in b))
            for b, s, c in zip(d.boxes, d.scores, d.classes, strict=True)
        ]
        for d in detections
    ]
    labels = [
        [
            LabelledBox(tag_names[int(t)], *(float(v) for v in b))
            for b, t in zip(p.boxes, p.tags, strict=True)
        ]
        for p in photos
    ]
    return evaluate_detections(predictions, labels, tag_names), detections


@dataclass
class FitResult:
    model: Detector  # the parameter average, in eval mode
    epochs: int
    losses: list[float]
    seconds: float


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def make_optimiser(model: Detector, config: FitConfig) -> torch.optim.AdamW:
    """AdamW; the backbone at a lower rate; no weight decay on norms, biases and scales."""
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            key = (name.startswith("trunk."), parameter.ndim > 1)
            groups.setdefault(key, []).append(parameter)
    return torch.optim.AdamW(
        [
            {
                "params": params,
                "lr": config.lr * (config.backbone_lr_scale if in_trunk else 1.0),
                "weight_decay": config.weight_decay if decays else 0.0,
            }
            for (in_trunk, decays), params in sorted(groups.items())
        ]
    )


def fit(
    photos: Sequence[LabelledImage],
    num_classes: int,
    config: FitConfig = FitConfig(),
    progress: Callable[[int, int, float], None] | None = None,
    start: Detector | None = None,
) -> FitResult:
    """A detector trained on `photos` within `config.budget_seconds` (wall clock), from
    ImageNet's backbone and a new neck and head, or from `start`'s weights (a detector of the
    same tags trained before); `progress(epoch, planned epochs, mean loss)` after each epoch."""
    started = time.monotonic()
    seed_everything(config.seed)
    on = device()
    model = Detector(
        config.backbone, num_classes, config.image_size, frozen_stride=config.frozen_stride
    )
    if start is not None:
        model.load_state_dict(start.state_dict())
    # channels-last makes the depthwise convolutions about 3x faster on the CPU
    model = model.to(on).to(memory_format=torch.channels_last)
    dataset = DetectionDataset(photos, config.image_size, config.augmentation, config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    loader = torch.utils.data.DataLoader(
        dataset, config.batch_size, shuffle=True, collate_fn=collate, generator=generator
    )
    optimiser = make_optimiser(model, config)
    schedule = Schedule(optimiser, config.warmup_steps, len(loader) * config.epochs)
    average = ParameterAverage(model, config.ema_decay) if config.ema_decay > 0 else None
    scaler = torch.amp.GradScaler("cuda") if on.type == "cuda" else None
    losses: list[float] = []
    planned = config.epochs
    while len(losses) < planned:
        dataset.epoch = len(losses)
        losses.append(train_one_epoch(model, loader, optimiser, schedule, average, scaler))
        elapsed = time.monotonic() - started
        affordable = (config.budget_seconds - elapsed) / (elapsed / len(losses))
        planned = max(len(losses), min(config.epochs, len(losses) + int(min(affordable, 1e6))))
        schedule.total_steps = len(loader) * planned
        if progress is not None:
            progress(len(losses), planned, losses[-1])
    served = average.model if average is not None else model
    assert isinstance(served, Detector)
    served.eval()
    return FitResult(served, len(losses), losses, time.monotonic() - started)
