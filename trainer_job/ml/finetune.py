"""Advanced training: fine-tune the last stages of the backbone with their own head, serve them
as an ensemble with the Regular model, and keep that only if it beats the Regular head on images
neither of them was trained on.

The recipe, in order:

1. Hold out a stratified share of the images (`held_out_split`: 20%, at least one image of
   every tag that has two or more, fixed by the seed). Everything below trains on the rest.
2. The reference: a Regular head (`train_head`) trained on the training split's cached
   features (`RegularResult.features`, every view), scored on view 0 of the held-out images.
3. The network: a private copy of the backbone (`build_backbone`, batch norms folded into the
   convolutions, which stay trainable: plain convolutions with a bias) with a linear layer
   initialised from that reference head, so before the first step it predicts exactly what the
   reference does (LP-FT). Only the last `trainable_stages` (3) MBConv stages (Lite0: blocks 8
   to 15) and the 1x1 head convolution are trained; the frozen trunk before them runs once per
   image view and its output is cached, so an epoch costs the trainable part only. The frozen
   BN-free network has no batch statistics to drift, which suits batches of a few images.
4. Each epoch shows every training image once, as a view drawn (seeded) from a pool of
   `pool_views` (8): the served input, its mirror image and random resized crops of 25 to 100%
   of the area of the central square, flipped half the time, with colour jitter of 0.2
   (`training_view`). Mixup of the trunk outputs within a batch (Beta(0.4, 0.4), the losses
   mixed likewise). AdamW with layer-wise learning rates (5e-4 for the head convolution, each
   block below 0.85 times the one above it; 1e-3 for the head), a linear warm-up then cosine
   decay over `max_epochs` (20), dropout before the head, class-balanced losses as in
   `head.py`, and label smoothing for Multiclass.
5. No early stopping by default (`patience=None`): the schedule runs to its end, or until the
   time budget is used up, and the last epoch is kept (`keep="last"`). The held-out loss and
   score are recorded after every epoch; `patience` and `keep="lowest-loss"` give the earlier
   behaviour (stop after `patience` epochs without a lower held-out loss, keep the lowest). The
   wall clock is checked before every step against the budget less what it takes to evaluate
   and finish, so the call ends within its budget (give or take one step).
6. The served model (`EnsembleNet`, one module, exported like ClassifierNet): one trunk, two
   branches on it, the tuned last stages with their tuned head and the frozen last stages with
   the Regular head (`regular.head`, trained on every image); the output is the mean of their
   probabilities over the input and its mirror image (`ensemble`, `mirror`). Its held-out score
   is measured the same way, the Regular branch with the head trained on the training split.
   It is kept only if that score is strictly better than the reference's (ties go to Regular,
   the cheaper and cross-validated model); otherwise the served model is the Regular one. The
   tuned branch is trained on the training split only (80% of the images).

Scores: Multiclass accuracy (top-1); Multilabel the mean average precision over tags (as the
service reports it), since a thresholded accuracy says little there.

What the service should report as an Advanced iteration's metrics: the Regular
cross-validation (`regular.probabilities` / `regular.folds`) still, because fine-tuning cannot
be cross-validated in its budget; it describes the Regular model exactly when that is kept, and
a model that scored no better than the fine-tuned one on the held-out images otherwise (so a
conservative figure). `AdvancedResult` adds the held-out comparison (both scores, both models'
out-of-sample probabilities of the held-out images) for the manifest.

Measured (Lite0, 30 training photos per tag, the other 70 per tag as a test set, seeds 0-2 as
in bench/accuracy.py; test top-1 accuracy; reference: logistic regression on frozen view-0
features; 2 CPU cores shared with another test run, 126 to 590 s a run):

    flowers5       seed 0   seed 1   seed 2   mean
    reference       82.9     84.3     85.1    84.1
    Regular         83.1     85.4     85.1    84.6
    this recipe     84.6     87.4     85.7    85.9   (kept FineTuned in all three)
    tuned branch    82.6     86.9     84.9    84.8   (alone, without the ensemble)

    intel_scenes   seed 0   seed 1   seed 2
    reference       87.6     86.9     (not run: out of time)
    Regular         88.8     88.8
    this recipe     87.9     89.8     (kept FineTuned in both; seed 0: held-out 32 of 36
    tuned branch    86.4     87.4      against 31 of 36, a wrong choice)

So on flowers5 it beats Regular by about 1.3 points and the reference by 1.8; on
intel_scenes by -0.9 and +1.0 (the reference by +0.3 and +2.9). The issue's target (3 points
over the reference, or half its error) is not met on average. The gain comes mostly from the
ensemble: the tuned branch alone is no better than Regular (84.8 against 84.6 on flowers5,
1.4 to 2.4 points below it on intel_scenes). The 30- to 36-image held-out split chose the
ensemble every time, including the one run where it was worse. With 30 epochs and 12 views
(flowers5 seed 0, 594 s) the tuned branch reached 84.3 and the ensemble 86.9.

Tried and not kept (same protocol unless said): the earlier recipe (2 stages, 12 epochs,
`backbone_lr` 1e-4, early stopping on the held-out loss, a head refitted by LBFGS on the tuned
features) 84.9 / 87.9 (means, flowers5 / intel_scenes; Regular 84.6 / 88.4), stopping after 3 to
7 epochs; averaged with the Regular head over the image and its mirror, 84.8 / 88.7.
Frozen-feature variants, for a Regular head: 12 augmented views instead of 2, +0.8 / -0.2;
concatenating pooled features of blocks 10, 14 and 15, -0.4 / +0.2; the input upsampled to 256
or 288 px inside the network, -1.1 to +0.9 (noise). On cached trunk outputs, training on all 30
photos per tag (seed 3, no held-out split; the tuned network with its own head against its
start, the Regular head): 2 stages, 20 epochs, +0.6 (flowers5), with mixup and `backbone_lr`
3e-4 +1.1; 3 stages, 30 epochs, mixup, +2.6 on both datasets, which led to this recipe (cut to
20 epochs and 8 views for time).

On CUDA the trunk and the training steps run under autocast (bfloat16 where supported, else
float16 with loss scaling), with float32 weights; on the CPU everything is float32 and
channels-last. The served network is returned in float32 on the CPU, in eval mode.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance
from torch import nn

from functions.domain.metrics import evaluate
from functions.domain.preprocessing import Preprocessing
from trainer_job.ml.backbone import FeatureExtractor, build_backbone
from trainer_job.ml.export import ClassifierNet, build_classifier
from trainer_job.ml.features import CROP_RATIO, view_array, view_rng
from trainer_job.ml.head import LinearHead, train_head

if TYPE_CHECKING:
    from trainer_job.ml.recipe import RegularResult

Kept = Literal["FineTuned", "Regular"]
Progress = Callable[[str, float], None]

HOLD_OUT = 0.2
CACHE_BYTES = 2 << 30  # the most memory spent on cached trunk outputs of training views
LOSS_MARGIN = 1e-3  # a tie on score is broken by a held-out loss lower by more than this
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
    hold_out: float = HOLD_OUT
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


@dataclass(frozen=True)
class AdvancedResult:
    """The outcome of `fine_tune`; `net` is the model to serve either way.

    `regular_score` / `fine_tuned_score` are held-out scores (`metric`) of the Regular head
    trained on the training split and of the Advanced model (the kept fine-tuning epoch in an
    `EnsembleNet`, its Regular branch also trained on the training split); `held_out` indexes
    the images they were measured on, and the probabilities (H, T) are those two models' out-
    of-sample outputs for them. `fine_tuned` is the Advanced network (an `EnsembleNet`) whether
    kept or not (None when no step ran).
    """

    kept: Kept
    net: ClassifierNet  # eval mode, CPU, float32; exportable by export.export_onnx
    metric: str  # "accuracy" (Multiclass) | "meanAveragePrecision" (Multilabel)
    regular_score: float
    fine_tuned_score: float | None
    held_out: np.ndarray  # (H,) int: image indices
    train: np.ndarray  # (N - H,) int: image indices fine-tuned on
    regular_probabilities: np.ndarray  # (H, T) float32
    fine_tuned_probabilities: np.ndarray | None  # (H, T) float32
    epochs: int  # full epochs run
    steps: int  # optimiser steps run
    best_epoch: int  # the epoch kept (0: no step improved the held-out loss)
    seconds_used: float
    stopped_by: str  # early-stopping | max-epochs | budget | too-few-images
    fine_tuned: ClassifierNet | None = None
    history: list[EpochRecord] = field(default_factory=list)
    refit_images: int = 0  # images the served network was trained again on (0: no refit)

    @property
    def probabilities(self) -> np.ndarray:
        """Held-out probabilities (H, T) of the kept model."""
        if self.kept == "FineTuned" and self.fine_tuned_probabilities is not None:
            return self.fine_tuned_probabilities
        return self.regular_probabilities


# The held-out split


def held_out_split(
    labels: np.ndarray, multilabel: bool, seed: int, share: float = HOLD_OUT
) -> tuple[np.ndarray, np.ndarray]:
    """(train, held_out) image indices, sorted: about `share` of each tag's images held out,
    at least one of every tag with two or more images, never the last training image of a tag.

    Rarest tags are dealt first; images in random order (fixed by `seed`). Images without tags
    (Multilabel) are held out in the same share.
    """
    positives = np.asarray(labels) > 0
    count = positives.shape[0]
    rng = np.random.default_rng([seed, 0x4E1D])
    held = np.zeros(count, dtype=bool)
    in_train = positives.sum(axis=0)
    totals = in_train.copy()
    order = sorted(range(positives.shape[1]), key=lambda t: (int(totals[t]), rng.random()))
    for tag in order:
        want = max(1, round(share * int(totals[tag]))) if totals[tag] >= 2 else 0
        have = int(positives[held, tag].sum())
        for image in rng.permutation(np.flatnonzero(positives[:, tag] & ~held)):
            if have >= want:
                break
            if np.any(in_train[positives[image]] < 2):
                continue
            held[image] = True
            in_train -= positives[image]
            have += 1
    untagged = rng.permutation(np.flatnonzero(~positives.any(axis=1)))
    held[untagged[: round(share * len(untagged))]] = True
    del multilabel  # the same rule serves both: a Multiclass image has exactly one tag
    return np.flatnonzero(~held), np.flatnonzero(held)


def score(probabilities: np.ndarray, labels: np.ndarray, multilabel: bool) -> float:
    """Multiclass: top-1 accuracy. Multilabel: mean average precision over tags."""
    if multilabel:
        return float(evaluate(probabilities, labels, None, 0.5).average_precision)
    return float((probabilities.argmax(axis=1) == labels.argmax(axis=1)).mean())


def held_out_loss(probabilities: np.ndarray, labels: np.ndarray, multilabel: bool) -> float:
    """Mean cross-entropy of probabilities (H, T) against 0/1 labels: per image for
    Multiclass, per image and tag (binary) for Multilabel."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-7, 1 - 1e-7)
    y = np.asarray(labels, dtype=np.float64)
    if multilabel:
        return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())
    return float(-(y * np.log(p)).sum(axis=1).mean())


