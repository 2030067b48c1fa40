"""A linear classifier on frozen features: class-balanced, L2-regularised, trained by LBFGS."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# The L2 penalty (lambda / 2) * ||W||^2 is added to the class-balanced mean loss, on centred raw
# features. Training chooses lambda per project by cross-validation (evaluate.L2_GRID); this
# default serves only where nothing is chosen (the sample model of the exports, tests).
DEFAULT_L2 = 0.1
BIAS_L2 = 1e-6  # keeps the bias of a tag absent from a training set finite
MAX_ITERATIONS = 300

_THREADS_LOCK = threading.Lock()


@dataclass(frozen=True)
class LinearHead:
    """probabilities = softmax|sigmoid((features - mean) @ weight.T + bias)."""

    weight: np.ndarray  # (T, D) float32, on centred features
    bias: np.ndarray  # (T,) float32
    mean: np.ndarray  # (D,) float32: the mean training feature (all views)
    multilabel: bool

    @property
    def tags(self) -> int:
        return int(self.weight.shape[0])

    def folded(self) -> tuple[np.ndarray, np.ndarray]:
        """(weight (T, D), bias (T,)) acting on raw features: the centring folded into the bias."""
        weight = self.weight.astype(np.float64)
        bias = self.bias.astype(np.float64) - weight @ self.mean.astype(np.float64)
        return self.weight.copy(), bias.astype(np.float32)

    def logits(self, features: np.ndarray) -> np.ndarray:
        centred = np.asarray(features, dtype=np.float32) - self.mean
        result: np.ndarray = centred @ self.weight.T + self.bias
        return result

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Probabilities (N, T) float32 from features (N, D): softmax, or sigmoid per tag."""
        logits = torch.from_numpy(self.logits(features))
        if self.multilabel:
            return torch.sigmoid(logits).numpy()
        return torch.softmax(logits, dim=1).numpy()


def _check(features: np.ndarray, labels: np.ndarray, multilabel: bool) -> None:
    if features.ndim != 3:
        raise ValueError(f"features must be (N, views, D), got shape {features.shape}")
    if labels.ndim != 2 or labels.shape[0] != features.shape[0]:
        raise ValueError(f"labels must be (N, T) with N = {features.shape[0]}")
    if labels.shape[1] < 1 or features.shape[0] < 1:
        raise ValueError("need at least one image and one tag")
    if not multilabel and not np.all(labels.sum(axis=1) == 1):
        raise ValueError("Multiclass labels need exactly one tag per image")


def _multiclass_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    counts = y.sum(0)
    present = counts > 0
    class_weight = torch.where(
        present, y.shape[0] / (present.sum() * counts.clamp(min=1)), torch.zeros_like(counts)
    )
    targets = y.argmax(1)
    sample_weight = class_weight[targets]
    losses = F.cross_entropy(logits, targets, reduction="none")
    return (sample_weight * losses).sum() / sample_weight.sum()


def _multilabel_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # Per tag, positives and negatives each weigh half: pos_weight = negatives / positives,
    # normalised so that every tag's loss has the scale of a plain mean.
    positives = y.sum(0).clamp(min=1)
    negatives = (y.shape[0] - y.sum(0)).clamp(min=1)
    weight = torch.where(y > 0, y.shape[0] / (2 * positives), y.shape[0] / (2 * negatives))
    losses = F.binary_cross_entropy_with_logits(logits, y, weight=weight, reduction="none")
    return losses.mean(0).sum()


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Small matrix products on one thread: on a loaded machine two threads run 10x slower."""
    with _THREADS_LOCK:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)


def train_head(
    features: np.ndarray,
    labels: np.ndarray,
    multilabel: bool,
    seed: int = 0,
    l2: float = DEFAULT_L2,
    start: LinearHead | None = None,
) -> LinearHead:
    """Fit a linear head on features (N, V, D), every view a sample, labels (N, T) of 0/1.

    Multiclass: softmax cross-entropy, classes weighted inversely to their frequency.
    Multilabel: a sigmoid per tag, positives and negatives of each tag weighted to balance.
    The problem is convex and solved from zero by full-batch LBFGS in float64 on one thread,
    so the result is deterministic and does not depend on `seed` (which only seeds torch).
    `start` (a head trained on the same features, say with another `l2`) is where LBFGS starts
    instead of zero: the same optimum to its tolerance, in fewer iterations.
    """
    _check(features, labels, multilabel)
    if start is not None and start.weight.shape != (labels.shape[1], features.shape[2]):
        raise ValueError(f"start head has shape {start.weight.shape}")
    with _one_thread():
        return _fit(features, labels, multilabel, seed, l2, start)


def _fit(
    features: np.ndarray,
    labels: np.ndarray,
    multilabel: bool,
    seed: int,
    l2: float,
    start: LinearHead | None,
) -> LinearHead:
    count, views, dim = features.shape
    x_np = features.reshape(count * views, dim).astype(np.float64)
    mean = x_np.mean(0)
    torch.manual_seed(seed)
    x = torch.from_numpy(x_np - mean)
    y = torch.from_numpy(np.repeat(labels.astype(np.float64), views, axis=0))
    if start is None:
        weight = torch.zeros((labels.shape[1], dim), dtype=torch.float64)
        bias = torch.zeros(labels.shape[1], dtype=torch.float64)
    else:
        weight = torch.from_numpy(start.weight.astype(np.float64))
        bias = torch.from_numpy(start.bias.astype(np.float64))
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    loss_of = _multilabel_loss if multilabel else _multiclass_loss
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=MAX_ITERATIONS,
        history_size=20,
        tolerance_grad=1e-7,
        tolerance_change=1e-10,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = x @ weight.T + bias
        loss = loss_of(logits, y)
        loss = loss + 0.5 * l2 * (weight * weight).sum() + 0.5 * BIAS_L2 * (bias * bias).sum()
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    optimizer.step(closure)  # type: ignore[no-untyped-call]
    return LinearHead(
        weight=weight.detach().numpy().astype(np.float32),
        bias=bias.detach().numpy().astype(np.float32),
        mean=mean.astype(np.float32),
        multilabel=multilabel,
    )
