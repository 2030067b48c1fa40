"""What the benchmark scripts share: Azurite plus the API over real HTTP, a Training API client,
Markdown tables, the machine header line and the datasets.

Every benchmark starts its own Azurite (in memory, free ports) and serves the API with uvicorn
in a thread, as the integration tests do (tests/conftest.py), so its numbers include HTTP,
JSON and storage. Client, server, Azurite (and the trainer, where one runs) share the CPUs.
"""

from __future__ import annotations

import base64
import math
import os
import platform
import shlex
import statistics
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from functions.api.app import create_app
from functions.domain import artifacts
from functions.domain import names as storage_names
from functions.settings import Settings
from functions.storage.clients import Storage
from tools.azurite import Azurite, free_port, start_azurite
from tools.serve import serve_in_thread

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"
RESULTS_DIR = ROOT / "bench" / "results"
TRAINING_PREFIX = "/customvision/v3.3/training"
TRAINING_KEY = "bench-training-key"
PREDICTION_KEY = "bench-prediction-key"
BATCH = 64  # Custom Vision's most images per create call

# Domain ids (functions/domain/catalog.py): the backbone and input size each one trains.
DOMAINS = {
    "compact": ("0732100f-1a38-4e49-a514-c9b44c697ab5", "EfficientNet-Lite0, 224 px"),
    "general": (
        "ee85a74c-405e-4adc-bb47-ffa8ca0c9f31",
        "EfficientNet-Lite2 (+ Lite0 where chosen), 260 px",
    ),
}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}


def log(message: str) -> None:
    """Progress, to stderr (the tables go to stdout)."""
    print(message, file=sys.stderr, flush=True)


def out(text: str = "") -> None:
    print(text, flush=True)


# ------------------------------------------------------------------ numbers and tables


