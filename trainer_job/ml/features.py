"""Pooled backbone features per image and view: view 0 is the served input, the rest augmented."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from PIL import Image, ImageEnhance

from functions.domain.preprocessing import Preprocessing
from trainer_job.ml.backbone import FeatureExtractor

DEFAULT_VIEWS = 2  # the image as served, and its mirror image
DEFAULT_BATCH_SIZE = 32

# Views 2 and up: a random resized crop of this share of the area of the image's central
# square, with this range of aspect ratios, flipped half the time, with mild colour jitter.
CROP_SCALE = (0.6, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
JITTER = 0.1  # brightness, contrast and saturation factors drawn from [1 - JITTER, 1 + JITTER]


def view_rng(seed: int, index: int, view: int) -> np.random.Generator:
    """The random numbers of one augmented view, fixed by the seed, image index and view."""
    return np.random.default_rng([seed, index, view])


def _random_resized_crop(image: Image.Image, size: int, rng: np.random.Generator) -> Image.Image:
    width, height = image.size
    side = min(width, height)
    area = side * side * rng.uniform(*CROP_SCALE)
    ratio = float(np.exp(rng.uniform(np.log(CROP_RATIO[0]), np.log(CROP_RATIO[1]))))
    crop_w = min(width, float(np.sqrt(area * ratio)))
    crop_h = min(height, float(np.sqrt(area / ratio)))
    left = rng.uniform(0.0, width - crop_w)
    top = rng.uniform(0.0, height - crop_h)
    box = (left, top, left + crop_w, top + crop_h)
    return image.resize((size, size), Image.Resampling.BILINEAR, box=box)


def _jitter(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        image = enhancer(image).enhance(float(rng.uniform(1 - JITTER, 1 + JITTER)))
    return image


def view_array(
    image: Image.Image, preprocessing: Preprocessing, view: int, seed: int, index: int
) -> np.ndarray:
    """One view of an image as a (3, S, S) float32 array, normalised like `preprocessing`.

    View 0 is exactly `preprocessing(image)`; view 1 its mirror image; views 2 and up are
    random resized crops, flipped half the time, with mild colour jitter.
    """
    if view == 0:
        return preprocessing(image)
    if view == 1:
        cropped = preprocessing.crop_image(image).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return preprocessing.to_array(cropped)
    rng = view_rng(seed, index, view)
    cropped = _random_resized_crop(image.convert("RGB"), preprocessing.size, rng)
    if rng.uniform() < 0.5:
        cropped = cropped.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return preprocessing.to_array(_jitter(cropped, rng))


def _batches(items: list[tuple[int, int]], size: int) -> Iterator[list[tuple[int, int]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def run_extractor(extractor: FeatureExtractor, batch: np.ndarray) -> np.ndarray:
    """Features (N, D) float32 of a normalised (N, 3, S, S) batch; autocast on CUDA only."""
    on = next(extractor.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(on)
    if on.type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cuda", enabled=on.type == "cuda"):
        features = extractor(x)
    result: np.ndarray = features.float().cpu().numpy()
    return result


def compute_features(
    extractor: FeatureExtractor,
    images: Sequence[Image.Image],
    preprocessing: Preprocessing,
    views: int = DEFAULT_VIEWS,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    indices: Sequence[int] | None = None,
) -> np.ndarray:
    """Features (N, views, D) float32 of `images`; view 0 is exactly `preprocessing(image)`.

    `indices[i]` is the index that seeds the augmentations of `images[i]` (default: i), so a
    subset of a training set gets the views it would have got with the whole set.
    """
    if views < 1:
        raise ValueError("views must be at least 1")
    if preprocessing.size != extractor.image_size:
        raise ValueError(
            f"{extractor.name} is built for {extractor.image_size} px, "
            f"preprocessing gives {preprocessing.size} px"
        )
    seeds = list(range(len(images))) if indices is None else list(indices)
    if len(seeds) != len(images):
        raise ValueError("indices and images differ in length")
    result = np.zeros((len(images), views, extractor.feature_dim), dtype=np.float32)
    work = [(i, v) for i in range(len(images)) for v in range(views)]
    for batch in _batches(work, batch_size):
        arrays = [view_array(images[i], preprocessing, v, seed, seeds[i]) for i, v in batch]
        features = run_extractor(extractor, np.stack(arrays))
        for (i, v), row in zip(batch, features, strict=True):
            result[i, v] = row
    return result
