"""`python -m tools.migrate.dataset export|import`: a project's labelled images to a zip in COCO,
Pascal VOC, YOLO or one folder per tag, or such a zip into a project, through the official SDK,
so it works against Azure's Custom Vision as well as this service.

    python -m tools.migrate.dataset export --endpoint URL --key KEY --project NAME \\
        --format coco --out raccoons.zip
    python -m tools.migrate.dataset import --endpoint URL --key KEY --project NAME \\
        --format coco raccoons.zip

An import creates the tags the project lacks and reports photos already there (OKDuplicate)
by file name; it exits 1 when any photo could not be added.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    Region,
)

from functions.dataset_formats import (
    FORMATS,
    ArchivedImage,
    DatasetArchive,
    LabelledImage,
    read,
    write,
)
from functions.domain.batches import by_metadata
from functions.domain.dataset_jobs import dataset_format
from functions.domain.detection_metrics import LabelledBox
from functions.domain.errors import DomainError
from tools.migrate.connect import downloader, endpoint, selected
from tools.migrate.copier import DOWNLOADS, Download, Endpoint
from tools.migrate.pacing import Pacer
from tools.migrate.progress import Progress


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.migrate.dataset",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("direction", choices=("export", "import"))
    parser.add_argument("archive", nargs="?", type=Path, help="import: the zip to read")
    parser.add_argument("--endpoint", required=True, help="the Training endpoint")
    parser.add_argument(
        "--key",
        default=os.environ.get("CV_TRAINING_KEY"),
        help="its training key (default: $CV_TRAINING_KEY)",
    )
    parser.add_argument("--project", required=True, help="the project's name or id")
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--out", type=Path, help="export: the zip to write")
    parser.add_argument("--rate", type=float, default=10.0, help="most API calls a second")
    args = parser.parse_args(argv)
    if not args.key:
        parser.error("give --key (or set CV_TRAINING_KEY)")
    if args.direction == "export" and not args.out:
        parser.error("export needs --out FILE.zip")
    if args.direction == "import" and not args.archive:
        parser.error("import needs the archive to read")
    return args


def _detects_objects(api: Endpoint, project: Any) -> bool:
    return str(api("get_domain", project.settings.domain_id).type) == "ObjectDetection"


# ---------------------------------------------------------------- export


def _labelled(
    api: Endpoint, project: Any, download: Download, bar: Progress, tag_names: dict[str, str]
) -> Iterator[LabelledImage]:
    """Every image of the project, oldest first, with its original bytes and labels."""
    with ThreadPoolExecutor(DOWNLOADS) as pool:
        for page in api.pages("get_images", project.id, order_by="Oldest"):
            for image, data in zip(
                page, pool.map(lambda i: download(i.original_image_uri), page), strict=True
            ):
                regions = [
                    LabelledBox(tag_names[r.tag_id], r.left, r.top, r.width, r.height)
                    for r in image.regions or []
                ]
                tags = [] if regions else [tag_names[t.tag_id] for t in image.tags or []]
                bar.advance(copied=1)
                yield LabelledImage(f"{image.id}.jpg", data, tags, regions, image.metadata or {})


def export(api: Endpoint, project: Any, fmt: str, out: Path, download: Download) -> int:
    fmt = dataset_format(fmt, _detects_objects(api, project))
    tag_names = {t.id: t.name for t in api("get_tags", project.id)}
    bar = Progress(project.name, int(api("get_image_count", project.id)))
    partial = out.with_name(out.name + ".partial")
    with partial.open("wb") as file:
        write(
            file, list(tag_names.values()), _labelled(api, project, download, bar, tag_names), fmt
        )
    partial.replace(out)  # a zip on disk is always whole
    bar.finish()
    print(f"{bar.copied} images written to {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


# ---------------------------------------------------------------- import


def _tag_ids(api: Endpoint, project: Any, names: list[str]) -> dict[str, str]:
    """{lower name: tag id}, creating the tags the project lacks."""
    ids = {t.name.lower(): t.id for t in api("get_tags", project.id)}
    for name in names:
        if name.lower() not in ids:
            ids[name.lower()] = api("create_tag", project.id, name).id
    return ids


def _entry(image: LabelledImage, ids: dict[str, str]) -> ImageFileCreateEntry:
    regions = [
        Region(tag_id=ids[r.tag.lower()], left=r.left, top=r.top, width=r.width, height=r.height)
        for r in image.regions
    ]
    tags = [ids[t.lower()] for t in image.tags]
    return ImageFileCreateEntry(
        name=image.name,
        contents=bytearray(image.data),
        tag_ids=tags or None,
        regions=regions or None,
    )


def import_(api: Endpoint, project: Any, fmt: str, path: Path) -> int:
    fmt = dataset_format(fmt, _detects_objects(api, project))
    failures: list[str] = []
    duplicates: list[str] = []
    with path.open("rb") as file, read(file, fmt) as archive:
        ids = _tag_ids(api, project, archive.tags)
        bar = Progress(project.name, len(archive.entries))
        for metadata, batch in by_metadata(archive.entries, lambda entry: entry.metadata):
            _import_batch(api, project, archive, batch, metadata, ids, bar, failures, duplicates)
    bar.finish()
    for name in duplicates:
        print(f"  {name}: already in the project")
    for line in failures:
        print(f"  {line}", file=sys.stderr)
    print(f"{bar.copied} images added, {bar.duplicates} duplicates, {bar.failed} failed")
    return 1 if failures else 0


def _import_batch(
    api: Endpoint,
    project: Any,
    archive: DatasetArchive,
    batch: list[ArchivedImage],
    metadata: dict[str, str],
    ids: dict[str, str],
    bar: Progress,
    failures: list[str],
    duplicates: list[str],
) -> None:
    entries = []
    for item in batch:
        try:
            entries.append(_entry(archive.load(item), ids))
        except DomainError as error:
            failures.append(f"{item.name}: {error.message}")
            bar.advance(failed=1)
    if not entries:
        return
    summary = api(
        "create_images_from_files",
        project.id,
        ImageFileCreateBatch(images=entries, metadata=metadata or None),
    )
    for entry, result in zip(entries, summary.images, strict=True):
        if result.status == "OK":
            bar.advance(copied=1)
        elif result.status == "OKDuplicate":
            duplicates.append(entry.name)
            bar.advance(duplicates=1)
        else:
            failures.append(f"{entry.name}: {result.status}")
            bar.advance(failed=1)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    api = endpoint(args.endpoint, args.key, args.rate)
    (project,) = selected(api, [args.project])
    try:
        if args.direction == "import":
            return import_(api, project, args.format, args.archive)
        with httpx.Client(timeout=120, follow_redirects=True) as http:
            return export(api, project, args.format, args.out, downloader(http, Pacer(0)))
    except DomainError as error:
        print(f"{project.name}: {error.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
