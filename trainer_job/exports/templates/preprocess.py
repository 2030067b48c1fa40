"""The model's input from an image file, as preprocessing.json describes it (Pillow + numpy).

Shipped beside predict.py in every export. The steps are the service's own (Open Custom Vision's
functions/domain/preprocessing.py): EXIF orientation applied; RGB; the shorter side resized to
`resize_to` with Pillow's bilinear filter; the centered `size` x `size` square cropped; pixels
scaled to [0, 1]; (x - mean) / std per channel; laid out as the model's input layout says.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent


def load_settings(folder: Path = HERE) -> dict[str, Any]:
    """preprocessing.json: the preprocessing, the model file and its input and output."""
    settings: dict[str, Any] = json.loads((folder / "preprocessing.json").read_text("utf-8"))
    return settings


def load_labels(folder: Path = HERE) -> list[str]:
    """labels.txt: one tag name per line, in the order of the model's outputs."""
    return (folder / "labels.txt").read_text("utf-8").splitlines()


def to_input(image: Image.Image, settings: dict[str, Any]) -> np.ndarray:
    """One image as the model's input: (1, 3, S, S) for NCHW, (1, S, S, 3) for NHWC, float32."""
    p = settings["preprocessing"]
    size, resize_to = int(p["size"]), int(p["resize_to"])
    image = ImageOps.exif_transpose(image).convert("RGB")
    width, height = image.size
    scale = resize_to / min(width, height)
    resized = (max(size, round(width * scale)), max(size, round(height * scale)))
    image = image.resize(resized, Image.Resampling.BILINEAR)
    left, top = (resized[0] - size) // 2, (resized[1] - size) // 2
    image = image.crop((left, top, left + size, top + size))
    pixels = np.asarray(image, dtype=np.float32) * np.float32(p["pixel_scale"])
    mean = np.asarray(p["mean"], dtype=np.float32)
    std = np.asarray(p["std"], dtype=np.float32)
    normalised = (pixels - mean) / std  # (S, S, 3): NHWC already
    if settings["input"]["layout"] == "NCHW":
        normalised = normalised.transpose(2, 0, 1)
    return np.ascontiguousarray(normalised[None], dtype=np.float32)


def load_input(path: str | Path, settings: dict[str, Any]) -> np.ndarray:
    with Image.open(path) as image:
        return to_input(image, settings)


def ranked(probabilities: Any, labels: list[str]) -> list[dict[str, Any]]:
    """[{"tagName", "probability"}], most probable first."""
    values = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    order = np.argsort(-values, kind="stable")
    return [{"tagName": labels[i], "probability": float(values[i])} for i in order]


def print_predictions(probabilities: Any, labels: list[str]) -> None:
    print(json.dumps({"predictions": ranked(probabilities, labels)}, indent=2))
