"""Checks of user-given boxes: inside the image, of positive size, refused with Custom Vision's
code (BadRequestImageRegions) before anything is stored."""

from __future__ import annotations

import math
from dataclasses import dataclass

from functions.domain.errors import BadRequest
from functions.domain.models import Box

# Clients round fractions (pixels / size): an overshoot this small is rounding, not a mistake.
TOLERANCE = 1e-6


@dataclass(frozen=True)
class NewRegion:
    """A region a client asks for: its tag and its box (not yet checked)."""

    tag_id: str
    box: Box


def bad_regions(message: str) -> BadRequest:
    return BadRequest("BadRequestImageRegions", message)


def regions_need_detection() -> BadRequest:
    """The refusal of regions in a classification project."""
    return bad_regions(
        "Regions (boxes) belong to object-detection projects; this project does classification "
        "(its images take tagIds). Create the project in an ObjectDetection domain for boxes."
    )


def valid_box(left: float, top: float, width: float, height: float) -> Box:
    """The box, if it lies inside the image (0..1 on both axes) with a positive size."""
    values = {"left": left, "top": top, "width": width, "height": height}
    for name, value in values.items():
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise bad_regions(f"A region's {name} must be a finite number; got {value!r}.")
    if width <= 0 or height <= 0:
        raise bad_regions(
            f"A region needs a positive width and height; got width {width}, height {height}."
        )
    if left < -TOLERANCE or top < -TOLERANCE:
        raise bad_regions(f"A region starts inside the image: left {left} and top {top} >= 0.")
    if left + width > 1 + TOLERANCE or top + height > 1 + TOLERANCE:
        raise bad_regions(
            "A region ends inside the image: left + width and top + height are at most 1 (they "
            f"are fractions of the image's width and height); got {left + width:.6g} and "
            f"{top + height:.6g}."
        )
    left, top = max(0.0, float(left)), max(0.0, float(top))
    return Box(left, top, min(float(width), 1 - left), min(float(height), 1 - top))


def same_region(tag_a: str, a: Box, tag_b: str, b: Box) -> bool:
    """Whether two regions are one (same tag, same box up to rounding)."""
    if tag_a != tag_b:
        return False
    pairs = zip((a.left, a.top, a.width, a.height), (b.left, b.top, b.width, b.height), strict=True)
    return all(abs(x - y) <= TOLERANCE for x, y in pairs)
