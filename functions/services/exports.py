"""Export requests: recorded here, queued for the trainer job (which builds the files), listed
with short-lived download links once done."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from functions.domain.clock import utcnow
from functions.domain.errors import BadRequest
from functions.domain.exports import ExportRecord, ExportStatus, parse_target
from functions.domain.jobs import TrainingJob
from functions.domain.models import IterationStatus
from functions.services.iterations import completed_iteration, iteration_not_found
from functions.storage.clients import Storage

log = logging.getLogger(__name__)


@dataclass
class ExportService:
    storage: Storage

    def start(
        self, project_id: str, iteration_id: str, platform: str | None, flavor: str | None
    ) -> ExportRecord:
        """Queue an export; asking again while it runs returns the running one."""
        iteration = self.storage.iterations.get(project_id, iteration_id)
        if iteration is not None and iteration.status is IterationStatus.TRAINING:
            raise BadRequest(
                "BadRequestExportWhileTraining", "The iteration is still training; export it later."
            )
        completed_iteration(self.storage, project_id, iteration_id)
        platform, flavor = parse_target(platform, flavor)
        now = utcnow()
        record = ExportRecord(
            project_id, iteration_id, platform, flavor, ExportStatus.EXPORTING, now, now
        )
        stored, started = self.storage.exports.start(record)
        if started:
            job = TrainingJob.of_kind(
                "export", project_id, iteration_id, platform=platform, flavor=flavor
            )
            try:
                self.storage.training_queue.send(job)
            except Exception:
                log.exception("queueing export %s failed", record.file_name)
                failed = replace(
                    record, status=ExportStatus.FAILED, error="The export could not be queued."
                )
                self.storage.exports.finish(failed)
                raise
        return stored

    def list(self, project_id: str, iteration_id: str) -> list[ExportRecord]:
        if self.storage.iterations.get(project_id, iteration_id) is None:
            raise iteration_not_found(iteration_id)
        return self.storage.exports.list(project_id, iteration_id)
