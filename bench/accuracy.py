"""Benchmark: top-1 accuracy of trained iterations on held-out photos, beside a plain baseline.

Run from the repository root:

    .venv/bin/python -m bench.accuracy                  # both datasets, 5/10/30 per tag, 3 seeds
    .venv/bin/python -m bench.accuracy --quick          # seed 0 only
    .venv/bin/python -m bench.accuracy --domain general # EfficientNet-Lite2 at 260 px

For each dataset (/work/shared/datasets/<name>/<class>/), images per tag N and seed, it picks
N photos of each class at random (random.Random(f"{seed}-{class}")) for training; every other
photo of the class is the test set. Through the API over HTTP (a fresh in-memory Azurite per
dataset, bench/common.py) it creates a project in the chosen domain with one tag per class,
uploads the training photos and asks for Regular training; the queued job runs in-process with
trainer_job's `process_one`, exactly what the container job runs. It then reads the
iteration's model.onnx and manifest.json from models/{projectId}/{iterationId}/ and classifies
every held-out photo with onnxruntime, preprocessed as its `ModelManifest` says.

The reference is computed here, on the same photos and split: frozen features of the same
backbone (trainer_job.ml.backbone, view 0 only: the photo exactly as served) and a plain
multinomial logistic regression (softmax, bias, L2 penalty 1e-3 on the weights added to the
mean cross-entropy, torch LBFGS to convergence, no augmentation, no class balancing): the plain
transfer-learning baseline.

Advanced training gets a column when the server supports it: the script asks for
trainingType=Advanced on the first project and checks that an Advanced iteration completes
with an Advanced recipe recorded in its manifest (its "advanced" summary); otherwise it says so
and prints no numbers. --no-advanced skips it.

Run time on 2 cores, the benchmark alone: --sizes 30 took 1410 s and --sizes 5,10 994 s (so the
default about 40 minutes; Advanced takes 150 to 230 s per project at 30 photos per tag); use
--quick, --sizes or --no-advanced for a shorter run.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import onnxruntime
import torch
from PIL import Image

from bench.common import (
    DOMAINS,
    Served,
    api_client,
    create_project,
    create_tags,
    dataset_files,
    end_line,
    get_iteration,
    log,
    machine_line,
    markdown_table,
    mean_std,
    out,
    read_artifact,
    request_training,
    serve_api,
    upload_tagged,
)
from functions.domain import artifacts, catalog
from functions.domain.preprocessing import Preprocessing
from trainer_job.__main__ import process_one
from trainer_job.ml.backbone import load_backbone, primary
from trainer_job.ml.features import run_extractor

DEFAULT_DATASETS = "flowers5,intel_scenes"
DEFAULT_SIZES = "5,10,30"
DEFAULT_SEEDS = "0,1,2"
L2 = 1e-3
BATCH = 32


# ------------------------------------------------------------------ photos and features


class PhotoCache:
    """Each photo of a dataset preprocessed once per preprocessing, and its reference features."""

    def __init__(self, classes: dict[str, list[Path]]) -> None:
        self.classes = classes
        self.inputs: dict[tuple[Preprocessing, Path], np.ndarray] = {}
        self.features: dict[tuple[str, Path], np.ndarray] = {}

    def arrays(self, preprocessing: Preprocessing, paths: Sequence[Path]) -> np.ndarray:
        """The (N, 3, S, S) float32 model input of these photos."""
        for path in paths:
            if (preprocessing, path) not in self.inputs:
                with Image.open(path) as image:
                    self.inputs[(preprocessing, path)] = preprocessing(image)
        return np.stack([self.inputs[(preprocessing, p)] for p in paths])

    def reference_features(self, domain: catalog.Domain) -> None:
        """View-0 features of every photo, by the frozen (primary) backbone the domain trains
        on: the one backbone of today's single-backbone models."""
        preprocessing = Preprocessing.for_size(domain.image_size)
        backbone = primary(domain.backbone)
        extractor = load_backbone(backbone, torch.device("cpu"))
        paths = [p for files in self.classes.values() for p in files]
        todo = [p for p in paths if (backbone, p) not in self.features]
        for start in range(0, len(todo), BATCH):
            batch = todo[start : start + BATCH]
            rows = run_extractor(extractor, self.arrays(preprocessing, batch))
            for path, row in zip(batch, rows, strict=True):
                self.features[(backbone, path)] = row

    def feature_matrix(self, backbone: str, paths: Sequence[Path]) -> np.ndarray:
        return np.stack([self.features[(backbone, p)] for p in paths])


