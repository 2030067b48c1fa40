"""Train the copied project on the target and publish it under the source's publish name, so
that an app changes only its endpoint and keys."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tools.migrate.copier import Endpoint, MigrationError
from tools.migrate.pacing import status_and_headers

POLL_SECONDS = 2.0
RUNNING = ("Training", "Queued")


def _error_code(error: Exception) -> str:
    inner = getattr(error, "error", None)
    return str(getattr(inner, "code", "") or "")


def source_published(source: Endpoint, project_id: str) -> Any | None:
    """The source's most recently trained iteration that is published, if any."""
    published = [it for it in source("get_iterations", project_id) if it.publish_name]
    return max(published, key=lambda it: it.trained_at or it.created) if published else None


def train_and_publish(
    source: Endpoint,
    target: Endpoint,
    source_id: str,
    target_id: str,
    train: bool,
    publish: bool,
    prediction_resource: str | None,
    timeout_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Train the copy when `train`, or when `publish` and the source publishes an iteration;
    then publish it under that iteration's name. What happened, in words."""
    model = source_published(source, source_id)
    if model is None and not train:
        return "not trained: the source publishes no iteration"
    iterations = target("get_iterations", target_id)
    if model is not None and any(it.publish_name == model.publish_name for it in iterations):
        return f"already published as {model.publish_name!r}"
    try:
        iteration = target(
            "train_project",
            target_id,
            training_type=model.training_type if model else None,
            reserved_budget_in_hours=(model.reserved_budget_in_hours or 0) if model else 0,
        )
    except Exception as error:
        if _error_code(error) != "BadRequestTrainingNotNeeded":
            raise
        done = [it for it in iterations if it.status == "Completed"]
        if not done:
            raise
        iteration = max(done, key=lambda it: it.trained_at or it.created)
    deadline = time.monotonic() + timeout_seconds
    while iteration.status in RUNNING:
        if time.monotonic() > deadline:
            raise MigrationError(f"training did not finish in {timeout_seconds:.0f} s")
        sleep(POLL_SECONDS)
        iteration = target("get_iteration", target_id, iteration.id)
    if iteration.status != "Completed":
        raise MigrationError(
            f"training ended {iteration.status}: {iteration.training_error_details}"
        )
    if model is not None and iteration.name != model.name:
        try:
            iteration = target("update_iteration", target_id, iteration.id, model.name)
        except Exception as error:  # the name is taken on the target: keep its own
            if status_and_headers(error)[0] != 400:
                raise
    if not publish or model is None:
        return f"trained {iteration.name!r}" + ("" if model else " (the source publishes none)")
    resource = prediction_resource or model.original_publish_resource_id or ""
    target("publish_iteration", target_id, iteration.id, model.publish_name, resource)
    return f"trained {iteration.name!r}, published as {model.publish_name!r}"
