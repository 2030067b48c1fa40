"""Features per (backbone, image) kept in blob storage, so a retrain computes only new ones."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from functions.domain import artifacts, names
from functions.storage.clients import Storage


class FeatureCache:
    def __init__(self, storage: Storage, project_id: str, backbone: str) -> None:
        self.storage = storage
        self.project_id = project_id
        self.backbone = backbone

    def _path(self, image_id: str) -> str:
        return artifacts.feature_path(self.project_id, self.backbone, image_id)

    def load(self, image_ids: list[str], views: int) -> dict[int, np.ndarray]:
        """{index in image_ids: (views, D) features} for the images already featurised."""

        def fetch(image_id: str) -> np.ndarray | None:
            raw = self.storage.blobs.get(names.CONTAINER_MODELS, self._path(image_id))
            if raw is None:
                return None
            array = np.load(io.BytesIO(raw), allow_pickle=False)
            return array.astype(np.float32) if array.shape[0] >= views else None

        with ThreadPoolExecutor(max_workers=16) as pool:
            found = list(pool.map(fetch, image_ids))
        return {i: f[:views] for i, f in enumerate(found) if f is not None}

    def save(self, items: dict[str, np.ndarray]) -> None:
        def put(item: tuple[str, np.ndarray]) -> None:
            buffer = io.BytesIO()
            np.save(buffer, item[1].astype(np.float32), allow_pickle=False)
            self.storage.blobs.put(
                names.CONTAINER_MODELS, self._path(item[0]), buffer.getvalue(), "application/x-npy"
            )

        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(put, items.items()))