@dataclass(frozen=True)
class Split:
    seed: int
    per_tag: int
    train: dict[str, list[Path]]
    test: dict[str, list[Path]]

    def labelled(self, part: dict[str, list[Path]]) -> tuple[list[Path], list[str]]:
        paths = [p for files in part.values() for p in files]
        labels = [name for name, files in part.items() for _ in files]
        return paths, labels


def make_split(classes: dict[str, list[Path]], per_tag: int, seed: int) -> Split:
    train: dict[str, list[Path]] = {}
    test: dict[str, list[Path]] = {}
    for name, files in classes.items():
        if len(files) <= per_tag:
            raise SystemExit(f"class {name} holds {len(files)} photos: none left to test on")
        chosen = set(random.Random(f"{seed}-{name}").sample(files, per_tag))
        train[name] = [p for p in files if p in chosen]
        test[name] = [p for p in files if p not in chosen]
    return Split(seed, per_tag, train, test)


# ------------------------------------------------------------------ the reference


def logistic_regression(features: np.ndarray, labels: np.ndarray, classes: int) -> torch.Tensor:
    """Weights (D + 1, C) of a multinomial logistic regression: mean cross-entropy plus
    L2 * ||W||^2 (bias not penalised), minimised with LBFGS (strong Wolfe line search)."""
    x = torch.from_numpy(features.astype(np.float64))
    y = torch.from_numpy(labels.astype(np.int64))
    weights = torch.zeros(x.shape[1], classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [weights, bias],
        lr=1.0,
        max_iter=1000,
        history_size=20,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weights + bias, y)
        loss = loss + L2 * (weights * weights).sum()
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    optimiser.step(closure)  # type: ignore[no-untyped-call]
    return torch.cat([weights.detach(), bias.detach()[None, :]])


def reference_accuracy(photos: PhotoCache, backbone: str, split: Split) -> float:
    names = list(split.train)
    train_paths, train_labels = split.labelled(split.train)
    test_paths, test_labels = split.labelled(split.test)
    fitted = logistic_regression(
        photos.feature_matrix(backbone, train_paths),
        np.array([names.index(n) for n in train_labels]),
        len(names),
    ).numpy()
    test = photos.feature_matrix(backbone, test_paths).astype(np.float64)
    predicted = (test @ fitted[:-1] + fitted[-1]).argmax(axis=1)
    return float(np.mean([names[i] == t for i, t in zip(predicted, test_labels, strict=True)]))


# ------------------------------------------------------------------ the server's model


@dataclass
class Trained:
    iteration_id: str
    manifest: artifacts.ModelManifest
    seconds: float  # train request -> process_one returned


def train(
    served: Served, client: httpx.Client, project_id: str, training_type: str | None
) -> Trained:
    started = time.perf_counter()
    iteration = request_training(client, project_id, training_type)
    if not process_one(served.storage, served.settings):
        raise RuntimeError("the training queue was empty after a train request")
    seconds = time.perf_counter() - started
    state = get_iteration(client, project_id, str(iteration["id"]))
    if state["status"] != "Completed":
        raise RuntimeError(
            f"iteration {state['id']} is {state['status']}: {state.get('trainingErrorDetails')}"
        )
    if training_type and state["trainingType"] != training_type:
        raise RuntimeError(f"asked for {training_type}, got a {state['trainingType']} iteration")
    return Trained(str(state["id"]), read_manifest(served, project_id, str(state["id"])), seconds)


def read_manifest(served: Served, project_id: str, iteration_id: str) -> artifacts.ModelManifest:
    data = read_artifact(served, project_id, iteration_id, artifacts.MANIFEST)
    return artifacts.ModelManifest.from_dict(json.loads(data))


