"""Training requests: validate as Custom Vision does, create the iteration, queue the job."""

from __future__ import annotations

import hashlib
import logging
import random
import re
from dataclasses import astuple, dataclass

from functions.domain.catalog import find_domain, is_detection
from functions.domain.clock import utcnow
from functions.domain.errors import BadRequest, tag_not_found
from functions.domain.ids import new_id
from functions.domain.jobs import TrainingJob
from functions.domain.models import (
    ClassificationType,
    Iteration,
    IterationStatus,
    Project,
    Tag,
    TaggingStatus,
    TagType,
    TrainingType,
)
from functions.domain.validation import choice
from functions.storage.clients import Storage

log = logging.getLogger(__name__)

MIN_IMAGES_PER_TAG = 5
MIN_DETECTION_IMAGES_PER_TAG = 15
MAX_BUDGET_HOURS = 24
DEFAULT_ADVANCED_BUDGET_HOURS = 1
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class TrainingRequest:
    training_type: str | None = None
    reserved_budget_in_hours: int = 0
    force_train: bool = False
    notification_email: str | None = None
    selected_tag_ids: list[str] | None = None


def _budget(training_type: TrainingType, hours: int) -> int:
    if hours < 0 or hours > MAX_BUDGET_HOURS:
        raise BadRequest(
            "BadRequestReservedBudgetInHoursNotEnoughForAdvancedTraining",
            f"reservedBudgetInHours must be between 0 and {MAX_BUDGET_HOURS}.",
        )
    if training_type is TrainingType.ADVANCED:
        return hours or DEFAULT_ADVANCED_BUDGET_HOURS
    return 0


def _validation_code(project: Project) -> str:
    if project.classification_type is ClassificationType.MULTILABEL:
        return "BadRequestMultiLabelClassificationTrainingValidationFailed"
    return "BadRequestMultiClassClassificationTrainingValidationFailed"


def _detection_tags(chosen: list[Tag], counts: dict[str, int]) -> list[Tag]:
    """Custom Vision's checks for training a detector: no Negative tag, and at least
    MIN_DETECTION_IMAGES_PER_TAG images with a region of each tag (one tag is enough)."""
    if any(t.type is TagType.NEGATIVE for t in chosen):
        raise BadRequest(
            "BadRequestDetectionTrainingNotAllowNegativeTag",
            "An object-detection project cannot train with a Negative tag.",
        )
    code = "BadRequestDetectionTrainingValidationFailed"
    if not chosen:
        raise BadRequest(code, "Training a detector needs at least one tag with regions.")
    short = [t.name for t in chosen if counts.get(t.id, 0) < MIN_DETECTION_IMAGES_PER_TAG]
    if short:
        raise BadRequest(
            code,
            f"Each tag needs regions on at least {MIN_DETECTION_IMAGES_PER_TAG} images; too few "
            "for: " + ", ".join(sorted(short)),
        )
    return chosen


