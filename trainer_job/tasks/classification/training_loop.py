"""The fit loop of one fine-tuning run, as plain functions over a `Tuner`: `fit` runs the
schedule, calling `train_one_epoch` (which calls `train_step`) and `evaluate` (via `record`)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from trainer_job.tasks.classification.results import EpochRecord
from trainer_job.tasks.classification.scoring import score
from trainer_job.tasks.classification.tuner import (
    Tuner,
    class_weights,
    loss_of,
    probabilities_of,
)


def prepare(tuner: Tuner) -> None:
    """Trunk outputs of the held-out images (view 0, kept apart), and the start evaluated."""
    held = [(int(i), 0) for i in tuner.held_index]
    if not held:
        record(tuner, 0, math.nan)
        return
    tuner.held_inputs = tuner.trunk.batched(held)
    if tuner.config.mirror:
        tuner.held_mirror_inputs = tuner.trunk.batched([(i, 1) for i, _ in held])
    clock = time.perf_counter()
    record(tuner, 0, math.nan)
    tuner.budget.eval_seconds = max(time.perf_counter() - clock, 1e-3)


def evaluate(tuner: Tuner) -> tuple[float, np.ndarray]:
    """(held-out loss of view 0, held-out probabilities (H, T) averaged over the image and its
    mirror image when `mirror`) of the network as it is."""
    logits = tuner.net.logits(tuner.held_inputs)
    weights = class_weights(tuner.y_held, tuner.multilabel)
    loss = float(loss_of(logits, tuner.y_held, weights, tuner.multilabel, 0.0))
    probabilities = probabilities_of(logits, tuner.multilabel)
    if tuner.config.mirror:
        mirrored = probabilities_of(tuner.net.logits(tuner.held_mirror_inputs), tuner.multilabel)
        probabilities = 0.5 * (probabilities + mirrored)
    return loss, probabilities


def record(tuner: Tuner, epoch: int, train_loss: float) -> None:
    """History, the held-out curve and the epoch to keep (without held-out images, as a refit
    has, the last one)."""
    best, seconds = tuner.best, tuner.budget.seconds
    if len(tuner.held_index) == 0:
        tuner.history.append(EpochRecord(epoch, train_loss, math.nan, math.nan, seconds()))
        if epoch > 0:
            best.epoch, best.state = epoch, tuner.net.state()
        return
    loss, probabilities = evaluate(tuner)
    labels = tuner.spec.data.labels[tuner.held_index]
    held_score = score(probabilities, labels, tuner.multilabel)
    tuner.history.append(EpochRecord(epoch, train_loss, loss, held_score, seconds()))
    tuner.curve.append(probabilities)
    if loss < best.reference_loss:
        best.reference_loss, best.reference_epoch = loss, epoch
    if epoch > 0 and loss < best.loss:
        best.loss, best.epoch, best.state = loss, epoch, tuner.net.state()


@dataclass
class Optimiser:
    """AdamW with layer-wise learning rates on a warm-up then cosine schedule."""

    optimizer: torch.optim.Optimizer
    base_lrs: list[float]
    warmup: int
    total: int
    scaler: torch.amp.GradScaler

    def set_learning_rates(self, step: int) -> None:
        if step < self.warmup:
            factor = (step + 1) / self.warmup
        else:
            done = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
            factor = 0.5 * (1.0 + math.cos(math.pi * done))
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor

    def step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
        self.scaler.step(self.optimizer)
        self.scaler.update()


def make_optimiser(tuner: Tuner) -> Optimiser:
    """The head convolution gets `backbone_lr`, the last block `layer_decay` times that, the
    block before it `layer_decay` squared times, ...; the linear head `head_lr`."""
    config, net = tuner.config, tuner.net
    blocks = list(net.network._blocks)
    modules: list[nn.Module] = [*blocks[net.split :], net.network._conv_head, net.linear]
    base_lrs = [
        *(
            config.backbone_lr * config.layer_decay ** (len(blocks) - index)
            for index in range(net.split, len(blocks))
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
    steps_per_epoch = math.ceil(len(tuner.train_index) / config.batch_size)
    total = max(1, config.max_epochs * steps_per_epoch)
    warmup = max(1, round(config.warmup_epochs * steps_per_epoch))
    device = tuner.device
    fp16 = device.cuda and device.amp_dtype == torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=fp16)
    return Optimiser(optimizer, base_lrs, warmup, total, scaler)


def train_step(
    tuner: Tuner,
    optimiser: Optimiser,
    positions: np.ndarray,
    inputs: torch.Tensor,
    generator: torch.Generator,
) -> float:
    """One optimiser step on a batch (mixup within it); returns its loss."""
    config, multilabel = tuner.config, tuner.multilabel
    optimiser.set_learning_rates(tuner.steps)
    y = tuner.y_train[torch.from_numpy(positions).to(tuner.device.on)]
    mix, partner = 1.0, None
    if config.mixup > 0 and len(positions) > 1:
        rng = np.random.default_rng([tuner.spec.model.seed, 0x313, tuner.steps])
        mix = float(rng.beta(config.mixup, config.mixup))
        partner = torch.randperm(len(positions), generator=generator).to(tuner.device.on)
        inputs = mix * inputs + (1 - mix) * inputs[partner]
    logits = tuner.net.training_logits(inputs)
    weights = class_weights(tuner.y_train, multilabel)
    smoothing = 0.0 if multilabel else config.label_smoothing
    loss = loss_of(logits, y, weights, multilabel, smoothing)
    if partner is not None:
        other = loss_of(logits, y[partner], weights, multilabel, smoothing)
        loss = mix * loss + (1 - mix) * other
    optimiser.step(loss)
    tuner.steps += 1
    return float(loss.detach())


def train_one_epoch(
    tuner: Tuner, optimiser: Optimiser, generator: torch.Generator
) -> tuple[list[float], bool]:
    """Every training image once, as a seeded view from the pool; (the batches' losses,
    whether the budget ran out before the epoch's end)."""
    config = tuner.config
    order = torch.randperm(len(tuner.train_index), generator=generator).numpy()
    pool = max(1, config.pool_views)
    views = torch.randint(0, pool, (len(order),), generator=generator).numpy()
    losses: list[float] = []
    for start in range(0, len(order), config.batch_size):
        positions = order[start : start + config.batch_size]
        items = [(int(tuner.train_index[p]), int(views[p])) for p in positions]
        if not tuner.time_for(items):
            return losses, True
        inputs = tuner.trunk(items)
        clock = time.perf_counter()
        losses.append(train_step(tuner, optimiser, positions, inputs, generator))
        tuner.budget.record_step(time.perf_counter() - clock, len(items))
    return losses, False


def fit(
    tuner: Tuner, on_epoch: Callable[[int, int], None] | None, epochs: int | None = None
) -> None:
    """Train on the schedule of `config.max_epochs` epochs, stopping after `epochs` (all of
    them by default) or earlier by the budget or early stopping."""
    config = tuner.config
    last_epoch = config.max_epochs if epochs is None else min(epochs, config.max_epochs)
    optimiser = make_optimiser(tuner)
    generator = torch.Generator().manual_seed(tuner.spec.model.seed)
    for epoch in range(1, last_epoch + 1):
        losses, out_of_time = train_one_epoch(tuner, optimiser, generator)
        if out_of_time:
            tuner.stopped_by = "budget"
            if losses:  # a partial epoch is a candidate too
                record(tuner, epoch, float(np.mean(losses)))
            return
        tuner.epochs = epoch
        record(tuner, epoch, float(np.mean(losses)))
        if on_epoch is not None:
            on_epoch(epoch, last_epoch)
        stale = epoch - tuner.best.reference_epoch
        if config.patience is not None and stale >= config.patience:
            tuner.stopped_by = "early-stopping"
            return