def keep_fine_tuned(
    regular_score: float,
    fine_tuned_score: float | None,
    regular_loss: float = math.inf,
    fine_tuned_loss: float = math.inf,
) -> bool:
    """Fine-tuning is kept only when it beats Regular on the held-out images: a higher score,
    or the same score with a lower held-out loss (accuracy on a few dozen images ties often)."""
    if fine_tuned_score is None:
        return False
    if fine_tuned_score != regular_score:
        return fine_tuned_score > regular_score
    return fine_tuned_loss < regular_loss - LOSS_MARGIN


# The network split into a frozen trunk and a trainable tail


def stage_starts(network: Any) -> list[int]:
    """Indices of the blocks that start an MBConv stage (each stage changes the channels)."""
    return [
        i
        for i, block in enumerate(network._blocks)
        if block._block_args.input_filters != block._block_args.output_filters
    ]


def _trunk(network: Any, split: int, x: torch.Tensor) -> torch.Tensor:
    x = network._swish(network._bn0(network._conv_stem(x)))
    for block in network._blocks[:split]:
        x = block(x)  # eval mode: no drop connect
    return x


def _tail(network: Any, split: int, x: torch.Tensor) -> torch.Tensor:
    """Blocks `split`.. and the head convolution, pooled: as `extract_features` computes them."""
    blocks = network._blocks
    rate = network._global_params.drop_connect_rate
    for index in range(split, len(blocks)):
        x = blocks[index](x, drop_connect_rate=rate * index / len(blocks) if rate else rate)
    pooled: torch.Tensor = network._swish(network._bn1(network._conv_head(x))).mean((2, 3))
    return pooled


