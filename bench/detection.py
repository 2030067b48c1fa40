"""Benchmark: object detection through the service, scored by this script from the detect
endpoint's answers on photos the detector never saw.

Run from the repository root (2 CPU cores: about 4.3 minutes per row, so the default 18 rows
take about 80 minutes; the machine should be otherwise idle, as Quick training is budgeted in
wall-clock seconds):

    .venv/bin/python -m bench.detection                    # raccoon, bccd; 15, 30, all; 3 seeds
    .venv/bin/python -m bench.detection --datasets raccoon --sizes 30 --seeds 0
    .venv/bin/python -m bench.detection --domain general   # EfficientNet-Lite2 at 416 px

For each dataset (../shared/datasets/<name>/: images/ and regions.json), size and seed, the
photos are split as bench/detector_offline.py splits them (seeded shuffle; rarest tag first,
photos with a box of the tag until every tag has N training photos showing it; every other
photo is held out), or, for "all", one photo in five is held out and the rest train. Through
the API over HTTP (a fresh in-memory Azurite, bench/common.py) it creates a detection project
with one tag per class, uploads the training photos with their regions (ImageFileCreateBatch,
as the Python SDK sends it), asks for Quick training and runs the queued job in-process with
trainer_job's `process_one`, exactly what the container job runs. It publishes the iteration
and sends every held-out photo's bytes to `…/detect/iterations/{name}/image/nostore` of the
Prediction API, one request at a time (the server runs each model call on one thread, its
default `CV_ONNX_THREADS=1`).

Scored here, from those answers only: per tag, the answered boxes of every held-out photo in
descending probability are matched greedily to the labelled boxes of that tag at IoU >= 0.5
(each labelled box matched once); AP is the area under the all-point interpolated
precision-recall curve (VOC 2010+); mAP@0.5 is the mean over tags with a labelled box. Columns:
training seconds from the train request to the iteration Completed (training the held-out
detector and the served one, export and verification included); detect p50 the median wall
time of one detect request (HTTP, JPEG decode, model, NMS); size the model.onnx bytes.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.common import (
    BATCH,
    DATASETS,
    PREDICTION_KEY,
    Served,
    api_client,
    check_batch,
    create_project,
    create_tags,
    end_line,
    expect_ok,
    get_iteration,
    log,
    machine_line,
    markdown_table,
    out,
    percentile,
    read_artifact,
    request_training,
    serve_api,
)
from bench.detector_offline import split
from functions.domain import artifacts
from trainer_job.__main__ import process_one

DOMAINS = {
    "compact": ("a27d5ca5-bb19-49d8-a70a-fec086c47f5b", "General (compact): EfficientNet-Lite0"),
    "general": ("da2e3a8a-40a5-4171-82f4-58522f70fbc1", "General: EfficientNet-Lite2"),
}
PUBLISH_NAME = "bench"
IOU = 0.5
HELD_OUT_OF_ALL = 5  # "all": one photo in five held out

Labels = dict[str, list[dict[str, float | str]]]  # file name -> its regions (regions.json)


@dataclass(frozen=True)
class Row:
    dataset: str
    size: str
    seed: int
    train: int
    held: int
    map: float
    ap: dict[str, float]
    train_seconds: float
    detect_p50_ms: float
    model_bytes: int


# ------------------------------------------------------------------ scoring


def iou(box: Sequence[float], others: np.ndarray) -> np.ndarray:
    """IoU of one (left, top, width, height) box with each row of `others` (M, 4)."""
    if not len(others):
        return np.zeros(0)
    x0 = np.maximum(box[0], others[:, 0])
    y0 = np.maximum(box[1], others[:, 1])
    x1 = np.minimum(box[0] + box[2], others[:, 0] + others[:, 2])
    y1 = np.minimum(box[1] + box[3], others[:, 1] + others[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = box[2] * box[3] + others[:, 2] * others[:, 3] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def average_precision(
    answers: dict[str, list[tuple[float, list[float]]]], labelled: dict[str, np.ndarray]
) -> float:
    """One tag's AP@IoU from (probability, box) answers and labelled boxes, per photo."""
    total = sum(len(b) for b in labelled.values())
    ranked = sorted(
        ((p, photo, box) for photo, found in answers.items() for p, box in found),
        key=lambda item: -item[0],
    )
    used = {photo: np.zeros(len(b), dtype=bool) for photo, b in labelled.items()}
    hits = []
    for _, photo, box in ranked:
        truth = labelled.get(photo, np.zeros((0, 4)))
        overlaps = iou(box, truth)
        best = int(np.argmax(overlaps)) if len(overlaps) else -1
        hit = best >= 0 and overlaps[best] >= IOU and not used[photo][best]
        if hit:
            used[photo][best] = True
        hits.append(hit)
    true_positives = np.cumsum(hits)
    precision = true_positives / np.arange(1, len(hits) + 1)
    recall = true_positives / max(total, 1)
    # all-point interpolation: precision made monotone from the right, summed over recall steps
    envelope = np.concatenate([[0.0], precision, [0.0]])
    for i in range(len(envelope) - 2, -1, -1):
        envelope[i] = max(envelope[i], envelope[i + 1])
    steps = np.concatenate([[0.0], recall, [recall[-1] if len(recall) else 0.0]])
    changed = np.where(steps[1:] != steps[:-1])[0]
    return float(np.sum((steps[changed + 1] - steps[changed]) * envelope[changed + 1]))


