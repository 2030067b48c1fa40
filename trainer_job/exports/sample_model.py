"""A real model trained from a few photos, without the service: for the tests and bench/export.py.

It is what the trainer would export for those photos (frozen EfficientNet-Lite backbone, a linear
head fitted on the served view and its mirror image, softmax, ONNX opset 17), made in-process so
the exports can be tested without storage or the Training API.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from functions.domain.artifacts import ModelManifest
from functions.domain.preprocessing import Preprocessing
from trainer_job.exports.inputs import ExportInputs
from trainer_job.ml.backbone import build_backbone, input_size
from trainer_job.ml.export import ClassifierNet, export_onnx
from trainer_job.ml.features import compute_features
from trainer_job.ml.head import train_head

# Custom Vision's domain ids of the backbones (functions/domain/catalog.py).
DOMAIN_IDS = {
    "efficientnet-lite0": "0732100f-1a38-4e49-a514-c9b44c697ab5",
    "efficientnet-lite2": "ee85a74c-405e-4adc-bb47-ffa8ca0c9f31",
    "efficientnet-lite2+efficientnet-lite0": "ee85a74c-405e-4adc-bb47-ffa8ca0c9f31",
}


def load_photos(paths: Sequence[Path]) -> list[Image.Image]:
    images = []
    for path in paths:
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    return images


def train_sample_model(
    photos: Mapping[str, Sequence[Image.Image]], backbone: str = "efficientnet-lite0"
) -> ExportInputs:
    """A Multiclass model of the tags `photos` names (in that order), with its artifacts.

    The calibration set is the training photos, preprocessed as served. The metrics are the
    training-set figures (a placeholder shaped like metrics.json, not a cross-validation).
    """
    preprocessing = Preprocessing.for_size(input_size(backbone))
    extractor = build_backbone(backbone)
    names = list(photos)
    images = [image for name in names for image in photos[name]]
    classes = np.asarray([c for c, name in enumerate(names) for _ in photos[name]])
    labels_onehot = np.eye(len(names), dtype=np.float32)[classes]
    features = compute_features(extractor, images, preprocessing, views=2, seed=0)
    head = train_head(features, labels_onehot, multilabel=False, seed=0)
    net = ClassifierNet(extractor, head)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        export_onnx(net, path, preprocessing.size)
        model = path.read_bytes()
    labels = [
        {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, name)), "name": name, "type": "Regular"}
        for name in names
    ]
    predicted = head.predict(features[:, 0]).argmax(axis=1)
    per_tag = []
    for c, label in enumerate(labels):
        true_positive = float(np.sum((predicted == c) & (classes == c)))
        per_tag.append(
            {
                "id": label["id"],
                "name": label["name"],
                "precision": true_positive / max(1.0, float(np.sum(predicted == c))),
                "recall": true_positive / max(1.0, float(np.sum(classes == c))),
                "averagePrecision": None,
            }
        )
    accuracy = float(np.mean(predicted == classes))
    manifest = ModelManifest(
        backbone=backbone,
        domain_id=DOMAIN_IDS[backbone],
        classification_type="Multiclass",
        training_type="Regular",
        preprocessing=preprocessing,
        labels=labels,
        seed=0,
        image_count=len(images),
    )
    metrics = {
        "threshold": 0.5,
        "precision": accuracy,
        "recall": accuracy,
        "averagePrecision": None,
        "perTag": per_tag,
    }
    calibration = np.stack([preprocessing(image) for image in images])
    return ExportInputs(model, labels, manifest, metrics, calibration)
