"""Labelled photos as training samples: box-aware crops with scale jitter, mosaics of 4 photos,
horizontal flips and colour jitter, every box kept consistent; deterministic given a seed.

A sample is the image resized (stretched) to S x S, normalised as (x - 0.5) / 0.5, with its
boxes as xyxy pixels of that S x S input and their tag indices. Every geometric augmentation
is one window of the source (a rectangle in its pixels, possibly reaching past its edges, where
grey fills in) mapped onto the S x S input, so the boxes follow by the same affine map; a box
keeping less than `MIN_VISIBLE` of its area, or under `MIN_SIDE` pixels wide or high, is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

MIN_VISIBLE = 0.2  # a box cut to less than this fraction of its area is dropped
MIN_SIDE = 2.0  # pixels of the S x S input
GREY = (128, 128, 128)  # 0 after normalisation

Sample = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # image, boxes (B, 4) xyxy, tags (B,)
Batch = tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]


@dataclass(frozen=True)
class LabelledImage:
    """A photo and its boxes: (B, 4) left, top, width, height fractions and (B,) tag indices."""

    image: Image.Image
    boxes: np.ndarray
    tags: np.ndarray


@dataclass(frozen=True)
class Augmentation:
    # probability that a sample is a mosaic of 4 photos: off by default, as in the few epochs
    # a CPU budget allows it measured no better than single photos (fit.py's docstring)
    mosaic: float = 0.0
    flip: float = 0.5
    min_zoom: float = 0.6  # the window's side, in fractions of the photo's (< 1 zooms in)
    max_zoom: float = 1.4  # (> 1 zooms out, grey around the photo)
    aspect: float = 0.25  # the window's aspect ratio jitters by up to this (log-uniform)
    colour: float = 0.3  # brightness, contrast and saturation vary by up to this factor


NO_AUGMENTATION = Augmentation(0.0, 0.0, 1.0, 1.0, 0.0, 0.0)


def normalise(pixels: np.ndarray) -> torch.Tensor:
    """(S, S, 3) uint8 or float RGB in [0, 255] -> (3, S, S) float32 as (x / 255 - 0.5) / 0.5."""
    array = np.asarray(pixels, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def input_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """A photo as the detector's input: RGB, stretched to size x size (bilinear), normalised."""
    return normalise(
        np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
    )


def _window_pixels(image: Image.Image, window: np.ndarray, size: int) -> np.ndarray:
    """The window (x0, y0, x1, y1 in the photo's pixels) drawn onto a size x size RGB array."""
    data = tuple(float(v) for v in window)
    drawn = image.transform(
        (size, size), Image.Transform.EXTENT, data, Image.Resampling.BILINEAR, fillcolor=GREY
    )
    return np.asarray(drawn, dtype=np.float32)


