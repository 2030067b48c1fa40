"""The training tasks, one package each (classification/, detection/), each
owning its dataset, recipe, evaluation, artifacts and export graph. job.py builds a `TaskRun`
and calls the project's task; the shared pieces live in trainer_job/ml."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from functions.domain import catalog
from functions.domain.artifacts import CLASSIFICATION, DETECTION
from functions.domain.jobs import TrainingJob
from functions.domain.models import ClassificationType
from functions.storage.clients import Storage
from trainer_job.ml.artifacts import Artifact

ProgressReport = Callable[[str, float], None]  # (stage, fraction of the job); may raise to cancel


@dataclass(frozen=True)
class TaskRun:
    """One job, as a task needs it: where its data lives and what to train."""

    storage: Storage
    job: TrainingJob
    domain: catalog.Domain
    classification_type: ClassificationType
    progress: ProgressReport
    started: float  # time.monotonic() when the job started


@dataclass(frozen=True)
class TaskOutput:
    files: list[Artifact]  # model.onnx, labels.json, manifest.json, ...
    elapsed: float  # seconds since the job started, as the manifest records them
    note: str | None  # for the iteration's trainingErrorDetails (images skipped, ...)


Train = Callable[[TaskRun], TaskOutput]


def task_of(domain: catalog.Domain) -> str:
    """The task a project's domain trains."""
    return DETECTION if domain.detection else CLASSIFICATION


def trainer_for(task: str) -> Train:
    """The task's entry point, imported only now (it loads torch)."""
    if task == CLASSIFICATION:
        from trainer_job.tasks.classification.train import train

        return train
    if task == DETECTION:
        from trainer_job.tasks.detection.train import train as train_detector

        return train_detector
    raise ValueError(f"no trainer for task {task!r}")