def score(
    answers: dict[str, list[dict[str, Any]]], labels: Labels, held: list[str], tags: list[str]
) -> dict[str, float]:
    """AP per tag (those with a labelled box among the held-out photos)."""
    result = {}
    for tag in tags:
        truth = {
            f: np.array(
                [
                    [r["left"], r["top"], r["width"], r["height"]]
                    for r in labels[f]
                    if r["tag"] == tag
                ],
                dtype=np.float64,
            ).reshape(-1, 4)
            for f in held
        }
        if not any(len(t) for t in truth.values()):
            continue
        found = {
            f: [
                (float(p["probability"]), _ltwh(p["boundingBox"]))
                for p in answers[f]
                if p["tagName"] == tag
            ]
            for f in held
        }
        result[tag] = average_precision(found, truth)
    return result


def _ltwh(box: dict[str, float]) -> list[float]:
    return [box["left"], box["top"], box["width"], box["height"]]


# ------------------------------------------------------------------ one row


def choose(labels: Labels, tags: list[str], size: str, seed: str) -> tuple[list[str], list[str]]:
    if size != "all":
        return split(labels, tags, int(size), seed)
    order = sorted(labels)
    random.Random(seed).shuffle(order)
    held = set(order[::HELD_OUT_OF_ALL])
    return [f for f in order if f not in held], [f for f in order if f in held]


def upload(
    client: httpx.Client,
    project_id: str,
    folder: Path,
    files: list[str],
    labels: Labels,
    tag_ids: dict[str, str],
) -> None:
    for start in range(0, len(files), BATCH):
        chunk = files[start : start + BATCH]
        images = [
            {
                "name": name,
                "contents": base64.b64encode((folder / name).read_bytes()).decode("ascii"),
                "regions": [
                    {"tagId": tag_ids[str(r["tag"])], **{k: r[k] for k in _BOX}}
                    for r in labels[name]
                ],
            }
            for name in chunk
        ]
        response = client.post(f"/projects/{project_id}/images/files", json={"images": images})
        check_batch(response, len(chunk), "upload")


_BOX = ("left", "top", "width", "height")


def train(served: Served, client: httpx.Client, project_id: str) -> tuple[str, float]:
    started = time.monotonic()
    iteration_id = str(request_training(client, project_id)["id"])
    while process_one(served.storage, served.settings):
        pass
    seconds = time.monotonic() - started
    iteration = get_iteration(client, project_id, iteration_id)
    if iteration["status"] != "Completed":
        raise RuntimeError(f"training ended {iteration['status']}: {iteration}")
    expect_ok(
        client.post(
            f"/projects/{project_id}/iterations/{iteration_id}/publish",
            params={"publishName": PUBLISH_NAME, "predictionId": "bench"},
        ),
        "publish",
    )
    return iteration_id, seconds


