"""Blob-drop ingestion: `ingest/{projectId}/{tagName}/{fileName}` becomes a tagged image.

Idempotent: ingesting the same blob twice stores the image once (identical bytes are a
duplicate) and makes sure it carries the tag. The source blob is removed afterwards; a blob that
fails goes to `ingest-rejected/` with the reason in its metadata. Each blob is handled on its
own: one that cannot even be read or moved is skipped for a while, and the others go on.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from functions.domain import names
from functions.domain.errors import DomainError
from functions.domain.ids import parse_id
from functions.domain.models import ImageCreateStatus
from functions.services.images import ImageService, NewImage
from functions.services.projects import ProjectService
from functions.services.tags import TagService
from functions.storage.clients import Storage

log = logging.getLogger(__name__)
SKIP_SECONDS = 300.0  # how long the poller leaves alone a blob it could not handle at all


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
        if len(parts) != 3 or not all(parts):
            return IngestResult(
                blob_name, "BadRequestImageUrl",
                "Expected a path {projectId}/{tagName}/{fileName} inside container 'ingest'.",
            )  # fmt: skip
        try:
            project = self.projects.get(parse_id(parts[0], "projectId"))
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

    def handle(self, blob_name: str, data: bytes) -> IngestResult:
        """Ingest, then remove the source blob (moving it aside when it was refused or failed)."""
        try:
            result = self.ingest(blob_name, data)
        except Exception as error:
            log.exception("ingesting %s failed", blob_name)
            result = IngestResult(blob_name, "ErrorUnknown", f"Ingestion failed: {error}")
        blobs = self.storage.blobs
        if not result.accepted:
            log.warning("ingest refused %s: %s %s", blob_name, result.status, result.message)
            blobs.put(
                names.CONTAINER_INGEST_REJECTED,
                blob_name,
                data,
                "application/octet-stream",
                metadata={"status": result.status, "reason": _ascii(result.message or "")},
            )
        elif result.status == ImageCreateStatus.OK:
            log.info("ingested %s as image %s", blob_name, result.image_id)
        blobs.delete(names.CONTAINER_INGEST, blob_name)
        return result

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
