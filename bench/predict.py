"""Benchmark: prediction speed, from the raw model to the service under concurrent load.

Run from the repository root:

    .venv/bin/python -m bench.predict [--clients 4] [--seconds 30] [--domain compact]

It starts a fresh Azurite (in memory) and the API as its own process (uvicorn, one worker,
as `make run` serves it), trains a model on 5 flowers5 tags of 30 photos each with
`python -m trainer_job`, publishes it, and then measures, on this machine in one run:

(a) the floor: onnxruntime running that iteration's model.onnx in this process on one
    preprocessed image (batch 1): latency with the session options the service uses
    (CV_ONNX_THREADS) and with onnxruntime's default threads; throughput with one call per
    core at once; and, separately, decoding and preprocessing the test JPEG with the
    service's own code;
(b) one client calling POST …/classify/iterations/{name}/image/nostore (and /image, which
    also stores the prediction) with the same real JPEG over HTTP, one request at a time:
    latency p50 and p99;
(c) --clients concurrent clients calling …/image/nostore for --seconds, then (d) the same on
    …/image (stored): throughput and the number of errors (any answer but 200, or a failed
    request).

The ratios compare (b) with (a)'s model latency plus decoding, and (c) with (a)'s best
throughput. The clients, the API and Azurite share the
machine's cores, so the service's figures include the load the clients put on it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import numpy as np

from bench.common import (
    DOMAINS,
    PREDICTION_KEY,
    TRAINING_KEY,
    create_project,
    create_tags,
    dataset_files,
    end_line,
    expect_ok,
    get_iteration,
    log,
    machine_line,
    markdown_table,
    out,
    percentile,
    process_env,
    request_training,
    upload_tagged,
)
from functions.domain import artifacts, names
from functions.services.model_cache import load_model
from functions.services.prediction import decode_for
from functions.settings import Settings
from functions.storage.clients import Storage
from tools.azurite import ROOT, free_port, start_azurite

PER_TAG = 30
TAGS = 5
PUBLISH_NAME = "bench"


def _wait_until_up(endpoint: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the API process exited")
        try:
            if httpx.get(endpoint + "/docs", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the API did not start within 60 s")


def _train_and_publish(endpoint: str, env: dict[str, str], domain_id: str) -> tuple[str, str]:
    headers = {"Training-Key": TRAINING_KEY}
    base = endpoint + "/customvision/v3.3/training"
    with httpx.Client(base_url=base, headers=headers, timeout=300) as client:
        project_id = create_project(client, "bench-predict", domain_id)
        classes = dict(list(dataset_files("flowers5").items())[:TAGS])
        tag_ids = create_tags(client, project_id, list(classes))
        photos = [
            (path, tag_id)
            for (_, paths), tag_id in zip(classes.items(), tag_ids, strict=True)
            for path in paths[:PER_TAG]
        ]
        upload_tagged(client, project_id, photos)
        iteration = request_training(client, project_id)
        log(f"training {len(photos)} photos with python -m trainer_job …")
        subprocess.run([sys.executable, "-m", "trainer_job"], cwd=ROOT, env=env, check=True)
        iteration = get_iteration(client, project_id, iteration["id"])
        if iteration["status"] != "Completed":
            raise RuntimeError(f"training ended {iteration['status']}")
        expect_ok(
            client.post(
                f"/projects/{project_id}/iterations/{iteration['id']}/publish",
                params={"publishName": PUBLISH_NAME, "predictionId": "bench"},
            ),
            "publish",
        )
        return project_id, str(iteration["id"])


def _test_photo() -> Path:
    """A held-out photo of median file size among the first untrained daisies."""
    daisies = dataset_files("flowers5")["daisy"][PER_TAG : PER_TAG + 21]
    return sorted(daisies, key=lambda p: p.stat().st_size)[len(daisies) // 2]


def _timed(call: object, runs: int) -> list[float]:
    assert callable(call)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def _parallel_throughput(run: Callable[[], object], workers: int, seconds: float) -> float:
    """Calls per second of `run` from `workers` threads at once."""
    counts = [0] * workers
    stop_at = time.perf_counter() + seconds

    def worker(index: int) -> None:
        while time.perf_counter() < stop_at:
            run()
            counts[index] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / seconds


def _floor(
    storage: Storage, project_id: str, iteration_id: str, photo: bytes, threads: int
) -> dict[str, float]:
    """The model alone, in this process: latency with the service's session options and with
    onnxruntime's default threads; throughput with one call per core at once."""
    model = load_model(storage, project_id, iteration_id, threads=threads)
    default = load_model(storage, project_id, iteration_id, threads=0)
    decoded = decode_for(model, photo)
    batch = model.input_array(decoded.rgb)[np.newaxis]
    _timed(lambda: model.run(batch), 20)
    model_s = _timed(lambda: model.run(batch), 300)
    _timed(lambda: default.run(batch), 20)
    default_s = _timed(lambda: default.run(batch), 300)
    _timed(lambda: model.input_array(decode_for(model, photo).rgb), 10)
    decode_s = _timed(lambda: model.input_array(decode_for(model, photo).rgb), 300)
    cores = os.cpu_count() or 1
    return {
        "model_p50": percentile(model_s, 50),
        "default_p50": percentile(default_s, 50),
        "decode_p50": percentile(decode_s, 50),
        "throughput": _parallel_throughput(lambda: model.run(batch), cores, 10.0),
        "default_throughput": 1.0 / float(np.mean(default_s)),
    }


