"""Benchmark: how long training takes, from the train request to a Completed iteration.

Run from the repository root:

    .venv/bin/python -m bench.train_speed [--sizes 10,30,100] [--add 10] [--domain compact] \
        [--worker cold|warm|both]
    .venv/bin/python -m bench.train_speed --domain general      # EfficientNet-Lite2, 260 px

For each size it starts a fresh Azurite (in memory) and the API over HTTP (bench/common.py),
creates a project with 5 flowers5 tags of SIZE photos each (uploaded through
POST …/images/files, not timed), then:

1. POST …/train, and right after the answer starts `python -m trainer_job` as a separate
   process, exactly what the container job runs: one queued job, then exit. The clock runs
   from just before the train request until a poll of GET …/iterations/{id} (every
   --poll seconds) sees Completed, so it includes the job start: Python, imports, torch, the
   backbone's weights.
2. Uploads --add more photos (spread over the tags) and trains again the same way: the
   feature cache in blob storage should leave only the new photos to featurise.

With `--worker warm` (and in the second half of `both`, the default) the trainer is instead one
`python -m trainer_job --watch` process, started with the API before the first training of a
size and kept for its retrain, as `make run` runs it: torch is imported and the backbone
loaded once.

Per run it prints the measured seconds, the stages seen in the trainer's log lines (read as
they arrive), the trainer's own stage timings from models/{projectId}/{iterationId}/
manifest.json ("timings", "trainingSeconds") and torch's thread count in the trainer. Before
the first run one untimed `python -c 'import torch; …'` warms the disk cache and reports
torch.get_num_threads() in a fresh process with the trainer's environment.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from PIL import Image, ImageOps

from bench.common import (
    DOMAINS,
    ROOT,
    Served,
    api_client,
    check_batch,
    create_project,
    create_tags,
    dataset_files,
    end_line,
    files_request,
    find_thread_count,
    get_iteration,
    log,
    machine_line,
    markdown_table,
    out,
    read_artifact,
    request_training,
    serve_api,
)
from functions.domain import artifacts

DEFAULT_SIZES = "10,30,100"
DATASET = "flowers5"
STAGE_LINE = re.compile(r"iteration [0-9a-f-]+: (?P<stage>.+) \(\d+%\)$")
NEW_FEATURES = re.compile(r"Computing features \((?P<count>\d+) new images\)")
THREADS_PROBE = (
    "import torch, trainer_job.tasks.classification.train; "  # the trainer's imports, untimed
    "print(torch.get_num_threads(), torch.get_num_interop_threads())"
)


@dataclass
class TrainerLog:
    """A trainer process's stderr lines with the time.perf_counter() each one arrived at."""

    lines: list[tuple[float, str]] = field(default_factory=list)

    def read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self.lines.append((time.perf_counter(), raw.decode(errors="replace").rstrip()))

    def stages(self, since: int = 0) -> list[tuple[float, str]]:
        found = []
        for at, line in self.lines[since:]:
            match = STAGE_LINE.search(line)
            if match:
                found.append((at, match["stage"]))
        return found

    def tail(self, count: int = 30) -> str:
        return "\n".join(line for _, line in self.lines[-count:])


@dataclass
class Run:
    kind: str  # "first" or "retrain"
    worker: str  # "cold" (a new process per job) or "warm" (one --watch process)
    per_tag: int
    images: int  # trained on
    new_images: int  # featurised in this run (from the trainer's progress stage)
    force_train: bool
    total_s: float  # train request sent -> Completed seen
    request_s: float  # the train request itself
    startup_s: float  # trainer process spawned -> its first progress line
    loading_s: float  # "Loading images" -> "Computing features" (images + feature cache)
    learning_s: float  # "Computing features" -> "Exporting the model"
    export_s: float  # "Exporting the model" -> Completed seen (ONNX, verify, artifacts)
    process_s: float  # trainer process spawned -> exited
    training_seconds: float  # manifest "trainingSeconds"
    timings: dict[str, float]  # manifest "timings"
    threads: str
    added: str = ""  # what the retrain added


