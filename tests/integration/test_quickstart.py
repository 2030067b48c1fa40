"""examples/quickstart.py run as a user runs it: its own process, the official SDK over HTTP to
the test stack, a trainer worker taking the job, and the held-out photos classified right."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from functions.settings import Settings
from functions.storage.clients import Storage
from tests.conftest import PREDICTION_KEY, ROOT, TRAINING_KEY

QUICKSTART = ROOT / "examples" / "quickstart.py"
FLOWERS = ROOT / "tests" / "fixtures" / "flowers"  # the script's default photos


@pytest.fixture()
def trainer_worker(storage: Storage, settings: Settings) -> Iterator[None]:
    """The trainer as `python -m trainer_job --watch` runs it, in a background thread."""
    from trainer_job.__main__ import process_one

    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            if not process_one(storage, settings):
                stop.wait(0.3)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=120)


def test_quickstart_trains_publishes_and_classifies_the_held_out_photos(
    endpoint: str, trainer_worker: None
) -> None:
    # The keys as a user of `make run` sets them: the server's own environment variables.
    env = {**os.environ, "CV_TRAINING_KEY": TRAINING_KEY, "CV_PREDICTION_KEY": PREDICTION_KEY}
    run = subprocess.run(
        [sys.executable, str(QUICKSTART), "--endpoint", endpoint],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert re.search(r"^\s+\d+ s\s+Completed", run.stdout, re.M), output  # polled to the end
    # One line per held-out photo (the last of each class): "  daisy/x.jpg -> daisy (96.8%)".
    answers = re.findall(r"^  (\w+)/(\S+) -> (\w+) \(\d+\.\d%\)$", run.stdout, re.M)
    last_photos = {d.name: sorted(d.glob("*.jpg"))[-1].name for d in FLOWERS.iterdir()}
    assert {flower: photo for flower, photo, _ in answers} == last_photos, output
    wrong = [(flower, tag) for flower, _, tag in answers if tag != flower]
    assert not wrong, output
