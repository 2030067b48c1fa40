"""Benchmark: how fast `python -m tools.migrate` copies projects between two local instances.

Run from the repository root:

    .venv/bin/python -m bench.migrate [--per-class 100] [--detection 194] [--rate 10]

It starts two instances (each its own Azurite in memory and the API over HTTP, as the
integration tests do), fills the source with flowers5 (`--per-class` photos of each of its 5
classes, tagged) and the raccoon detection set (`--detection` photos with their boxes), then
migrates every project with the tool's own `main` at `--rate` calls a second per endpoint,
then runs it again (nothing left to copy). It prints a Markdown table to stdout; the tool's
own summaries and progress go to stderr. Then, inside the source instance, it trains the
flowers5 project once and copies each project with Custom Vision's export and import
(`GET …/export`, `POST /projects/import`, the trainer worker's copy of images and iterations),
timed from the import request until the copy's status is Succeeded. Client, both servers and
both Azurites share this machine's CPUs.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    BATCH,
    DATASETS,
    TRAINING_KEY,
    Served,
    api_client,
    create_project,
    create_tags,
    dataset_files,
    end_line,
    expect_ok,
    get_iteration,
    log,
    machine_line,
    markdown_table,
    request_training,
    serve_api,
    upload_tagged,
)
from tools.migrate.__main__ import main as migrate
from trainer_job.__main__ import watching

GENERAL_DETECTION = "da2e3a8a-40a5-4171-82f4-58522f70fbc1"


def fill_classification(client: httpx.Client, per_class: int) -> tuple[int, int]:
    """flowers5 photos, tagged; (images, bytes)."""
    classes = {k: v[:per_class] for k, v in dataset_files("flowers5").items()}
    project_id = create_project(client, "flowers5")
    tag_ids = create_tags(client, project_id, list(classes))
    photos = [(p, t) for (_, files), t in zip(classes.items(), tag_ids, strict=True) for p in files]
    upload_tagged(client, project_id, photos)
    return len(photos), sum(p.stat().st_size for p, _ in photos)


def fill_detection(client: httpx.Client, count: int) -> tuple[int, int]:
    """raccoon photos with their boxes; (images, bytes)."""
    folder = DATASETS / "raccoon"
    labelled = json.loads((folder / "regions.json").read_text(encoding="utf-8"))
    project_id = create_project(client, "raccoon", GENERAL_DETECTION)
    (tag_id,) = create_tags(client, project_id, labelled["tags"])
    files = sorted(labelled["images"].items())[:count]
    for start in range(0, len(files), BATCH):
        entries = []
        for name, regions in files[start : start + BATCH]:
            data = (folder / "images" / name).read_bytes()
            boxes = [{k: r[k] for k in ("left", "top", "width", "height")} for r in regions]
            entries.append(
                {
                    "name": name,
                    "contents": base64.b64encode(data).decode("ascii"),
                    "regions": [{"tagId": tag_id, **box} for box in boxes],
                }
            )
        summary = expect_ok(
            client.post(f"/projects/{project_id}/images/files", json={"images": entries}),
            "upload regions",
        )
        if not summary["isBatchSuccessful"]:
            raise RuntimeError(f"upload with regions failed: {summary['images'][:1]}")
    size = sum((folder / "images" / name).stat().st_size for name, _ in files)
    return len(files), size


def run_tool(source: Served, target: Served, state: Path, rate: float) -> tuple[int, float]:
    """The tool's exit status and wall seconds; its output to stderr."""
    argv = [
        *("--source-endpoint", source.endpoint, "--source-key", TRAINING_KEY),
        *("--target-endpoint", target.endpoint, "--target-key", TRAINING_KEY),
        *("--state", str(state), "--rate", str(rate)),
    ]
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        status = migrate(argv)
    return status, time.perf_counter() - started


def wait_for(check: Any, what: str, timeout_s: float = 1800) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not finish in {timeout_s:.0f} s")
        time.sleep(0.05)


def project_imports(source: Served) -> list[list[str]]:
    """Train flowers5, then export and import every project inside `source`: a row each."""
    rows = []
    with api_client(source.endpoint) as client, watching(source.storage, source.settings, 0.05):
        projects = expect_ok(client.get("/projects"), "projects")
        flowers = next(p["id"] for p in projects if p["name"] == "flowers5")
        log("training flowers5")
        iteration = request_training(client, flowers)

        def trained() -> bool:
            status = get_iteration(client, flowers, iteration["id"])["status"]
            if status == "Failed":
                raise SystemExit("training flowers5 failed")
            return bool(status == "Completed")

        wait_for(trained, "training")
        for project in projects:
            export = expect_ok(client.get(f"/projects/{project['id']}/export"), "export")
            log(f"importing {project['name']}")
            started = time.perf_counter()
            copy = expect_ok(
                client.post("/projects/import", params={"token": export["token"]}), "import"
            )

            def done(project_id: str = copy["id"], name: str = project["name"]) -> bool:
                status = expect_ok(client.get(f"/projects/{project_id}"), "project")["status"]
                if status == "Failed":
                    raise SystemExit(f"importing {name} failed")
                return bool(status == "Succeeded")

            wait_for(done, "the import")
            seconds = time.perf_counter() - started
            images = export["imageCount"]
            rows.append(
                [
                    project["name"], f"{images}", f"{export['iterationCount']}",
                    f"{export['estimatedImportTimeInMS'] / 1000:.1f}", f"{seconds:.1f}",
                    f"{images / seconds:.1f}",
                ]
            )  # fmt: skip
    return rows


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.migrate", description=__doc__)
    parser.add_argument("--per-class", type=int, default=100, help="flowers5 photos per class")
    parser.add_argument("--detection", type=int, default=194, help="raccoon photos (0: none)")
    parser.add_argument("--rate", type=float, default=10.0, help="calls a second per endpoint")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    print(machine_line("bench.migrate", argv), flush=True)
    print()
    with serve_api() as source, serve_api() as target:
        with api_client(source.endpoint) as client:
            log("filling the source")
            images, size = fill_classification(client, args.per_class)
            if args.detection:
                more, more_size = fill_detection(client, args.detection)
                images, size = images + more, size + more_size
        with tempfile.TemporaryDirectory() as folder:
            state = Path(folder) / "state.json"
            log(f"migrating {images} images")
            first, seconds = run_tool(source, target, state, args.rate)
            log("migrating again")
            second, again = run_tool(source, target, state, args.rate)
        imports = project_imports(source)
    if first or second:
        raise SystemExit(f"the migration did not end equal (exit {first}, then {second})")
    rows = [
        [
            f"{images}",
            f"{size / 2**20:.1f}",
            f"{args.rate:g}",
            f"{seconds:.1f}",
            f"{images / seconds:.1f}",
            f"{size / 2**20 / seconds:.1f}",
            f"{again:.1f}",
        ]
    ]
    header = [
        "images",
        "MiB",
        "calls/s per endpoint",
        "copy s",
        "images/s",
        "MiB/s",
        "second run s (nothing to copy)",
    ]
    print(markdown_table(header, rows))
    print()
    print("Project export and import inside the source instance:")
    print()
    header = ["project", "images", "iterations", "estimated s", "import s", "images/s"]
    print(markdown_table(header, imports))
    print(end_line("the tool, both API servers and both Azurites share the machine's CPUs"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
