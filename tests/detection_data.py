"""The labelled detection photos in tests/fixtures/detection, as tests read them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DETECTION_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "detection"

# (tag, left, top, width, height), the box in fractions of the photo's width and height
Region = tuple[str, float, float, float, float]


@dataclass(frozen=True)
class LabelledPhoto:
    path: Path
    regions: list[Region]


def detection_set(name: str) -> list[LabelledPhoto]:
    """Every photo of tests/fixtures/detection/<name> (raccoon, bccd) with its boxes, in file-name
    order. A set or photo that is not there fails the test that asked for it, never skips it."""
    folder = DETECTION_FIXTURES / name
    labelled = json.loads((folder / "regions.json").read_text(encoding="utf-8"))
    photos = []
    for file_name, regions in sorted(labelled["images"].items()):
        path = folder / "images" / file_name
        if not path.is_file():
            raise FileNotFoundError(f"{path} is listed in {folder / 'regions.json'} but absent")
        boxes = [(r["tag"], r["left"], r["top"], r["width"], r["height"]) for r in regions]
        photos.append(LabelledPhoto(path, boxes))
    if not photos:
        raise FileNotFoundError(f"{folder / 'regions.json'} lists no photos")
    return photos
