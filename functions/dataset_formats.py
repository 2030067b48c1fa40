"""Labelled images in and out of the common dataset formats, as zip archives: COCO JSON, Pascal
VOC and YOLO for object detection, one folder per tag for classification.

Regions are fractions of the image (Custom Vision's), converted to pixels with the image's size
after EXIF orientation for COCO and VOC. What each format keeps: COCO keeps metadata (an
extension field `metadata` on each image) and untagged images (images with no annotation);
VOC and YOLO keep the boxes and untagged images (an image with no objects); folders keep every
tag of an image (the same file in each of its tags' folders; files at the root are untagged)
and no metadata. Tag names are kept exactly: folder names escape what a path cannot hold.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote
from xml.etree import ElementTree

from PIL import Image

from functions.domain.detection_metrics import LabelledBox
from functions.domain.errors import BadRequest

COCO, VOC, YOLO, FOLDERS = "coco", "voc", "yolo", "folders"
DETECTION_FORMATS = (COCO, VOC, YOLO)
FORMATS = (*DETECTION_FORMATS, FOLDERS)
COCO_FILE = "annotations.json"
YOLO_CLASSES = "classes.txt"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class LabelledImage:
    name: str  # the file name in the archive, unique in it
    data: bytes
    tags: list[str] = field(default_factory=list)  # classification: tag names
    regions: list[LabelledBox] = field(default_factory=list)  # detection
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Dataset:
    tags: list[str]
    images: list[LabelledImage]


def bad_dataset(message: str) -> BadRequest:
    return BadRequest("BadRequestInvalid", f"The dataset cannot be read: {message}")


def check_format(name: str | None) -> str:
    if name not in FORMATS:
        raise BadRequest("BadRequestInvalid", f"format is one of {', '.join(FORMATS)}.")
    return name


def oriented_size(data: bytes) -> tuple[int, int]:
    """Width and height after EXIF orientation (what region fractions refer to)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            turned = image.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8)
    except Exception as error:  # any undecodable file: the dataset's fault, not ours
        raise bad_dataset(f"an image cannot be decoded ({error})") from None
    return (height, width) if turned else (width, height)


def _unique_names(images: Iterable[LabelledImage]) -> list[LabelledImage]:
    """Images under file names unique in the archive (the content hash prefixes a clash)."""
    seen: set[str] = set()
    named = []
    for image in images:
        name = posixpath.basename(image.name) or "image.jpg"
        if not name.lower().endswith(IMAGE_SUFFIXES):
            name += ".jpg"
        if name.lower() in seen:
            name = f"{hashlib.sha256(image.data).hexdigest()[:12]}-{name}"
        seen.add(name.lower())
        named.append(LabelledImage(name, image.data, image.tags, image.regions, image.metadata))
    return named


# ---------------------------------------------------------------- writing


def write(dataset: Dataset, format_name: str) -> bytes:
    """The dataset as a zip archive in that format."""
    images = _unique_names(dataset.images)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        {COCO: _write_coco, VOC: _write_voc, YOLO: _write_yolo, FOLDERS: _write_folders}[
            check_format(format_name)
        ](archive, dataset.tags, images)
    return buffer.getvalue()


def _write_coco(archive: zipfile.ZipFile, tags: list[str], images: list[LabelledImage]) -> None:
    category = {name: n + 1 for n, name in enumerate(tags)}
    entries: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for n, image in enumerate(images, start=1):
        width, height = oriented_size(image.data)
        archive.writestr(f"images/{image.name}", image.data)
        entry: dict[str, Any] = {"id": n, "file_name": image.name, "width": width, "height": height}
        if image.metadata:
            entry["metadata"] = image.metadata
        entries.append(entry)
        for r in image.regions:
            box = [r.left * width, r.top * height, r.width * width, r.height * height]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": n,
                    "category_id": category[r.tag],
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i, "name": name} for name, i in category.items()]
    document = {"images": entries, "annotations": annotations, "categories": categories}
    archive.writestr(COCO_FILE, json.dumps(document, indent=1))


