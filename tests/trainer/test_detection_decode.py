"""The service's numpy decoding of a detector's dense outputs agrees with torchvision's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision  # type: ignore[import-untyped]

from functions.domain.detection_decode import decode, nms


def _dense(seed: int, points: int = 400, tags: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # Clusters of overlapping boxes, as a detector answers around each object.
    centres = rng.uniform(0.2, 0.8, (8, 2))
    around = centres[rng.integers(0, 8, points)] + rng.normal(0, 0.03, (points, 2))
    half = rng.uniform(0.05, 0.2, (points, 2))
    boxes = np.clip(np.concatenate([around - half, around + half], 1), 0, 1).astype(np.float32)
    scores = rng.uniform(0, 1, (points, tags)).astype(np.float32) ** 3
    return boxes, scores


@pytest.mark.parametrize("seed", range(5))
def test_decode_matches_torchvision(seed: int) -> None:
    boxes, scores = _dense(seed)
    found = decode(boxes, scores, score_threshold=0.05, nms_iou=0.5, max_detections=50)
    flat = torch.from_numpy(scores).flatten()
    keep = torch.nonzero(flat >= 0.05).flatten()
    keep = keep[flat[keep].argsort(descending=True)[:1000]]
    point, tag = keep // scores.shape[1], keep % scores.shape[1]
    chosen = torch.from_numpy(boxes)[point]
    kept = torchvision.ops.batched_nms(chosen, flat[keep], tag, 0.5)[:50]
    xyxy = chosen[kept].numpy()
    assert found.classes.tolist() == tag[kept].tolist()
    np.testing.assert_allclose(found.scores, flat[keep][kept].numpy(), rtol=0, atol=1e-7)
    np.testing.assert_allclose(found.boxes[:, :2], xyxy[:, :2], atol=1e-6)
    np.testing.assert_allclose(found.boxes[:, 2:], xyxy[:, 2:] - xyxy[:, :2], atol=1e-6)
    assert len(found.scores) == 50 and np.all(np.diff(found.scores) <= 0)


def test_nms_keeps_the_best_of_overlapping_boxes_and_separate_ones() -> None:
    boxes = np.array([[0, 0, 0.5, 0.5], [0.02, 0, 0.52, 0.5], [0.6, 0.6, 1, 1]], np.float32)
    assert nms(boxes, np.array([0.6, 0.9, 0.3]), 0.5).tolist() == [1, 2]
    empty = decode(boxes, np.zeros((3, 2), np.float32))
    assert empty.boxes.shape == (0, 4) and empty.scores.shape == (0,)
