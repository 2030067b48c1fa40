"""Dataset archives: each format round-trips what it keeps (export then import equals the
original), a COCO file written by another tool imports with its boxes, and what is not a
dataset of the format is refused with Custom Vision's BadRequestInvalid."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import pytest

from functions.dataset_formats import (
    COCO,
    DETECTION_FORMATS,
    FOLDERS,
    LabelledImage,
    read,
    write,
)
from functions.domain.detection_metrics import LabelledBox
from functions.domain.errors import BadRequest
from tests.conftest import real_photos
from tests.detection_data import detection_set, foreign_coco


@dataclass(frozen=True)
class Dataset:
    tags: list[str]
    images: list[LabelledImage]


def archive_of(dataset: Dataset, format_name: str) -> bytes:
    out = io.BytesIO()
    write(out, dataset.tags, iter(dataset.images), format_name)
    return out.getvalue()


def read_all(archive: bytes, format_name: str) -> Dataset:
    with read(archive, format_name) as opened:
        return Dataset(opened.tags, list(opened.images()))


def detection_dataset() -> Dataset:
    images = []
    for n, photo in enumerate(detection_set("raccoon")[:4]):
        regions = [LabelledBox(*r) for r in photo.regions]
        metadata = {"camera": str(n)} if n % 2 else {}
        images.append(
            LabelledImage(photo.path.name, photo.path.read_bytes(), [], regions, metadata)
        )
    untagged = LabelledImage("empty.jpg", real_photos("rose", 1)[0])
    return Dataset(["raccoon"], [*images, untagged])


def _key(dataset: Dataset, keep_metadata: bool) -> dict[bytes, object]:
    return {
        image.data: (
            sorted(image.tags),
            sorted((r.tag, *(round(v, 6) for v in (r.left, r.top, r.width, r.height)))
                   for r in image.regions),
            image.metadata if keep_metadata else {},
        )
        for image in dataset.images
    }  # fmt: skip


@pytest.mark.parametrize("format_name", DETECTION_FORMATS)
def test_detection_formats_round_trip(format_name: str) -> None:
    original = detection_dataset()
    again = read_all(archive_of(original, format_name), format_name)
    assert again.tags == original.tags
    assert _key(again, format_name == COCO) == _key(original, format_name == COCO)
    assert sorted(i.name for i in again.images) == sorted(i.name for i in original.images)


def test_folders_round_trip_several_tags_odd_names_and_untagged() -> None:
    daisy, tulip, rose = (real_photos(f, 2) for f in ("daisy", "tulip", "rose"))
    images = [
        LabelledImage("a.jpg", daisy[0], ["daisy"]),
        LabelledImage("b.jpg", daisy[1], ["daisy", "cats/dogs 100%"]),  # two tags, odd name
        LabelledImage("a.jpg", tulip[0], ["tulip"]),  # the same file name as another image
        LabelledImage("c.jpg", rose[0]),  # untagged
    ]
    original = Dataset(["daisy", "cats/dogs 100%", "tulip", "empty"], images)
    archive = archive_of(original, FOLDERS)
    names = zipfile.ZipFile(io.BytesIO(archive)).namelist()
    assert "c.jpg" in names and any(n.startswith("cats%2Fdogs 100%25/") for n in names)
    again = read_all(archive, FOLDERS)
    assert sorted(again.tags) == sorted(original.tags)  # the empty tag's folder too
    assert _key(again, False) == _key(original, False)


def test_a_coco_file_written_by_another_tool() -> None:
    photos = detection_set("raccoon")[:3]
    buffer = io.BytesIO()
    foreign_coco(photos, "raccoon", buffer)
    dataset = read_all(buffer.getvalue(), COCO)
    assert dataset.tags == ["raccoon"]
    by_name = {i.name: i for i in dataset.images}
    for photo in photos:
        got = by_name[photo.path.name].regions
        assert [r.tag for r in got] == [r[0] for r in photo.regions]
        flat = [v for r in got for v in (r.left, r.top, r.width, r.height)]
        assert flat == pytest.approx([v for r in photo.regions for v in r[1:]], abs=1e-9)


@pytest.mark.parametrize("format_name", [*DETECTION_FORMATS, FOLDERS])
def test_what_is_not_a_dataset_is_refused(format_name: str) -> None:
    with pytest.raises(BadRequest) as refused:
        read_all(b"not a zip", format_name)
    assert refused.value.code == "BadRequestInvalid"
    if format_name != FOLDERS:
        empty = io.BytesIO()
        with zipfile.ZipFile(empty, "w") as archive:
            archive.writestr("readme.md", "nothing here")
        with pytest.raises(BadRequest):
            read_all(empty.getvalue(), format_name)
    with pytest.raises(BadRequest):
        archive_of(Dataset([], []), "tfrecord")
