"""The detector on the fixture photos: augmentation keeps boxes consistent, training runs, is
deterministic and finds raccoons it was trained on, decoding is well formed, ONNX agrees."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from PIL import Image

from tests.detection_data import LabelledPhoto, detection_set
from trainer_job.tasks.detection.data import (
    NO_AUGMENTATION,
    Augmentation,
    DetectionDataset,
    LabelledImage,
    input_tensor,
)
from trainer_job.tasks.detection.fit import FitConfig, fit, predict
from trainer_job.tasks.detection.model import DenseDetector, Detector, decode

SIZE = 128  # small inputs keep the tests fast


def labelled(photos: list[LabelledPhoto], tags: list[str]) -> list[LabelledImage]:
    found = []
    for photo in photos:
        with Image.open(photo.path) as image:
            boxes = np.array([r[1:] for r in photo.regions], dtype=np.float64)
            indices = np.array([tags.index(r[0]) for r in photo.regions], dtype=np.int64)
            found.append(LabelledImage(image.convert("RGB"), boxes, indices))
    return found


def raccoons(count: int) -> list[LabelledImage]:
    return labelled(detection_set("raccoon")[:count], ["raccoon"])


def squares() -> list[LabelledImage]:
    """Black photos with white squares, each square labelled: pixels show where boxes are."""
    rng = np.random.default_rng(0)
    photos = []
    for _ in range(4):
        pixels = np.zeros((120, 160, 3), dtype=np.uint8)
        boxes = []
        for _ in range(2):
            x, y, side = (
                int(rng.integers(0, 110)),
                int(rng.integers(0, 70)),
                int(rng.integers(20, 50)),
            )
            side = min(side, 160 - x, 120 - y)
            pixels[y : y + side, x : x + side] = 255
            boxes.append([x / 160, y / 120, side / 160, side / 120])
        photos.append(
            LabelledImage(Image.fromarray(pixels), np.array(boxes), np.zeros(2, np.int64))
        )
    return photos


def test_augmented_boxes_stay_inside_and_cover_what_they_labelled() -> None:
    dataset = DetectionDataset(squares(), SIZE, Augmentation(mosaic=0.5, colour=0.0), seed=3)
    boxes_seen = 0
    for epoch in range(3):
        dataset.epoch = epoch
        for index in range(len(dataset)):
            image, boxes, tags = dataset[index]
            assert boxes.shape[0] == tags.shape[0]
            assert (boxes >= 0).all() and (boxes <= SIZE).all()
            assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
            for x0, y0, x1, y1 in boxes.round().int().tolist():
                inside = image[:, y0 + 1 : y1 - 1, x0 + 1 : x1 - 1]
                if inside.numel():  # white (1 after normalisation) where a square was labelled
                    assert float(inside.mean()) > 0.6
                    boxes_seen += 1
    assert boxes_seen > 10


def test_a_flipped_sample_mirrors_its_boxes() -> None:
    photos = raccoons(3)
    plain = DetectionDataset(photos, SIZE, NO_AUGMENTATION, seed=1)
    flipped = DetectionDataset(photos, SIZE, replace(NO_AUGMENTATION, flip=1.0), seed=1)
    for index in range(3):
        image, boxes, _ = plain[index]
        mirror, mirrored, _ = flipped[index]
        expected = torch.stack(
            [SIZE - boxes[:, 2], boxes[:, 1], SIZE - boxes[:, 0], boxes[:, 3]], 1
        )
        assert torch.allclose(mirrored, expected, atol=1e-4)
        assert torch.allclose(mirror, image.flip(-1), atol=1e-5)


def test_samples_are_deterministic_given_the_seed() -> None:
    photos = labelled(detection_set("bccd")[:5], ["Platelets", "RBC", "WBC"])
    first, second = DetectionDataset(photos, SIZE, seed=7), DetectionDataset(photos, SIZE, seed=7)
    other = DetectionDataset(photos, SIZE, seed=8)
    for index in range(5):
        a, b = first[index], second[index]
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and torch.equal(a[2], b[2])
    assert not all(torch.equal(first[i][0], other[i][0]) for i in range(5))


def test_decode_gives_well_formed_boxes() -> None:
    torch.manual_seed(0)
    model = Detector("efficientnet-lite0", 3, SIZE).eval()
    photos = labelled(detection_set("bccd")[:2], ["Platelets", "RBC", "WBC"])
    batch = torch.stack([input_tensor(p.image, SIZE) for p in photos])
    with torch.no_grad():
        boxes, scores = DenseDetector(model)(batch)
    assert boxes.shape == (2, model.points.shape[0], 4) and scores.shape == (2, boxes.shape[1], 3)
    for found in decode(boxes, scores, score_threshold=0.0, max_detections=50):
        assert found.boxes.shape == (50, 4) and found.scores.shape == found.classes.shape == (50,)
        assert (found.boxes >= 0).all() and (found.boxes[:, 2:] >= 0).all()
        assert (found.boxes[:, :2] + found.boxes[:, 2:] <= 1 + 1e-6).all()
        assert (found.scores[:-1] >= found.scores[1:]).all() and (found.scores <= 1).all()
        assert set(found.classes.tolist()) <= {0, 1, 2}


def short_fit(
    photos: list[LabelledImage], epochs: int, seed: int = 0, start: Detector | None = None
) -> tuple[Detector, list[float]]:
    config = FitConfig(
        image_size=SIZE,
        seed=seed,
        epochs=epochs,
        budget_seconds=float("inf"),
        batch_size=4,
        lr=4e-3,
        warmup_steps=3,
        ema_decay=0.0,
        augmentation=NO_AUGMENTATION,
    )
    result = fit(photos, 1, config, start=start)
    return result.model, result.losses


def test_training_is_deterministic_given_the_seed() -> None:
    photos = raccoons(4)
    _, first = short_fit(photos, 2)
    _, second = short_fit(photos, 2)
    assert first == second


def test_a_short_training_finds_the_raccoons_it_saw() -> None:
    photos = raccoons(3)
    model, losses = short_fit(photos, 40)
    assert losses[-1] < 0.5 * losses[0]
    for photo, found in zip(photos, predict(model, [p.image for p in photos]), strict=True):
        best = found.boxes[0].numpy()
        overlaps = [iou(best, box) for box in photo.boxes]
        assert max(overlaps) > 0.5, (found.scores[:3], overlaps)


def test_a_training_can_go_on_from_an_earlier_detector() -> None:
    """The served detector starts from the evaluated one's weights: its first epoch begins
    where that one ended, far below a new detector's first loss."""
    photos = raccoons(3)
    earlier, losses = short_fit(photos, 20)
    _, fresh = short_fit(photos, 1)
    _, resumed = short_fit(photos, 1, start=earlier)
    assert resumed[0] < 0.6 * fresh[0], (resumed, fresh, losses[-1])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, right - left) * max(0.0, bottom - top)
    return float(inter / (a[2] * a[3] + b[2] * b[3] - inter))


def test_onnx_export_agrees_with_torch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Detector("efficientnet-lite0", 3, SIZE).eval()
    dense = DenseDetector(model).eval()
    photo = labelled(detection_set("raccoon")[:1], ["raccoon"])[0]
    sample = input_tensor(photo.image, SIZE)[None]
    path = tmp_path / "detector.onnx"
    torch.onnx.export(
        dense,
        (sample,),
        str(path),
        dynamo=False,
        input_names=["image"],
        output_names=["boxes", "scores"],
        opset_version=17,
    )
    with torch.no_grad():
        expected = [t.numpy() for t in dense(sample)]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    actual = session.run(["boxes", "scores"], {"image": sample.numpy()})
    for got, want in zip(actual, expected, strict=True):
        assert got.shape == want.shape
        assert np.abs(got - want).max() < 1e-4
