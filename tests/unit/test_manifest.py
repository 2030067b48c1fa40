"""The typed model manifest: what the trainer writes reads back the same, and the untyped
manifests written before it had a version still load."""

from __future__ import annotations

import json

import pytest

from functions.domain.artifacts import (
    INPUT_NAME,
    MANIFEST_VERSION,
    OUTPUT_NAME,
    ModelManifest,
)
from functions.domain.preprocessing import Preprocessing

LABELS = [
    {"id": "a", "name": "daisy", "type": "Regular"},
    {"id": "b", "name": "Negative", "type": "Negative"},
]

# As trainer_job/job.py wrote it before the manifest had a version (JSON: tuples are lists).
VERSION_1 = {
    "backbone": "efficientnet-lite2",
    "domainId": "ee85a74c-405e-4adc-bb47-ffa8ca0c9f31",
    "domainName": "General (compact) [S1]",
    "classificationType": "Multilabel",
    "trainingType": "Advanced",
    "preprocessing": json.loads(json.dumps(Preprocessing.for_size(260).to_manifest())),
    "output": "probabilities (softmax for Multiclass, sigmoid per tag for Multilabel)",
    "labels": LABELS,
    "seed": 7,
    "imageCount": 30,
    "skippedUnreadable": 1,
    "skippedAmbiguous": 2,
    "trainingSeconds": 12.5,
    "timings": {"features": 3.0, "crossValidation": 0.5, "head": 0.1},
    "onnxMaxAbsDifference": 1e-6,
    "versions": {"torch": "2.x", "onnxruntime": "1.x", "python": "3.11"},
    "evaluation": "5-fold cross-validation of the linear head on frozen features",
    "advanced": {"kept": "Regular", "folds": 2, "refitImages": 0},
}

# The smallest one (trainer_job/exports/sample_model.py's, and older iterations').
MINIMAL = {
    "backbone": "efficientnet-lite0",
    "preprocessing": {"size": 224, "resize_to": 256, "mean": [0.5] * 3, "std": [0.5] * 3},
}


def test_a_version_1_manifest_loads() -> None:
    manifest = ModelManifest.from_dict(VERSION_1)
    assert manifest.version == 1
    assert manifest.task == "classification"
    assert manifest.preprocessing == Preprocessing.for_size(260)
    assert manifest.multilabel and manifest.training_type == "Advanced"
    assert manifest.labels == LABELS and manifest.seed == 7 and manifest.image_count == 30
    assert manifest.timings["features"] == 3.0
    assert manifest.advanced == {"kept": "Regular", "folds": 2, "refitImages": 0}
    assert (manifest.input_name, manifest.output_name) == (INPUT_NAME, OUTPUT_NAME)
    # Written again, it keeps every key it had, with the same values.
    written = manifest.to_dict()
    assert {k: written[k] for k in VERSION_1 if k != "preprocessing"} == {
        k: v for k, v in VERSION_1.items() if k != "preprocessing"
    }


def test_a_minimal_manifest_loads_with_defaults() -> None:
    manifest = ModelManifest.from_dict(MINIMAL)
    assert manifest.preprocessing == Preprocessing.for_size(224)
    assert manifest.classification_type == "Multiclass" and not manifest.multilabel
    assert manifest.training_type == "Regular"
    assert manifest.domain_id == "" and manifest.labels == []
    assert manifest.seed is None and manifest.image_count is None
    assert manifest.project_id is None and "projectId" not in manifest.to_dict()


def test_what_the_trainer_writes_reads_back_the_same() -> None:
    manifest = ModelManifest(
        backbone="efficientnet-lite0",
        domain_id="d",
        classification_type="Multiclass",
        training_type="Regular",
        preprocessing=Preprocessing.for_size(224),
        labels=LABELS,
        seed=3,
        image_count=10,
        evaluation="3-fold cross-validation of the linear head on frozen features",
        choices={"l2": 0.01, "foldL2": [0.01, 0.1, 0.01], "candidates": []},
        project_id="p",
        iteration_id="i",
    )
    stored = json.loads(json.dumps(manifest.to_dict()))
    assert stored["version"] == MANIFEST_VERSION
    assert stored["inputName"] == "image" and stored["outputName"] == "probabilities"
    assert ModelManifest.from_dict(stored) == manifest


def test_a_newer_manifest_is_refused() -> None:
    with pytest.raises(ValueError, match="newer"):
        ModelManifest.from_dict({**MINIMAL, "version": MANIFEST_VERSION + 1})
