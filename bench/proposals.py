"""Benchmark: recall of the generic region proposals (functions/region_proposals.py) on labelled
photos, beside a fixed grid of boxes as the floor.

Run from the repository root:

    .venv/bin/python -m bench.proposals                 # raccoon and bccd, every photo
    .venv/bin/python -m bench.proposals --limit 50      # the first 50 photos of each (by name)
    .venv/bin/python -m bench.proposals --photos odd    # only the photos the weights never saw
    taskset -c 0 .venv/bin/python -m bench.proposals    # timed on one core

For each photo of ../shared/datasets/<name>/ (regions.json), it asks `propose_regions` for 20
boxes and counts a labelled box as found at k when one of the first k proposals overlaps it at
IoU >= 0.5 (recall@10, recall@20: found boxes over all labelled boxes). Mean best IoU is the
mean, over labelled boxes, of the best IoU among the 20 proposals. The time is that of
`propose_regions` alone on the decoded photo at its stored size (decoding not counted), in one
process on one thread (the method calls no BLAS); every BCCD photo is 640x480, so its row is
the time for a 640x480 photo.

The few weights that mix the cues of each box (WEIGHTS in functions/region_proposals.py) were
set by a coordinate search for recall@10 on photos at even positions (file-name order): every
even one of raccoon's, every sixth of BCCD's (positions 0, 6, 12, ...); `--photos odd` measures
only photos the search never saw. The whole run takes about 70 s on one core.

The grid baseline proposes, for every photo alike, the whole image and then boxes of the
image's own shape and 4:3 boxes, 3/4, 1/2 and 1/3 of the image's height, in a regular grid,
larger first (its order is fixed, so its first 10 are the whole image and the larger boxes).
A method that is not clearly above it finds nothing the image frame does not.

BCCD holds about 13 boxes per photo (up to 30), so its recall at 10 cannot reach 1: the column
"ceiling@10" is the recall that 10 perfect proposals would reach (sum of min(10, boxes) over
all boxes), and likewise at 20.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common import DATASETS, end_line, log, machine_line, markdown_table, out, percentile
from functions.region_proposals import Proposal, propose_regions

DEFAULT_DATASETS = "raccoon,bccd"
TOP = (10, 20)
IOU = 0.5

Proposer = Callable[[Image.Image, int], list[Proposal]]


@dataclass(frozen=True)
class Labelled:
    path: Path
    boxes: np.ndarray  # (M, 4) left, top, right, bottom as fractions


@dataclass(frozen=True)
class Score:
    boxes: int
    found: dict[int, int]  # k: labelled boxes found among the first k proposals
    ceiling: dict[int, int]
    best_iou: list[float]
    milliseconds: list[float]


def labelled_photos(name: str, limit: int | None, which: str = "all") -> list[Labelled]:
    """The photos of a dataset in file-name order; `which` even or odd keeps every other one
    (the first is even), before `limit`."""
    folder = DATASETS / name
    if not (folder / "regions.json").is_file():
        raise SystemExit(f"dataset not found: {folder}")
    images = json.loads((folder / "regions.json").read_text(encoding="utf-8"))["images"]
    photos = []
    names = sorted(images)
    if which != "all":
        names = names[(1 if which == "odd" else 0) :: 2]
    for file_name in names[:limit]:
        regions = images[file_name]
        boxes = np.array(
            [[r["left"], r["top"], r["left"] + r["width"], r["top"] + r["height"]] for r in regions]
        )
        photos.append(Labelled(folder / "images" / file_name, boxes))
    return photos


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of a (N, 4) with every box of b (M, 4), corners as fractions."""
    ix = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    iy = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    overlap = np.clip(ix, 0, None) * np.clip(iy, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - overlap
    return np.asarray(overlap / np.maximum(union, 1e-12))


def grid_boxes(image: Image.Image, limit: int) -> list[Proposal]:
    """The floor: the same boxes for every photo, whole image first, then larger first."""
    aspect = image.width / image.height
    boxes = [(1.0, 1.0)]
    for scale in (0.75, 0.5, 1 / 3):
        boxes += [(scale, scale), (min(1.0, scale / aspect * 4 / 3), scale)]
    proposals = [Proposal(1.0, 0.0, 0.0, 1.0, 1.0)]
    for width, height in boxes[1:]:
        steps = max(2, round(1 / min(width, height)))
        for top in np.linspace(0, 1 - height, steps):
            for left in np.linspace(0, 1 - width, steps):
                proposals.append(Proposal(height, float(left), float(top), width, height))
    return proposals[:limit]


def score(photos: Sequence[Labelled], proposer: Proposer) -> Score:
    found = dict.fromkeys(TOP, 0)
    ceiling = dict.fromkeys(TOP, 0)
    best_iou: list[float] = []
    milliseconds: list[float] = []
    for photo in photos:
        with Image.open(photo.path) as image:
            image.load()
            start = time.perf_counter()
            proposals = proposer(image, max(TOP))
            milliseconds.append((time.perf_counter() - start) * 1000)
        boxes = np.array([[p.left, p.top, p.left + p.width, p.top + p.height] for p in proposals])
        iou = iou_matrix(photo.boxes, boxes.reshape(-1, 4))  # (labelled, proposals)
        for k in TOP:
            ceiling[k] += min(k, len(photo.boxes))
            if iou.shape[1]:
                found[k] += int((iou[:, :k].max(1) >= IOU).sum())
        best_iou += iou.max(1).tolist() if iou.shape[1] else [0.0] * len(photo.boxes)
    return Score(sum(len(p.boxes) for p in photos), found, ceiling, best_iou, milliseconds)


def row(name: str, method: str, photos: int, result: Score) -> list[str]:
    recalls = [f"{result.found[k] / result.boxes:.3f}" for k in TOP]
    ceilings = [f"{result.ceiling[k] / result.boxes:.3f}" for k in TOP]
    return [
        name,
        method,
        str(photos),
        str(result.boxes),
        *recalls,
        *ceilings,
        f"{statistics.fmean(result.best_iou):.3f}",
        f"{statistics.fmean(result.milliseconds):.1f}",
        f"{percentile(result.milliseconds, 95):.1f}",
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=DEFAULT_DATASETS)
    parser.add_argument("--limit", type=int, default=None, help="photos per dataset")
    parser.add_argument("--photos", choices=("all", "even", "odd"), default="all")
    args = parser.parse_args(argv)
    out(machine_line("bench.proposals", list(sys.argv[1:] if argv is None else argv)))
    out(f"CPUs this process may run on: {len(os.sched_getaffinity(0))}")
    out()
    methods: dict[str, Proposer] = {"grid (floor)": grid_boxes, "propose_regions": propose_regions}
    rows = []
    for name in args.datasets.split(","):
        photos = labelled_photos(name, args.limit, args.photos)
        for method, proposer in methods.items():
            log(f"{name}: {method} on {len(photos)} photos")
            rows.append(row(name, method, len(photos), score(photos, proposer)))
    header = [
        "dataset",
        "method",
        "photos",
        "boxes",
        "recall@10",
        "recall@20",
        "ceiling@10",
        "ceiling@20",
        "mean best IoU (top 20)",
        "ms / photo",
        "p95 ms",
    ]
    out(markdown_table(header, rows))
    out()
    out(end_line("one process, nothing else of ours running"))


if __name__ == "__main__":
    main()