def _window_boxes(
    boxes: np.ndarray, window: np.ndarray, size: int, photo: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (fractions of the photo) in the window's size x size pixels, clipped, and which
    boxes are kept."""
    width, height = photo
    xyxy = np.stack(
        [
            boxes[:, 0] * width,
            boxes[:, 1] * height,
            (boxes[:, 0] + boxes[:, 2]) * width,
            (boxes[:, 1] + boxes[:, 3]) * height,
        ],
        1,
    ).reshape(-1, 4)
    scale = np.array([size / (window[2] - window[0]), size / (window[3] - window[1])] * 2)
    mapped = (xyxy - np.tile(window[:2], 2)) * scale
    clipped = np.clip(mapped, 0, size)
    area = (mapped[:, 2] - mapped[:, 0]) * (mapped[:, 3] - mapped[:, 1])
    sides = np.minimum(clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1])
    visible = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = (sides >= MIN_SIDE) & (visible >= MIN_VISIBLE * np.maximum(area, 1e-9))
    return clipped, keep


def random_window(
    rng: np.random.Generator, photo: tuple[int, int], boxes: np.ndarray, augmentation: Augmentation
) -> np.ndarray:
    """A random window (x0, y0, x1, y1 pixels) of the photo holding the centre of at least one
    box (up to 10 draws, then the whole photo)."""
    width, height = photo
    centres = np.stack(
        [(boxes[:, 0] + boxes[:, 2] / 2) * width, (boxes[:, 1] + boxes[:, 3] / 2) * height], 1
    )
    for _ in range(10):
        zoom = rng.uniform(augmentation.min_zoom, augmentation.max_zoom)
        stretch = np.exp(rng.uniform(-augmentation.aspect, augmentation.aspect))
        w, h = width * zoom * stretch, height * zoom / stretch
        x0 = rng.uniform(min(0.0, width - w), max(0.0, width - w))
        y0 = rng.uniform(min(0.0, height - h), max(0.0, height - h))
        window = np.array([x0, y0, x0 + w, y0 + h])
        inside = (centres[:, 0] > x0) & (centres[:, 0] < x0 + w)
        inside &= (centres[:, 1] > y0) & (centres[:, 1] < y0 + h)
        if inside.any() or len(boxes) == 0:
            return window
    return np.array([0.0, 0.0, float(width), float(height)])


def _crop(
    rng: np.random.Generator, photo: LabelledImage, size: int, augmentation: Augmentation
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random window of one photo: pixels (size, size, 3), boxes xyxy and tags kept."""
    window = random_window(rng, photo.image.size, photo.boxes, augmentation)
    pixels = _window_pixels(photo.image, window, size)
    boxes, keep = _window_boxes(photo.boxes, window, size, photo.image.size)
    return pixels, boxes[keep], photo.tags[keep]


def _mosaic(
    rng: np.random.Generator,
    photos: Sequence[LabelledImage],
    size: int,
    augmentation: Augmentation,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four photos, each a random window drawn at size x size, tiled on a 2S x 2S canvas; the
    sample is a random S x S cut around a centre drawn in the middle half of the canvas, so each
    photo keeps its scale and one to four of them show."""
    canvas = np.full((2 * size, 2 * size, 3), 128.0, dtype=np.float32)
    all_boxes, all_tags = [], []
    for k, photo in enumerate(photos):
        pixels, boxes, tags = _crop(rng, photo, size, augmentation)
        dx, dy = (k % 2) * size, (k // 2) * size
        canvas[dy : dy + size, dx : dx + size] = pixels
        all_boxes.append(boxes + np.array([dx, dy, dx, dy]))
        all_tags.append(tags)
    cx, cy = rng.uniform(0.5 * size, 1.5 * size, 2)
    x0, y0 = int(cx - size / 2), int(cy - size / 2)
    pixels = canvas[y0 : y0 + size, x0 : x0 + size]
    # the canvas as one photo of 2S x 2S pixels, so _window_boxes clips and filters the cut
    boxes = np.concatenate(all_boxes) / (2 * size)
    ltwh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1)
    window = np.array([x0, y0, x0 + size, y0 + size], dtype=np.float64)
    cut, keep = _window_boxes(ltwh, window, size, (2 * size, 2 * size))
    return pixels, cut[keep], np.concatenate(all_tags)[keep]


def _jitter_colour(rng: np.random.Generator, pixels: np.ndarray, amount: float) -> np.ndarray:
    brightness, contrast, saturation = rng.uniform(1 - amount, 1 + amount, 3)
    grey = pixels.mean(axis=2, keepdims=True)
    pixels = grey + (pixels - grey) * saturation
    pixels = pixels.mean() + (pixels - pixels.mean()) * contrast
    clipped: np.ndarray = np.clip(pixels * brightness, 0, 255)
    return clipped


class DetectionDataset(torch.utils.data.Dataset[Sample]):
    """Augmented samples of `photos`; sample i of epoch e depends only on (seed, e, i)."""

    def __init__(
        self,
        photos: Sequence[LabelledImage],
        size: int,
        augmentation: Augmentation = Augmentation(),
        seed: int = 0,
    ) -> None:
        self.photos = [
            LabelledImage(
                p.image.convert("RGB"),
                np.asarray(p.boxes, dtype=np.float64).reshape(-1, 4),
                np.asarray(p.tags, dtype=np.int64).reshape(-1),
            )
            for p in photos
        ]
        self.size, self.augmentation, self.seed, self.epoch = size, augmentation, seed, 0

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, index: int) -> Sample:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        aug = self.augmentation
        if len(self.photos) >= 4 and rng.random() < aug.mosaic:
            others = rng.choice(len(self.photos) - 1, 3, replace=False)
            chosen = [index, *((others + index + 1) % len(self.photos))]
            pixels, boxes, tags = _mosaic(rng, [self.photos[i] for i in chosen], self.size, aug)
        else:
            pixels, boxes, tags = _crop(rng, self.photos[index], self.size, aug)
        if rng.random() < aug.flip:
            pixels = pixels[:, ::-1]
            boxes = np.stack(
                [self.size - boxes[:, 2], boxes[:, 1], self.size - boxes[:, 0], boxes[:, 3]], 1
            )
        if aug.colour > 0:
            pixels = _jitter_colour(rng, pixels, aug.colour)
        return (
            normalise(pixels),
            torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            torch.as_tensor(tags, dtype=torch.int64),
        )


def collate(batch: list[Sample]) -> Batch:
    images, boxes, tags = zip(*batch, strict=True)
    return torch.stack(images), list(boxes), list(tags)
