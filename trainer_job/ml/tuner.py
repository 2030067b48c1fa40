"""One fine-tuning run of the Advanced recipe (finetune.py): its configuration, the training
views, the cached trunk outputs, the optimiser, the schedule, the budget and the history."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance
from torch import nn

from functions.domain.metrics import evaluate
from functions.domain.preprocessing import Preprocessing
from trainer_job.ml.backbone import FeatureExtractor, build_backbone
from trainer_job.ml.ensemble import (
    EnsembleNet,
    stage_starts,
    tail_forward,
    tail_modules,
    trunk_forward,
)
from trainer_job.ml.features import CROP_RATIO, view_array, view_rng
from trainer_job.ml.head import LinearHead

CACHE_BYTES = 2 << 30  # the most memory spent on cached trunk outputs of training views
FINISH_SECONDS = 3.0  # kept free at the end of the budget to assemble the result


@dataclass(frozen=True)
class FineTuneConfig:
    trainable_stages: int = 3  # the last MBConv stages trained, with the head convolution
    max_epochs: int = 20
    patience: int | None = None  # epochs without a lower held-out loss before stopping
    keep: Literal["last", "lowest-loss"] = "last"  # which epoch's weights are kept
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
    folds: int = 2  # the candidate is judged out of fold: trained on the others, each fold
    ensemble: bool = True  # serve the mean of the tuned and the Regular branch
    mirror: bool = True  # serve the mean over the input and its mirror image
    refit: bool = True  # when kept, train again on every image (held-out ones too) to serve


@dataclass(frozen=True)
class EpochRecord:
    epoch: int  # 0 is the network as initialised, before any step
    train_loss: float  # mean training loss of the epoch (NaN for epoch 0)
    held_out_loss: float
    held_out_score: float
    seconds: float  # since fine_tune started, when the record was made


def score(probabilities: np.ndarray, labels: np.ndarray, multilabel: bool) -> float:
    """Multiclass: top-1 accuracy. Multilabel: mean average precision over tags."""
    if multilabel:
        return float(evaluate(probabilities, labels, None, 0.5).average_precision)
    return float((probabilities.argmax(axis=1) == labels.argmax(axis=1)).mean())


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def _class_weights(labels: torch.Tensor, multilabel: bool) -> torch.Tensor:
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


def _loss(
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
    image (as `features.view_array`); views 2 and up random resized crops of `crop_scale` of
    the area of the image's central square (anywhere in the image), aspect ratio 3:4 to 4:3,
    flipped half the time, with colour jitter of `jitter`, fixed by seed, index and view."""
    if view < 2:
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
    if rng.uniform() < 0.5:
        cropped = cropped.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        factor = float(rng.uniform(1 - config.jitter, 1 + config.jitter))
        cropped = enhancer(cropped).enhance(factor)
    return preprocessing.to_array(cropped)


