"""One training job: read the message, run the project's task (trainer_job/tasks), write its
files, record the iteration.

On failure the error is recorded on the iteration and re-raised, so the queue delivers the
message again; the caller gives up after a bounded number of deliveries.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace

from functions.domain import catalog
from functions.domain.clock import utcnow
from functions.domain.jobs import TrainingJob
from functions.domain.models import ClassificationType, Iteration, IterationStatus
from functions.services import iteration_snapshots
from functions.storage.clients import Storage
from trainer_job import tasks
from trainer_job.ml.artifacts import write_artifacts

log = logging.getLogger(__name__)


class JobCancelled(Exception):
    """The project or iteration is gone: nothing left to do."""


class Progress:
    """Writes the iteration's stage and fraction done, for the portal to poll."""

    def __init__(self, storage: Storage, project_id: str, iteration: Iteration) -> None:
        self.storage = storage
        self.project_id = project_id
        self.iteration = iteration

    def __call__(self, stage: str, fraction: float) -> None:
        attempt = self.iteration.attempt
        current = self.storage.iterations.edit(
            self.project_id,
            self.iteration.id,
            lambda it: replace(
                it,
                progress_stage=stage,
                progress_fraction=round(fraction, 3),
                attempt=attempt,
                last_modified=utcnow(),
            ),
        )
        if current is None or self.storage.projects.get(self.project_id) is None:
            raise JobCancelled(f"iteration {self.iteration.id} was deleted")
        self.iteration = current
        log.info("iteration %s: %s (%.0f%%)", self.iteration.id, stage, fraction * 100)


def run_job(storage: Storage, job: TrainingJob, attempt: int = 1) -> Iteration | None:
    """Train one iteration. Returns None when there was nothing to do."""
    project = storage.projects.get(job.project_id)
    iteration = storage.iterations.get(job.project_id, job.iteration_id)
    if project is None or iteration is None:
        log.info("project or iteration of job %s is gone; nothing to do", job.iteration_id)
        return None
    if iteration.status is not IterationStatus.TRAINING:
        return None  # a repeated delivery of a finished job
    started = time.monotonic()
    iteration = replace(iteration, attempt=attempt)
    progress = Progress(storage, job.project_id, iteration)
    try:
        finished = _train(storage, job, iteration, project.classification_type, progress, started)
    except JobCancelled:
        log.info("job %s cancelled: its project or iteration was deleted", job.iteration_id)
        storage.iterations.unlock(job.project_id, job.iteration_id)
        return None
    stored = storage.iterations.edit(
        job.project_id,
        job.iteration_id,
        lambda current: replace(
            current,
            status=finished.status,
            trained_at=finished.trained_at,
            training_time_in_minutes=finished.training_time_in_minutes,
            progress_stage=finished.progress_stage,
            progress_fraction=finished.progress_fraction,
            training_error_details=finished.training_error_details,
            last_modified=finished.last_modified,
        ),
    )
    storage.iterations.unlock(job.project_id, job.iteration_id)
    return stored


def record_failure(storage: Storage, job: TrainingJob, reason: str, final: bool) -> None:
    """Note why an attempt failed; when `final`, mark the iteration Failed and free the project."""

    def fail(iteration: Iteration) -> Iteration:
        if iteration.status is not IterationStatus.TRAINING:
            return iteration
        updated = replace(iteration, training_error_details=reason[:4000], last_modified=utcnow())
        if final:
            updated = replace(updated, status=IterationStatus.FAILED, progress_stage="Failed")
        return updated

    stored = storage.iterations.edit(job.project_id, job.iteration_id, fail)
    if final or stored is None or stored.status is not IterationStatus.TRAINING:
        storage.iterations.unlock(job.project_id, job.iteration_id)


def _train(
    storage: Storage,
    job: TrainingJob,
    iteration: Iteration,
    classification: ClassificationType,
    progress: Progress,
    started: float,
) -> Iteration:
    domain = catalog.find_domain(iteration.domain_id) or catalog.DOMAINS[0]
    iteration_snapshots.record(storage, job.project_id, job.iteration_id, job.selected_tag_ids)
    train = tasks.trainer_for(tasks.task_of(domain))
    output = train(tasks.TaskRun(storage, job, domain, classification, progress, started))
    write_artifacts(storage, job.project_id, job.iteration_id, output.files)
    return replace(
        progress.iteration,
        status=IterationStatus.COMPLETED,
        trained_at=utcnow(),
        training_time_in_minutes=max(1, math.ceil(output.elapsed / 60)),
        progress_stage="Completed",
        progress_fraction=1.0,
        training_error_details=output.note,
        last_modified=utcnow(),
    )