def _tail_modules(network: Any, split: int) -> list[nn.Module]:
    return [*network._blocks[split:], network._conv_head]


def _frozen_tail(tail: nn.ModuleList, network: Any, x: torch.Tensor) -> torch.Tensor:
    """Pooled features through `tail` (blocks, then the head convolution) in eval mode."""
    *blocks, conv_head = tail
    for block in blocks:
        x = block(x)
    pooled: torch.Tensor = network._swish(network._bn1(conv_head(x))).mean((2, 3))
    return pooled


class EnsembleNet(ClassifierNet):
    """The served Advanced model: one trunk (the frozen first stages), two branches on it:
    the fine-tuned last stages with their head (`extractor`, `linear`, as in ClassifierNet)
    and, when `regular` is given, the frozen last stages with the Regular head; the output is
    the mean of the branches' probabilities, over the input and its mirror image when
    `mirror`. forward(x: (N, 3, S, S)) -> probabilities (N, T), exportable like ClassifierNet.
    """

    def __init__(
        self,
        extractor: FeatureExtractor,
        head: LinearHead,
        split: int,
        regular: LinearHead | None,
        mirror: bool,
    ) -> None:
        super().__init__(extractor, head)
        self.split = split
        self.mirror = mirror
        self.regular_tail: nn.ModuleList | None = None
        self.regular_linear: nn.Linear | None = None
        if regular is not None:
            fresh: Any = build_backbone(extractor.name).network
            self.regular_tail = nn.ModuleList(_tail_modules(fresh, split))
            weight, bias = regular.folded()
            self.regular_linear = nn.Linear(weight.shape[1], weight.shape[0])
            with torch.no_grad():
                self.regular_linear.weight.copy_(torch.from_numpy(weight))
                self.regular_linear.bias.copy_(torch.from_numpy(bias))
        self.eval()
        self.requires_grad_(False)

    def _probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        count = x.shape[0]
        if self.mirror:
            x = torch.cat([x, torch.flip(x, dims=[3])])
        network = self.extractor.network
        trunk = _trunk(network, self.split, x)
        probabilities = self._probabilities(self.linear(_tail(network, self.split, trunk)))
        if self.regular_tail is not None and self.regular_linear is not None:
            pooled = _frozen_tail(self.regular_tail, network, trunk)
            probabilities = 0.5 * (probabilities + self._probabilities(self.regular_linear(pooled)))
        if self.mirror:
            probabilities = 0.5 * (probabilities[:count] + probabilities[count:])
        return probabilities


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
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


