"""Benchmark: image upload throughput and image listing latency, over real HTTP.

Run from the repository root:

    .venv/bin/python -m bench.ingest [--batches 4] [--sizes 1000,3000] [--repeat 20]
    .venv/bin/python -m bench.ingest --sizes 1000,10000 --fill direct

It starts its own Azurite (in memory, free ports) and serves the API with uvicorn in a thread,
as the integration tests do, so every number includes HTTP, JSON and storage. Client, server
and Azurite share this machine's CPUs. It prints Markdown tables to stdout (progress goes to
stderr) and, unless --no-json, a JSON copy under bench/results/.

The listing benchmark first fills a project of each size. `--fill api` (the default) uploads
noise JPEGs through POST …/images/files; `--fill direct` writes synthetic image rows straight
through the storage layer (`storage.images.create_many`, the call the upload service ends in,
with no blobs), which is what makes 10,000 images practical (the 10,000 direct fill took
1,300 s here, create_many slowing from 22 to 4.6 images/s as the table grew): the listing
requests measured afterwards are the same HTTP requests either way.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import platform
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from PIL import Image

from bench.common import (
    BATCH,
    DATASETS,
    RESULTS_DIR,
    ROOT,
    Served,
    api_client,
    check_batch,
    create_project,
    create_tags,
    end_line,
    expect_ok,
    files_request,
    log,
    machine_line,
    markdown_table,
    percentile,
    serve_api,
)
from functions.domain import models
from functions.domain.ids import new_time_ordered_id

FLOWERS = DATASETS / "flowers5"
BCCD = DATASETS / "bccd"
COMPACT_DETECTION = "a27d5ca5-bb19-49d8-a70a-fec086c47f5b"
FILL_WORKERS = 4
FILL_RETRIES = 5
FILL_TAGS = 5
NOISE_SIDE = 64
# Filling slows as the project grows: Azurite's in-memory table store scans the whole table for
# every point read and query, and each image costs several (counter reads, duplicate check and a
# transaction that looks up each of its rows). On 2 shared cores 1,000 images took ~100 s and
# the 5,000 fill ran at ~2.7 images/s past 2,500 images, so 10,000 would take over an hour.
# The default stays near 10 minutes; for 10,000 use --fill direct (rows written through the
# storage layer; still ~20 minutes, as create_many slows while the table grows).
DEFAULT_SIZES = "1000,3000"
FILL_MODES = ("api", "direct")


# ------------------------------------------------------------------ upload throughput


@dataclass(frozen=True)
class Photo:
    name: str
    data: bytes
    tag: str  # class (folder) name


@dataclass
class UploadResult:
    path: str
    request: str
    images: int
    batches: int
    source_mb: float
    request_mb: float
    wall_s: float
    batch_ms: list[float]

    @property
    def images_per_s(self) -> float:
        return self.images / self.wall_s

    @property
    def mb_per_s(self) -> float:
        return self.source_mb / self.wall_s


def photo_batches(batches: int) -> list[list[Photo]]:
    """`batches` single-class batches of up to 64 distinct flowers5 photos, classes in turn.

    Single-class, because a multipart upload tags the whole batch (tagIds in the query).
    """
    if not FLOWERS.is_dir():
        raise SystemExit(f"dataset not found: {FLOWERS}")
    pools = {d.name: sorted(d.glob("*.jpg")) for d in sorted(FLOWERS.iterdir()) if d.is_dir()}
    classes = list(pools)
    out: list[list[Photo]] = []
    turn = 0
    while len(out) < batches:
        if not any(pools.values()):
            total = sum(len(b) for b in out)
            raise SystemExit(f"flowers5 holds only {total} photos: ask for fewer --batches")
        name = classes[turn % len(classes)]
        turn += 1
        take, pools[name] = pools[name][:BATCH], pools[name][BATCH:]
        if take:
            out.append([Photo(p.name, p.read_bytes(), name) for p in take])
    return out


def multipart_request(
    client: httpx.Client, project_id: str, batch: list[Photo], tag_id: str
) -> httpx.Request:
    # One file part per image, as browsers and the JavaScript SDK send them.
    files = [("imageData", (p.name, p.data, "image/jpeg")) for p in batch]
    return client.build_request(
        "POST", f"/projects/{project_id}/images", params={"tagIds": tag_id}, files=files
    )


def request_bytes(request: httpx.Request) -> int:
    return int(request.headers.get("content-length", "0"))


def upload_path(
    client: httpx.Client, path: str, batches: list[list[Photo]], run_id: str
) -> UploadResult:
    project_id = create_project(client, f"bench-upload-{path}-{run_id}")
    names = sorted({p.tag for batch in batches for p in batch})
    tags = dict(zip(names, create_tags(client, project_id, names), strict=True))
    # Requests are built before the clock starts; reading the files is not measured either.
    requests = []
    for batch in batches:
        if path == "multipart":
            requests.append(multipart_request(client, project_id, batch, tags[batch[0].tag]))
        else:
            rows = [(p.name, p.data, tags[p.tag]) for p in batch]
            requests.append(files_request(client, project_id, rows))
    sizes = [request_bytes(r) for r in requests]
    latencies = []
    started = time.perf_counter()
    for request, batch in zip(requests, batches, strict=True):
        sent = time.perf_counter()
        response = client.send(request)
        latencies.append((time.perf_counter() - sent) * 1000)
        check_batch(response, len(batch), f"{path} upload")
    wall = time.perf_counter() - started
    count = expect_ok(client.get(f"/projects/{project_id}/images/count"), "count")
    images = sum(len(b) for b in batches)
    if count != images:
        raise RuntimeError(f"{path}: project holds {count} images after uploading {images}")
    return UploadResult(
        path=path,
        request=(
            "POST …/images?tagIds= (multipart, one file part per image)"
            if path == "multipart"
            else "POST …/images/files (base64 JSON)"
        ),
        images=images,
        batches=len(batches),
        source_mb=sum(len(p.data) for b in batches for p in b) / 1e6,
        request_mb=sum(sizes) / 1e6,
        wall_s=wall,
        batch_ms=latencies,
    )


def bccd_batches(batches: int) -> list[list[tuple[Photo, list[dict[str, Any]]]]]:
    """`batches` batches of 64 BCCD photos (640x480 blood smears) with their labelled boxes."""
    if not (BCCD / "regions.json").is_file():
        raise SystemExit(f"dataset not found: {BCCD}")
    labelled = json.loads((BCCD / "regions.json").read_text(encoding="utf-8"))["images"]
    names = sorted(labelled)
    if len(names) < batches * BATCH:
        raise SystemExit(f"bccd holds {len(names)} photos: ask for fewer --batches")
    return [
        [
            (Photo(n, (BCCD / "images" / n).read_bytes(), "bccd"), labelled[n])
            for n in names[b * BATCH : (b + 1) * BATCH]
        ]
        for b in range(batches)
    ]


def upload_with_regions(
    client: httpx.Client, batches: list[list[tuple[Photo, list[dict[str, Any]]]]], run_id: str
) -> UploadResult:
    """POST …/images/files into a detection project, each entry with its boxes (the SDK's
    ImageFileCreateEntry(regions=…)); every stored image is read back to count its regions."""
    project_id = create_project(client, f"bench-regions-{run_id}", COMPACT_DETECTION)
    names = sorted({r["tag"] for batch in batches for _, regions in batch for r in regions})
    tags = dict(zip(names, create_tags(client, project_id, names), strict=True))
    requests = []
    for batch in batches:
        entries = [
            {
                "name": photo.name,
                "contents": base64.b64encode(photo.data).decode("ascii"),
                "regions": [
                    {
                        "tagId": tags[r["tag"]],
                        **{k: r[k] for k in ("left", "top", "width", "height")},
                    }
                    for r in regions
                ],
            }
            for photo, regions in batch
        ]
        requests.append(
            client.build_request(
                "POST", f"/projects/{project_id}/images/files", json={"images": entries}
            )
        )
    sizes = [request_bytes(r) for r in requests]
    latencies, ids = [], []
    started = time.perf_counter()
    for request, batch in zip(requests, batches, strict=True):
        sent = time.perf_counter()
        response = client.send(request)
        latencies.append((time.perf_counter() - sent) * 1000)
        ids += check_batch(response, len(batch), "upload with regions")
    wall = time.perf_counter() - started
    boxes = sum(len(regions) for batch in batches for _, regions in batch)
    stored = 0
    for start in range(0, len(ids), 256):
        chunk = ",".join(ids[start : start + 256])
        page = expect_ok(
            client.get(f"/projects/{project_id}/images/id", params={"imageIds": chunk}), "read back"
        )
        stored += sum(len(i["regions"]) for i in page)
    if stored != boxes:
        raise RuntimeError(f"sent {boxes} boxes, {stored} stored")
    images = sum(len(b) for b in batches)
    return UploadResult(
        path="files+regions",
        request=f"POST …/images/files with regions (bccd, {boxes / images:.1f} boxes per photo)",
        images=images,
        batches=len(batches),
        source_mb=sum(len(p.data) for b in batches for p, _ in b) / 1e6,
        request_mb=sum(sizes) / 1e6,
        wall_s=wall,
        batch_ms=latencies,
    )


def warm_up(client: httpx.Client, run_id: str) -> None:
    """Untimed: one small batch through each path, so imports and pools are warm."""
    scenes = sorted((DATASETS / "intel_scenes").glob("*/*.jpg"))[:8]
    photos = [Photo(p.name, p.read_bytes(), "warm") for p in scenes]
    if not photos:
        photos = photo_batches(1)[0][:8]
    project_id = create_project(client, f"bench-warmup-{run_id}")
    (tag_id,) = create_tags(client, project_id, ["warm"])
    half = len(photos) // 2
    response = client.send(multipart_request(client, project_id, photos[:half], tag_id))
    check_batch(response, half, "warm-up multipart")
    rows = [(p.name, p.data, tag_id) for p in photos[half:]]
    response = client.send(files_request(client, project_id, rows))
    check_batch(response, len(rows), "warm-up files")


# ------------------------------------------------------------------ listing at scale


@dataclass
class FillResult:
    size: int
    tagged: int
    per_tag: list[int]
    generate_s: float
    wall_s: float
    workers: int
    batch_ms: list[float] = field(default_factory=list)
    partial: int = 0  # 207 answers (some entries ErrorStorage)
    retried: int = 0  # entries sent again after ErrorStorage
    progress: list[tuple[float, int]] = field(default_factory=list)  # (seconds, images done)
    mode: str = "api"  # api: uploads over HTTP; direct: rows through the storage layer

    @property
    def images_per_s(self) -> float:
        return self.size / self.wall_s

    def quarter_rates(self) -> tuple[float, float]:
        """Images/s over the first and over the last quarter of the images (by completions)."""
        quarter = self.size / 4
        first = next((t, n) for t, n in self.progress if n >= quarter)
        before_last = [(t, n) for t, n in self.progress if n <= self.size - quarter]
        t0, n0 = before_last[-1] if before_last else (0.0, 0)
        return first[1] / first[0], (self.size - n0) / (self.wall_s - t0)


@dataclass
class LatencyResult:
    size: int
    label: str
    result: str
    samples_ms: list[float]

    @property
    def p50(self) -> float:
        return percentile(self.samples_ms, 50)

    @property
    def p95(self) -> float:
        return percentile(self.samples_ms, 95)


def noise_jpegs(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        pixels = rng.randbytes(NOISE_SIDE * NOISE_SIDE * 3)
        buffer = io.BytesIO()
        Image.frombytes("RGB", (NOISE_SIDE, NOISE_SIDE), pixels).save(buffer, "JPEG", quality=85)
        out.append(buffer.getvalue())
    return out


def tag_plan(size: int) -> list[int | None]:
    """Which tag (index) each image gets: every tenth untagged, the rest round-robin."""
    plan: list[int | None] = []
    tagged = 0
    for i in range(size):
        if i % 10 == 9:
            plan.append(None)
        else:
            plan.append(tagged % FILL_TAGS)
            tagged += 1
    return plan


def fill_project(
    endpoint: str, size: int, workers: int, run_id: str
) -> tuple[str, list[str], FillResult]:
    log(f"  generating {size} distinct {NOISE_SIDE}x{NOISE_SIDE} noise JPEGs…")
    started = time.perf_counter()
    jpegs = noise_jpegs(size, seed=size)
    generate_s = time.perf_counter() - started
    with api_client(endpoint) as client:
        project_id = create_project(client, f"bench-list-{size}-{run_id}")
        tag_ids = create_tags(client, project_id, [f"tag{i}" for i in range(FILL_TAGS)])
    plan = tag_plan(size)
    chunks = [range(start, min(start + BATCH, size)) for start in range(0, size, BATCH)]
    local = threading.local()
    clients: list[httpx.Client] = []
    lock = threading.Lock()
    fill = FillResult(size, sum(t is not None for t in plan), [], generate_s, 0.0, workers)
    fill.per_tag = [sum(1 for t in plan if t == k) for k in range(FILL_TAGS)]
    done = [0]

    def send(chunk: range) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = api_client(endpoint)
            local.client = client
            with lock:
                clients.append(client)
        pending = list(chunk)
        for attempt in range(1 + FILL_RETRIES):
            rows = []
            for i in pending:
                tag = plan[i]
                rows.append((f"noise-{i:05d}.jpg", jpegs[i], None if tag is None else tag_ids[tag]))
            request = files_request(client, project_id, rows)
            sent = time.perf_counter()
            response = client.send(request)
            elapsed = (time.perf_counter() - sent) * 1000
            failed = storage_failures(response, pending, f"fill {size}")
            with lock:
                fill.batch_ms.append(elapsed)
                fill.partial += bool(failed)
                fill.retried += len(failed) if attempt < FILL_RETRIES else 0
                done[0] += len(pending) - len(failed)
                fill.progress.append((time.perf_counter() - started, done[0]))
                if len(fill.batch_ms) % 10 == 0:
                    rate = done[0] / (time.perf_counter() - started)
                    log(f"  filled {done[0]}/{size} ({rate:.1f} images/s so far)")
            if not failed:
                return
            pending = failed
        raise RuntimeError(
            f"fill {size}: {len(pending)} images still failed with ErrorStorage "
            f"after {FILL_RETRIES} retries"
        )

    log(f"  filling with {len(chunks)} batches, {workers} concurrent requests…")
    started = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        list(pool.map(send, chunks))
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # let queued batches go, then fail
        raise
    finally:
        pool.shutdown(wait=True)
        for client in clients:
            client.close()
    fill.wall_s = time.perf_counter() - started
    return project_id, tag_ids, fill


def fill_direct(served: Served, size: int, run_id: str) -> tuple[str, list[str], FillResult]:
    """Fill a project with synthetic image rows through `storage.images.create_many`.

    The project and tags are created over HTTP; the images are rows only (no blobs), each
    with a distinct sha256, tagged like the API fill (every tenth untagged), written in
    create_many calls of 64 (one upload batch's worth) one after another.
    """
    with api_client(served.endpoint) as client:
        project_id = create_project(client, f"bench-list-{size}-{run_id}")
        tag_ids = create_tags(client, project_id, [f"tag{i}" for i in range(FILL_TAGS)])
    plan = tag_plan(size)
    started = time.perf_counter()
    base = datetime.now(UTC)
    rows: list[models.Image] = []
    for i, tag in enumerate(plan):
        created = base + timedelta(microseconds=i)
        digest = hashlib.sha256(f"bench-direct-{run_id}-{size}-{i}".encode()).hexdigest()
        tags = [] if tag is None else [models.ImageTagRef(tag_ids[tag], created)]
        image_id = new_time_ordered_id()
        rows.append(
            models.Image(image_id, created, NOISE_SIDE, NOISE_SIDE, digest, "image/jpeg", tags)
        )
    generate_s = time.perf_counter() - started
    fill = FillResult(size, sum(t is not None for t in plan), [], generate_s, 0.0, 1, mode="direct")
    fill.per_tag = [sum(1 for t in plan if t == k) for k in range(FILL_TAGS)]
    log(f"  writing {size} image rows in create_many calls of {BATCH}…")
    started = time.perf_counter()
    done = 0
    for start in range(0, size, BATCH):
        chunk = rows[start : start + BATCH]
        sent = time.perf_counter()
        result = served.storage.images.create_many(project_id, chunk)
        fill.batch_ms.append((time.perf_counter() - sent) * 1000)
        if result.failed or result.duplicates:
            raise RuntimeError(
                f"direct fill {size}: {len(result.failed)} rows failed, "
                f"{len(result.duplicates)} duplicates"
            )
        done += len(chunk)
        fill.progress.append((time.perf_counter() - started, done))
        if len(fill.batch_ms) % 10 == 0:
            rate = done / (time.perf_counter() - started)
            log(f"  filled {done}/{size} ({rate:.1f} images/s so far)")
    fill.wall_s = time.perf_counter() - started
    return project_id, tag_ids, fill


def storage_failures(response: httpx.Response, indexes: list[int], what: str) -> list[int]:
    """Indexes whose entry failed with ErrorStorage (worth retrying); fail loudly on others.

    The server answers 207 with ErrorStorage for an entry whose row transaction kept losing
    the project counter's ETag race to concurrent uploads; the entry left nothing behind.
    """
    if response.status_code not in (200, 207):
        raise RuntimeError(f"{what}: HTTP {response.status_code}: {response.text[:500]}")
    results = response.json()["images"]
    if len(results) != len(indexes):
        raise RuntimeError(f"{what}: {len(results)} results for {len(indexes)} images")
    failed = []
    for index, result in zip(indexes, results, strict=True):
        if result["status"] == "ErrorStorage":
            failed.append(index)
        elif result["status"] != "OK":
            raise RuntimeError(f"{what}: image {index}: {result['status']}: {result}")
    if response.status_code == 200 and failed:
        raise RuntimeError(f"{what}: HTTP 200 although {len(failed)} entries failed")
    return failed


def measure(
    client: httpx.Client, repeat: int, url: str, params: dict[str, Any], check: Callable[[Any], str]
) -> tuple[str, list[float]]:
    """One untimed warm-up call, then `repeat` timed ones; `check` validates and describes."""
    summary = check(expect_ok(client.get(url, params=params), url))
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url, params=params)
        body = response.json()
        samples.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url}: HTTP {response.status_code}")
        if check(body) != summary:
            raise RuntimeError(f"GET {url}: the answer changed between calls")
    return summary, samples


def listing_latency(
    endpoint: str, fill: FillResult, project_id: str, tag_ids: list[str], repeat: int
) -> list[LatencyResult]:
    base = f"/projects/{project_id}"
    tag = tag_ids[0]
    size = fill.size

    def page(expected: int) -> Callable[[Any], str]:
        def check(body: Any) -> str:
            if len(body) != expected:
                raise RuntimeError(f"a page held {len(body)} images, expected {expected}")
            return f"{len(body)} images"

        return check

    def number(expected: int) -> Callable[[Any], str]:
        def check(body: Any) -> str:
            if body != expected:
                raise RuntimeError(f"a count was {body}, expected {expected}")
            return f"{body}"

        return check

    def tags(body: Any) -> str:
        counts = sorted(int(t["imageCount"]) for t in body)
        if counts != sorted(fill.per_tag):
            raise RuntimeError(f"tag counts {counts}, expected {sorted(fill.per_tag)}")
        return f"{len(body)} tags, imageCount {'/'.join(str(c) for c in counts)}"

    later_skip = 500
    cases: list[tuple[str, str, dict[str, Any], Callable[[Any], str]]] = [
        ("GET …/images?take=50 (first page)", f"{base}/images", {"take": 50}, page(50)),
        (
            f"GET …/images?take=50&skip={later_skip} (later page)",
            f"{base}/images",
            {"take": 50, "skip": later_skip},
            page(max(0, min(50, size - later_skip))),
        ),
        (
            "GET …/images/tagged?tagIds={tag}&take=50",
            f"{base}/images/tagged",
            {"tagIds": tag, "take": 50},
            page(min(50, fill.per_tag[0])),
        ),
        ("GET …/images/count", f"{base}/images/count", {}, number(size)),
        (
            "GET …/images/tagged/count?tagIds={tag}",
            f"{base}/images/tagged/count",
            {"tagIds": tag},
            number(fill.per_tag[0]),
        ),
        ("GET …/tags (with counts)", f"{base}/tags", {}, tags),
    ]
    results = []
    with api_client(endpoint) as client:
        for label, url, params, check in cases:
            summary, samples = measure(client, repeat, url, params, check)
            results.append(LatencyResult(size, label, summary, samples))
            log(f"  {label}: p50 {results[-1].p50:.1f} ms")
    return results


# ------------------------------------------------------------------ report


def upload_table(results: Sequence[UploadResult]) -> str:
    rows = [
        [
            r.request,
            f"{r.images} in {r.batches}",
            f"{r.wall_s:.2f}",
            f"{r.images_per_s:.1f}",
            f"{statistics.median(r.batch_ms):.0f}",
            f"{r.mb_per_s:.2f}",
            f"{r.source_mb:.1f} / {r.request_mb:.1f}",
        ]
        for r in results
    ]
    header = [
        "upload path",
        "images (batches)",
        "wall s",
        "images/s",
        "median batch ms",
        "source MB/s",
        "source / request MB",
    ]
    return markdown_table(header, rows)


def fill_table(results: Sequence[FillResult]) -> str:
    direct = all(f.mode == "direct" for f in results)
    rows = [
        [
            f"{f.size:,}",
            f"{f.tagged:,} tagged over {FILL_TAGS} tags, {f.size - f.tagged:,} untagged",
            f"{f.workers}",
            f"{f.wall_s:.1f}",
            f"{f.images_per_s:.1f}",
            "{:.1f} / {:.1f}".format(*f.quarter_rates()),
            f"{statistics.median(f.batch_ms):.0f}",
            f"{len(f.batch_ms)}" if direct else f"{len(f.batch_ms)} / {f.partial} / {f.retried}",
        ]
        for f in results
    ]
    header = [
        "project size",
        "tagging",
        "concurrent writers" if direct else "concurrent requests",
        "fill wall s",
        "images/s",
        "images/s first ¼ / last ¼",
        "median create_many ms" if direct else "median request ms",
        "create_many calls" if direct else "requests / 207s / entries retried",
    ]
    return markdown_table(header, rows)


def fill_caption(size: int, fill: FillResult, workers: int) -> str:
    if fill.mode == "direct":
        return (
            f"## Filling a project of {size:,} images directly through the storage layer "
            f"(synthetic image rows, no blobs, written with `storage.images.create_many` in "
            f"calls of {BATCH}, one at a time, not through HTTP; the rows took "
            f"{fill.generate_s:.2f} s to build, not counted)\n"
        )
    return (
        f"## Filling a project of {size:,} images "
        f"({NOISE_SIDE}x{NOISE_SIDE} noise JPEGs, base64 JSON batches of {BATCH}, "
        f"{workers} concurrent requests; an entry answered ErrorStorage "
        f"is sent again, up to {FILL_RETRIES} times)\n"
    )


def latency_table(results: Sequence[LatencyResult]) -> str:
    rows = [
        [r.label, f"{r.p50:.1f}", f"{r.p95:.1f}", f"{min(r.samples_ms):.1f}", r.result]
        for r in results
    ]
    return markdown_table(["request", "p50 ms", "p95 ms", "min ms", "answer"], rows)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest",
        description="Upload throughput and listing latency of the Training API over real HTTP.",
    )
    parser.add_argument(
        "--batches", type=int, default=4, help="upload batches of 64 photos per path (default 4)"
    )
    parser.add_argument(
        "--sizes",
        default=DEFAULT_SIZES,
        help=f"comma-separated project sizes for the listing benchmark (default {DEFAULT_SIZES});"
        " for 10000 use --fill direct: through the API it takes over an hour to fill on 2 cores"
        " against Azurite, directly ~20 minutes",
    )
    parser.add_argument(
        "--fill",
        choices=FILL_MODES,
        default="api",
        help="how to fill the listing projects: api uploads noise JPEGs over HTTP (default);"
        " direct writes synthetic image rows through storage.images.create_many",
    )
    parser.add_argument(
        "--repeat", type=int, default=20, help="latency samples per request (default 20)"
    )
    parser.add_argument(
        "--fill-workers",
        type=int,
        default=FILL_WORKERS,
        help=f"concurrent upload requests while filling (default {FILL_WORKERS})",
    )
    parser.add_argument("--no-json", action="store_true", help="skip the bench/results/ copy")
    args = parser.parse_args(argv)
    try:
        args.size_list = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    except ValueError:
        parser.error("--sizes takes comma-separated integers, e.g. 1000,10000")
    if min(args.batches, args.repeat, args.fill_workers) < 1 or any(s < 1 for s in args.size_list):
        parser.error("--batches, --repeat, --fill-workers and sizes must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    batches = photo_batches(args.batches)
    header = machine_line("bench.ingest", argv)
    print(f"# Ingest benchmark\n\n{header}\n", flush=True)
    log("starting Azurite (in memory) and the API (uvicorn)…")
    with serve_api() as served, api_client(served.endpoint) as client:
        warm_up(client, run_id)
        uploads = []
        for path in ("multipart", "files"):
            log(f"uploading {sum(len(b) for b in batches)} flowers5 photos via {path}…")
            uploads.append(upload_path(client, path, batches, run_id))
        log(f"uploading {args.batches} batches of bccd photos with their boxes…")
        uploads.append(upload_with_regions(client, bccd_batches(args.batches), run_id))
    print(
        "## Upload throughput (flowers5 photos; bccd with boxes into a detection project; one "
        "batch at a time, every image checked OK)\n",
        flush=True,
    )
    print(upload_table(uploads) + "\n", flush=True)

    fills: list[FillResult] = []
    latencies: list[LatencyResult] = []
    for size in args.size_list:
        # A fresh Azurite per size: its table store scans every row of the table for each
        # read, so projects left over from earlier sections would slow this one down.
        log(f"project of {size} images (fresh Azurite and API):")
        with serve_api() as served:
            if args.fill == "direct":
                project_id, tag_ids, fill = fill_direct(served, size, run_id)
            else:
                project_id, tag_ids, fill = fill_project(
                    served.endpoint, size, args.fill_workers, run_id
                )
            fills.append(fill)
            log(f"  filled in {fill.wall_s:.1f} s ({fill.images_per_s:.1f} images/s)")
            latencies += listing_latency(served.endpoint, fill, project_id, tag_ids, args.repeat)
        print(fill_caption(size, fill, args.fill_workers), flush=True)
        print(fill_table([fill]) + "\n", flush=True)
        print(
            f"## Listing latency, project of {size:,} images ({args.repeat} samples each, "
            f"after one warm-up call)\n",
            flush=True,
        )
        print(latency_table([r for r in latencies if r.size == size]) + "\n", flush=True)

    print(end_line(), flush=True)
    if not args.no_json:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        out = RESULTS_DIR / f"ingest-{run_id}.json"
        payload = {
            "machine": header,
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "argv": argv,
            "uploads": [
                {**asdict(u), "images_per_s": u.images_per_s, "mb_per_s": u.mb_per_s}
                for u in uploads
            ],
            "fills": [{**asdict(f), "images_per_s": f.images_per_s} for f in fills],
            "latency": [{**asdict(r), "p50_ms": r.p50, "p95_ms": r.p95} for r in latencies],
        }
        out.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        log(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