def _single_client(url: str, photo: bytes, runs: int) -> tuple[list[float], int]:
    headers = {"Prediction-Key": PREDICTION_KEY, "Content-Type": "application/octet-stream"}
    errors = 0
    samples = []
    with httpx.Client(headers=headers, timeout=60) as client:
        for _ in range(10):
            client.post(url, content=photo)
        for _ in range(runs):
            start = time.perf_counter()
            response = client.post(url, content=photo)
            samples.append(time.perf_counter() - start)
            errors += response.status_code != 200
    return samples, errors


def _load(url: str, photo: bytes, clients: int, seconds: float) -> tuple[int, int, list[float]]:
    headers = {"Prediction-Key": PREDICTION_KEY, "Content-Type": "application/octet-stream"}
    ok = [0] * clients
    errors = [0] * clients
    latencies: list[list[float]] = [[] for _ in range(clients)]
    start_line = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def worker(index: int) -> None:
        with httpx.Client(headers=headers, timeout=60) as client:
            client.post(url, content=photo)
            start_line.wait()
            while time.perf_counter() < stop_at[0]:
                began = time.perf_counter()
                try:
                    response = client.post(url, content=photo)
                    if response.status_code == 200:
                        ok[index] += 1
                    else:
                        errors[index] += 1
                except httpx.HTTPError:
                    errors[index] += 1
                latencies[index].append(time.perf_counter() - began)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    stop_at[0] = time.perf_counter() + 3600
    start_line.wait()
    stop_at[0] = time.perf_counter() + seconds
    for thread in threads:
        thread.join()
    return sum(ok), sum(errors), [x for xs in latencies for x in xs]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=200, help="requests of the single client")
    parser.add_argument("--domain", choices=sorted(DOMAINS), default="compact")
    args = parser.parse_args(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    out(machine_line("bench.predict", argv))

    azurite = start_azurite(None, free_port(), free_port(), free_port())
    port = free_port()
    env = process_env(azurite.connection_string)
    api = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "functions.api.app:create_app",
            "--factory",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(endpoint, api)
        settings = Settings(storage_connection_string=azurite.connection_string)
        storage = Storage.from_settings(settings)
        project_id, iteration_id = _train_and_publish(endpoint, env, DOMAINS[args.domain][0])
        path = _test_photo()
        photo = path.read_bytes()
        model_path = artifacts.artifact_path(project_id, iteration_id, artifacts.MODEL)
        model_bytes = len(storage.blobs.get(names.CONTAINER_MODELS, model_path) or b"")
        log("measuring the floor (a) …")
        threads = Settings().onnx_threads
        floor = _floor(storage, project_id, iteration_id, photo, threads)
        base = f"{endpoint}/customvision/v3.1/prediction/{project_id}/classify/iterations/"
        nostore = base + f"{PUBLISH_NAME}/image/nostore"
        stored = base + f"{PUBLISH_NAME}/image"
        log("one client (b) …")
        single, single_errors = _single_client(nostore, photo, args.runs)
        single_stored, stored_errors = _single_client(stored, photo, max(20, args.runs // 2))
        log(f"{args.clients} clients for {args.seconds:.0f} s (c) …")
        ok, errors, loaded = _load(nostore, photo, args.clients, args.seconds)
        log(f"{args.clients} clients for {args.seconds:.0f} s, stored (d) …")
        ok_stored, errors_stored, loaded_stored = _load(stored, photo, args.clients, args.seconds)
    finally:
        api.terminate()
        api.wait(timeout=30)
        azurite.stop()

    ms = 1000.0
    model_ms = floor["model_p50"] * ms
    decode_ms = floor["decode_p50"] * ms
    raw_throughput = floor["throughput"]
    throughput = ok / args.seconds
    p50 = percentile(single, 50) * ms
    out()
    out(
        f"Model: {DOMAINS[args.domain][1]}, {TAGS} tags x {PER_TAG} flowers5 photos, "
        f"model.onnx {model_bytes / 1e6:.1f} MB; test photo {path.parent.name}/{path.name} "
        f"({len(photo) / 1024:.0f} KB). onnxruntime intra-op threads per request: {threads} "
        f"(CV_ONNX_THREADS); {os.cpu_count()} cores."
    )
    out()
    cores = os.cpu_count()
    both = model_ms + decode_ms
    rows = [
        ["(a) raw model, batch 1, in-process, p50", f"{model_ms:.1f} ms", "1.00"],
        [
            "(a) the same with onnxruntime's default threads, p50",
            f"{floor['default_p50'] * ms:.1f} ms",
            "",
        ],
        ["(a) JPEG decode + preprocess, p50", f"{decode_ms:.1f} ms", ""],
        [
            "(b) one client, /image/nostore: p50 / p99",
            f"{p50:.1f} / {percentile(single, 99) * ms:.1f} ms",
            f"{p50 / both:.2f} x (model + decode)",
        ],
        [
            "(b) one client, /image (stored): p50 / p99",
            f"{percentile(single_stored, 50) * ms:.1f} / "
            f"{percentile(single_stored, 99) * ms:.1f} ms",
            f"{percentile(single_stored, 50) * ms / both:.2f} x (model + decode)",
        ],
        [
            f"(a) raw model throughput, {cores} calls at once, in-process",
            f"{raw_throughput:.1f} /s",
            "1.00",
        ],
        [
            "(a) the same, one call at a time with onnxruntime's default threads",
            f"{floor['default_throughput']:.1f} /s",
            f"{floor['default_throughput'] / raw_throughput:.2f}",
        ],
        [
            f"(c) {args.clients} HTTP clients, {args.seconds:.0f} s, /image/nostore",
            f"{throughput:.1f} /s (p50 {percentile(loaded, 50) * ms:.0f} ms, "
            f"p99 {percentile(loaded, 99) * ms:.0f} ms)",
            f"{throughput / raw_throughput:.2f} of raw",
        ],
        [
            f"(d) {args.clients} HTTP clients, {args.seconds:.0f} s, /image (stored)",
            f"{ok_stored / args.seconds:.1f} /s (p50 {percentile(loaded_stored, 50) * ms:.0f} ms, "
            f"p99 {percentile(loaded_stored, 99) * ms:.0f} ms)",
            f"{ok_stored / max(ok, 1):.2f} of nostore",
        ],
        [
            "errors",
            f"{errors + errors_stored} under load, {single_errors + stored_errors} single-client",
            "",
        ],
    ]
    out(markdown_table(["measure", "value", "ratio"], rows))
    out()
    out(end_line())


if __name__ == "__main__":
    main()