def _write_voc(archive: zipfile.ZipFile, tags: list[str], images: list[LabelledImage]) -> None:
    for image in images:
        width, height = oriented_size(image.data)
        archive.writestr(f"JPEGImages/{image.name}", image.data)
        root = ElementTree.Element("annotation")
        ElementTree.SubElement(root, "filename").text = image.name
        size = ElementTree.SubElement(root, "size")
        for key, value in (("width", width), ("height", height), ("depth", 3)):
            ElementTree.SubElement(size, key).text = str(value)
        for r in image.regions:
            obj = ElementTree.SubElement(root, "object")
            ElementTree.SubElement(obj, "name").text = r.tag
            box = ElementTree.SubElement(obj, "bndbox")
            corners = (
                r.left * width,
                r.top * height,
                (r.left + r.width) * width,
                (r.top + r.height) * height,
            )
            for key, corner in zip(("xmin", "ymin", "xmax", "ymax"), corners, strict=True):
                ElementTree.SubElement(box, key).text = repr(float(corner))
        stem = posixpath.splitext(image.name)[0]
        archive.writestr(f"Annotations/{stem}.xml", ElementTree.tostring(root, encoding="unicode"))


def _write_yolo(archive: zipfile.ZipFile, tags: list[str], images: list[LabelledImage]) -> None:
    index = {name: n for n, name in enumerate(tags)}
    archive.writestr(YOLO_CLASSES, "".join(f"{name}\n" for name in tags))
    for image in images:
        archive.writestr(f"images/{image.name}", image.data)
        lines = [
            f"{index[r.tag]} {r.left + r.width / 2!r} {r.top + r.height / 2!r} {r.width!r} "
            f"{r.height!r}\n"
            for r in image.regions
        ]
        stem = posixpath.splitext(image.name)[0]
        archive.writestr(f"labels/{stem}.txt", "".join(lines))


def folder_name(tag: str) -> str:
    """A tag's folder: its name, with what a path cannot hold escaped (%2F for /, ...)."""
    return quote(tag, safe=" ()[]{}!@#$&+,;=~'-_.")


def _write_folders(archive: zipfile.ZipFile, tags: list[str], images: list[LabelledImage]) -> None:
    for tag in tags:  # every tag, an empty one too
        archive.writestr(f"{folder_name(tag)}/", b"")
    for image in images:
        for tag in image.tags or [""]:
            archive.writestr(f"{folder_name(tag)}/{image.name}" if tag else image.name, image.data)


# ---------------------------------------------------------------- reading


def read(archive_bytes: bytes, format_name: str) -> Dataset:
    """The dataset in a zip archive of that format; BadRequestInvalid when it is not one."""
    reader = {COCO: _read_coco, VOC: _read_voc, YOLO: _read_yolo, FOLDERS: _read_folders}[
        check_format(format_name)
    ]
    try:
        with zipfile.ZipFile(io.BytesIO(archive_bytes)) as archive:
            return reader(archive)
    except zipfile.BadZipFile:
        raise bad_dataset("it is not a zip archive") from None
    except (KeyError, ValueError, TypeError, IndexError, ElementTree.ParseError) as error:
        raise bad_dataset(f"{type(error).__name__}: {error}") from None


def _files(archive: zipfile.ZipFile) -> dict[str, str]:
    """Image files of the archive by base name (lower case) -> their path."""
    return {
        posixpath.basename(info.filename).lower(): info.filename
        for info in archive.infolist()
        if not info.is_dir()
        and info.filename.lower().endswith(IMAGE_SUFFIXES)
        and not posixpath.basename(info.filename).startswith(".")
    }


def _find(archive: zipfile.ZipFile, names: list[str], suffix: str) -> str:
    found = [n for n in names if n.lower().endswith(suffix)]
    if not found:
        raise bad_dataset(f"no {suffix} file in the archive")
    return min(found, key=lambda n: (n.count("/"), n))


def _clip(region: LabelledBox) -> LabelledBox:
    left, top = max(0.0, region.left), max(0.0, region.top)
    width = min(1.0, region.left + region.width) - left
    height = min(1.0, region.top + region.height) - top
    return LabelledBox(region.tag, left, top, width, height)


