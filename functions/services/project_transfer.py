"""Custom Vision's project export and import: `export` describes a project and hands out a
token; `start_import` makes a new project from it (settings and tags at once; the images and
the trained iterations by a queued job that `project_copy.copy_project` runs in the trainer
worker, the project's status Importing until then). Tokens are signed with this service's
training key and expire, so they work only here. Also the artifacts of a project's
iterations, by their path relative to the project."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, replace

from functions.domain import artifacts, names
from functions.domain.clock import utcnow
from functions.domain.errors import BadRequest, NotFound
from functions.domain.ids import new_id, parse_id
from functions.domain.jobs import TrainingJob
from functions.domain.limits import MAX_PROJECT_NAME_LENGTH
from functions.domain.models import Project
from functions.domain.validation import required_text
from functions.storage.clients import Storage

TOKEN_TTL_SECONDS = 24 * 3600
# bench/migrate.py: an import copied 48.9 images/s with a trained iteration and its feature
# cache (500 flowers5 photos), 64.7/s without (194 raccoons): about 20 ms an image, plus the
# worker's pickup (seconds locally; a container job's start on Azure).
IMPORT_MS_PER_IMAGE = 20
IMPORT_START_MS = 5000
IMPORTING, SUCCEEDED, FAILED = "Importing", "Succeeded", "Failed"


@dataclass(frozen=True)
class ProjectExport:
    iteration_count: int
    image_count: int
    tag_count: int
    region_count: int
    estimated_import_time_in_ms: int
    token: str


def invalid_token() -> BadRequest:
    return BadRequest(
        "BadRequestInvalidImportToken",
        "The import token is invalid or has expired: export the project again.",
    )


class ImportTokens:
    """`{project id, expiry}` signed with an HMAC of the training key."""

    def __init__(self, secret: str, ttl_seconds: int = TOKEN_TTL_SECONDS) -> None:
        self._key = hmac.new(secret.encode(), b"project-export", hashlib.sha256).digest()
        self.ttl_seconds = ttl_seconds

    def _signature(self, payload: bytes) -> str:
        digest = hmac.new(self._key, payload, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def issue(self, project_id: str, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + self.ttl_seconds)
        payload = json.dumps({"p": project_id, "e": expires}, separators=(",", ":")).encode()
        body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        return f"{body}.{self._signature(payload)}"

    def project_id(self, token: str, now: float | None = None) -> str:
        """The exported project's id; BadRequestInvalidImportToken unless genuine and valid."""
        body, _, signature = (token or "").strip().partition(".")
        try:
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            claims = json.loads(payload)
            project_id, expires = str(claims["p"]), int(claims["e"])
        except (binascii.Error, ValueError, KeyError, TypeError):
            raise invalid_token() from None
        good = signature.isascii() and hmac.compare_digest(self._signature(payload), signature)
        if not good or expires < (time.time() if now is None else now):
            raise invalid_token()
        return project_id


class ProjectTransfer:
    def __init__(self, storage: Storage, tokens: ImportTokens) -> None:
        self.storage, self.tokens = storage, tokens

    def export(self, project: Project) -> ProjectExport:
        iterations = self.storage.iterations.list(project.id)
        if any(it.status.value == "Training" for it in iterations):
            raise BadRequest(
                "BadRequestExportWhileTraining", "The project is training: export it afterwards."
            )
        images = self.storage.images.counts(project.id).images
        regions = sum(len(i.regions) for i in self.storage.images.iter_images(project.id))
        return ProjectExport(
            iteration_count=len(iterations),
            image_count=images,
            tag_count=len(self.storage.tags.list(project.id)),
            region_count=regions,
            estimated_import_time_in_ms=IMPORT_START_MS + IMPORT_MS_PER_IMAGE * images,
            token=self.tokens.issue(project.id),
        )

    def start_import(self, token: str | None, name: str | None) -> Project:
        """The new project (status Importing, its tags made) and its queued image copy."""
        if not token:
            raise BadRequest("BadRequestRequiredParamIsNull", "token is required.")
        source = self.storage.projects.get(self.tokens.project_id(token))
        if source is None or source.state.value != "Active":
            raise invalid_token()
        now = utcnow()
        project = replace(
            source,
            id=new_id(),
            name=name if name is not None else source.name,
            created=now,
            last_modified=now,
            status=IMPORTING,
        )
        if name is None:
            project = self._insert_with_free_name(project)
        else:
            valid = required_text(
                name, MAX_PROJECT_NAME_LENGTH, "BadRequestProjectName", "A project name"
            )
            project = replace(project, name=valid)
            self.storage.projects.insert(project)
        for tag in self.storage.tags.list(source.id):  # same ids: the models' labels hold
            self.storage.tags.insert(project.id, replace(tag, image_count=0))
        job = TrainingJob.of_kind("import", project.id, project.id, source_project_id=source.id)
        self.storage.training_queue.send(job)
        return project

    def _insert_with_free_name(self, project: Project) -> Project:
        """Under the source's name, or "<name> (2)", "(3)", ... when that is taken."""
        base = project.name
        for n in range(1, 1000):
            candidate = replace(project, name=base if n == 1 else f"{base} ({n})")
            try:
                self.storage.projects.insert(candidate)
                return candidate
            except BadRequest as error:
                if error.code != "BadRequestProjectNameNotUnique":
                    raise
        raise BadRequest("BadRequestProjectNameNotUnique", f"No free name like '{base}'.")

    def artifact(self, project: Project, path: str) -> bytes:
        """An iteration's artifact by its path relative to the project: `{iterationId}/{file}`
        (model.onnx, manifest.json, labels.json, ...)."""
        iteration_id, _, file_name = (path or "").strip("/").partition("/")
        if not file_name or "/" in file_name or file_name in (".", ".."):
            raise NotFound("NotFound", f"No artifact at '{path}'.")
        iteration_id = parse_id(iteration_id, "The path's iteration id")
        if self.storage.iterations.get(project.id, iteration_id) is None:
            raise NotFound("NotFoundIteration", f"Iteration '{iteration_id}' not found.")
        data = self.storage.blobs.get(
            names.CONTAINER_MODELS, artifacts.artifact_path(project.id, iteration_id, file_name)
        )
        if data is None:
            raise NotFound("NotFound", f"No artifact at '{path}'.")
        return data


def set_status(storage: Storage, project_id: str, status: str) -> None:
    storage.projects.edit(
        project_id, lambda project: replace(project, status=status, last_modified=utcnow())
    )
