"""Quickstart: train, publish and use an image classifier with the official Custom Vision SDK.

Creates a project with one tag per sub-folder of a photos folder, uploads the photos, trains,
publishes the iteration and classifies photos the model never saw (by default the last photo of
each sub-folder is kept out of training). Against `make run`:

    .venv/bin/python examples/quickstart.py
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from pathlib import Path
from typing import Any

from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
)
from msrest.authentication import ApiKeyCredentials

PHOTOS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "flowers"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}
BATCH_SIZE = 64  # the most images one upload may carry


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--endpoint", default=f"http://localhost:{env('PORT', '7071')}")
    parser.add_argument("--training-key", default=env("CV_TRAINING_KEY", "local-training-key"))
    parser.add_argument(
        "--prediction-key", default=env("CV_PREDICTION_KEY", "local-prediction-key")
    )
    parser.add_argument("--photos", type=Path, default=PHOTOS, help="one sub-folder per tag")
    held_out = "a photo to classify, kept out of training (repeatable)"
    parser.add_argument("--holdout", type=Path, action="append", help=held_out)
    parser.add_argument("--publish-name", default="quickstart")
    # In Azure: the resource id of your Custom Vision prediction resource.
    parser.add_argument("--prediction-resource-id", default="local-prediction-resource")
    return parser.parse_args(argv)


def wait_for_training(trainer: CustomVisionTrainingClient, project_id: str, iteration: Any) -> Any:
    started, last = time.monotonic(), ""
    while True:
        response = trainer.get_iteration(project_id, iteration.id, raw=True)
        iteration = response.output
        # `progress` is this service's addition; Azure's Custom Vision answers without it.
        progress = response.response.json().get("progress") or {}
        stage = progress.get("stage") or iteration.status
        line = f"{stage} ({progress['fraction']:.0%})" if "fraction" in progress else stage
        if line != last:
            print(f"  {time.monotonic() - started:4.0f} s  {line}", flush=True)
            last = line
        if iteration.status != "Training":
            return iteration
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    trainer = CustomVisionTrainingClient(
        args.endpoint, ApiKeyCredentials(in_headers={"Training-key": args.training_key})
    )
    predictor = CustomVisionPredictionClient(
        args.endpoint, ApiKeyCredentials(in_headers={"Prediction-key": args.prediction_key})
    )
    photos = {
        folder.name: sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for folder in sorted(args.photos.iterdir())
        if folder.is_dir()
    }
    holdout = [p.resolve() for p in args.holdout or [files[-1] for files in photos.values()]]

    # A unique name, so reruns (and README's curl example) never meet a duplicate.
    project_name = f"quickstart-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    project = trainer.create_project(project_name)
    print(f"Project {project.name} ({project.id})")
    to_upload = []
    for tag_name, files in photos.items():
        tag = trainer.create_tag(project.id, tag_name)
        to_upload += [(path, tag.id) for path in files if path.resolve() not in holdout]
    for start in range(0, len(to_upload), BATCH_SIZE):
        batch = to_upload[start : start + BATCH_SIZE]
        entries = [
            ImageFileCreateEntry(name=path.name, contents=path.read_bytes(), tag_ids=[tag_id])
            for path, tag_id in batch
        ]
        result = trainer.create_images_from_files(project.id, ImageFileCreateBatch(images=entries))
        refused = [i for i in result.images if i.status not in ("OK", "OKDuplicate")]
        if refused:
            raise SystemExit(f"Upload refused {[(i.source_url, i.status) for i in refused]}")
    print(f"Uploaded {len(to_upload)} photos under {len(photos)} tags: {', '.join(photos)}")

    print("Training...")
    iteration = wait_for_training(trainer, project.id, trainer.train_project(project.id))
    if iteration.status != "Completed":
        raise SystemExit(f"Training {iteration.status}: {iteration.training_error_details}")
    performance = trainer.get_iteration_performance(project.id, iteration.id)
    print(
        f"Precision {performance.precision:.1%}, recall {performance.recall:.1%} (cross-validated)"
    )

    trainer.publish_iteration(
        project.id, iteration.id, args.publish_name, args.prediction_resource_id
    )
    print(f"Published {iteration.name} as {args.publish_name!r}; held-out photos:")
    for photo in holdout:
        with open(photo, "rb") as image:
            result = predictor.classify_image(project.id, args.publish_name, image.read())
        best = max(result.predictions, key=lambda p: p.probability)
        print(f"  {photo.parent.name}/{photo.name} -> {best.tag_name} ({best.probability:.1%})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
