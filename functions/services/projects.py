"""Project use cases: list, create, read, update and a resumable delete."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from functions.domain import catalog, names
from functions.domain.clock import utcnow
from functions.domain.errors import BadRequest, project_not_found
from functions.domain.ids import new_id, parse_id
from functions.domain.limits import MAX_DESCRIPTION_LENGTH, MAX_PROJECT_NAME_LENGTH
from functions.domain.models import ClassificationType, Project, ProjectState
from functions.domain.validation import choice, optional_text, required_text
from functions.storage.clients import Storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProjectChanges:
    name: str | None = None
    description: str | None = None
    domain_id: str | None = None
    classification_type: str | None = None
    target_export_platforms: list[str] | None = None


def _valid_domain(domain_id: str | None) -> catalog.Domain:
    domain = catalog.find_domain(domain_id or catalog.GENERAL_DOMAIN_ID)
    if domain is None:
        raise BadRequest("BadRequestProjectUnknownDomain", f"Unknown domain id '{domain_id}'.")
    return domain


def _same_kind(before: catalog.Domain, after: catalog.Domain) -> catalog.Domain:
    if before.type != after.type:
        raise BadRequest(
            "BadRequestProjectUnsupportedDomainTypeChange",
            f"The project is a {before.type} project; its domain can change to another "
            f"{before.type} domain only, not to {after.name} ({after.type}).",
        )
    return after


def _classification(value: str | None, default: ClassificationType) -> ClassificationType:
    code = "BadRequestProjectUnknownClassification"
    return choice(ClassificationType, value, default, code, "classification type")


def _valid_platforms(platforms: list[str] | None) -> list[str]:
    chosen: list[str] = []
    for platform in platforms or []:
        match = next((p for p in catalog.EXPORT_PLATFORMS if p.lower() == platform.lower()), None)
        if match is None:
            raise BadRequest(
                "BadRequestProjectUnsupportedExportPlatform",
                f"Unknown export platform '{platform}'; use one of "
                f"{', '.join(catalog.EXPORT_PLATFORMS)}.",
            )
        chosen.append(match)
    return list(dict.fromkeys(chosen))


def active_project(project: Project | None, project_id: str) -> Project:
    """The rule for every use of a project: it exists and is not being deleted."""
    if project is None or project.state is not ProjectState.ACTIVE:
        raise project_not_found(project_id)
    return project


def read_active_project(storage: Storage, project_id: str) -> Project:
    return active_project(storage.projects.get(project_id), project_id)


def detects_objects(storage: Storage, project_id: str) -> bool:
    """Whether the project is an object-detection project (its domain says so, for good)."""
    project = storage.projects.get(project_id)
    return project is not None and catalog.is_detection(project.domain_id)


@dataclass(frozen=True)
class ProjectListing:
    """A project with what its card shows: its newest image, and image and tag counts."""

    project: Project
    newest_image_id: str | None
    image_count: int
    tag_count: int


class ProjectService:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def all(self) -> list[Project]:
        return self.storage.projects.list()

    def get(self, project_id: str) -> Project:
        return read_active_project(self.storage, project_id)

    def newest_image_id(self, project_id: str) -> str | None:
        """The cover of a project: its newest image, if any."""
        newest = self.storage.images.iter_images(project_id, page_size=1)
        return next((i.id for i in newest), None)

    def listing(self, with_counts: bool = False) -> list[ProjectListing]:
        """Every active project with its cover image and, when asked, its counts. Projects are
        partitions of their own, so each is read apart: all at once, on a few threads."""
        projects = self.all()

        def one(project: Project) -> ProjectListing:
            counts = self.storage.images.counts(project.id).images if with_counts else 0
            tags = len(self.storage.tags.list(project.id)) if with_counts else 0
            return ProjectListing(project, self.newest_image_id(project.id), counts, tags)

        if len(projects) <= 1:
            return [one(p) for p in projects]
        with ThreadPoolExecutor(max_workers=min(8, len(projects))) as pool:
            return list(pool.map(one, projects))

    def create(
        self,
        name: str | None,
        description: str | None = None,
        domain_id: str | None = None,
        classification_type: str | None = None,
        target_export_platforms: list[str] | None = None,
        project_id: str | None = None,
    ) -> Project:
        """A new project; under `project_id` when given (the migration keeps a project's id,
        so that apps keep their prediction URLs), else a new id."""
        domain = _valid_domain(domain_id)
        now = utcnow()
        project = Project(
            id=parse_id(project_id, "X-Project-Id") if project_id else new_id(),
            name=required_text(
                name, MAX_PROJECT_NAME_LENGTH, "BadRequestProjectName", "A project name"
            ),
            description=optional_text(
                description, MAX_DESCRIPTION_LENGTH, "BadRequestProjectDescription", "A description"
            ),
            domain_id=domain.id,
            classification_type=_classification(classification_type, ClassificationType.MULTICLASS),
            target_export_platforms=_valid_platforms(target_export_platforms),
            created=now,
            last_modified=now,
        )
        self.storage.projects.insert(project)
        return project

    def update(self, project_id: str, changes: ProjectChanges) -> Project:
        name = (
            required_text(
                changes.name, MAX_PROJECT_NAME_LENGTH, "BadRequestProjectName", "A project name"
            )
            if changes.name is not None
            else None
        )
        description = (
            optional_text(
                changes.description,
                MAX_DESCRIPTION_LENGTH,
                "BadRequestProjectDescription",
                "A description",
            )
            if changes.description is not None
            else None
        )

        def apply(before: Project) -> Project:
            active_project(before, project_id)
            domain = _same_kind(
                _valid_domain(before.domain_id),
                _valid_domain(changes.domain_id or before.domain_id),
            )
            platforms = (
                changes.target_export_platforms
                if changes.target_export_platforms is not None
                else before.target_export_platforms
            )
            return replace(
                before,
                name=name if name is not None else before.name,
                description=description if description is not None else before.description,
                domain_id=domain.id,
                classification_type=(
                    _classification(changes.classification_type, before.classification_type)
                ),
                target_export_platforms=_valid_platforms(platforms),
                last_modified=utcnow(),
            )

        return self._edit(project_id, apply)

    def delete(self, project_id: str) -> None:
        """Hide the project at once, then remove its data; `resume_deletions` finishes it."""

        def mark(project: Project) -> Project:
            active_project(project, project_id)
            return replace(project, state=ProjectState.DELETING, last_modified=utcnow())

        self._purge(self._edit(project_id, mark))

    def _edit(self, project_id: str, change: Callable[[Project], Project]) -> Project:
        edited = self.storage.projects.edit(project_id, change)
        if edited is None:
            raise project_not_found(project_id)
        return edited

    def resume_deletions(self) -> int:
        """Finish deletions that an earlier process started but did not complete."""
        pending = [
            p
            for p in self.storage.projects.list(include_deleting=True)
            if p.state is ProjectState.DELETING
        ]
        for project in pending:
            log.info("resuming deletion of project %s", project.id)
            self._purge(project)
        return len(pending)

    def _purge(self, project: Project) -> None:
        # Data first, the project row last: an interrupted purge is found and resumed.
        containers = (
            names.CONTAINER_IMAGES,
            names.CONTAINER_PREDICTIONS,
            names.CONTAINER_MODELS,
            names.CONTAINER_EXPORTS,
            names.CONTAINER_INGEST_REJECTED,
        )
        for container in containers:
            self.storage.blobs.delete_prefix(container, names.project_image_prefix(project.id))
        self.storage.predictions.delete_project(project.id)
        self.storage.suggestions.delete_project(project.id)
        self.storage.images.delete_project(project.id)
        self.storage.tags.delete_project(project.id)
        self.storage.iterations.delete_project(project.id)
        self.storage.projects.delete(project)