class Tuner:
    """One fine-tuning run: the network, the cached trunk outputs, the optimiser and history."""

    def __init__(
        self,
        images: Sequence[Image.Image],
        labels: np.ndarray,
        multilabel: bool,
        backbone_name: str,
        image_size: int,
        seed: int,
        split_head: LinearHead,
        config: FineTuneConfig,
        train: np.ndarray,
        held: np.ndarray,
        started: float,
        deadline: float,
        cache: dict[tuple[int, int], torch.Tensor] | None = None,
    ) -> None:
        self.images = images
        self.labels_np = labels
        self.multilabel = multilabel
        self.seed = seed
        self.config = config
        self.train_index = train
        self.held_index = held
        self.started = started
        self.deadline = deadline
        self.on = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.cuda = self.on.type == "cuda"
        bf16 = self.cuda and torch.cuda.is_bf16_supported()
        self.amp_dtype = torch.bfloat16 if bf16 else torch.float16
        self.preprocessing = Preprocessing.for_size(image_size)

        self.extractor: FeatureExtractor = build_backbone(backbone_name)
        if self.extractor.image_size != image_size:
            raise ValueError(f"{backbone_name} is built for {self.extractor.image_size} px")
        self.network: Any = self.extractor.network
        starts = stage_starts(self.network)
        self.split = starts[-max(1, min(config.trainable_stages, len(starts)))]
        weight, bias = split_head.folded()
        self.linear = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(torch.from_numpy(weight))
            self.linear.bias.copy_(torch.from_numpy(bias))
        self.extractor.to(self.on).to(memory_format=torch.channels_last)
        self.linear.to(self.on)
        self.tail = nn.ModuleList(tail_modules(self.network, self.split))
        self.tail.requires_grad_(True)
        self.dropout = nn.Dropout(config.dropout)

        y = torch.from_numpy(np.asarray(labels, dtype=np.float32)).to(self.on)
        self.y_train = y[torch.from_numpy(train).to(self.on)]
        self.y_held = y[torch.from_numpy(held).to(self.on)]
        self.train_weights = _class_weights(self.y_train, multilabel)
        self.held_weights = _class_weights(self.y_held, multilabel)

        # Trunk outputs depend only on the frozen trunk: a refit reuses the first run's.
        self.cache: dict[tuple[int, int], torch.Tensor] = {} if cache is None else cache
        self.cache_bytes = sum(row.nbytes for row in self.cache.values())
        self.trunk_seconds: list[tuple[float, int]] = []  # (seconds, images), recent batches
        self.step_seconds: list[tuple[float, int]] = []  # the same for the trainable part
        self.step_total = 0.0  # seconds spent in training steps (the trainable part), all told
        self.eval_seconds = 0.0  # one held-out evaluation
        self.held_inputs = torch.empty(0)
        self.held_mirror_inputs = torch.empty(0)

        self.history: list[EpochRecord] = []
        self.reference_loss = math.inf  # lowest held-out loss so far, the start included
        self.reference_epoch = 0
        self.best_loss = math.inf  # lowest held-out loss after at least one step
        self.best_epoch = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_probabilities: np.ndarray | None = None  # held-out, of the kept epoch
        self.epochs = 0
        self.steps = 0
        self.stopped_by = "max-epochs"

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        return torch.autocast("cuda", dtype=self.amp_dtype, enabled=self.cuda)

    def seconds(self) -> float:
        return time.perf_counter() - self.started

    # trunk outputs

    def trunk(self, items: Sequence[tuple[int, int]]) -> torch.Tensor:
        """Trunk outputs (B, C, H, W) float32 of (image index, view) items, cached while the
        cache has room (stored as float16: they are inputs, not weights)."""
        missing = [item for item in dict.fromkeys(items) if item not in self.cache]
        fresh: dict[tuple[int, int], torch.Tensor] = {}
        if missing:
            clock = time.perf_counter()
            arrays = [
                training_view(self.images[i], self.preprocessing, v, self.seed, i, self.config)
                for i, v in missing
            ]
            x = torch.from_numpy(np.stack(arrays)).to(self.on)
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.no_grad(), self._autocast():
                out = trunk_forward(self.network, self.split, x).to(torch.float16)
            for item, row in zip(missing, out, strict=True):
                fresh[item] = row
                if self.cache_bytes + row.nbytes <= CACHE_BYTES:
                    self.cache[item] = row.clone()
                    self.cache_bytes += row.nbytes
            self.trunk_seconds = [
                *self.trunk_seconds[-4:],
                (time.perf_counter() - clock, len(missing)),
            ]
        rows = [fresh[item] if item in fresh else self.cache[item] for item in items]
        return torch.stack(rows).float().contiguous(memory_format=torch.channels_last)

    def trunk_estimate(self) -> float:
        """Seconds per image through the trunk, from recent batches, with a margin."""
        return per_image(self.trunk_seconds, 0.5)

    # evaluation

    def logits(self, inputs: torch.Tensor, pooled_only: bool = False) -> torch.Tensor:
        """Logits (or pooled features) of trunk outputs, in eval mode, float32."""
        self.tail.eval()
        outputs = []
        with torch.no_grad(), self._autocast():
            for start in range(0, inputs.shape[0], 32):
                pooled = tail_forward(self.network, self.split, inputs[start : start + 32]).float()
                outputs.append(pooled if pooled_only else self.linear(pooled).float())
        return torch.cat(outputs)

    def evaluate(self) -> tuple[float, np.ndarray]:
        """(held-out loss, held-out probabilities (H, T)) of the network as it is."""
        logits = self.logits(self.held_inputs)
        loss = float(_loss(logits, self.y_held, self.held_weights, self.multilabel, 0.0))
        probs = torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=1)
        return loss, probs.cpu().numpy().astype(np.float32)

    def record(self, epoch: int, train_loss: float, evaluate: bool = True) -> None:
        """History, and the epoch to keep. Without an evaluation (a refit has no held-out
        images; keep="last" without early stopping needs only the last epoch's) this epoch is
        the one kept so far."""
        if len(self.held_index) == 0 or not evaluate:
            self.history.append(EpochRecord(epoch, train_loss, math.nan, math.nan, self.seconds()))
            if epoch > 0:
                self.best_epoch, self.best_state = epoch, self.state()
                self.best_probabilities = None
            return
        loss, probabilities = self.evaluate()
        held_score = score(probabilities, self.labels_np[self.held_index], self.multilabel)
        self.history.append(EpochRecord(epoch, train_loss, loss, held_score, self.seconds()))
        if loss < self.reference_loss:
            self.reference_loss, self.reference_epoch = loss, epoch
        lowest = loss < self.best_loss
        if epoch > 0 and (lowest or self.config.keep == "last"):
            self.best_loss = min(loss, self.best_loss)
            self.best_epoch, self.best_state = epoch, self.state()
            self.best_probabilities = probabilities

    def state(self) -> dict[str, torch.Tensor]:
        params = {f"tail.{k}": v for k, v in self.tail.state_dict().items()}
        params.update({f"linear.{k}": v for k, v in self.linear.state_dict().items()})
        return {k: v.detach().clone() for k, v in params.items()}

    def load(self, state: dict[str, torch.Tensor]) -> None:
        self.tail.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("tail.")})
        self.linear.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("linear.")})

    # the result

    def finish_estimate(self) -> float:
        """Seconds to load the kept weights and assemble the served network."""
        return FINISH_SECONDS

    def mirror_probabilities(self) -> np.ndarray:
        """Held-out probabilities (H, T) of the network as it is, on the mirror images."""
        logits = self.logits(self.held_mirror_inputs)
        probs = torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=1)
        return probs.cpu().numpy().astype(np.float32)

    def served(self, regular: LinearHead | None) -> EnsembleNet:
        """The tuned backbone with its own tuned head (and, given `regular`, the frozen branch
        with that head), on the CPU (float32, eval mode)."""
        self.extractor.to(torch.device("cpu")).to(memory_format=torch.contiguous_format)
        self.extractor.eval()
        self.extractor.requires_grad_(False)
        linear = self.linear.to(torch.device("cpu"))
        head = LinearHead(
            weight=linear.weight.detach().numpy().astype(np.float32).copy(),
            bias=linear.bias.detach().numpy().astype(np.float32).copy(),
            mean=np.zeros(linear.weight.shape[1], dtype=np.float32),
            multilabel=self.multilabel,
        )
        return EnsembleNet(self.extractor, head, self.split, regular, self.config.mirror)

    # training

    def prepare(self) -> None:
        """Trunk outputs of the held-out images (view 0, kept apart), and the start evaluated."""
        held = [(int(i), 0) for i in self.held_index]
        if not held:
            self.record(0, math.nan)
            return
        batches = [self.trunk(held[s : s + 32]) for s in range(0, len(held), 32)]
        self.held_inputs = torch.cat(batches)
        mirrored = [(i, 1) for i, _ in held] if self.config.mirror else []
        if mirrored:
            batches = [self.trunk(mirrored[s : s + 32]) for s in range(0, len(held), 32)]
            self.held_mirror_inputs = torch.cat(batches)
        clock = time.perf_counter()
        self.record(0, math.nan)
        self.eval_seconds = max(time.perf_counter() - clock, 1e-3)

    def train(self, on_epoch: Callable[[int, int], None] | None, epochs: int | None = None) -> None:
        """Train on the schedule of `config.max_epochs` epochs, stopping after `epochs` (all of
        them by default) or earlier by the budget or early stopping."""
        config = self.config
        last_epoch = config.max_epochs if epochs is None else min(epochs, config.max_epochs)
        # Layer-wise learning rates: the head convolution gets `backbone_lr`, the last block
        # `layer_decay` times that, the block before it `layer_decay` squared times, ...
        blocks = list(self.network._blocks)
        modules: list[nn.Module] = [*blocks[self.split :], self.network._conv_head, self.linear]
        base_lrs = [
            *(
                config.backbone_lr * config.layer_decay ** (len(blocks) - index)
                for index in range(self.split, len(blocks))
            ),
            config.backbone_lr,
            config.head_lr,
        ]
        optimizer = torch.optim.AdamW(
            [
                {"params": list(module.parameters()), "lr": lr}
                for module, lr in zip(modules, base_lrs, strict=True)
            ],
            weight_decay=config.weight_decay,
        )
        steps_per_epoch = math.ceil(len(self.train_index) / config.batch_size)
        total = max(1, config.max_epochs * steps_per_epoch)
        warmup = max(1, round(config.warmup_epochs * steps_per_epoch))

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            done = min(1.0, (step - warmup) / max(1, total - warmup))
            return 0.5 * (1.0 + math.cos(math.pi * done))

        scaler = torch.amp.GradScaler("cuda", enabled=self.cuda and self.amp_dtype == torch.float16)
        generator = torch.Generator().manual_seed(self.seed)
        for epoch in range(1, last_epoch + 1):
            order = torch.randperm(len(self.train_index), generator=generator).numpy()
            pool = max(1, config.pool_views)
            views = torch.randint(0, pool, (len(order),), generator=generator).numpy()
            losses: list[float] = []
            out_of_time = False
            for start in range(0, len(order), config.batch_size):
                positions = order[start : start + config.batch_size]
                items = [(int(self.train_index[p]), int(views[p])) for p in positions]
                if not self._time_for(items):
                    out_of_time = True
                    break
                inputs = self.trunk(items)
                clock = time.perf_counter()
                for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                    group["lr"] = base * factor(self.steps)
                y = self.y_train[torch.from_numpy(positions).to(self.on)]
                mix, partner = 1.0, None
                if config.mixup > 0 and len(positions) > 1:
                    rng = np.random.default_rng([self.seed, 0x313, self.steps])
                    mix = float(rng.beta(config.mixup, config.mixup))
                    partner = torch.randperm(len(positions), generator=generator).to(self.on)
                    inputs = mix * inputs + (1 - mix) * inputs[partner]
                self.tail.train()
                with self._autocast():
                    pooled = tail_forward(self.network, self.split, inputs).float()
                    logits = self.linear(self.dropout(pooled))
                smoothing = 0.0 if self.multilabel else config.label_smoothing
                loss = _loss(logits, y, self.train_weights, self.multilabel, smoothing)
                if partner is not None:
                    other = _loss(
                        logits, y[partner], self.train_weights, self.multilabel, smoothing
                    )
                    loss = mix * loss + (1 - mix) * other
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
                scaler.step(optimizer)
                scaler.update()
                self.steps += 1
                losses.append(float(loss.detach()))
                seconds = time.perf_counter() - clock
                self.step_total += seconds
                self.step_seconds = [*self.step_seconds[-4:], (seconds, len(items))]
            if out_of_time:
                self.stopped_by = "budget"
                if losses:  # a partial epoch is a candidate too
                    self.record(epoch, float(np.mean(losses)))
                return
            self.epochs = epoch
            every_epoch = config.patience is not None or config.keep != "last"
            self.record(epoch, float(np.mean(losses)), every_epoch or epoch == last_epoch)
            if on_epoch is not None:
                on_epoch(epoch, last_epoch)
            if config.patience is not None and epoch - self.reference_epoch >= config.patience:
                self.stopped_by = "early-stopping"
                return

    def _time_for(self, items: Sequence[tuple[int, int]]) -> bool:
        """Whether one more step, an evaluation and the finish fit before the deadline."""
        held_per_image = self.eval_seconds / max(1, len(self.held_index))
        step_per_image = per_image(self.step_seconds, 3 * held_per_image)
        uncached = sum(1 for item in set(items) if item not in self.cache)
        step = uncached * self.trunk_estimate() + len(items) * step_per_image
        needed = step + self.eval_seconds + self.finish_estimate()
        return time.perf_counter() + needed <= self.deadline


def per_image(timings: list[tuple[float, int]], default: float) -> float:
    """Seconds per image over recent (seconds, images) batches, plus a quarter for safety."""
    images = sum(n for _, n in timings)
    return 1.25 * sum(s for s, _ in timings) / images if images else default
