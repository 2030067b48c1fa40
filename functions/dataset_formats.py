"""Labelled images in and out of the common dataset formats, as zip archives: COCO JSON, Pascal
VOC and YOLO for object detection, one folder per tag for classification.

Regions are fractions of the image (Custom Vision's), converted to pixels with the image's size
after EXIF orientation for COCO and VOC. What each format keeps: COCO keeps metadata (an
extension field `metadata` on each image) and untagged images (images with no annotation);
VOC and YOLO keep the boxes and untagged images (an image with no objects); folders keep every
tag of an image (the same file in each of its tags' folders; files at the root are untagged)
and no metadata. Tag names are kept exactly: folder names escape what a path cannot hold.

Neither side holds a dataset's photos in memory: `write` takes the images one at a time and
streams them into the archive; `read` parses the annotations and hands out an index whose
photos are read from the archive when asked for.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any
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
    name: str  # the file name in the archive
    data: bytes
    tags: list[str] = field(default_factory=list)  # classification: tag names
    regions: list[LabelledBox] = field(default_factory=list)  # detection
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ArchivedImage:
    """One photo of an archive as its annotations describe it, before its bytes are read."""

    name: str
    path: str  # in the archive
    tags: list[str] = field(default_factory=list)
    boxes: list[LabelledBox] = field(default_factory=list)  # in pixels when `pixels`
    pixels: bool = False
    metadata: dict[str, str] = field(default_factory=dict)


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


def _unique_names(images: Iterable[LabelledImage]) -> Iterator[LabelledImage]:
    """Images under file names unique in the archive (the content hash prefixes a clash)."""
    seen: set[str] = set()
    for image in images:
        name = posixpath.basename(image.name) or "image.jpg"
        if not name.lower().endswith(IMAGE_SUFFIXES):
            name += ".jpg"
        if name.lower() in seen:
            name = f"{hashlib.sha256(image.data).hexdigest()[:12]}-{name}"
        seen.add(name.lower())
        yield LabelledImage(name, image.data, image.tags, image.regions, image.metadata)


# ---------------------------------------------------------------- writing


def write(
    out: IO[bytes], tags: list[str], images: Iterable[LabelledImage], format_name: str
) -> None:
    """Stream the images, with their labels, into `out` as a zip archive in that format."""
    writer = {COCO: _write_coco, VOC: _write_voc, YOLO: _write_yolo, FOLDERS: _write_folders}[
        check_format(format_name)
    ]
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        writer(archive, tags, _unique_names(images))


def _write_coco(archive: zipfile.ZipFile, tags: list[str], images: Iterator[LabelledImage]) -> None:
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


def _write_voc(archive: zipfile.ZipFile, tags: list[str], images: Iterator[LabelledImage]) -> None:
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


def _write_yolo(archive: zipfile.ZipFile, tags: list[str], images: Iterator[LabelledImage]) -> None:
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


def _write_folders(
    archive: zipfile.ZipFile, tags: list[str], images: Iterator[LabelledImage]
) -> None:
    for tag in tags:  # every tag, an empty one too
        archive.writestr(f"{folder_name(tag)}/", b"")
    for image in images:
        for tag in image.tags or [""]:
            archive.writestr(f"{folder_name(tag)}/{image.name}" if tag else image.name, image.data)


# ---------------------------------------------------------------- reading


class DatasetArchive:
    """An opened dataset archive: its tags and the index of its photos (`entries`), whose
    bytes `load` reads. Use it as a context manager (it holds the zip file open)."""

    def __init__(self, archive: zipfile.ZipFile, tags: list[str], entries: list[ArchivedImage]):
        self.archive, self.tags, self.entries = archive, tags, entries

    def __enter__(self) -> DatasetArchive:
        return self

    def __exit__(self, *_: object) -> None:
        self.archive.close()

    def load(self, entry: ArchivedImage) -> LabelledImage:
        """The photo with its regions as fractions; BadRequestInvalid when it cannot be
        read or decoded."""
        try:
            data = self.archive.read(entry.path)
        except (KeyError, zipfile.BadZipFile, OSError) as error:
            raise bad_dataset(f"{entry.path} cannot be read ({error})") from None
        regions = entry.boxes
        if entry.pixels and regions:
            width, height = oriented_size(data)
            regions = [
                _clip(LabelledBox(b.tag, b.left / width, b.top / height, b.width / width,
                                  b.height / height))
                for b in regions
            ]  # fmt: skip
        return LabelledImage(entry.name, data, entry.tags, regions, entry.metadata)

    def images(self) -> Iterator[LabelledImage]:
        return (self.load(entry) for entry in self.entries)


def read(source: bytes | IO[bytes], format_name: str) -> DatasetArchive:
    """The dataset in a zip archive of that format; BadRequestInvalid when it is not one."""
    indexer = {COCO: _read_coco, VOC: _read_voc, YOLO: _read_yolo, FOLDERS: _read_folders}[
        check_format(format_name)
    ]
    try:
        archive = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except zipfile.BadZipFile:
        raise bad_dataset("it is not a zip archive") from None
    try:
        tags, entries = indexer(archive)
    except (KeyError, ValueError, TypeError, IndexError, ElementTree.ParseError) as error:
        archive.close()
        raise bad_dataset(f"{type(error).__name__}: {error}") from None
    except BaseException:
        archive.close()
        raise
    return DatasetArchive(archive, tags, entries)


Index = tuple[list[str], list[ArchivedImage]]


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


def _image_path(files: dict[str, str], name: str) -> str:
    path = files.get(name.lower())
    if path is None:
        raise bad_dataset(f"the annotations name '{name}', which the archive does not hold")
    return path


def _clip(region: LabelledBox) -> LabelledBox:
    left, top = max(0.0, region.left), max(0.0, region.top)
    width = min(1.0, region.left + region.width) - left
    height = min(1.0, region.top + region.height) - top
    return LabelledBox(region.tag, left, top, width, height)


def _read_coco(archive: zipfile.ZipFile) -> Index:
    document = json.loads(archive.read(_find(archive, archive.namelist(), ".json")))
    categories = {int(c["id"]): str(c["name"]) for c in document.get("categories", [])}
    files = _files(archive)
    boxes: dict[int, list[LabelledBox]] = {}
    for annotation in document.get("annotations", []):
        x, y, w, h = (float(v) for v in annotation["bbox"])
        box = LabelledBox(categories[int(annotation["category_id"])], x, y, w, h)
        boxes.setdefault(int(annotation["image_id"]), []).append(box)
    entries = []
    for image in document["images"]:
        name = posixpath.basename(str(image["file_name"]))
        metadata = {str(k): str(v) for k, v in (image.get("metadata") or {}).items()}
        regions = boxes.get(int(image["id"]), [])
        path = _image_path(files, name)
        entries.append(ArchivedImage(name, path, [], regions, pixels=True, metadata=metadata))
    return list(categories.values()), entries


def _read_voc(archive: zipfile.ZipFile) -> Index:
    files = _files(archive)
    tags: list[str] = []
    entries = []
    annotations = sorted(n for n in archive.namelist() if n.lower().endswith(".xml"))
    if not annotations:
        raise bad_dataset("no .xml annotation in the archive")
    for path in annotations:
        root = ElementTree.fromstring(archive.read(path))
        name = posixpath.basename(root.findtext("filename") or "")
        boxes = []
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
            boxes.append(LabelledBox(tag, x0, y0, x1 - x0, y1 - y0))
        entries.append(ArchivedImage(name, _image_path(files, name), [], boxes, pixels=True))
    return tags, entries


def _read_yolo(archive: zipfile.ZipFile) -> Index:
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
    entries = []
    for key, path in sorted(_files(archive).items()):
        boxes = []
        label_file = labels.get(posixpath.splitext(key)[0])
        text = archive.read(label_file).decode() if label_file else ""
        for line in text.splitlines():
            if not line.strip():
                continue
            index, cx, cy, w, h = line.split()[:5]
            box = LabelledBox(
                tags[int(index)],
                float(cx) - float(w) / 2,
                float(cy) - float(h) / 2,
                float(w),
                float(h),
            )
            boxes.append(_clip(box))
        entries.append(ArchivedImage(posixpath.basename(path), path, [], boxes))
    return tags, entries


def _read_folders(archive: zipfile.ZipFile) -> Index:
    """One entry per distinct photo (by content), with the tags of every folder holding it."""
    tags: list[str] = []
    by_content: dict[str, ArchivedImage] = {}
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
        digest = hashlib.sha256()
        with archive.open(info) as member:
            while chunk := member.read(1 << 20):
                digest.update(chunk)
        known = by_content.get(digest.hexdigest())
        image_tags = ([*known.tags] if known else []) + ([tag] if tag else [])
        path = known.path if known else info.filename
        by_content[digest.hexdigest()] = ArchivedImage(parts[-1], path, image_tags)
    return tags, list(by_content.values())
