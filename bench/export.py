"""Benchmark: every export format's size, speed and agreement with the served ONNX model.

Run from the repository root:

    .venv/bin/python -m bench.export [--train 10] [--test 20] [--runs 50] [--backbone lite0]

It trains a model in-process, as the trainer would for those photos but without Azurite or the
API (trainer_job/exports/sample_model.py): the backbone's features of --train flowers5 photos per
class (5 classes), a linear head, exported to ONNX. Then, for every platform and flavor, it
builds the export zip (build_export) and measures:

- the zip's size and the model file's (or model folder's) size;
- latency per image: batch 1, p50 over --runs calls of a preprocessed held-out photo, in this
  process with the format's own runtime on one thread (onnxruntime, OpenVINO, LiteRT; TensorFlow
  for the SavedModel, timed in its child process); Docker: POST /image of the JPEG to app.py run
  as a process (HTTP, JPEG decoding and preprocessing included); Core ML: macOS only;
- top-1 agreement with the float32 ONNX model (onnxruntime) on --test held-out photos per class.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bench.common import (
    dataset_files,
    end_line,
    log,
    machine_line,
    markdown_table,
    out,
    percentile,
)
from functions.domain.preprocessing import Preprocessing
from tools.azurite import free_port
from trainer_job.exports import FLAVORS, ExportError, build_export, load_export
from trainer_job.exports.bundle import unpack
from trainer_job.exports.onnx_formats import probabilities
from trainer_job.exports.platforms import resolve
from trainer_job.exports.sample_model import load_photos, train_sample_model
from trainer_job.exports.tensorflow_format import run_saved_model

BACKBONES = {
    "lite0": "efficientnet-lite0",
    "lite2": "efficientnet-lite2",
    "lite2+lite0": "efficientnet-lite2+efficientnet-lite0",  # the General domain, both read
}


def _model_size(zip_bytes: bytes, files: list[str]) -> int:
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        return sum(archive.getinfo(name).file_size for name in files)


def _p50_ms(call: Callable[[], object], runs: int) -> float:
    call()  # warm-up: first-call allocations and compilation
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * percentile(times, 50)


def _http_p50_ms(folder: Path, jpeg: bytes, runs: int) -> float:
    """p50 of POST /image to the export's app.py, run as a process."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port), "--host", "127.0.0.1"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url + "/", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("app.py did not start") from None
                time.sleep(0.2)

        def post() -> None:
            request = urllib.request.Request(
                url + "/image", jpeg, {"Content-Type": "application/octet-stream"}
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()

        return _p50_ms(post, runs)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _measure(
    platform: str,
    flavor: str | None,
    folder: Path,
    model_path: str,
    images: np.ndarray,
    reference: np.ndarray,
    jpeg: bytes,
    runs: int,
) -> tuple[str, str]:
    """(latency, top-1 agreement) of the export unpacked in `folder`, as table cells."""
    try:
        if flavor == "TensorFlowNormal":
            result, times = run_saved_model(folder, model_path, images, runs)
            latency = f"{1000 * percentile(list(times), 50):.1f} ms"
        else:
            run = load_export(platform, flavor, folder, threads=1)
            batches = [run(images[i : i + 16]) for i in range(0, len(images), 16)]
            result = np.concatenate(batches)
            if platform == "DockerFile":
                latency = f"{_http_p50_ms(folder, jpeg, runs):.1f} ms (HTTP, JPEG)"
            else:
                latency = f"{_p50_ms(lambda: run(images[:1]), runs):.1f} ms"
    except ExportError as error:
        reason = str(error).split(" (")[0]
        return f"n/a: {reason}", "n/a"
    agreement = float(np.mean(result.argmax(axis=1) == reference))
    return latency, f"{100 * agreement:.1f} %"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=10, help="training photos per class")
    parser.add_argument("--test", type=int, default=20, help="held-out photos per class")
    parser.add_argument("--runs", type=int, default=50, help="timed batch-1 calls per format")
    parser.add_argument("--backbone", choices=sorted(BACKBONES), default="lite0")
    args = parser.parse_args(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    out(machine_line("bench.export", argv))

    files = dataset_files("flowers5")
    log(f"training on {args.train} photos x {len(files)} classes …")
    inputs = train_sample_model(
        {name: load_photos(paths[: args.train]) for name, paths in files.items()},
        BACKBONES[args.backbone],
    )
    preprocessing = Preprocessing.for_size(inputs.preprocessing.size)
    test_files = [p for paths in files.values() for p in paths[args.train : args.train + args.test]]
    images = np.stack([preprocessing(image) for image in load_photos(test_files)])
    reference = probabilities(inputs.model_onnx, images).argmax(axis=1)
    jpeg = test_files[0].read_bytes()

    rows = []
    for platform, flavors in FLAVORS.items():
        # None (the default) and the flavor it stands for are one export: measure it once.
        named: dict[str, str | None] = {}
        for flavor in flavors:
            if named.get(resolve(platform, flavor)) is None:
                named[resolve(platform, flavor)] = flavor
        for flavor in named.values():
            name = f"{platform} / {flavor or 'default'}"
            log(f"{name}: building …")
            start = time.perf_counter()
            zip_bytes = build_export(platform, flavor, inputs)
            build_seconds = time.perf_counter() - start
            with tempfile.TemporaryDirectory() as folder_name:
                folder = Path(folder_name)
                model = unpack(zip_bytes, folder)["model"]
                model_path, model_files = str(model["file"]), list(model["files"])
                log(f"{name}: measuring …")
                latency, agreement = _measure(
                    platform, flavor, folder, model_path, images, reference, jpeg, args.runs
                )
            rows.append(
                [
                    f"`{platform}` / `{flavor or '(default)'}`",
                    f"{len(zip_bytes) / 2**20:.1f} MiB",
                    f"{_model_size(zip_bytes, model_files) / 2**20:.1f} MiB",
                    f"{build_seconds:.1f} s",
                    latency,
                    agreement,
                ]
            )

    out()
    out(
        f"{BACKBONES[args.backbone]}, {len(files)} flowers5 classes, head fitted on "
        f"{args.train} photos per class; agreement on {len(images)} held-out photos; latency "
        f"p50 of {args.runs} batch-1 calls on one thread."
    )
    out()
    header = ["export", "zip", "model file(s)", "build", "latency / image", "top-1 agreement"]
    out(markdown_table(header, rows))
    out()
    out(end_line("the exports and their runtimes share the machine's CPUs"))


if __name__ == "__main__":
    main()
