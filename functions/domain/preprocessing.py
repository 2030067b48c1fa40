"""The model input, described once: the trainer, the server and exported models all use it.

An image becomes a float32 NCHW tensor: RGB, the shorter side resized to `resize_to` with
bilinear filtering (Pillow), a centered `size` x `size` crop, pixel values scaled to [0, 1],
then (x - mean) / std per channel. EfficientNet-Lite (Google's) expects mean = std = 0.5.
Detectors see the whole photo instead, stretched to `size` x `size` (`crop` "none"), so that
box fractions of the input are box fractions of the photo.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Preprocessing:
    size: int
    resize_to: int
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    resize: str = "shorter-side, bilinear (Pillow)"
    crop: str = "center"
    channel_order: str = "RGB"
    layout: str = "NCHW"
    pixel_scale: float = 1.0 / 255.0

    @classmethod
    def for_size(cls, size: int) -> Preprocessing:
        # The usual ImageNet evaluation crop: resize to size / 0.875, then crop the center.
        return cls(size=size, resize_to=round(size / 0.875))

    @classmethod
    def stretched(cls, size: int) -> Preprocessing:
        """The detectors' input: the whole photo resized to size x size, no crop."""
        return cls(
            size=size, resize_to=size, resize="both sides to size, bilinear (Pillow)", crop="none"
        )

    def to_manifest(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> Preprocessing:
        return cls(
            size=int(data["size"]),
            resize_to=int(data["resize_to"]),
            mean=tuple(data["mean"]),
            std=tuple(data["std"]),
            resize=str(data.get("resize", cls.resize)),
            crop=str(data.get("crop", cls.crop)),
        )

    def crop_image(self, image: Image.Image) -> Image.Image:
        """Resize the shorter side to `resize_to` and crop the centered square of `size` (or,
        with `crop` "none", resize the whole image to `size` x `size`)."""
        image = image.convert("RGB")
        if self.crop == "none":
            return image.resize((self.size, self.size), Image.Resampling.BILINEAR)
        width, height = image.size
        scale = self.resize_to / min(width, height)
        resized = (max(self.size, round(width * scale)), max(self.size, round(height * scale)))
        image = image.resize(resized, Image.Resampling.BILINEAR)
        left = (resized[0] - self.size) // 2
        top = (resized[1] - self.size) // 2
        return image.crop((left, top, left + self.size, top + self.size))

    def to_array(self, image: Image.Image) -> np.ndarray:
        """A (3, size, size) float32 array, normalised, from an image already cropped."""
        pixels = np.asarray(image, dtype=np.float32) * self.pixel_scale
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        return np.ascontiguousarray(((pixels - mean) / std).transpose(2, 0, 1))

    def __call__(self, image: Image.Image) -> np.ndarray:
        return self.to_array(self.crop_image(image))
