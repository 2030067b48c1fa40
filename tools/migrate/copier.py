"""Copy one project: its settings and domain, its tags, then every image's original bytes with
its tags, regions and metadata, skipping what the journal (checked against the target) says is
there already. Everything goes through the official SDK on both sides."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    ImageRegionCreateEntry,
    ImageTagCreateEntry,
    Region,
)

from functions.domain.batches import by_metadata
from tools.migrate.journal import Journal, ProjectCopy
from tools.migrate.pacing import Pacer, status_and_headers
from tools.migrate.progress import Progress

PAGE = 256  # images per listing call, Custom Vision's most
DOWNLOADS = 8  # original images fetched at once
COPIED = ("OK", "OKDuplicate")


class MigrationError(Exception):
    """A project that cannot be copied, with the reason a user can act on."""


@dataclass
class Endpoint:
    """One side of the migration: an SDK client whose calls go through a pacer."""

    client: CustomVisionTrainingClient
    pacer: Pacer

    def __call__(self, operation: str, *args: Any, **kwargs: Any) -> Any:
        return self.pacer.call(getattr(self.client, operation), *args, **kwargs)

    def pages(self, operation: str, *args: Any, **kwargs: Any) -> Iterator[list[Any]]:
        """Every page of a listing (take/skip), oldest first where the call orders."""
        skip = 0
        while True:
            page = self(operation, *args, take=PAGE, skip=skip, **kwargs)
            if page:
                yield page
            if len(page) < PAGE:
                return
            skip += len(page)


@dataclass
class ProjectReport:
    name: str
    source_id: str
    target_id: str
    copied: int = 0
    duplicates: int = 0
    already: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source image id, why)
    source_regions: int = 0
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        moved = self.copied + self.duplicates
        return moved / self.seconds if self.seconds > 0 else 0.0


Download = Callable[[str], bytes]


def target_domain(source: Endpoint, target: Endpoint, domain_id: str) -> str:
    """The target's domain for the source's: the same id, else the same type and name."""
    domains = target("get_domains")
    if any(d.id == domain_id for d in domains):
        return domain_id
    wanted = source("get_domain", domain_id)
    for domain in domains:
        if domain.type == wanted.type and domain.name == wanted.name:
            return str(domain.id)
    raise MigrationError(f"the target has no {wanted.type} domain named {wanted.name!r}")


def _not_found(error: Exception) -> bool:
    return status_and_headers(error)[0] == 404


def _existing(target: Endpoint, project_id: str) -> str | None:
    try:
        return str(target("get_project", project_id).id)
    except Exception as error:
        if not _not_found(error):
            raise
        return None


def target_project(source: Endpoint, target: Endpoint, project: Any, journal: Journal) -> str:
    """The target's copy of `project`: the journal's, else one of the same id or name, else a
    new one under the same id where the target allows it (this service does: header
    X-Project-Id; Custom Vision gives a new id), so that apps keep their prediction URLs."""
    copy = journal.projects.get(project.id)
    if copy is not None:
        found = _existing(target, copy.target_id)
        if found:
            return found
        del journal.projects[project.id]  # deleted on the target since: copy it again
    found = _existing(target, project.id)
    if found:
        return found
    settings = project.settings
    domain_id = target_domain(source, target, settings.domain_id)
    for existing in target("get_projects"):
        if existing.name == project.name:
            domains = {d.id: d.type for d in target("get_domains")}
            if domains.get(existing.settings.domain_id) != domains.get(domain_id):
                raise MigrationError(
                    f"the target's project {project.name!r} has another kind of domain"
                )
            return str(existing.id)
    created = target(
        "create_project",
        project.name,
        description=project.description,
        domain_id=domain_id,
        classification_type=settings.classification_type,
        target_export_platforms=settings.target_export_platforms or None,
        custom_headers={"X-Project-Id": project.id},
    )
    return str(created.id)


def copy_tags(source: Endpoint, target: Endpoint, project_id: str, copy: ProjectCopy) -> None:
    """Every source tag mapped to a target tag of the same name, created where missing."""
    by_name = {t.name.lower(): t.id for t in target("get_tags", copy.target_id)}
    for tag in source("get_tags", project_id):
        existing = by_name.get(tag.name.lower())
        if existing is None:
            existing = target(
                "create_tag", copy.target_id, tag.name, description=tag.description, type=tag.type
            ).id
        copy.tags[tag.id] = existing


def _entry(image: Any, data: bytes, tags: dict[str, str]) -> ImageFileCreateEntry:
    regions = [
        Region(tag_id=tags[r.tag_id], left=r.left, top=r.top, width=r.width, height=r.height)
        for r in image.regions or []
    ]
    tag_ids = [] if regions else [tags[t.tag_id] for t in image.tags or []]
    return ImageFileCreateEntry(
        name=image.id, contents=bytearray(data), tag_ids=tag_ids or None, regions=regions or None
    )


def _same_region(a: Any, b: Any) -> bool:
    return a.tag_id == b.tag_id and all(
        abs(getattr(a, side) - getattr(b, side)) < 1e-6
        for side in ("left", "top", "width", "height")
    )


class ProjectCopier:
    def __init__(
        self,
        source: Endpoint,
        target: Endpoint,
        journal: Journal,
        download: Download,
        progress: Callable[[str, int], Progress] = Progress,
    ) -> None:
        self.source, self.target, self.journal = source, target, journal
        self.download, self.progress = download, progress

    def copy(self, project: Any) -> ProjectReport:
        started = time.monotonic()
        target_id = target_project(self.source, self.target, project, self.journal)
        copy = self.journal.projects.get(project.id)
        if copy is None or copy.target_id != target_id:
            copy = self.journal.projects[project.id] = ProjectCopy(target_id)
        copy_tags(self.source, self.target, project.id, copy)
        self.journal.save()
        report = ProjectReport(project.name, project.id, target_id)
        present = {i.id for page in self.target.pages("get_images", target_id) for i in page}
        total = self.source("get_image_count", project.id)
        bar = self.progress(project.name, total)
        with ThreadPoolExecutor(DOWNLOADS) as pool:
            for page in self.source.pages("get_images", project.id, order_by="Oldest"):
                report.source_regions += sum(len(i.regions or []) for i in page)
                missing = [i for i in page if copy.images.get(i.id) not in present]
                report.already += len(page) - len(missing)
                bar.advance(skipped=len(page) - len(missing))
                ready: dict[str, bytes] = {}
                for image, fetched in zip(missing, pool.map(self._fetch, missing), strict=True):
                    if isinstance(fetched, bytes):
                        ready[image.id] = fetched
                    else:
                        report.failed.append((image.id, fetched))
                        bar.advance(failed=1)
                readable = [i for i in missing if i.id in ready]
                self._upload(ready, readable, copy, report, bar)
        bar.finish()
        report.seconds = time.monotonic() - started
        return report

    def _fetch(self, image: Any) -> bytes | str:
        """The original bytes, or why they could not be read."""
        if not image.original_image_uri:
            return "the source gave no originalImageUri"
        try:
            return self.download(image.original_image_uri)
        except Exception as error:
            return f"downloading the original failed: {error}"

    def _upload(
        self,
        data: dict[str, bytes],
        images: list[Any],
        copy: ProjectCopy,
        report: ProjectReport,
        bar: Progress,
    ) -> None:
        for metadata, batch in by_metadata(images, lambda image: image.metadata):
            entries = [_entry(i, data[i.id], copy.tags) for i in batch]
            summary = self.target(
                "create_images_from_files",
                copy.target_id,
                ImageFileCreateBatch(images=entries, metadata=metadata or None),
            )
            for image, result in zip(batch, summary.images, strict=True):
                if result.status not in COPIED or result.image is None:
                    report.failed.append((image.id, str(result.status)))
                    bar.advance(failed=1)
                    continue
                copy.images[image.id] = result.image.id
                if result.status == "OK":
                    report.copied += 1
                    bar.advance(copied=1)
                else:
                    self._reconcile(image, result.image, copy)
                    report.duplicates += 1
                    bar.advance(duplicates=1)
            self.journal.save()

    def _reconcile(self, image: Any, existing: Any, copy: ProjectCopy) -> None:
        """Identical bytes were there already (an interrupted run, or a user's upload): give
        the target's image whatever tags, regions and metadata of the source's it lacks."""
        target_id = copy.target_id
        have = {t.tag_id for t in existing.tags or []}
        tags = [
            ImageTagCreateEntry(image_id=existing.id, tag_id=copy.tags[t.tag_id])
            for t in image.tags or []
            if not image.regions and copy.tags[t.tag_id] not in have
        ]
        if tags:
            self.target("create_image_tags", target_id, tags)
        mapped = [
            ImageRegionCreateEntry(
                image_id=existing.id,
                tag_id=copy.tags[r.tag_id],
                left=r.left,
                top=r.top,
                width=r.width,
                height=r.height,
            )
            for r in image.regions or []
        ]
        regions = [r for r in mapped if not any(_same_region(r, e) for e in existing.regions or [])]
        if regions:
            self.target("create_image_regions", target_id, regions)
        metadata = image.metadata or {}
        if metadata and (existing.metadata or {}) != metadata:
            self.target("update_image_metadata", target_id, [existing.id], metadata)