@dataclass(frozen=True)
class Photo:
    path: Path
    mirrored: bool = False  # upload the photo mirrored, as a new JPEG (distinct bytes)

    def name_and_bytes(self) -> tuple[str, bytes]:
        if not self.mirrored:
            return self.path.name, self.path.read_bytes()
        buffer = io.BytesIO()
        with Image.open(self.path) as image:
            ImageOps.mirror(image.convert("RGB")).save(buffer, "JPEG", quality=92)
        return "mirror-" + self.path.name, buffer.getvalue()


def photo_plan(per_tag: int, add: int) -> tuple[dict[str, list[Photo]], dict[str, list[Photo]]]:
    """The first `per_tag` photos of each class, and the `add` photos added for the retrain
    (spread over the classes in turn): unseen photos of the class while it has any left, then
    mirrored copies of its first photos."""
    classes = dataset_files(DATASET)
    names = list(classes)
    counts = dict.fromkeys(names, 0)
    for i in range(add):
        counts[names[i % len(names)]] += 1
    first: dict[str, list[Photo]] = {}
    extra: dict[str, list[Photo]] = {}
    for name, files in classes.items():
        if len(files) < per_tag:
            raise SystemExit(f"{DATASET}/{name} holds {len(files)} photos, fewer than {per_tag}")
        first[name] = [Photo(p) for p in files[:per_tag]]
        unseen = [Photo(p) for p in files[per_tag : per_tag + counts[name]]]
        mirrored = [Photo(p, mirrored=True) for p in files[: counts[name] - len(unseen)]]
        extra[name] = unseen + mirrored
    return first, extra


def upload(
    served: Served, project_id: str, photos: dict[str, list[Photo]], tags: dict[str, str]
) -> int:
    """Upload the photos with their class's tag, 64 per request; how many were uploaded."""
    pairs = [(p, tags[name]) for name, files in photos.items() for p in files]
    with api_client(served.endpoint) as client:
        for start in range(0, len(pairs), 64):
            rows: list[tuple[str, bytes, str | None]] = []
            for photo, tag_id in pairs[start : start + 64]:
                name, data = photo.name_and_bytes()
                rows.append((name, data, tag_id))
            check_batch(client.send(files_request(client, project_id, rows)), len(rows), "upload")
    return len(pairs)