def model_accuracy(
    served: Served, project_id: str, trained: Trained, photos: PhotoCache, split: Split
) -> float:
    """Top-1 accuracy of the iteration's model.onnx on the held-out photos."""
    model = read_artifact(served, project_id, trained.iteration_id, artifacts.MODEL)
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    preprocessing = trained.manifest.preprocessing
    outputs = [str(label["name"]) for label in trained.manifest.labels]
    test_paths, test_labels = split.labelled(split.test)
    correct = 0
    for start in range(0, len(test_paths), BATCH):
        batch = test_paths[start : start + BATCH]
        (probabilities,) = session.run(None, {input_name: photos.arrays(preprocessing, batch)})
        for row, truth in zip(probabilities, test_labels[start : start + BATCH], strict=True):
            correct += outputs[int(np.argmax(row))] == truth
    return correct / len(test_paths)


# ------------------------------------------------------------------ Advanced


@dataclass
class AdvancedSupport:
    supported: bool
    reason: str


def check_advanced(
    served: Served, client: httpx.Client, project_id: str, regular: Trained
) -> tuple[AdvancedSupport, Trained | None]:
    """Ask for an Advanced iteration; supported only if one completes and its manifest shows
    a recipe other than Regular's (an advanced summary, or other timed stages)."""
    response = client.post(f"/projects/{project_id}/train", params={"trainingType": "Advanced"})
    if response.status_code != 200:
        return AdvancedSupport(
            False,
            f"POST …/train?trainingType=Advanced answered "
            f"HTTP {response.status_code}: {response.text[:200]}",
        ), None
    iteration = response.json()
    if iteration.get("trainingType") != "Advanced":
        return AdvancedSupport(
            False, f"the new iteration's trainingType is {iteration.get('trainingType')}"
        ), None
    started = time.perf_counter()
    process_one(served.storage, served.settings)
    seconds = time.perf_counter() - started
    state = get_iteration(client, project_id, str(iteration["id"]))
    if state["status"] != "Completed":
        return AdvancedSupport(
            False, f"the Advanced job ended {state['status']}: {state.get('trainingErrorDetails')}"
        ), None
    manifest = read_manifest(served, project_id, str(state["id"]))
    summary = manifest.advanced
    stages = sorted(manifest.timings)
    regular_stages = sorted(regular.manifest.timings)
    trained = Trained(str(state["id"]), manifest, seconds)
    if isinstance(summary, dict) and summary:
        keys = ", ".join(sorted(summary))
        return AdvancedSupport(True, f"the manifest's advanced summary holds {keys}"), trained
    if stages and stages != regular_stages:
        detail = f"stages {', '.join(stages)}"
        return AdvancedSupport(True, detail), trained
    return (
        AdvancedSupport(
            False,
            "the server accepts trainingType=Advanced and the job completes "
            f"({seconds:.0f} s), but the trainer ran the Regular recipe: its manifest has "
            "no advanced summary and the same timed "
            f"stages as Regular ({', '.join(stages)})",
        ),
        None,
    )


def kept_model(manifest: artifacts.ModelManifest) -> str:
    """Which model an Advanced iteration serves, as its manifest says (or ?), with the paired
    comparison's z and the epochs chosen where the manifest records them."""
    summary = manifest.advanced
    if not isinstance(summary, dict) or "kept" not in summary:
        return "?"
    kept = str(summary["kept"])
    comparison = summary.get("comparison")
    if isinstance(comparison, dict) and "z" in comparison:
        z = comparison["z"]
        shown = f"{float(z):.1f}" if z is not None else "inf"
        kept += f" (z {shown}, {summary.get('bestEpoch', '?')} epochs)"
    return kept


def head_choice(manifest: artifacts.ModelManifest) -> str:
    """The L2 penalty, training views and backbones the cross-validation chose, as the
    manifest says."""
    choices = manifest.choices or {}
    return f"{choices.get('l2', '?')}, {choices.get('views', '?')}, {choices.get('backbones', 1)}"


# ------------------------------------------------------------------ one run


@dataclass
class Result:
    dataset: str
    per_tag: int
    seed: int
    train_images: int
    test_images: int
    regular: float
    reference: float
    regular_seconds: float
    test_seconds: float  # classifying the held-out photos with model.onnx
    advanced: float | None = None
    advanced_seconds: float | None = None
    advanced_kept: str = ""  # which model the Advanced iteration serves
    timings: dict[str, float] = field(default_factory=dict)
    head_choice: str = ""  # the head setting the Regular iteration's cross-validation chose


