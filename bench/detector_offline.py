"""Benchmark: the detector trained straight from ../shared/datasets (no service), mAP@0.5 on the
photos it did not see.

Run from the repository root (2 CPU cores: about 4 minutes per dataset and seed):

    .venv/bin/python -m bench.detector_offline                   # raccoon, bccd, 30/tag, seed 0
    .venv/bin/python -m bench.detector_offline --datasets bccd --seeds 0 1 2
    .venv/bin/python -m bench.detector_offline --domain general  # Lite2 at 416 px
    .venv/bin/python -m bench.detector_offline --budget 300 --per-tag 15
    .venv/bin/python -m bench.detector_offline --set lr=4e-3 mosaic=0 --verbose  # a variant

For each dataset (/work/shared/datasets/<name>/: images/ and regions.json), photos per tag N
and seed: the photos are shuffled (random.Random(f"{seed}-{name}")); then, rarest tag first,
photos holding a box of the tag are taken in that order until every tag has at least N training
photos with a box of it. Every other photo is held out. The detector (trainer_job.tasks
.detection.fit) trains on the chosen photos within --budget seconds; it then predicts every
held-out photo and functions.domain.detection_metrics scores it (mAP@0.5, VOC all-point AP per
tag). Inference ms is the wall time of `predict` over the held-out photos (batches of 8,
decoding and NMS included) divided by their number. Size is float32 parameters.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from trainer_job.tasks.detection.data import Augmentation, LabelledImage
from trainer_job.tasks.detection.fit import FitConfig, evaluate, fit
from trainer_job.tasks.detection.model import parameter_count

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
DOMAINS = {"compact": ("efficientnet-lite0", 320), "general": ("efficientnet-lite2", 416)}


def load(name: str) -> tuple[list[str], dict[str, list[dict[str, float | str]]], Path]:
    folder = DATASETS / name
    labelled = json.loads((folder / "regions.json").read_text(encoding="utf-8"))
    return labelled["tags"], labelled["images"], folder / "images"


def split(
    images: dict[str, list[dict[str, float | str]]], tags: list[str], per_tag: int, seed: str
) -> tuple[list[str], list[str]]:
    """(training files, held-out files): rarest tag first, photos with a box of it in a seeded
    order until every tag has `per_tag` training photos showing it."""
    order = sorted(images)
    random.Random(seed).shuffle(order)
    showing = {t: [f for f in order if any(r["tag"] == t for r in images[f])] for t in tags}
    chosen: list[str] = []
    for tag in sorted(tags, key=lambda t: len(showing[t])):
        have = sum(1 for f in chosen if f in set(showing[tag]))
        for name in showing[tag]:
            if have >= per_tag:
                break
            if name not in chosen:
                chosen.append(name)
                have += 1
    taken = set(chosen)
    return chosen, [f for f in order if f not in taken]


def labelled_image(
    folder: Path, regions: list[dict[str, float | str]], tags: list[str]
) -> LabelledImage:
    boxes = np.array(
        [[r["left"], r["top"], r["width"], r["height"]] for r in regions], dtype=np.float64
    )
    indices = np.array([tags.index(str(r["tag"])) for r in regions], dtype=np.int64)
    with Image.open(folder) as image:
        return LabelledImage(image.convert("RGB"), boxes.reshape(-1, 4), indices)


@dataclass(frozen=True)
class Row:
    dataset: str
    per_tag: int
    seed: int
    train: int
    held: int
    map: float
    ap: dict[str, float]
    seconds: float
    epochs: int
    ms: float
    parameters: int


def report(epoch: int, planned: int, loss: float) -> None:
    print(f"  epoch {epoch}/{planned} loss {loss:.3f}", file=sys.stderr, flush=True)


def run(name: str, per_tag: int, seed: int, config: FitConfig, verbose: bool) -> Row:
    tags, images, folder = load(name)
    train_files, held_files = split(images, tags, per_tag, f"{seed}-{name}")
    train = [labelled_image(folder / f, images[f], tags) for f in train_files]
    held = [labelled_image(folder / f, images[f], tags) for f in held_files]
    result = fit(train, len(tags), config, report if verbose else None)
    started = time.monotonic()
    metrics, _ = evaluate(result.model, held, tags)
    inference_ms = (time.monotonic() - started) * 1000 / max(len(held), 1)
    parameters = parameter_count(result.model)
    return Row(
        name,
        per_tag,
        seed,
        len(train),
        len(held),
        metrics.mean_average_precision,
        {t: m.average_precision for t, m in metrics.per_tag.items()},
        result.seconds,
        result.epochs,
        inference_ms,
        parameters,
    )


def row(r: Row) -> str:
    ap = ", ".join(f"{t} {v:.3f}" for t, v in r.ap.items())
    return (
        f"| {r.dataset} | {r.per_tag} | {r.seed} | {r.train} | {r.held} | {r.map:.3f} | {ap} "
        f"| {r.seconds:.0f} ({r.epochs} epochs) | {r.ms:.0f} "
        f"| {r.parameters / 1e6:.2f} M / {r.parameters * 4 / 1e6:.1f} MB |"
    )


def configured(config: FitConfig, settings: list[str]) -> FitConfig:
    """`config` with `name=value` settings of FitConfig or Augmentation fields (--set)."""
    for setting in settings:
        name, _, text = setting.partition("=")
        if name in {f.name for f in fields(Augmentation)}:
            value = type(getattr(config.augmentation, name))(text)
            config = replace(config, augmentation=replace(config.augmentation, **{name: value}))
        elif name in {f.name for f in fields(FitConfig)}:
            config = replace(config, **{name: type(getattr(config, name))(text)})
        else:
            raise SystemExit(f"--set {setting}: no such setting")
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["raccoon", "bccd"])
    parser.add_argument("--per-tag", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--budget", type=float, default=FitConfig.budget_seconds)
    parser.add_argument("--domain", choices=sorted(DOMAINS), default="compact")
    parser.add_argument("--epochs", type=int, default=FitConfig.epochs)
    parser.add_argument("--set", nargs="*", default=[], help="FitConfig or Augmentation fields")
    parser.add_argument("--verbose", action="store_true", help="each epoch's loss, on stderr")
    args = parser.parse_args()
    backbone, size = DOMAINS[args.domain]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {backbone} at {size} px")
    print(
        "| dataset | photos/tag | seed | train photos | held-out photos | mAP@0.5 | AP per tag "
        "| training s | inference ms/photo | parameters / size |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.datasets:
        for seed in args.seeds:
            config = configured(FitConfig(backbone, size, seed, args.epochs, args.budget), args.set)
            print(row(run(name, args.per_tag, seed, config, args.verbose)), flush=True)


if __name__ == "__main__":
    main()