class _Tuner:
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
        self.tail = nn.ModuleList(_tail_modules(self.network, self.split))
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
                out = _trunk(self.network, self.split, x).to(torch.float16)
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
        return _per_image(self.trunk_seconds, 0.5)

    # evaluation

    def logits(self, inputs: torch.Tensor, pooled_only: bool = False) -> torch.Tensor:
        """Logits (or pooled features) of trunk outputs, in eval mode, float32."""
        self.tail.eval()
        outputs = []
        with torch.no_grad(), self._autocast():
            for start in range(0, inputs.shape[0], 32):
                pooled = _tail(self.network, self.split, inputs[start : start + 32]).float()
                outputs.append(pooled if pooled_only else self.linear(pooled).float())
        return torch.cat(outputs)

    def evaluate(self) -> tuple[float, np.ndarray]:
        """(held-out loss, held-out probabilities (H, T)) of the network as it is."""
        logits = self.logits(self.held_inputs)
        loss = float(_loss(logits, self.y_held, self.held_weights, self.multilabel, 0.0))
        probs = torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=1)
        return loss, probs.cpu().numpy().astype(np.float32)

    def record(self, epoch: int, train_loss: float) -> None:
        if len(self.held_index) == 0:  # a refit on every image: each epoch is the last so far
            self.history.append(EpochRecord(epoch, train_loss, math.nan, math.nan, self.seconds()))
            if epoch > 0:
                self.best_epoch, self.best_state = epoch, self.state()
                self.best_probabilities = np.zeros((0, self.labels_np.shape[1]), np.float32)
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
        for item in [*held, *mirrored]:
            if item in self.cache:
                self.cache_bytes -= self.cache.pop(item).nbytes
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
                    pooled = _tail(self.network, self.split, inputs).float()
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
            self.record(epoch, float(np.mean(losses)))
            if on_epoch is not None:
                on_epoch(epoch, last_epoch)
            if config.patience is not None and epoch - self.reference_epoch >= config.patience:
                self.stopped_by = "early-stopping"
                return

    def _time_for(self, items: Sequence[tuple[int, int]]) -> bool:
        """Whether one more step, an evaluation and the finish fit before the deadline."""
        held_per_image = self.eval_seconds / max(1, len(self.held_index))
        per_image = _per_image(self.step_seconds, 3 * held_per_image)
        uncached = sum(1 for item in set(items) if item not in self.cache)
        step = uncached * self.trunk_estimate() + len(items) * per_image
        needed = step + self.eval_seconds + self.finish_estimate()
        return time.perf_counter() + needed <= self.deadline


