"""Blob-drop ingestion: `ingest/{projectId}/{tagName}/{fileName}` becomes a tagged image.

Object-detection projects: `ingest/{projectId}/{fileName}` becomes an image, with the regions of
its sidecar `ingest/{projectId}/{fileName}.regions.json` when that was dropped first: a JSON list
of {"tagName", "left", "top", "width", "height"} (fractions of the photo; tags are created on
the fly). A sidecar waits for its photo and goes (or is set aside) with it.

Idempotent: ingesting the same blob twice stores the image once (identical bytes are a
duplicate) and makes sure it carries the tag. The source blob is removed afterwards; a blob that
fails goes to `ingest-rejected/` with the reason in its metadata. Each blob is handled on its
own: one that cannot even be read or moved is skipped for a while, and the others go on.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from functions.domain import catalog, names
from functions.domain.errors import BadRequest, DomainError
from functions.domain.ids import parse_id
from functions.domain.models import ImageCreateStatus, Project
from functions.domain.regions import NewRegion, bad_regions, valid_box
from functions.services.images import ImageService, NewImage
from functions.services.projects import ProjectService
from functions.services.tags import TagService
from functions.storage.clients import Storage

log = logging.getLogger(__name__)
SKIP_SECONDS = 300.0  # how long the poller leaves alone a blob it could not handle at all
SIDECAR = ".regions.json"
WAITING = "WaitingForPhoto"  # a sidecar, left in place until its photo arrives


@dataclass(frozen=True)
class IngestResult:
    blob_name: str
    status: str  # an ImageCreateStatus value, or a DomainError code
    message: str | None = None
    image_id: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status in (ImageCreateStatus.OK, ImageCreateStatus.OK_DUPLICATE)


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode()[:1024]


class IngestService:
    def __init__(
        self, storage: Storage, projects: ProjectService, tags: TagService, images: ImageService
    ) -> None:
        self.storage = storage
        self.projects = projects
        self.tags = tags
        self.images = images
        self._skip_until: dict[str, float] = {}  # blob name -> monotonic time

    def ingest(self, blob_name: str, data: bytes) -> IngestResult:
        """Store the image that `blob_name` (relative to the container) holds."""
        parts = blob_name.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            return IngestResult(
                blob_name, "BadRequestImageUrl",
                "Expected a path {projectId}/{tagName}/{fileName} (classification) or "
                "{projectId}/{fileName} (object detection) inside container 'ingest'.",
            )  # fmt: skip
        try:
            project = self.projects.get(parse_id(parts[0], "projectId"))
            detection = catalog.is_detection(project.domain_id)
            if detection != (len(parts) == 2):
                raise BadRequest(
                    "BadRequestImageUrl",
                    "Object-detection projects take {projectId}/{fileName} (boxes in "
                    "{fileName}.regions.json); classification projects take "
                    "{projectId}/{tagName}/{fileName}.",
                )
            if detection:
                return self._ingest_detection(blob_name, project, data)
            tag = self.tags.find_by_name(project.id, parts[1]) or self.tags.create(
                project.id, parts[1]
            )
            outcome = self.images.create(project.id, [NewImage(data, [tag.id], parts[2])])[0]
            if outcome.status is ImageCreateStatus.OK_DUPLICATE and outcome.image:
                self.images.add_tags(project.id, [(outcome.image.id, tag.id)])
        except DomainError as error:
            return IngestResult(blob_name, error.code, error.message)
        image_id = outcome.image.id if outcome.image else None
        return IngestResult(blob_name, outcome.status.value, outcome.message, image_id)

    def _ingest_detection(self, blob_name: str, project: Project, data: bytes) -> IngestResult:
        sidecar = self.storage.blobs.get(names.CONTAINER_INGEST, blob_name + SIDECAR)
        regions = self._regions(project, sidecar) if sidecar is not None else []
        entry = NewImage(data, [], blob_name.split("/")[1], regions=regions)
        outcome = self.images.create(project.id, [entry])[0]
        image_id = outcome.image.id if outcome.image else None
        return IngestResult(blob_name, outcome.status.value, outcome.message, image_id)

    def _regions(self, project: Project, sidecar: bytes) -> list[NewRegion]:
        try:
            listed: Any = json.loads(sidecar)
            boxes = [
                (str(r["tagName"]), r["left"], r["top"], r["width"], r["height"]) for r in listed
            ]
        except (ValueError, TypeError, KeyError) as error:
            raise bad_regions(
                "The .regions.json sidecar must be a JSON list of {tagName, left, top, width, "
                f"height}}: {error}"
            ) from None
        checked = [(name, valid_box(*box)) for name, *box in boxes]
        regions = []
        for name, box in checked:
            tag = self.tags.find_by_name(project.id, name) or self.tags.create(project.id, name)
            regions.append(NewRegion(tag.id, box))
        return regions

    def handle(self, blob_name: str, data: bytes) -> IngestResult:
        """Ingest, then remove the source blob (moving it aside when it was refused or failed)."""
        if blob_name.endswith(SIDECAR):
            return IngestResult(blob_name, WAITING, "A sidecar is read with its photo.")
        try:
            result = self.ingest(blob_name, data)
        except Exception as error:
            log.exception("ingesting %s failed", blob_name)
            result = IngestResult(blob_name, "ErrorUnknown", f"Ingestion failed: {error}")
        if not result.accepted:
            log.warning("ingest refused %s: %s %s", blob_name, result.status, result.message)
        elif result.status == ImageCreateStatus.OK:
            log.info("ingested %s as image %s", blob_name, result.image_id)
        self._settle(blob_name, data, result)
        sidecar = blob_name + SIDECAR
        if len(blob_name.split("/")) == 2 and (
            found := self.storage.blobs.get(names.CONTAINER_INGEST, sidecar)
        ):
            self._settle(sidecar, found, result)
        return result

    def _settle(self, blob_name: str, data: bytes, result: IngestResult) -> None:
        """Remove a handled blob from `ingest`, keeping it in `ingest-rejected` if refused."""
        if not result.accepted:
            self.storage.blobs.put(
                names.CONTAINER_INGEST_REJECTED,
                blob_name,
                data,
                "application/octet-stream",
                metadata={"status": result.status, "reason": _ascii(result.message or "")},
            )
        self.storage.blobs.delete(names.CONTAINER_INGEST, blob_name)

    def poll_once(self) -> list[IngestResult]:
        """Process every blob now waiting in the ingest container (the local stand-in for
        Event Grid, which Azurite does not emit)."""
        results = []
        for blob_name in self.storage.blobs.list_names(names.CONTAINER_INGEST):
            if self._skip_until.get(blob_name, 0.0) > time.monotonic():
                continue
            try:
                data = self.storage.blobs.get(names.CONTAINER_INGEST, blob_name)
                if data is not None:
                    results.append(self.handle(blob_name, data))
                self._skip_until.pop(blob_name, None)
            except Exception:
                log.exception(
                    "could not handle %s; skipping it for %.0f s", blob_name, SKIP_SECONDS
                )
                self._skip_until[blob_name] = time.monotonic() + SKIP_SECONDS
        return results