def run_one(
    served: Served,
    dataset: str,
    domain_id: str,
    photos: PhotoCache,
    split: Split,
    advanced: AdvancedSupport | None,
) -> tuple[Result, AdvancedSupport | None]:
    domain = catalog.find_domain(domain_id)
    assert domain is not None
    with api_client(served.endpoint) as client:
        name = f"bench-accuracy-{dataset}-{split.per_tag}-{split.seed}"
        project_id = create_project(client, name, domain_id)
        names = list(split.train)
        tags = dict(zip(names, create_tags(client, project_id, names), strict=True))
        upload_tagged(
            client, project_id, [(p, tags[n]) for n, ps in split.train.items() for p in ps]
        )
        regular = train(served, client, project_id, None)
        if primary(regular.manifest.backbone) != primary(domain.backbone):
            raise RuntimeError(f"trained {regular.manifest.backbone}, not {domain.backbone}")
        test_start = time.perf_counter()
        accuracy = model_accuracy(served, project_id, regular, photos, split)
        test_seconds = time.perf_counter() - test_start
        result = Result(
            dataset,
            split.per_tag,
            split.seed,
            sum(len(v) for v in split.train.values()),
            sum(len(v) for v in split.test.values()),
            accuracy,
            reference_accuracy(photos, primary(domain.backbone), split),
            regular.seconds,
            test_seconds,
            timings=dict(regular.manifest.timings),
            head_choice=head_choice(regular.manifest),
        )
        if advanced is None:
            advanced, first = check_advanced(served, client, project_id, regular)
            log(f"Advanced training supported: {advanced.supported} ({advanced.reason})")
        else:
            first = None
        if advanced.supported:
            trained = first or train(served, client, project_id, "Advanced")
            result.advanced = model_accuracy(served, project_id, trained, photos, split)
            result.advanced_seconds = trained.seconds
            result.advanced_kept = kept_model(trained.manifest)
        response = client.delete(f"/projects/{project_id}")
        if response.status_code not in (200, 204):
            raise RuntimeError(f"delete project: HTTP {response.status_code}")
    return result, advanced


# ------------------------------------------------------------------ report


def pct(values: Sequence[float]) -> str:
    mean, std = mean_std([100 * v for v in values])
    return f"{mean:.1f} ± {std:.1f}"


def dataset_table(results: Sequence[Result], advanced: bool) -> str:
    header = [
        "images/tag",
        "seeds",
        "test photos",
        "Regular %",
        "reference %",
        "Regular - reference (pp)",
    ]
    if advanced:
        header += ["Advanced %", "Advanced - reference (pp)"]
    header += ["Regular train s (mean)"]
    if advanced:
        header += ["Advanced train s (mean)"]
    rows = []
    for per_tag in sorted({r.per_tag for r in results}):
        group = [r for r in results if r.per_tag == per_tag]
        row = [
            str(per_tag),
            ",".join(str(r.seed) for r in group),
            "/".join(sorted({str(r.test_images) for r in group})),
            pct([r.regular for r in group]),
            pct([r.reference for r in group]),
            pct([r.regular - r.reference for r in group]),
        ]
        if advanced:
            row += [
                pct([r.advanced or 0.0 for r in group]),
                pct([(r.advanced or 0.0) - r.reference for r in group]),
            ]
        row.append(f"{statistics.fmean(r.regular_seconds for r in group):.1f}")
        if advanced:
            row.append(f"{statistics.fmean(r.advanced_seconds or 0.0 for r in group):.1f}")
        rows.append(row)
    return markdown_table(header, rows)


