"""The labelled detection photos in tests/fixtures/detection, as tests read them."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from PIL import Image

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


def foreign_coco(photos: list[LabelledPhoto], category: str, out: IO[bytes]) -> None:
    """A COCO zip as another tool (Roboflow) writes one: its own ids, a `train/` folder, the
    annotations file under another name, segmentation and area fields."""
    document: dict[str, list[dict[str, object]]] = {
        "images": [],
        "annotations": [],
        "categories": [{"id": 7, "name": category}],
    }
    with zipfile.ZipFile(out, "w") as archive:
        for n, photo in enumerate(photos, start=40):
            data = photo.path.read_bytes()
            width, height = Image.open(io.BytesIO(data)).size
            archive.writestr(f"train/{photo.path.name}", data)
            document["images"].append(
                {"id": n, "file_name": photo.path.name, "width": width, "height": height}
            )
            for _, left, top, w, h in photo.regions:
                document["annotations"].append(
                    {
                        "id": len(document["annotations"]) + 100,
                        "image_id": n,
                        "category_id": 7,
                        "bbox": [left * width, top * height, w * width, h * height],
                        "segmentation": [],
                        "area": w * width * h * height,
                        "iscrowd": 0,
                    }
                )
        archive.writestr("train/_annotations.coco.json", json.dumps(document))
