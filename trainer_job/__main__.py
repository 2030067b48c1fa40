"""`python -m trainer_job`: process one queued job (a training, an export, a project import or a
dataset job) and exit (what a Container Apps Job started by KEDA runs); `--watch` keeps polling
(what `make run` starts)."""

from __future__ import annotations

import argparse
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from functions.settings import Settings, get_settings
from functions.storage.clients import Storage
from functions.storage.queues import Delivery
from trainer_job.dataset_job import record_dataset_failure, run_dataset_job
from trainer_job.export_job import record_export_failure, run_export_job
from trainer_job.import_job import record_import_failure, run_import_job
from trainer_job.job import record_failure, run_job

log = logging.getLogger("trainer_job")
RETRY_DELAY_SECONDS = 5


def _keep_invisible(
    storage: Storage, delivery: Delivery, seconds: int, stop: threading.Event
) -> None:
    """Extend the message's invisibility while the job runs, so no other worker takes it; if
    this process dies, the message reappears after at most `seconds`."""
    while not stop.wait(seconds / 3):
        try:
            storage.training_queue.hide(delivery, seconds)
        except Exception:
            log.exception("could not extend the message's visibility")


# Each kind of queued job: how to run it, how to record its failure, what it is called.
JOBS = {
    "train": (run_job, record_failure, "Training"),
    "export": (run_export_job, record_export_failure, "The export"),
    "import": (run_import_job, record_import_failure, "The import"),
    "dataset": (run_dataset_job, record_dataset_failure, "The dataset job"),
}


def process_one(storage: Storage, settings: Settings) -> bool:
    """Take one message, train or export, delete it. Returns False when the queue was empty."""
    queue = storage.training_queue
    delivery = queue.receive(settings.trainer_visibility_seconds)
    if delivery is None:
        return False
    job = delivery.job
    run_job_, record_failure_, what = JOBS.get(job.kind, JOBS["train"])
    deliveries = delivery.dequeue_count
    if deliveries > settings.trainer_max_deliveries:
        reason = (
            f"{what} stopped "
            f"{settings.trainer_max_deliveries} times without finishing "
            "(the job was killed, ran out of memory or kept failing)."
        )
        record_failure_(storage, job, reason, final=True)
        queue.to_poison(delivery)
        queue.delete(delivery)
        log.error("job %s moved to the poison queue: %s", job.iteration_id, reason)
        return True
    stop = threading.Event()
    heartbeat = threading.Thread(
        target=_keep_invisible,
        args=(storage, delivery, settings.trainer_visibility_seconds, stop),
        daemon=True,
    )
    heartbeat.start()
    failed = False
    try:
        run_job_(storage, job, attempt=deliveries)
    except Exception as error:
        failed = True
        final = deliveries >= settings.trainer_max_deliveries
        record_failure_(storage, job, f"{type(error).__name__}: {error}", final=final)
        log.exception("job %s failed (delivery %d)", job.iteration_id, deliveries)
    finally:
        stop.set()
        heartbeat.join(timeout=30)
    if failed and deliveries < settings.trainer_max_deliveries:
        # Let the message reappear soon: the next delivery is the retry.
        queue.hide(delivery, RETRY_DELAY_SECONDS)
        return True
    if failed:
        queue.to_poison(delivery)
    queue.delete(delivery)
    return True


@contextmanager
def watching(storage: Storage, settings: Settings, poll_seconds: float = 0.2) -> Iterator[None]:
    """What `--watch` does, in a background thread while the block runs (tests, benchmarks)."""
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            if not process_one(storage, settings):
                stop.wait(poll_seconds)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer_job", description=__doc__)
    parser.add_argument("--watch", action="store_true", help="keep polling the queue")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)
    settings = get_settings()
    storage = Storage.from_settings(settings)
    storage.ensure_resources()
    if not args.watch:
        process_one(storage, settings)
        return 0
    while True:
        if not process_one(storage, settings):
            time.sleep(settings.trainer_poll_seconds)


if __name__ == "__main__":
    raise SystemExit(main())
