"""Shared by every task: an iteration's files, written to the `models` container (no torch here:
job.py imports it before any training starts)."""

from __future__ import annotations

from dataclasses import dataclass

from functions.domain import artifacts, names
from functions.storage.clients import Storage


@dataclass(frozen=True)
class Artifact:
    name: str  # artifacts.MODEL, artifacts.LABELS, ...
    payload: bytes
    content_type: str


def write_artifacts(
    storage: Storage, project_id: str, iteration_id: str, files: list[Artifact]
) -> None:
    for file in files:
        path = artifacts.artifact_path(project_id, iteration_id, file.name)
        storage.blobs.put(names.CONTAINER_MODELS, path, file.payload, file.content_type)
