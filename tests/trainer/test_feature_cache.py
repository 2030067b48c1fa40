"""The feature cache in blob storage (Azurite): a retrain reads back what the last one saved,
each backbone's features apart, a stacked name's (a '+' in the blob name) included."""

from __future__ import annotations

import uuid

import numpy as np

from functions.storage.clients import Storage
from trainer_job.feature_cache import FeatureCache


def test_features_come_back_per_backbone(storage: Storage) -> None:
    project = str(uuid.uuid4())
    rng = np.random.default_rng(0)
    single = FeatureCache(storage, project, "efficientnet-lite2")
    stacked = FeatureCache(storage, project, "efficientnet-lite2+efficientnet-lite0")
    narrow = {"a": rng.normal(size=(2, 1280)).astype(np.float32)}
    wide = {"a": rng.normal(size=(2, 2560)).astype(np.float32)}
    wide["b"] = rng.normal(size=(2, 2560)).astype(np.float32)
    single.save(narrow)
    stacked.save(wide)
    back = stacked.load(["b", "missing", "a"], views=2)
    assert sorted(back) == [0, 2]
    np.testing.assert_array_equal(back[0], wide["b"])
    np.testing.assert_array_equal(back[2], wide["a"])
    (only,) = single.load(["a", "b"], views=2).values()
    np.testing.assert_array_equal(only, narrow["a"])
    assert stacked.load(["a"], views=3) == {}  # fewer views than asked: computed again
    assert stacked.load(["a"], views=1)[0].shape == (1, 2560)