def threads_probe(served: Served) -> str:
    """torch.get_num_threads() (and interop threads) in a fresh process with the trainer's
    environment; also warms the disk cache for the timed trainer processes."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", THREADS_PROBE],
        env=served.trainer_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    intra, interop = result.stdout.split()
    log(
        f"torch threads probe: {intra} intra-op, {interop} inter-op "
        f"({time.perf_counter() - started:.1f} s)"
    )
    return f"{intra} (probe; inter-op {interop})"


class Worker:
    """The trainer: a new `python -m trainer_job` per job, exactly what the container job runs
    (cold), or one `python -m trainer_job --watch` for every job of a size, started before the
    first (warm: torch imported and the backbone loaded once)."""

    def __init__(self, served: Served, warm: bool) -> None:
        self.served, self.warm = served, warm
        self.log = TrainerLog()
        self.process: subprocess.Popen[bytes] | None = None
        self.reader: threading.Thread | None = None

    def __enter__(self) -> Worker:
        if self.warm:
            self._spawn("--watch")
        return self

    def __exit__(self, *_: object) -> None:
        if self.warm and self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=60)

    def _spawn(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "trainer_job", *args],
            env={**self.served.trainer_env(), "PYTHONUNBUFFERED": "1"},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert self.process.stderr is not None
        self.reader = threading.Thread(target=self.log.read, args=(self.process.stderr,))
        self.reader.daemon = True
        self.reader.start()

    def start_job(self) -> tuple[float, int]:
        """(when the job's trainer started, where its log lines begin)."""
        if self.warm:
            return time.perf_counter(), len(self.log.lines)
        started = time.perf_counter()
        self.log = TrainerLog()  # one process, one log
        self._spawn()
        return started, 0

    def exited(self) -> bool:
        """Whether the trainer process ended (a warm worker never does while it works)."""
        return self.process is not None and self.process.poll() is not None

    def finish_job(self) -> None:
        if not self.warm and self.process is not None and self.reader is not None:
            self.process.wait(timeout=120)
            self.reader.join(timeout=10)


def train_once(
    served: Served,
    worker: Worker,
    project_id: str,
    kind: str,
    per_tag: int,
    images: int,
    probe: str,
    poll: float,
) -> Run:
    force = False
    with api_client(served.endpoint) as client:
        sent = time.perf_counter()
        response = client.post(f"/projects/{project_id}/train")
        if response.status_code == 400 and "TrainingNotNeeded" in response.text:
            force = True  # not expected: new images change the fingerprint
            sent = time.perf_counter()
            iteration = request_training(client, project_id, force=True)
        elif response.status_code != 200:
            raise RuntimeError(f"train: HTTP {response.status_code}: {response.text[:500]}")
        else:
            iteration = response.json()
        answered = time.perf_counter()
        iteration_id = str(iteration["id"])
        spawned, since = worker.start_job()
        trainer_log = worker.log
        exited: float | None = None
        while True:
            state = get_iteration(client, project_id, iteration_id)
            now = time.perf_counter()
            if exited is None and worker.exited():
                exited = now
            if state["status"] == "Completed":
                completed = now
                break
            if state["status"] == "Failed" or (exited is not None and now - exited > 5):
                raise RuntimeError(
                    f"{kind} training of {images} images ended {state['status']}: "
                    f"{state.get('trainingErrorDetails')}\n{trainer_log.tail()}"
                )
            time.sleep(poll)
        worker.finish_job()
        exited = float("nan") if worker.warm else exited or time.perf_counter()
    stored = read_artifact(served, project_id, iteration_id, artifacts.MANIFEST)
    manifest = artifacts.ModelManifest.from_dict(json.loads(stored))
    stages = trainer_log.stages(since)
    at = {stage.split(" (")[0]: t for t, stage in reversed(stages)}
    new = next((NEW_FEATURES.search(s) for _, s in stages if NEW_FEATURES.search(s)), None)

    def span(start: str, end: str | None) -> float:
        end_at = completed if end is None else at.get(end, float("nan"))
        return end_at - at.get(start, float("nan"))

    recorded = find_thread_count(manifest.to_dict())
    return Run(
        kind=kind,
        worker="warm" if worker.warm else "cold",
        per_tag=per_tag,
        images=images if manifest.image_count is None else manifest.image_count,
        new_images=int(new["count"]) if new else -1,
        force_train=force,
        total_s=completed - sent,
        request_s=answered - sent,
        startup_s=(stages[0][0] if stages else float("nan")) - spawned,
        loading_s=span("Loading images", "Computing features"),
        learning_s=span("Computing features", "Exporting the model"),
        export_s=span("Exporting the model", None),
        process_s=exited - spawned,
        training_seconds=float(
            "nan" if manifest.training_seconds is None else manifest.training_seconds
        ),
        timings={k: float(v) for k, v in manifest.timings.items()},
        threads=f"{recorded} (manifest)" if recorded is not None else probe,
    )


def run_size(per_tag: int, add: int, domain_id: str, poll: float, warm: bool) -> list[Run]:
    first, extra = photo_plan(per_tag, add)
    runs = []
    with serve_api() as served, Worker(served, warm) as worker:
        probe = threads_probe(served)
        with api_client(served.endpoint) as client:
            project_id = create_project(client, f"bench-train-{per_tag}", domain_id)
            names = list(first)
            tags = dict(zip(names, create_tags(client, project_id, names), strict=True))
        started = time.perf_counter()
        count = upload(served, project_id, first, tags)
        log(f"{per_tag}/tag: uploaded {count} photos in {time.perf_counter() - started:.1f} s")
        runs.append(train_once(served, worker, project_id, "first", per_tag, count, probe, poll))
        log(f"  first training: {runs[-1].total_s:.1f} s")
        if add:
            count += upload(served, project_id, extra, tags)
            runs.append(
                train_once(served, worker, project_id, "retrain", per_tag, count, probe, poll)
            )
            mirrored = sum(p.mirrored for files in extra.values() for p in files)
            added = sum(len(files) for files in extra.values())
            runs[-1].added = (
                f"+{added} unseen"
                if not mirrored
                else f"+{added} mirrored"
                if mirrored == added
                else f"+{added - mirrored} unseen, {mirrored} mirrored"
            )
            log(f"  retrain: {runs[-1].total_s:.1f} s")
    return runs


def fmt(value: float, digits: int = 1) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"  # NaN: the stage was not seen


def runs_table(runs: Sequence[Run]) -> str:
    keys: list[str] = []
    for run in runs:
        keys += [k for k in run.timings if k not in keys]
    header = [
        "run",
        "images (featurised now)",
        "train request → Completed s",
        "trainer start (warm: train answered) → first stage s",
        "loading images s",
        "features → head s",
        "export + artifacts s",
        "trainer process s",
        "manifest trainingSeconds",
        *(f"manifest {k} s" for k in keys),
        "torch threads",
    ]
    rows = []
    for run in runs:
        label = f"{run.per_tag}/tag, first" if run.kind == "first" else f"{run.added}, retrain"
        label += f", {run.worker}"
        if run.force_train:
            label += " (forceTrain)"
        new = "?" if run.new_images < 0 else str(run.new_images)
        rows.append(
            [
                label,
                f"{run.images} ({new})",
                fmt(run.total_s),
                fmt(run.startup_s),
                fmt(run.loading_s),
                fmt(run.learning_s),
                fmt(run.export_s),
                fmt(run.process_s),
                fmt(run.training_seconds, 2),
                *(fmt(run.timings.get(k, float("nan")), 2) for k in keys),
                run.threads,
            ]
        )
    return markdown_table(header, rows)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.train_speed",
        description="Seconds from POST …/train to a Completed iteration, trainer job included.",
    )
    parser.add_argument(
        "--sizes",
        default=DEFAULT_SIZES,
        help=f"photos per tag, comma-separated (default {DEFAULT_SIZES}; 5 flowers5 tags)",
    )
    parser.add_argument(
        "--add",
        type=int,
        default=10,
        help="photos added (over all tags) before the retrain; 0 skips it (default 10)",
    )
    parser.add_argument(
        "--domain",
        choices=sorted(DOMAINS),
        default="compact",
        help="compact: EfficientNet-Lite0 at 224 px (default); general: Lite2 at 260 px",
    )
    parser.add_argument(
        "--worker",
        choices=["cold", "warm", "both"],
        default="both",
        help="cold: a new trainer process per job; warm: one --watch worker (default both)",
    )
    parser.add_argument(
        "--poll", type=float, default=0.2, help="seconds between iteration polls (default 0.2)"
    )
    args = parser.parse_args(argv)
    try:
        args.size_list = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    except ValueError:
        parser.error("--sizes takes comma-separated integers, e.g. 10,30,100")
    if any(s < 5 for s in args.size_list) or args.add < 0 or args.poll <= 0:
        parser.error("sizes must be at least 5 (the API's minimum per tag), --add >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    domain_id, backbone = DOMAINS[args.domain]
    started = time.perf_counter()
    out(f"# Training speed benchmark\n\n{machine_line('bench.train_speed', argv)}\n")
    runs: list[Run] = []
    modes = [False, True] if args.worker == "both" else [args.worker == "warm"]
    for warm in modes:
        for per_tag in args.size_list:
            runs += run_size(per_tag, args.add, domain_id, args.poll, warm)
    out(
        f"## Regular training, {args.domain} domain ({backbone}), 5 {DATASET} tags; "
        "a fresh Azurite and API per size; cold: `python -m trainer_job` started as a new "
        "process right after each train request; warm: one `python -m trainer_job --watch` "
        "started with the API, before the first training of its size; Completed seen by "
        f"polling every {args.poll:g} s\n"
    )
    out(runs_table(runs) + "\n")
    out(
        f"Retrain: {args.add} more photos (spread over the tags; unseen photos while a class "
        "has any left, else mirrored copies of its first photos), trained with a plain "
        "train request. Stage columns come from the trainer's log lines as they arrived: "
        "start → first stage is Python, imports (torch included) and the queue read; features "
        "→ head covers the backbone load, features, cross-validation and the final head; "
        "the manifest columns are the trainer's own timings. "
        f"Whole benchmark: {time.perf_counter() - started:.0f} s.\n"
    )
    out(end_line("client, API server, Azurite and the trainer share the machine's CPUs"))


if __name__ == "__main__":
    main()
