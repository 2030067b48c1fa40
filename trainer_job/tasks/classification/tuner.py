"""One fine-tuning run of the Advanced recipe (finetune.py): its configuration, the training
views, the cached trunk outputs, the network and the budget (the fit loop: training_loop.py).

On CUDA the trunk and the training steps run under autocast (bfloat16 where supported, else
float16 with loss scaling), with float32 weights; on the CPU everything is float32 and
channels-last. The served network is returned in float32 on the CPU, in eval mode."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance
from torch import nn

from functions.domain.preprocessing import Preprocessing
from trainer_job.ml.backbone import FeatureExtractor, build_backbone, primary
from trainer_job.ml.features import CROP_RATIO, view_array, view_rng
from trainer_job.ml.head import LinearHead
from trainer_job.ml.spec import TrainingSpec
from trainer_job.tasks.classification.ensemble import (
    EnsembleNet,
    stage_starts,
    tail_forward,
    tail_modules,
    trunk_forward,
)
from trainer_job.tasks.classification.results import EpochRecord

CACHE_BYTES = 2 << 30  # the most memory spent on cached trunk outputs of training views
FINISH_SECONDS = 3.0  # kept free at the end of the budget to assemble the result


@dataclass(frozen=True)
class FineTuneConfig:
    trainable_stages: int = 3  # the last MBConv stages trained, with the head convolution
    max_epochs: int = 20  # the schedule's length; the epochs served are chosen out of fold
    patience: int | None = None  # epochs without a lower held-out loss before stopping
    batch_size: int = 16
    backbone_lr: float = 5e-4  # the head convolution's; each block below gets layer_decay x
    layer_decay: float = 0.85  # the learning rate of a block: that of the block above it x this
    head_lr: float = 1e-3
    weight_decay: float = 1e-2
    warmup_epochs: float = 0.5
    label_smoothing: float = 0.1  # Multiclass only
    dropout: float = 0.2  # on the pooled features, while training
    mixup: float = 0.4  # Beta(mixup, mixup) mixing of trunk outputs within a batch; 0: off
    pool_views: int = 8  # views per training image: served, mirrored, then random crops
    crop_scale: tuple[float, float] = (0.25, 1.0)  # random crops: share of the central square
    jitter: float = 0.2  # random crops: brightness, contrast, saturation in [1 - j, 1 + j]
    folds: int = 5  # the candidate is judged out of fold: trained on the others, each fold
    ensemble: bool = True  # serve the mean of the tuned and the Regular branch
    mirror: bool = True  # mirror images: training views, and served averaged with the input
    refit: bool = True  # when kept, train again on every image (held-out ones too) to serve


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def class_weights(labels: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """Multiclass: (T,) inverse class frequencies, mean 1 over images. Multilabel: (2, T),
    weights of positives and negatives per tag, each half the total (as in head.py)."""
    count = labels.shape[0]
    if multilabel:
        positives = labels.sum(0).clamp(min=1)
        negatives = (count - labels.sum(0)).clamp(min=1)
        return torch.stack([count / (2 * positives), count / (2 * negatives)])
    counts = labels.sum(0)
    present = counts > 0
    return torch.where(
        present, count / (present.sum() * counts.clamp(min=1)), torch.zeros_like(counts)
    )


def loss_of(
    logits: torch.Tensor,
    y: torch.Tensor,
    weights: torch.Tensor,
    multilabel: bool,
    smoothing: float,
) -> torch.Tensor:
    logits = logits.float()
    if multilabel:
        weight = torch.where(y > 0, weights[0], weights[1])
        losses = F.binary_cross_entropy_with_logits(logits, y, weight=weight, reduction="none")
        return losses.mean(0).sum()
    targets = y.argmax(1)
    sample = weights[targets]
    losses = F.cross_entropy(logits, targets, reduction="none", label_smoothing=smoothing)
    return (sample * losses).sum() / sample.sum().clamp(min=1e-12)


def training_view(
    image: Image.Image,
    preprocessing: Preprocessing,
    view: int,
    seed: int,
    index: int,
    config: FineTuneConfig,
) -> np.ndarray:
    """One view (3, S, S) of a training image: view 0 is the served input, view 1 its mirror
    image (as `features.view_array`) when `mirror`; the other views random resized crops of
    `crop_scale` of the area of the image's central square (anywhere in the image), aspect
    ratio 3:4 to 4:3, flipped half the time when `mirror`, with colour jitter of `jitter`,
    fixed by seed, index and view."""
    if view == 0 or (view == 1 and config.mirror):
        return view_array(image, preprocessing, view, seed, index)
    rng = view_rng(seed, index, view)
    image = image.convert("RGB")
    width, height = image.size
    side = min(width, height)
    area = side * side * rng.uniform(*config.crop_scale)
    ratio = float(np.exp(rng.uniform(np.log(CROP_RATIO[0]), np.log(CROP_RATIO[1]))))
    crop_w = min(width, float(np.sqrt(area * ratio)))
    crop_h = min(height, float(np.sqrt(area / ratio)))
    left = rng.uniform(0.0, width - crop_w)
    top = rng.uniform(0.0, height - crop_h)
    size = preprocessing.size
    box = (left, top, left + crop_w, top + crop_h)
    cropped = image.resize((size, size), Image.Resampling.BILINEAR, box=box)
    if config.mirror and rng.uniform() < 0.5:
        cropped = cropped.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        factor = float(rng.uniform(1 - config.jitter, 1 + config.jitter))
        cropped = enhancer(cropped).enhance(factor)
    return preprocessing.to_array(cropped)


@dataclass
class Budget:
    """A run's wall clock: when fine-tuning started, the run's deadline, and what its steps and
    evaluations took, to tell whether one more step fits."""

    started: float
    deadline: float
    step_seconds: list[tuple[float, int]] = field(default_factory=list)  # recent batches
    step_total: float = 0.0  # seconds spent in training steps (the trainable part), all told
    eval_seconds: float = 0.0  # one held-out evaluation

    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def record_step(self, seconds: float, images: int) -> None:
        self.step_total += seconds
        self.step_seconds = [*self.step_seconds[-4:], (seconds, images)]


class Device:
    """Where a run trains, and its autocast."""

    def __init__(self) -> None:
        self.on = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.cuda = self.on.type == "cuda"
        bf16 = self.cuda and torch.cuda.is_bf16_supported()
        self.amp_dtype = torch.bfloat16 if bf16 else torch.float16

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        return torch.autocast("cuda", dtype=self.amp_dtype, enabled=self.cuda)


class TunedNetwork:
    """A private copy of the spec's (primary) backbone split into a frozen trunk and a
    trainable tail, with a linear layer initialised from `split_head` (so it starts predicting
    what that head predicts)."""

    def __init__(
        self, spec: TrainingSpec, split_head: LinearHead, config: FineTuneConfig, device: Device
    ) -> None:
        image_size = spec.model.image_size
        self.extractor: FeatureExtractor = build_backbone(primary(spec.model.backbone))
        if self.extractor.image_size != image_size:
            raise ValueError(f"{spec.model.backbone} is built for {self.extractor.image_size} px")
        self.network: Any = self.extractor.network
        starts = stage_starts(self.network)
        self.split = starts[-max(1, min(config.trainable_stages, len(starts)))]
        weight, bias = split_head.folded()
        self.linear = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(torch.from_numpy(weight))
            self.linear.bias.copy_(torch.from_numpy(bias))
        self.extractor.to(device.on).to(memory_format=torch.channels_last)
        self.linear.to(device.on)
        self.tail = nn.ModuleList(tail_modules(self.network, self.split))
        self.tail.requires_grad_(True)
        self.dropout = nn.Dropout(config.dropout)
        self.device = device

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits of trunk outputs, in eval mode, float32."""
        self.tail.eval()
        outputs = []
        with torch.no_grad(), self.device.autocast():
            for start in range(0, inputs.shape[0], 32):
                pooled = tail_forward(self.network, self.split, inputs[start : start + 32]).float()
                outputs.append(self.linear(pooled).float())
        return torch.cat(outputs)

    def training_logits(self, inputs: torch.Tensor) -> torch.Tensor:
        self.tail.train()
        with self.device.autocast():
            pooled = tail_forward(self.network, self.split, inputs).float()
            logits: torch.Tensor = self.linear(self.dropout(pooled))
        return logits

    def state(self) -> dict[str, torch.Tensor]:
        params = {f"tail.{k}": v for k, v in self.tail.state_dict().items()}
        params.update({f"linear.{k}": v for k, v in self.linear.state_dict().items()})
        return {k: v.detach().clone() for k, v in params.items()}

    def load(self, state: dict[str, torch.Tensor]) -> None:
        self.tail.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("tail.")})
        self.linear.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("linear.")})


