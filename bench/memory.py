"""Benchmark: the API's memory under the heaviest legal requests.

Run from the repository root:

    .venv/bin/python -m bench.memory

It starts a fresh Azurite (in memory) and the API as its own process (uvicorn, as `make run`
serves it), trains and publishes a small flowers5 model (as bench.predict does), and prints
the API process's peak resident memory (VmHWM, reset before each case through
/proc/PID/clear_refs) and its resident memory a few seconds after, for:

(a) the worst legal training batch: 64 PNGs of 40 megapixels (the most we decode) of about
    5.9 MB each (the limit is 6 MB), as multipart (browsers, the JavaScript SDK) and as
    base64 JSON (the Python SDK);
(b) the worst legal prediction: a PNG of 40 megapixels under the 4 MB limit, opaque (RGB)
    and with transparency (RGBA: a quarter more pixel bytes, composited onto white);
(c) 8 concurrent predictions of that 40-megapixel (RGB) PNG.

Target: under 1 GB peak (an Azure Functions Flex Consumption instance has 2 GB).
"""

from __future__ import annotations

import argparse
import base64
import io
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from bench.common import (
    DOMAINS,
    PREDICTION_KEY,
    TRAINING_KEY,
    TRAINING_PREFIX,
    create_project,
    log,
    machine_line,
    markdown_table,
    out,
    process_env,
)
from bench.predict import PUBLISH_NAME, _train_and_publish, _wait_until_up
from tools.azurite import ROOT, free_port, start_azurite

SIDE = (7300, 5470)  # 39.9 megapixels


def _png(noise_rows: int, channels: int = 3) -> bytes:
    """A 40-megapixel PNG (RGB, or RGBA for 4 channels): a smooth gradient with `noise_rows`
    rows of noise (noise is what makes it big: about a byte a channel)."""
    width, height = SIDE
    gradient = np.linspace(0, 255, width, dtype=np.uint8)
    pixels = np.broadcast_to(gradient[None, :, None], (height, width, channels)).copy()
    rng = np.random.default_rng(0)
    pixels[:noise_rows] = rng.integers(0, 256, (noise_rows, width, channels), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def _variant(png: bytes, index: int) -> bytes:
    """The same pixels with a tEXt chunk after IHDR, so each file has its own hash."""
    data = b"Comment\x00" + str(index).encode()
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data
    chunk += struct.pack(">I", zlib.crc32(b"tEXt" + data) & 0xFFFFFFFF)
    ihdr_end = 8 + 4 + 4 + 13 + 4
    return png[:ihdr_end] + chunk + png[ihdr_end:]


def _sized_png(limit: int, channels: int = 3) -> bytes:
    """A 40-megapixel PNG just under `limit` bytes."""
    rows = 100
    while True:
        png = _png(rows, channels)
        if len(png) > limit:
            return _png(int(rows * 0.97 * limit / len(png)), channels)
        if len(png) > 0.9 * limit:
            return png
        rows = int(rows * 0.95 * limit / len(png))


class Process:
    def __init__(self, pid: int) -> None:
        self.pid = pid

    def _field(self, name: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no {name} for {self.pid}")

    def rss(self) -> int:
        return self._field("VmRSS")

    def measure(self, work: Callable[[], None]) -> tuple[int, int, int]:
        """(RSS before, peak during, RSS 3 s after) of running `work`."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # resets VmHWM
        before = self.rss()
        work()
        peak = self._field("VmHWM")
        time.sleep(3)
        return before, peak, self.rss()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64, help="images in the training batch")
    args = parser.parse_args(argv)
    out(machine_line("bench.memory", list(sys.argv[1:] if argv is None else argv)))
    log("making the images …")
    training_png = _sized_png(6 * 1024 * 1024 - 64 * 1024)
    prediction_png = _sized_png(4 * 1024 * 1024 - 64 * 1024)
    transparent_png = _sized_png(4 * 1024 * 1024 - 64 * 1024, channels=4)
    batch = [_variant(training_png, i) for i in range(args.batch)]

    azurite = start_azurite(None, free_port(), free_port(), free_port())
    port = free_port()
    env = process_env(azurite.connection_string)
    command = [sys.executable, "-m", "uvicorn", "functions.api.app:create_app", "--factory"]
    api = subprocess.Popen(
        [*command, "--port", str(port), "--log-level", "warning"], cwd=ROOT, env=env
    )
    endpoint = f"http://127.0.0.1:{port}"
    rows: list[list[str]] = []
    try:
        _wait_until_up(endpoint, api)
        project_id, _ = _train_and_publish(endpoint, env, DOMAINS["compact"][0])
        process = Process(api.pid)
        training = httpx.Client(
            base_url=endpoint + TRAINING_PREFIX, headers={"Training-Key": TRAINING_KEY}, timeout=900
        )
        target = create_project(training, "bench-memory")
        mb = len(training_png) / 2**20

        def multipart() -> None:
            files = [("f", (f"{i}.png", data, "image/png")) for i, data in enumerate(batch)]
            answer = training.post(f"/projects/{target}/images", files=files)
            log(f"multipart batch: HTTP {answer.status_code}")

        def base64_json() -> None:
            images = [
                {
                    "name": f"b{i}.png",
                    "contents": base64.b64encode(_variant(training_png, 1000 + i)).decode(),
                }
                for i in range(len(batch))
            ]
            answer = training.post(f"/projects/{target}/images/files", json={"images": images})
            log(f"base64 batch: HTTP {answer.status_code}")

        prediction_path = (
            f"{endpoint}/customvision/v3.1/prediction/{project_id}/classify/iterations/"
            f"{PUBLISH_NAME}/image/nostore"
        )
        predictor = httpx.Client(headers={"Prediction-Key": PREDICTION_KEY}, timeout=900)

        def predict(png: bytes = prediction_png) -> None:
            answer = predictor.post(prediction_path, content=png)
            if answer.status_code != 200:
                raise RuntimeError(f"prediction: HTTP {answer.status_code}: {answer.text[:300]}")

        def eight_at_once() -> None:
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda _: predict(), range(8)))

        cases = (
            (f"training batch, multipart: {len(batch)} PNGs of 40 MP, {mb:.1f} MB each", multipart),
            (
                f"training batch, base64 JSON: {len(batch)} PNGs of 40 MP, {mb:.1f} MB each",
                base64_json,
            ),
            (f"one prediction: PNG of 40 MP, {len(prediction_png) / 2**20:.1f} MB", predict),
            (
                f"one prediction: RGBA PNG of 40 MP, {len(transparent_png) / 2**20:.1f} MB",
                lambda: predict(transparent_png),
            ),
            ("8 concurrent predictions of that PNG", eight_at_once),
        )
        for label, work in cases:
            log(label)
            before, peak, after = process.measure(work)
            rows.append(
                [label, f"{before / 2**20:.0f}", f"{peak / 2**20:.0f}", f"{after / 2**20:.0f}"]
            )
    finally:
        api.terminate()
        api.wait(timeout=30)
        azurite.stop()
    out()
    out(markdown_table(["case", "RSS before MB", "peak RSS MB", "RSS 3 s after MB"], rows))


if __name__ == "__main__":
    main()