def _per_image(timings: list[tuple[float, int]], default: float) -> float:
    """Seconds per image over recent (seconds, images) batches, plus a quarter for safety."""
    images = sum(n for _, n in timings)
    return 1.25 * sum(s for s, _ in timings) / images if images else default


def fine_tune(
    images: Sequence[Image.Image],
    labels: np.ndarray,
    multilabel: bool,
    backbone_name: str,
    image_size: int,
    seed: int,
    regular: RegularResult,
    budget_seconds: float,
    progress: Progress | None = None,
    config: FineTuneConfig = FineTuneConfig(),
) -> AdvancedResult:
    """Fine-tune the last stages of `backbone_name` with a head started from a Regular head, in
    at most `budget_seconds` of wall-clock time; keep it only if it beats Regular on held-out
    images (see the module docstring). `regular` is `train_regular`'s result for the same
    images and labels. `progress(stage, fraction)` is called with the fraction of fine-tuning
    done (0 to 1) after each epoch; it may raise to cancel.
    """
    started = time.perf_counter()
    deadline = started + max(0.0, budget_seconds)
    labels = np.asarray(labels, dtype=np.float32)
    if len(images) != labels.shape[0] or regular.features.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{len(images)} images, {labels.shape[0]} label rows, "
            f"{regular.features.shape[0]} feature rows"
        )
    if regular.features.shape[1] < 2:
        raise ValueError("the Regular features need views 0 and 1")
    metric = "meanAveragePrecision" if multilabel else "accuracy"
    train, held = held_out_split(labels, multilabel, seed, config.hold_out)
    empty = np.zeros((len(held), labels.shape[1]), dtype=np.float32)

    def keep_regular(
        stopped_by: str, regular_score: float, regular_probabilities: np.ndarray
    ) -> AdvancedResult:
        return AdvancedResult(
            kept="Regular",
            net=build_classifier(backbone_name, regular.head),
            metric=metric,
            regular_score=regular_score,
            fine_tuned_score=None,
            held_out=held,
            train=train,
            regular_probabilities=regular_probabilities,
            fine_tuned_probabilities=None,
            epochs=0,
            steps=0,
            best_epoch=0,
            seconds_used=time.perf_counter() - started,
            stopped_by=stopped_by,
        )

    if len(held) == 0 or len(train) < 2:
        return keep_regular("too-few-images", math.nan, empty)
    split_head = train_head(regular.features[train], labels[train], multilabel, seed=seed)
    regular_probabilities = split_head.predict(regular.features[held, 0])
    regular_score = score(regular_probabilities, labels[held], multilabel)
    if time.perf_counter() + FINISH_SECONDS >= deadline:
        return keep_regular("budget", regular_score, regular_probabilities)

    # Progress: the held-out run is about train / (train + all) of the work, the refit the rest.
    first_share = len(train) / (len(train) + len(images)) if config.refit else 1.0

    def report(phase: str, share: float, offset: float) -> Callable[[int, int], None]:
        def on_epoch(epoch: int, epochs: int) -> None:
            if progress is not None:
                used = (time.perf_counter() - started) / max(1e-9, deadline - started)
                fraction = min(1.0, max(offset + share * epoch / epochs, used))
                progress(f"Fine-tuning {phase}: epoch {epoch} of {epochs}", fraction)

        return on_epoch

    torch.manual_seed(seed)
    with _deterministic():
        tuner = _Tuner(
            images,
            labels,
            multilabel,
            backbone_name,
            image_size,
            seed,
            split_head,
            config,
            train,
            held,
            started,
            deadline,
        )
        tuner.prepare()
        tuner.train(report("(held-out check)", first_share, 0.0))
        if tuner.best_state is None or tuner.best_probabilities is None:
            return keep_regular(tuner.stopped_by, regular_score, regular_probabilities)
        tuner.load(tuner.best_state)
        # Held-out probabilities of the served computation: the tuned branch (its own head)
        # and the Regular branch (the head trained on the training split), each averaged over
        # the image and its mirror image, then the two branches averaged.
        tuned = [tuner.best_probabilities]
        if config.mirror:
            tuned.append(tuner.mirror_probabilities())
    branches = [np.mean(tuned, axis=0)]
    if config.ensemble:
        frozen = [regular_probabilities]
        if config.mirror:
            frozen.append(split_head.predict(regular.features[held, 1]))
        branches.append(np.mean(frozen, axis=0))
    fine_tuned_probabilities = np.mean(branches, axis=0).astype(np.float32)
    fine_tuned_score = score(fine_tuned_probabilities, labels[held], multilabel)
    kept: Kept = (
        "FineTuned"
        if keep_fine_tuned(
            regular_score,
            fine_tuned_score,
            held_out_loss(regular_probabilities, labels[held], multilabel),
            held_out_loss(fine_tuned_probabilities, labels[held], multilabel),
        )
        else "Regular"
    )
    fine_tuned = tuner.served(regular.head if config.ensemble else None)
    refit = None
    if kept == "FineTuned" and config.refit:
        refit = _refit(
            tuner, images, labels, regular, report("(all images)", 1 - first_share, first_share)
        )
    served = refit or fine_tuned
    net = served if kept == "FineTuned" else build_classifier(backbone_name, regular.head)
    return AdvancedResult(
        kept=kept,
        net=net,
        metric=metric,
        regular_score=regular_score,
        fine_tuned_score=fine_tuned_score,
        held_out=held,
        train=train,
        regular_probabilities=regular_probabilities,
        fine_tuned_probabilities=fine_tuned_probabilities,
        epochs=tuner.epochs,
        steps=tuner.steps,
        best_epoch=tuner.best_epoch,
        seconds_used=time.perf_counter() - started,
        stopped_by=tuner.stopped_by,
        fine_tuned=served,
        history=tuner.history,
        refit_images=len(images) if refit is not None else 0,
    )