class TrunkCache:
    """Trunk outputs of (image index, view) items: they depend only on the frozen trunk, so
    they are computed once and kept (as float16: inputs, not weights) while there is room; a
    refit reuses the folds' `cache`."""

    def __init__(
        self,
        spec: TrainingSpec,
        net: TunedNetwork,
        config: FineTuneConfig,
        cache: dict[tuple[int, int], torch.Tensor] | None,
    ) -> None:
        self.spec, self.net, self.config = spec, net, config
        self.cache: dict[tuple[int, int], torch.Tensor] = {} if cache is None else cache
        self.cache_bytes = sum(row.nbytes for row in self.cache.values())
        self.recent: list[tuple[float, int]] = []  # (seconds, images) of recent batches

    def __call__(self, items: Sequence[tuple[int, int]]) -> torch.Tensor:
        """Trunk outputs (B, C, H, W) float32 of the items."""
        missing = [item for item in dict.fromkeys(items) if item not in self.cache]
        fresh = self._compute(missing) if missing else {}
        rows = [fresh[item] if item in fresh else self.cache[item] for item in items]
        return torch.stack(rows).float().contiguous(memory_format=torch.channels_last)

    def _compute(self, missing: list[tuple[int, int]]) -> dict[tuple[int, int], torch.Tensor]:
        clock = time.perf_counter()
        images, seed = self.spec.data.images, self.spec.model.seed
        preprocessing = self.spec.model.preprocessing
        arrays = [
            training_view(images[i], preprocessing, v, seed, i, self.config) for i, v in missing
        ]
        device = self.net.device
        x = torch.from_numpy(np.stack(arrays)).to(device.on)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), device.autocast():
            out = trunk_forward(self.net.network, self.net.split, x).to(torch.float16)
        fresh: dict[tuple[int, int], torch.Tensor] = {}
        for item, row in zip(missing, out, strict=True):
            fresh[item] = row
            if self.cache_bytes + row.nbytes <= CACHE_BYTES:
                self.cache[item] = row.clone()
                self.cache_bytes += row.nbytes
        self.recent = [*self.recent[-4:], (time.perf_counter() - clock, len(missing))]
        return fresh

    def estimate(self) -> float:
        """Seconds per image through the trunk, from recent batches, with a margin."""
        return per_image(self.recent, 0.5)

    def batched(self, items: list[tuple[int, int]]) -> torch.Tensor:
        return torch.cat([self(items[s : s + 32]) for s in range(0, len(items), 32)])