def _read_coco(archive: zipfile.ZipFile) -> Dataset:
    document = json.loads(archive.read(_find(archive, archive.namelist(), ".json")))
    categories = {int(c["id"]): str(c["name"]) for c in document.get("categories", [])}
    files = _files(archive)
    boxes: dict[int, list[dict[str, Any]]] = {}
    for annotation in document.get("annotations", []):
        boxes.setdefault(int(annotation["image_id"]), []).append(annotation)
    images = []
    for entry in document["images"]:
        name = posixpath.basename(str(entry["file_name"]))
        data = archive.read(files[name.lower()])
        width, height = oriented_size(data)
        regions = []
        for annotation in boxes.get(int(entry["id"]), []):
            x, y, w, h = (float(v) for v in annotation["bbox"])
            tag = categories[int(annotation["category_id"])]
            regions.append(_clip(LabelledBox(tag, x / width, y / height, w / width, h / height)))
        metadata = {str(k): str(v) for k, v in (entry.get("metadata") or {}).items()}
        images.append(LabelledImage(name, data, regions=regions, metadata=metadata))
    return Dataset(list(categories.values()), images)


def _read_voc(archive: zipfile.ZipFile) -> Dataset:
    files = _files(archive)
    tags: list[str] = []
    images = []
    annotations = sorted(n for n in archive.namelist() if n.lower().endswith(".xml"))
    if not annotations:
        raise bad_dataset("no .xml annotation in the archive")
    for path in annotations:
        root = ElementTree.fromstring(archive.read(path))
        name = posixpath.basename(root.findtext("filename") or "")
        data = archive.read(files[name.lower()])
        width, height = oriented_size(data)
        regions = []
        for obj in root.iter("object"):
            tag = (obj.findtext("name") or "").strip()
            box = obj.find("bndbox")
            if box is None or not tag:
                raise bad_dataset(f"{path}: an object without a name or a bndbox")
            x0, y0, x1, y1 = (
                float(box.findtext(k) or "nan") for k in ("xmin", "ymin", "xmax", "ymax")
            )
            if tag not in tags:
                tags.append(tag)
            region = LabelledBox(
                tag, x0 / width, y0 / height, (x1 - x0) / width, (y1 - y0) / height
            )
            regions.append(_clip(region))
        images.append(LabelledImage(name, data, regions=regions))
    return Dataset(tags, images)


def _read_yolo(archive: zipfile.ZipFile) -> Dataset:
    names = archive.namelist()
    classes_file = _find(archive, names, YOLO_CLASSES)
    tags = [
        line.strip() for line in archive.read(classes_file).decode().splitlines() if line.strip()
    ]
    labels = {
        posixpath.splitext(posixpath.basename(n))[0].lower(): n
        for n in names
        if n.lower().endswith(".txt") and n != classes_file
    }
    images = []
    for key, path in sorted(_files(archive).items()):
        regions = []
        label_file = labels.get(posixpath.splitext(key)[0])
        text = archive.read(label_file).decode() if label_file else ""
        for line in text.splitlines():
            if not line.strip():
                continue
            index, cx, cy, w, h = line.split()[:5]
            region = LabelledBox(
                tags[int(index)],
                float(cx) - float(w) / 2,
                float(cy) - float(h) / 2,
                float(w),
                float(h),
            )
            regions.append(_clip(region))
        images.append(LabelledImage(posixpath.basename(path), archive.read(path), regions=regions))
    return Dataset(tags, images)


def _read_folders(archive: zipfile.ZipFile) -> Dataset:
    tags: list[str] = []
    by_content: dict[str, LabelledImage] = {}
    for info in archive.infolist():
        parts = [p for p in info.filename.split("/") if p]
        if info.is_dir():
            if len(parts) == 1 and unquote(parts[0]) not in tags:
                tags.append(unquote(parts[0]))
            continue
        if not info.filename.lower().endswith(IMAGE_SUFFIXES) or parts[-1].startswith("."):
            continue
        tag = unquote(parts[-2]) if len(parts) > 1 else None
        if tag and tag not in tags:
            tags.append(tag)
        data = archive.read(info)
        key = hashlib.sha256(data).hexdigest()
        known = by_content.get(key)
        image_tags = ([*known.tags] if known else []) + ([tag] if tag else [])
        by_content[key] = LabelledImage(parts[-1], data, tags=image_tags)
    return Dataset(tags, list(by_content.values()))
