"""A detector's answer for one image, decoded by postprocess.py (the service's own decoding):
printed one box per line and, if asked, drawn on the image with Pillow.

Shipped beside predict.py in a detector's export; preprocess.report() calls it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageOps
from postprocess import decode  # type: ignore[import-not-found]  # shipped beside this file

COLOURS = ["#ff3b30", "#34c759", "#007aff", "#ff9500", "#af52de", "#00c7be", "#ffcc00"]


def decoded(
    outputs: dict[str, Any], settings: dict[str, Any], labels: list[str], threshold: float
) -> list[dict[str, Any]]:
    """[{"tagName", "probability", "left", "top", "width", "height"}], most probable first: the
    boxes the service would answer (its floor, NMS overlap and count) at `threshold` or more."""
    post = settings["postprocess"]
    boxes = np.asarray(outputs[settings["boxes"]["name"]], dtype=np.float32)[0]
    scores = np.asarray(outputs[settings["output"]["name"]], dtype=np.float32)[0]
    found = decode(
        boxes, scores, post["scoreThreshold"], post["nmsIou"], int(post["maxDetections"])
    )
    return [
        {
            "tagName": labels[int(tag)],
            "probability": float(score),
            **dict(zip(("left", "top", "width", "height"), (float(v) for v in box), strict=True)),
        }
        for box, score, tag in zip(found.boxes, found.scores, found.classes, strict=True)
        if score >= threshold
    ]


def print_detections(found: list[dict[str, Any]]) -> None:
    """One line per box: tag, probability, then left top width height as fractions."""
    for d in found:
        box = " ".join(f"{d[k]:.6f}" for k in ("left", "top", "width", "height"))
        print(f"{d['tagName']}  {d['probability']:.6f}  {box}")


def draw(image_path: str, found: list[dict[str, Any]], out_path: str) -> None:
    """The image (EXIF orientation applied) with each box outlined and labelled."""
    with Image.open(image_path) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
    width, height = image.size
    pen = ImageDraw.Draw(image)
    line = max(2, round(min(width, height) / 200))
    tags = sorted({d["tagName"] for d in found})
    for d in reversed(found):  # the most probable drawn last, on top
        colour = COLOURS[tags.index(d["tagName"]) % len(COLOURS)]
        x0, y0 = d["left"] * width, d["top"] * height
        x1, y1 = x0 + d["width"] * width, y0 + d["height"] * height
        pen.rectangle((x0, y0, x1, y1), outline=colour, width=line)
        text = f"{d['tagName']} {100 * d['probability']:.0f}%"
        left, top, right, bottom = pen.textbbox((x0, y0), text)
        pen.rectangle((left, top, right + 4, bottom + 2), fill=colour)
        pen.text((x0 + 2, y0), text, fill="white")
    image.save(out_path)