@dataclass
class Best:
    """The epoch with the lowest held-out loss so far (the last one without held-out images),
    and the lowest held-out loss seen."""

    reference_loss: float = math.inf  # lowest held-out loss so far, the start included
    reference_epoch: int = 0
    loss: float = math.inf  # lowest held-out loss after at least one step
    epoch: int = 0
    state: dict[str, torch.Tensor] | None = None


class Tuner:
    """One fine-tuning run: training on `train`, scored on `held` (indices into the spec's
    images), within `budget`."""

    def __init__(
        self,
        spec: TrainingSpec,
        split_head: LinearHead,
        config: FineTuneConfig,
        train: np.ndarray,
        held: np.ndarray,
        budget: Budget,
        cache: dict[tuple[int, int], torch.Tensor] | None = None,
    ) -> None:
        self.spec, self.config, self.budget = spec, config, budget
        self.train_index, self.held_index = train, held
        self.device = Device()
        self.net = TunedNetwork(spec, split_head, config, self.device)
        self.trunk = TrunkCache(spec, self.net, config, cache)
        y = torch.from_numpy(spec.data.labels).to(self.device.on)
        self.y_train = y[torch.from_numpy(train).to(self.device.on)]
        self.y_held = y[torch.from_numpy(held).to(self.device.on)]
        self.held_inputs = torch.empty(0)
        self.held_mirror_inputs = torch.empty(0)
        self.history: list[EpochRecord] = []
        # Held-out probabilities (H, T) after each epoch (0: the start), averaged over the
        # image and its mirror image when `mirror`: what the tuned branch would serve.
        self.curve: list[np.ndarray] = []
        self.best = Best()
        self.epochs = 0
        self.steps = 0
        self.stopped_by = "max-epochs"

    @property
    def multilabel(self) -> bool:
        return self.spec.data.multilabel

    def served(
        self, regular: LinearHead | None, regular_backbone: str | None = None
    ) -> EnsembleNet:
        """The tuned backbone with its own tuned head (and, given `regular`, the Regular
        branch: the frozen tail and the other backbones of `regular_backbone` under that head),
        on the CPU (float32, eval mode)."""
        extractor = self.net.extractor
        extractor.to(torch.device("cpu")).to(memory_format=torch.contiguous_format)
        extractor.eval()
        extractor.requires_grad_(False)
        linear = self.net.linear.to(torch.device("cpu"))
        head = LinearHead(
            weight=linear.weight.detach().numpy().astype(np.float32).copy(),
            bias=linear.bias.detach().numpy().astype(np.float32).copy(),
            mean=np.zeros(linear.weight.shape[1], dtype=np.float32),
            multilabel=self.multilabel,
        )
        mirror = self.config.mirror
        return EnsembleNet(extractor, head, self.net.split, regular, mirror, regular_backbone)

    def time_for(self, items: Sequence[tuple[int, int]]) -> bool:
        """Whether one more step, an evaluation and the finish fit before the deadline."""
        budget = self.budget
        held_per_image = budget.eval_seconds / max(1, len(self.held_index))
        step_per_image = per_image(budget.step_seconds, 3 * held_per_image)
        uncached = sum(1 for item in set(items) if item not in self.trunk.cache)
        step = uncached * self.trunk.estimate() + len(items) * step_per_image
        needed = step + budget.eval_seconds + FINISH_SECONDS
        return time.perf_counter() + needed <= budget.deadline


def probabilities_of(logits: torch.Tensor, multilabel: bool) -> np.ndarray:
    probs = torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=1)
    return probs.cpu().numpy().astype(np.float32)


def per_image(timings: list[tuple[float, int]], default: float) -> float:
    """Seconds per image over recent (seconds, images) batches, plus a quarter for safety."""
    images = sum(n for _, n in timings)
    return 1.25 * sum(s for s, _ in timings) / images if images else default
