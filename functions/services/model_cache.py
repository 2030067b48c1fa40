"""Trained models in memory: one onnxruntime session per iteration, loaded from blob storage
on first use, kept in an LRU cache bounded by the size of the model files, and dropped when
the iteration is unpublished, re-published or deleted.

Sessions are safe to share between threads (onnxruntime's `run` is thread-safe and releases
the GIL), so concurrent requests for one model use one session. A per-iteration lock makes
concurrent first requests load a model once.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import onnxruntime
from PIL import Image

from functions.domain import artifacts, names
from functions.domain.errors import NotFound
from functions.domain.predictions import Label, parse_labels
from functions.domain.preprocessing import Preprocessing
from functions.storage.clients import Storage


@dataclass(frozen=True)
class LoadedModel:
    project_id: str
    iteration_id: str
    session: onnxruntime.InferenceSession
    labels: list[Label]
    preprocessing: Preprocessing
    multilabel: bool
    domain_id: str
    size_bytes: int
    input_name: str = artifacts.INPUT_NAME
    output_name: str = artifacts.OUTPUT_NAME
    task: str = artifacts.CLASSIFICATION
    boxes_name: str | None = None  # detection: the output holding the boxes

    @property
    def detects(self) -> bool:
        return self.task == artifacts.DETECTION

    def input_array(self, image: Image.Image) -> np.ndarray:
        """One image as the model's (3, S, S) input, preprocessed as described in its manifest."""
        return self.preprocessing(image)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities (N, T) for a batch (N, 3, S, S) of preprocessed images."""
        (out,) = self.session.run([self.output_name], {self.input_name: batch})
        return np.asarray(out, dtype=np.float32)

    def run_dense(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A detector's dense boxes (N, A, 4) and scores (N, A, T) for a batch."""
        names = [self.boxes_name or artifacts.BOXES_NAME, self.output_name]
        boxes, scores = self.session.run(names, {self.input_name: batch})
        return np.asarray(boxes, dtype=np.float32), np.asarray(scores, dtype=np.float32)


def model_not_found(iteration_id: str) -> NotFound:
    return NotFound(
        "ErrorPredictionModelNotFound", f"The model of iteration {iteration_id} was not found."
    )


def session_options(threads: int) -> onnxruntime.SessionOptions:
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads > 0:
        options.intra_op_num_threads = threads
    return options


def load_model(storage: Storage, project_id: str, iteration_id: str, threads: int) -> LoadedModel:
    def read(name: str) -> bytes:
        path = artifacts.artifact_path(project_id, iteration_id, name)
        data = storage.blobs.get(names.CONTAINER_MODELS, path)
        if data is None:
            raise model_not_found(iteration_id)
        return data

    model = read(artifacts.MODEL)
    manifest = artifacts.ModelManifest.from_dict(json.loads(read(artifacts.MANIFEST)))
    labels = parse_labels(read(artifacts.LABELS))
    session = onnxruntime.InferenceSession(
        model, sess_options=session_options(threads), providers=["CPUExecutionProvider"]
    )
    return LoadedModel(
        project_id=project_id,
        iteration_id=iteration_id,
        session=session,
        labels=labels,
        preprocessing=manifest.preprocessing,
        multilabel=manifest.multilabel,
        domain_id=manifest.domain_id,
        size_bytes=len(model),
        input_name=manifest.input_name,
        output_name=manifest.output_name,
        task=manifest.task,
        boxes_name=manifest.boxes_name,
    )


@dataclass
class _Published:
    iteration_id: str | None
    checked: float


@dataclass
class ModelCache:
    """Sessions by (project, iteration), and published names resolved to iterations.

    `max_bytes` bounds the summed size of the cached model files (a session takes about as
    much memory as its file); the least recently used models go first. A published name is
    looked up in storage again after `name_ttl_seconds`, so that other instances of the app
    notice publish changes within that time; this instance forgets at once.
    """

    storage: Storage
    max_bytes: int
    name_ttl_seconds: float = 10.0
    threads: int = 1  # onnxruntime intra-op threads per session; 0: its default (all cores)
    _models: OrderedDict[tuple[str, str], LoadedModel] = field(default_factory=OrderedDict)
    _names: dict[tuple[str, str], _Published] = field(default_factory=dict)
    _tag_names: dict[str, tuple[dict[str, str], float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loading: dict[tuple[str, str], threading.Lock] = field(default_factory=dict)

    def model(self, project_id: str, iteration_id: str) -> LoadedModel:
        key = (project_id, iteration_id)
        with self._lock:
            found = self._models.get(key)
            if found is not None:
                self._models.move_to_end(key)
                return found
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                found = self._models.get(key)
            if found is not None:
                return found
            loaded = load_model(self.storage, project_id, iteration_id, self.threads)
            with self._lock:
                self._models[key] = loaded
                self._evict()
                self._loading.pop(key, None)
            return loaded

    def published(self, project_id: str, publish_name: str) -> str | None:
        """The iteration published under `publish_name`, or None."""
        key = (project_id, publish_name)
        now = time.monotonic()
        with self._lock:
            entry = self._names.get(key)
        if entry is not None and now - entry.checked < self.name_ttl_seconds:
            return entry.iteration_id
        iteration_id = self.storage.iterations.published(project_id, publish_name)
        with self._lock:
            self._names[key] = _Published(iteration_id, now)
        return iteration_id

    def tag_names(self, project_id: str) -> dict[str, str]:
        """The project's current tag names by id (a model's labels keep the names it was
        trained with), looked up again after `name_ttl_seconds` as published names are."""
        now = time.monotonic()
        with self._lock:
            entry = self._tag_names.get(project_id)
        if entry is not None and now - entry[1] < self.name_ttl_seconds:
            return entry[0]
        current = {t.id: t.name for t in self.storage.tags.list(project_id)}
        with self._lock:
            self._tag_names[project_id] = (current, now)
        return current

    def forget_tag_names(self, project_id: str) -> None:
        with self._lock:
            self._tag_names.pop(project_id, None)

    def forget(self, project_id: str, iteration_id: str | None = None) -> None:
        """Drop an iteration's session and published names (all of a project's when None)."""
        with self._lock:
            for key in [k for k in self._models if k[0] == project_id]:
                if iteration_id is None or key[1] == iteration_id:
                    del self._models[key]
            for key in [k for k in self._names if k[0] == project_id]:
                if iteration_id is None or self._names[key].iteration_id == iteration_id:
                    del self._names[key]
            if iteration_id is None:
                self._tag_names.pop(project_id, None)

    def forget_name(self, project_id: str, publish_name: str) -> None:
        with self._lock:
            self._names.pop((project_id, publish_name), None)

    def cached(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._models)

    def _evict(self) -> None:
        total = sum(m.size_bytes for m in self._models.values())
        while total > self.max_bytes and len(self._models) > 1:
            _, dropped = self._models.popitem(last=False)
            total -= dropped.size_bytes