def _refit(
    first: _Tuner,
    images: Sequence[Image.Image],
    labels: np.ndarray,
    regular: RegularResult,
    on_epoch: Callable[[int, int], None],
) -> EnsembleNet | None:
    """The kept fine-tuning run again on every image (the held-out ones too), for the epochs the
    first run kept, starting from the Regular head trained on every image; None when it would
    not fit in what is left of the budget (then the first run's network is served)."""
    everything = np.arange(len(images))
    epochs = first.best_epoch
    # The first run's steps, scaled to the larger set, and the trunk outputs it did not cache
    # (the held-out images' training views), with the margin `_per_image` uses.
    steps = (
        1.25
        * first.step_total
        * (len(everything) / len(first.train_index))
        * (epochs / max(1, first.epochs))
    )
    trunk = len(first.held_index) * first.config.pool_views * first.trunk_estimate()
    if time.perf_counter() + steps + trunk + FINISH_SECONDS > first.deadline:
        return None
    torch.manual_seed(first.seed)
    with _deterministic():
        tuner = _Tuner(
            images,
            labels,
            first.multilabel,
            first.extractor.name,
            first.preprocessing.size,
            first.seed,
            regular.head,
            first.config,
            everything,
            np.zeros(0, dtype=np.int64),
            first.started,
            first.deadline,
            cache=first.cache,
        )
        tuner.prepare()
        tuner.train(on_epoch, epochs)
        if tuner.epochs < epochs or tuner.best_state is None:  # out of time after all
            return None
        tuner.load(tuner.best_state)
    return tuner.served(regular.head if first.config.ensemble else None)