def detect_all(
    endpoint: str, project_id: str, folder: Path, files: list[str]
) -> tuple[dict[str, list[dict[str, Any]]], list[float]]:
    url = (
        f"{endpoint}/customvision/v3.0/Prediction/{project_id}/detect/iterations/"
        f"{PUBLISH_NAME}/image/nostore"
    )
    headers = {"Prediction-Key": PREDICTION_KEY, "Content-Type": "application/octet-stream"}
    answers, seconds = {}, []
    with httpx.Client(headers=headers, timeout=120) as client:
        client.post(url, content=(folder / files[0]).read_bytes())  # load the model first
        for name in files:
            data = (folder / name).read_bytes()
            started = time.perf_counter()
            response = client.post(url, content=data)
            seconds.append(time.perf_counter() - started)
            answers[name] = expect_ok(response, f"detect {name}")["predictions"]
    return answers, seconds


def run(dataset: str, size: str, seed: int, domain_id: str) -> Row:
    folder = DATASETS / dataset
    labelled = json.loads((folder / "regions.json").read_text(encoding="utf-8"))
    tags, labels = list(labelled["tags"]), labelled["images"]
    train_files, held = choose(labels, tags, size, f"{seed}-{dataset}")
    with serve_api() as served, api_client(served.endpoint) as client:
        project_id = create_project(client, f"{dataset}-{size}-{seed}", domain_id)
        tag_ids = dict(zip(tags, create_tags(client, project_id, tags), strict=True))
        upload(client, project_id, folder / "images", train_files, labels, tag_ids)
        iteration_id, train_seconds = train(served, client, project_id)
        answers, seconds = detect_all(served.endpoint, project_id, folder / "images", held)
        model = read_artifact(served, project_id, iteration_id, artifacts.MODEL)
    ap = score(answers, labels, held, tags)
    return Row(
        dataset,
        size,
        seed,
        len(train_files),
        len(held),
        statistics.fmean(ap.values()),
        ap,
        train_seconds,
        percentile(seconds, 50) * 1000,
        len(model),
    )


# ------------------------------------------------------------------ report


def cells(r: Row) -> list[str]:
    return [
        r.dataset,
        r.size,
        str(r.seed),
        str(r.train),
        str(r.held),
        f"{r.map:.3f}",
        ", ".join(f"{t} {v:.3f}" for t, v in r.ap.items()),
        f"{r.train_seconds:.0f}",
        f"{r.detect_p50_ms:.0f}",
        f"{r.model_bytes / 1e6:.1f}",
    ]


def summary(rows: list[Row]) -> list[list[str]]:
    groups: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.dataset, r.size), []).append(r)
    lines = []
    for (dataset, size), group in groups.items():
        maps = [r.map for r in group]
        spread = statistics.stdev(maps) if len(maps) > 1 else 0.0
        lines.append(
            [
                dataset,
                size,
                str(len(group)),
                f"{statistics.fmean(maps):.3f} ± {spread:.3f}",
                f"{statistics.fmean(r.train_seconds for r in group):.0f}",
                f"{statistics.fmean(r.detect_p50_ms for r in group):.0f}",
            ]
        )
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="raccoon,bccd")
    parser.add_argument("--sizes", default="15,30,all", help="photos per tag, or all")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--domain", choices=sorted(DOMAINS), default="compact")
    args = parser.parse_args(argv)
    arguments = list(sys.argv[1:] if argv is None else argv)
    domain_id, described = DOMAINS[args.domain]
    out(machine_line("bench.detection", arguments))
    out(f"Domain: {described}; Quick training; scored at IoU {IOU} from detect answers.")
    rows = []
    header = [
        "dataset",
        "photos/tag",
        "seed",
        "train photos",
        "held-out photos",
        "mAP@0.5",
        "AP per tag",
        "training s",
        "detect p50 ms",
        "model MB",
    ]
    for dataset in args.datasets.split(","):
        for size in args.sizes.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                log(f"{dataset} {size}/tag seed {seed}")
                rows.append(run(dataset, size, seed, domain_id))
                log(" | ".join(cells(rows[-1])))
    out(markdown_table(header, [cells(r) for r in rows]))
    out()
    summary_header = ["dataset", "photos/tag", "seeds", "mAP@0.5", "training s", "detect p50 ms"]
    out(markdown_table(summary_header, summary(rows)))
    out(end_line("client, API server, Azurite and the trainer share the machine's CPUs"))


if __name__ == "__main__":
    main()
