"""The orphan sweep: bytes no row refers to, and tags whose deletion was cut short.

Uploads write an image's blobs before its rows, and deletions remove the rows before the
blobs, so a process killed in between leaves blobs behind, never a row without its bytes.
The sweep (hourly: a Functions timer, and a loop in `make run`) deletes blobs that no row
refers to once they are older than a grace period (an upload in flight has written its blobs
but not yet its rows), and finishes tag deletions that stopped after the tag row was gone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from functions.domain import names
from functions.domain.clock import utcnow
from functions.domain.models import ProjectState
from functions.services.tags import TagService
from functions.storage.clients import Storage

log = logging.getLogger(__name__)
GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class SweepResult:
    image_blobs: int  # images (all their variants) whose bytes were deleted
    prediction_blobs: int  # stored predictions' images likewise
    tags_finished: int  # deleted tags taken off the images that still carried them


class OrphanSweeper:
    def __init__(self, storage: Storage, tags: TagService, grace: timedelta = GRACE) -> None:
        self.storage = storage
        self.tags = tags
        self.grace = grace

    def sweep(self, now: datetime | None = None) -> SweepResult:
        cutoff = (now or utcnow()) - self.grace
        projects = self.storage.projects.list(include_deleting=True)
        active = {p.id for p in projects if p.state is ProjectState.ACTIVE}
        result = SweepResult(
            image_blobs=self._sweep(
                names.CONTAINER_IMAGES, active, cutoff, self.storage.images.ids
            ),
            prediction_blobs=self._sweep(
                names.CONTAINER_PREDICTIONS, active, cutoff, self.storage.predictions.ids
            ),
            tags_finished=sum(self._finish_tag_deletions(p) for p in sorted(active)),
        )
        if any((result.image_blobs, result.prediction_blobs, result.tags_finished)):
            log.info("orphan sweep: %s", result)
        return result

    def _sweep(
        self,
        container: str,
        active: set[str],
        cutoff: datetime,
        ids_of: Callable[[str], set[str]],
    ) -> int:
        """Delete `{projectId}/{itemId}/…` blobs older than `cutoff` whose item has no row."""
        newest: dict[tuple[str, str], datetime] = {}
        for name, written in self.storage.blobs.list_with_times(container):
            parts = name.split("/")
            if len(parts) == 3:
                key = (parts[0], parts[1])
                newest[key] = max(written, newest.get(key, written))
        known: dict[str, set[str]] = {}
        deleted = 0
        for (project_id, item_id), written in sorted(newest.items()):
            if written > cutoff:
                continue  # maybe an upload whose rows are being written right now
            if project_id in active:
                if project_id not in known:
                    known[project_id] = ids_of(project_id)
                if item_id in known[project_id]:
                    continue
            self.storage.blobs.delete_prefix(container, f"{project_id}/{item_id}/")
            deleted += 1
        return deleted

    def _finish_tag_deletions(self, project_id: str) -> int:
        counted = set(self.storage.images.tag_counts(project_id))
        gone = counted - {t.id for t in self.storage.tags.list(project_id)}
        for tag_id in sorted(gone):
            self.tags.remove_from_images(project_id, tag_id)
        return len(gone)