class TrainingService:
    def __init__(self, storage: Storage, seed: int | None = None) -> None:
        self.storage = storage
        self.seed = seed  # every iteration's seed when set; a random one per iteration if not

    def request(self, project: Project, request: TrainingRequest) -> Iteration:
        training_type = choice(
            TrainingType,
            request.training_type,
            TrainingType.REGULAR,
            "BadRequestInvalid",
            "trainingType",
        )
        budget = _budget(training_type, request.reserved_budget_in_hours)
        if request.notification_email and not _EMAIL.match(request.notification_email):
            raise BadRequest(
                "BadRequestInvalidEmailAddress",
                f"'{request.notification_email}' is not an email address.",
            )
        tags = self._training_tags(project, request.selected_tag_ids or [])
        fingerprint = self.fingerprint(project.id, {t.id for t in tags})
        iterations = self.storage.iterations.list(project.id)
        if self.storage.iterations.lock_holder(project.id):
            raise BadRequest(
                "BadRequestTrainingAlreadyInProgress", "A training of this project is in progress."
            )
        completed = [i for i in iterations if i.status is IterationStatus.COMPLETED]
        if (
            not request.force_train
            and completed
            and completed[-1].data_fingerprint == fingerprint
            and completed[-1].training_type is training_type
        ):
            raise BadRequest(
                "BadRequestTrainingNotNeeded",
                "Nothing changed since the last iteration; use forceTrain=true to train anyway.",
            )
        now = utcnow()
        iteration = Iteration(
            id=new_id(),
            name=f"Iteration {len(iterations) + 1}",
            status=IterationStatus.TRAINING,
            created=now,
            last_modified=now,
            domain_id=project.domain_id,
            classification_type=project.classification_type,
            training_type=training_type,
            reserved_budget_in_hours=budget,
            data_fingerprint=fingerprint,
            selected_tag_ids=[t.id for t in tags] if request.selected_tag_ids else [],
            notification_email=request.notification_email,
            seed=random.randrange(2**31) if self.seed is None else self.seed,
        )
        self._queue(project.id, iteration)
        return iteration

    def _queue(self, project_id: str, iteration: Iteration) -> None:
        """Store the iteration and queue its job, under the project's training lock."""
        # The lock row makes two racing requests create one iteration.
        if not self.storage.iterations.try_lock(project_id, iteration.id):
            raise BadRequest(
                "BadRequestTrainingAlreadyInProgress", "A training of this project is in progress."
            )
        try:
            self.storage.iterations.insert(project_id, iteration)
            job = TrainingJob(
                project_id=project_id,
                iteration_id=iteration.id,
                training_type=iteration.training_type.value,
                reserved_budget_in_hours=iteration.reserved_budget_in_hours,
                selected_tag_ids=iteration.selected_tag_ids,
                seed=iteration.seed,
            )
            self.storage.training_queue.send(job)
        except Exception:
            self.storage.iterations.delete(project_id, iteration.id)
            self.storage.iterations.unlock(project_id, iteration.id)
            raise

    def _training_tags(self, project: Project, selected: list[str]) -> list[Tag]:
        tags = self.storage.tags.list(project.id)
        by_id = {t.id: t for t in tags}
        for tag_id in selected:
            if tag_id not in by_id:
                raise tag_not_found(tag_id)
        chosen = [by_id[t] for t in selected] if selected else tags
        counts = self.storage.images.tag_counts(project.id)
        if is_detection(project.domain_id):
            return _detection_tags(chosen, counts)
        code = _validation_code(project)
        regular = [t for t in chosen if t.type is TagType.REGULAR]
        negative_images = sum(counts.get(t.id, 0) for t in chosen if t.type is TagType.NEGATIVE)
        if len(regular) + (negative_images >= MIN_IMAGES_PER_TAG) < 2:
            raise BadRequest(code, "Training needs at least 2 tags (the Negative tag counts).")
        short = [t.name for t in regular if counts.get(t.id, 0) < MIN_IMAGES_PER_TAG]
        if short:
            raise BadRequest(
                code,
                f"Each tag needs at least {MIN_IMAGES_PER_TAG} images; too few for: "
                + ", ".join(sorted(short)),
            )
        return chosen

    def fingerprint(self, project_id: str, tag_ids: set[str]) -> str:
        """A digest of which images carry which of these tags: equal when nothing changed."""
        digest = hashlib.sha256()
        rows = sorted(
            (
                image.id,
                sorted(set(image.tag_ids) & tag_ids),
                sorted((r.tag_id, astuple(r.box)) for r in image.regions if r.tag_id in tag_ids),
            )
            for image in self.storage.images.iter_images(project_id, TaggingStatus.TAGGED)
        )
        for image_id, image_tags, boxes in rows:
            if image_tags:
                # Boxes only where there are any, so classification digests stay as they were.
                digest.update(f"{image_id}:{','.join(image_tags)}{boxes or ''};".encode())
        return digest.hexdigest()


def exportable_to(domain_id: str) -> list[str]:
    domain = find_domain(domain_id)
    return domain.exportable_platforms if domain else []