def runs_table(results: Sequence[Result], advanced: bool) -> str:
    header = [
        "dataset",
        "images/tag",
        "seed",
        "train / test photos",
        "Regular %",
        "reference %",
        "Regular train s",
        "head chosen (L2, views, backbones)",
        "trainer timings s",
        "onnx test s",
    ]
    if advanced:
        header += ["Advanced %", "Advanced train s", "Advanced serves"]
    rows = []
    for r in results:
        timings = ", ".join(f"{k} {v:.1f}" for k, v in r.timings.items())
        row = [
            r.dataset,
            str(r.per_tag),
            str(r.seed),
            f"{r.train_images} / {r.test_images}",
            f"{100 * r.regular:.1f}",
            f"{100 * r.reference:.1f}",
            f"{r.regular_seconds:.1f}",
            r.head_choice,
            timings,
            f"{r.test_seconds:.1f}",
        ]
        if advanced:
            row += [
                f"{100 * (r.advanced or 0.0):.1f}",
                f"{r.advanced_seconds or 0.0:.1f}",
                r.advanced_kept,
            ]
        rows.append(row)
    return markdown_table(header, rows)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.accuracy",
        description="Held-out top-1 accuracy of trained iterations beside a plain baseline.",
    )
    parser.add_argument(
        "--datasets",
        default=DEFAULT_DATASETS,
        help=f"comma-separated datasets (default {DEFAULT_DATASETS})",
    )
    parser.add_argument(
        "--sizes",
        default=DEFAULT_SIZES,
        help=f"training photos per tag, comma-separated (default {DEFAULT_SIZES})",
    )
    parser.add_argument(
        "--seeds",
        default=DEFAULT_SEEDS,
        help=f"split seeds, comma-separated (default {DEFAULT_SEEDS})",
    )
    parser.add_argument("--quick", action="store_true", help="seed 0 only")
    parser.add_argument(
        "--domain",
        choices=sorted(DOMAINS),
        default="compact",
        help="compact: EfficientNet-Lite0 at 224 px (default); general: Lite2 (+Lite0) at 260 px",
    )
    parser.add_argument(
        "--no-advanced", action="store_true", help="do not check for (or run) Advanced training"
    )
    args = parser.parse_args(argv)
    try:
        args.dataset_list = [s.strip() for s in str(args.datasets).split(",") if s.strip()]
        args.size_list = [int(s) for s in str(args.sizes).split(",") if s.strip()]
        args.seed_list = [0] if args.quick else [int(s) for s in str(args.seeds).split(",")]
    except ValueError:
        parser.error("--sizes and --seeds take comma-separated integers")
    if any(s < 5 for s in args.size_list):
        parser.error("sizes must be at least 5 (the API's minimum per tag)")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    # The trainer's feature cache uses more threads than the storage SDK keeps connections.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    domain_id, backbone_label = DOMAINS[args.domain]
    domain = catalog.find_domain(domain_id)
    assert domain is not None
    started = time.perf_counter()
    out(f"# Accuracy benchmark\n\n{machine_line('bench.accuracy', argv)}\n")
    results: list[Result] = []
    advanced: AdvancedSupport | None = AdvancedSupport(False, "not checked (--no-advanced)")
    if not args.no_advanced:
        advanced = None
    for dataset in args.dataset_list:
        classes = dataset_files(dataset)
        photos = PhotoCache(classes)
        feature_start = time.perf_counter()
        photos.reference_features(domain)
        log(
            f"{dataset}: reference features of {sum(map(len, classes.values()))} photos in "
            f"{time.perf_counter() - feature_start:.0f} s"
        )
        with serve_api() as served:
            for per_tag in args.size_list:
                for seed in args.seed_list:
                    split = make_split(classes, per_tag, seed)
                    result, advanced = run_one(served, dataset, domain_id, photos, split, advanced)
                    results.append(result)
                    log(
                        f"{dataset} {per_tag}/tag seed {seed}: Regular {100 * result.regular:.1f}%"
                        f", reference {100 * result.reference:.1f}% "
                        f"({time.perf_counter() - started:.0f} s so far)"
                    )
    assert advanced is not None
    for dataset in args.dataset_list:
        group = [r for r in results if r.dataset == dataset]
        classes_count = len(dataset_files(dataset))
        out(
            f"## {dataset} ({classes_count} classes), {args.domain} domain ({backbone_label}): "
            f"top-1 accuracy on the held-out photos, mean ± std over seeds\n"
        )
        out(dataset_table(group, advanced.supported) + "\n")
    if not advanced.supported:
        out(f"Advanced: not yet implemented ({advanced.reason}).\n")
    else:
        out(f"Advanced: supported ({advanced.reason}).\n")
    out("## Every run\n")
    out(runs_table(results, advanced.supported) + "\n")
    out(
        "Regular: the server's iteration (trained by `process_one` in this process), its "
        "model.onnx run by onnxruntime on every held-out photo. Reference: this script's "
        f"logistic regression (L2 {L2:g}, LBFGS) on frozen view-0 features of the same "
        "backbone. Train s: train request until `process_one` returned. "
        f"Whole benchmark: {time.perf_counter() - started:.0f} s.\n"
    )
    out(end_line("API server, Azurite, the trainer and onnxruntime share the machine's CPUs"))


if __name__ == "__main__":
    main()
