"""Benchmark: dataset export and import, as a job of the API (what the portal uses) and with
`python -m tools.migrate.dataset` over the SDK (what works against Azure's Custom Vision too).

Run from the repository root:

    .venv/bin/python -m bench.datasets [--per-class 100] [--detection 194]

It starts one instance (Azurite in memory, the API over HTTP, the trainer's `process_one` in
this process for the jobs), fills it with flowers5 (`--per-class` tagged photos of each of its
5 classes, exported as folders) and the raccoon set (`--detection` photos with boxes, exported
as COCO), and for each: the API's export job until Done, the download, the import of that
archive into a new project until Done; then the command's export and import. Every import is
checked to add every photo. Prints a Markdown table to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    TRAINING_KEY,
    Served,
    api_client,
    create_project,
    end_line,
    expect_ok,
    log,
    machine_line,
    markdown_table,
    serve_api,
)
from bench.migrate import GENERAL_DETECTION, fill_classification, fill_detection
from tools.migrate.dataset import main as dataset_command
from trainer_job.__main__ import watching


def timed(action: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = action()
    return result, time.perf_counter() - started


def until_done(client: httpx.Client, project_id: str, job: dict[str, Any]) -> dict[str, Any]:
    while True:
        current = expect_ok(client.get(f"/projects/{project_id}/datasets/jobs/{job['id']}"), "job")
        if current["status"] in ("Done", "Failed"):
            if current["status"] != "Done":
                raise RuntimeError(f"the dataset job failed: {current['error']}")
            return dict(current)
        time.sleep(0.1)


def api_round(client: httpx.Client, project_id: str, fmt: str, domain: str | None) -> list[float]:
    """Seconds: export job, download, import (upload and job); the import adds every photo."""

    def export() -> dict[str, Any]:
        job = client.post(f"/projects/{project_id}/datasets/export", params={"format": fmt})
        return until_done(client, project_id, job.json())

    done, export_s = timed(export)
    archive, download_s = timed(lambda: httpx.get(done["downloadUri"], timeout=300).content)
    copy = create_project(client, f"copy-{fmt}", domain)

    def import_() -> dict[str, Any]:
        job = client.post(
            f"/projects/{copy}/datasets/import",
            params={"format": fmt},
            content=archive,
            headers={"Content-Type": "application/zip"},
        )
        return until_done(client, copy, job.json())

    imported, import_s = timed(import_)
    if imported["imported"] != done["total"]:
        raise RuntimeError(f"the import added {imported['imported']} of {done['total']} photos")
    return [export_s, download_s, import_s]


def command_round(
    served: Served,
    client: httpx.Client,
    project_id: str,
    fmt: str,
    domain: str | None,
    folder: Path,
) -> list[float]:
    """Seconds: the command's export, then its import into a new project."""
    common = ["--endpoint", served.endpoint, "--key", TRAINING_KEY, "--rate", "0", "--format", fmt]
    archive = folder / f"{fmt}.zip"
    copy = create_project(client, f"cli-{fmt}", domain)
    with contextlib.redirect_stdout(sys.stderr):
        exported, export_s = timed(
            lambda: dataset_command(
                ["export", "--project", project_id, "--out", str(archive), *common]
            )
        )
        imported, import_s = timed(
            lambda: dataset_command(["import", str(archive), "--project", copy, *common])
        )
    if exported or imported:
        raise RuntimeError(f"the command failed (exit {exported}, then {imported})")
    return [export_s, import_s]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench.datasets", description=__doc__)
    parser.add_argument("--per-class", type=int, default=100, help="flowers5 photos per class")
    parser.add_argument("--detection", type=int, default=194, help="raccoon photos")
    args = parser.parse_args(argv)
    print(machine_line("bench.datasets", argv), flush=True)
    print()
    rows = []
    with (
        serve_api() as served,
        watching(served.storage, served.settings, 0.1),
        api_client(served.endpoint) as client,
    ):
        log("filling")
        flowers = fill_classification(client, args.per_class)
        raccoons = fill_detection(client, args.detection)
        projects = {p["name"]: p["id"] for p in client.get("/projects").json()}
        cases = [
            ("flowers5", "folders", None, flowers),
            ("raccoon", "coco", GENERAL_DETECTION, raccoons),
        ]
        with tempfile.TemporaryDirectory() as folder:
            for name, fmt, domain, (images, size) in cases:
                log(f"{name} as {fmt}")
                api_s = api_round(client, projects[name], fmt, domain)
                cli_s = command_round(served, client, projects[name], fmt, domain, Path(folder))
                seconds = [*api_s, *cli_s]
                rows.append(
                    [
                        name,
                        fmt,
                        f"{images}",
                        f"{size / 2**20:.1f}",
                        *(f"{s:.1f}" for s in seconds),
                        f"{images / api_s[2]:.1f}",
                        f"{images / cli_s[1]:.1f}",
                    ]
                )
    header = [
        "project",
        "format",
        "images",
        "MiB",
        "API export s",
        "download s",
        "API import s",
        "command export s",
        "command import s",
        "API import images/s",
        "command import images/s",
    ]
    print(markdown_table(header, rows))
    print(end_line("the client, the API server, the trainer worker and Azurite share the CPUs"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
