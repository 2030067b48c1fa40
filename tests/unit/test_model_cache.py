"""The model cache: one load per iteration under concurrency, eviction by size, forgetting."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from functions.services import model_cache
from functions.services.model_cache import ModelCache

MB = 1024 * 1024


class _Loaded:
    def __init__(self, project_id: str, iteration_id: str) -> None:
        self.project_id = project_id
        self.iteration_id = iteration_id
        self.size_bytes = 4 * MB


@pytest.fixture()
def loads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    lock = threading.Lock()

    def fake_load(storage: Any, project_id: str, iteration_id: str, threads: int) -> _Loaded:
        time.sleep(0.05)  # long enough for concurrent first requests to overlap
        with lock:
            seen.append((project_id, iteration_id))
        return _Loaded(project_id, iteration_id)

    monkeypatch.setattr(model_cache, "load_model", fake_load)
    return seen


def test_concurrent_first_requests_load_once(loads: list[tuple[str, str]]) -> None:
    cache = ModelCache(storage=None, max_bytes=100 * MB)  # type: ignore[arg-type]
    with ThreadPoolExecutor(8) as pool:
        models = list(pool.map(lambda _: cache.model("p", "i"), range(16)))
    assert loads == [("p", "i")]
    assert all(m is models[0] for m in models)


def test_least_recently_used_models_are_evicted_by_size(loads: list[tuple[str, str]]) -> None:
    cache = ModelCache(storage=None, max_bytes=10 * MB)  # type: ignore[arg-type]
    cache.model("p", "a")
    cache.model("p", "b")
    cache.model("p", "a")  # a is now the most recently used
    cache.model("p", "c")  # 12 MB > 10 MB: b goes
    assert cache.cached() == [("p", "a"), ("p", "c")]
    cache.model("p", "b")
    assert loads.count(("p", "b")) == 2


def test_forget_drops_models_and_names(loads: list[tuple[str, str]]) -> None:
    cache = ModelCache(storage=None, max_bytes=100 * MB)  # type: ignore[arg-type]
    cache.model("p", "a")
    cache.model("q", "b")
    cache.forget("p", "a")
    assert cache.cached() == [("q", "b")]
    cache.forget("q")
    assert cache.cached() == []
