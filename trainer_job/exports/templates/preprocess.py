"""The model's input from an image file, as preprocessing.json describes it (Pillow + numpy),
and what predict.py prints.

Shipped beside predict.py in every export. The steps are the service's own (Open Custom Vision's
functions/domain/preprocessing.py): EXIF orientation applied; RGB; the shorter side resized to
`resize_to` with Pillow's bilinear filter and the centered `size` x `size` square cropped (a
detector's: the whole image stretched to `size` x `size`, `crop` "none"); pixels scaled to
[0, 1]; (x - mean) / std per channel; laid out as the model's input layout says.
"""

from __future__ import annotations

import argparse
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
    if p.get("crop") == "none":
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    else:
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


def detects(settings: dict[str, Any]) -> bool:
    return settings.get("task") == "detection"


def parse_arguments(settings: dict[str, Any], description: str) -> argparse.Namespace:
    """predict.py's command line: the image file (a detector's: and --threshold, --draw)."""
    parser = argparse.ArgumentParser(description=description.strip().splitlines()[0])
    parser.add_argument("image", help="the image file")
    if detects(settings):
        floor = float(settings["postprocess"]["scoreThreshold"])
        parser.add_argument(
            "--threshold",
            type=float,
            default=floor,
            help=f"print (and draw) the boxes at this probability or more (default {floor:g}, "
            "as the service answers)",
        )
        parser.add_argument("--draw", metavar="OUT.jpg", help="also draw the boxes on the image")
    return parser.parse_args()


def report(
    outputs: dict[str, Any], settings: dict[str, Any], arguments: argparse.Namespace
) -> None:
    """Print what the model answered for one image: every tag's probability, most probable
    first (a classifier); one line per box, decoded by postprocess.py (a detector)."""
    labels = load_labels()
    if not detects(settings):
        print_predictions(np.asarray(outputs[settings["output"]["name"]])[0], labels)
        return
    import detections  # type: ignore[import-not-found]  # shipped in a detector's export only

    found = detections.decoded(outputs, settings, labels, arguments.threshold)
    detections.print_detections(found)
    if arguments.draw:
        detections.draw(arguments.image, found, arguments.draw)