def percentile(samples: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    mean = statistics.fmean(values)
    return mean, statistics.stdev(values) if len(values) > 1 else 0.0


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------ the machine


def load_average() -> str:
    try:
        return "/".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def command_line(module: str, argv: Sequence[str]) -> str:
    """The command that reproduces this run, from the repository root."""
    return shlex.join([".venv/bin/python", "-m", module, *argv])


def machine_line(module: str, argv: Sequence[str]) -> str:
    return (
        f"Machine: os.cpu_count()={os.cpu_count()} ({cpu_model()}), {platform.platform()}, "
        f"Python {platform.python_version()}, load average {load_average()} at start; "
        f"command: `{command_line(module, argv)}`"
    )


def end_line(shared: str = "client, API server and Azurite share the machine's CPUs") -> str:
    return f"Load average {load_average()} (1/5/15 min) at the end; {shared}."


# ------------------------------------------------------------------ Azurite and the API


@dataclass(frozen=True)
class Served:
    """A running Azurite (in memory) and the API served over HTTP against it."""

    endpoint: str  # http://127.0.0.1:{port}
    settings: Settings
    storage: Storage
    azurite: Azurite

    @property
    def connection_string(self) -> str:
        return self.azurite.connection_string

    def trainer_env(self) -> dict[str, str]:
        """The environment for a `python -m trainer_job` process against this Azurite."""
        return process_env(self.azurite.connection_string)


def process_env(connection_string: str) -> dict[str, str]:
    """The environment for an API or trainer process against that storage, with the
    benchmarks' keys."""
    env = dict(os.environ)
    env["CV_STORAGE_CONNECTION_STRING"] = connection_string
    env["CV_TRAINING_KEY"] = TRAINING_KEY
    env["CV_PREDICTION_KEY"] = PREDICTION_KEY
    env.pop("CV_STORAGE_ACCOUNT_NAME", None)
    return env


@contextmanager
def serve_api() -> Iterator[Served]:
    """Azurite in memory plus the API on uvicorn in a thread."""
    azurite = start_azurite(None, free_port(), free_port(), free_port())
    try:
        settings = Settings(
            storage_connection_string=azurite.connection_string,
            training_key=TRAINING_KEY,
            prediction_key=PREDICTION_KEY,
        )
        storage = Storage.from_settings(settings)
        storage.clients.ensure_resources()
        with serve_in_thread(create_app(settings, storage)) as url:
            yield Served(url, settings, storage, azurite)
    finally:
        azurite.stop()


def api_client(endpoint: str) -> httpx.Client:
    """An httpx client for the Training API, sending the training key."""
    return httpx.Client(
        base_url=endpoint + TRAINING_PREFIX,
        headers={"Training-Key": TRAINING_KEY},
        timeout=300,
    )


def expect_ok(response: httpx.Response, what: str) -> Any:
    if response.status_code != 200:
        raise RuntimeError(f"{what}: HTTP {response.status_code}: {response.text[:500]}")
    return response.json()


def create_project(client: httpx.Client, name: str, domain_id: str | None = None) -> str:
    params = {"name": name}
    if domain_id:
        params["domainId"] = domain_id
    project = expect_ok(client.post("/projects", params=params), "create project")
    if domain_id and project["settings"]["domainId"] != domain_id:
        raise RuntimeError(f"asked for domain {domain_id}, got {project['settings']['domainId']}")
    return str(project["id"])


def create_tags(client: httpx.Client, project_id: str, names: Sequence[str]) -> list[str]:
    ids = []
    for name in names:
        tag = expect_ok(
            client.post(f"/projects/{project_id}/tags", params={"name": name}), "create tag"
        )
        ids.append(str(tag["id"]))
    return ids


def files_request(
    client: httpx.Client, project_id: str, batch: Sequence[tuple[str, bytes, str | None]]
) -> httpx.Request:
    """ImageFileCreateBatch, as the Python SDK sends it: base64 contents in JSON."""
    images = [
        {
            "name": name,
            "contents": base64.b64encode(data).decode("ascii"),
            "tagIds": [tag_id] if tag_id else [],
        }
        for name, data, tag_id in batch
    ]
    return client.build_request(
        "POST", f"/projects/{project_id}/images/files", json={"images": images}
    )


def check_batch(response: httpx.Response, expected: int, what: str) -> list[str]:
    """Fail loudly unless the batch came back 200 with every image OK; the new image ids."""
    summary = expect_ok(response, what)
    statuses = [entry["status"] for entry in summary["images"]]
    bad = [s for s in statuses if s != "OK"]
    if not summary["isBatchSuccessful"] or bad or len(statuses) != expected:
        raise RuntimeError(
            f"{what}: {len(statuses)} results for {expected} images, not all OK: "
            f"{sorted(set(bad))}; first: {summary['images'][:1]}"
        )
    return [str(entry["image"]["id"]) for entry in summary["images"]]


def upload_tagged(
    client: httpx.Client, project_id: str, photos: Sequence[tuple[Path, str]]
) -> list[str]:
    """Upload (file, tag id) pairs in batches of 64 through POST …/images/files; the image ids."""
    ids: list[str] = []
    for start in range(0, len(photos), BATCH):
        chunk = photos[start : start + BATCH]
        rows = [(p.name, p.read_bytes(), tag_id) for p, tag_id in chunk]
        response = client.send(files_request(client, project_id, rows))
        ids += check_batch(response, len(rows), "upload")
    return ids


# ------------------------------------------------------------------ datasets


def dataset_files(name: str) -> dict[str, list[Path]]:
    """{class name: its image files, sorted} of DATASETS/name/<class>/."""
    folder = DATASETS / name
    if not folder.is_dir():
        raise SystemExit(f"dataset not found: {folder}")
    classes = {
        d.name: sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for d in sorted(folder.iterdir())
        if d.is_dir()
    }
    classes = {k: v for k, v in classes.items() if v}
    if not classes:
        raise SystemExit(f"no class folders with images under {folder}")
    return classes


# ------------------------------------------------------------------ training


def request_training(
    client: httpx.Client,
    project_id: str,
    training_type: str | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """POST …/train; the new iteration's JSON."""
    params: dict[str, Any] = {}
    if training_type:
        params["trainingType"] = training_type
    if force:
        params["forceTrain"] = "true"
    iteration: dict[str, Any] = expect_ok(
        client.post(f"/projects/{project_id}/train", params=params), "train"
    )
    return iteration


def get_iteration(client: httpx.Client, project_id: str, iteration_id: str) -> dict[str, Any]:
    iteration: dict[str, Any] = expect_ok(
        client.get(f"/projects/{project_id}/iterations/{iteration_id}"), "get iteration"
    )
    return iteration


def read_artifact(served: Served, project_id: str, iteration_id: str, name: str) -> bytes:
    """One file of a trained iteration, from models/{projectId}/{iterationId}/{name}."""
    path = artifacts.artifact_path(project_id, iteration_id, name)
    data = served.storage.blobs.get(storage_names.CONTAINER_MODELS, path)
    if data is None:
        raise RuntimeError(f"models/{path} does not exist")
    return data


def find_thread_count(manifest: Any) -> int | None:
    """A torch thread count the trainer recorded in its manifest, if it records one."""
    if isinstance(manifest, dict):
        for key, value in manifest.items():
            if "thread" in str(key).lower() and isinstance(value, int):
                return value
            found = find_thread_count(value)
            if found is not None:
                return found
    return None
