"""The API killed (`kill -9`) in the middle of an upload batch: after a restart the counts are
consistent, and the orphan sweep removes the bytes of images whose rows were never written."""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import httpx
from PIL import Image

from functions.domain import names
from functions.services.orphans import OrphanSweeper
from functions.services.tags import TagService
from functions.settings import Settings
from functions.storage.clients import Storage
from tests.conftest import ROOT, TRAINING_PREFIX, jpeg_bytes
from tests.integration.checks import all_images, assert_consistent
from tools.azurite import free_port

SERVE = (
    "import sys, uvicorn; from functions.api.app import create_app; "
    "uvicorn.run(create_app(), host='127.0.0.1', port=int(sys.argv[1]), log_level='warning')"
)


@contextmanager
def api_process(settings: Settings) -> Iterator[tuple[subprocess.Popen[bytes], httpx.Client]]:
    port = free_port()
    env = {
        **os.environ,
        "CV_STORAGE_CONNECTION_STRING": settings.storage_connection_string or "",
        "CV_TRAINING_KEY": settings.training_key,
        "CV_PREDICTION_KEY": settings.prediction_key,
    }
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(port)], cwd=ROOT, env=env, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    headers = {"Training-Key": settings.training_key}
    client = httpx.Client(base_url=base + TRAINING_PREFIX, headers=headers, timeout=120)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "API did not start"
            time.sleep(0.1)
        yield process, client
    finally:
        client.close()
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def noisy_photo(seed: int) -> bytes:
    """A large photo-like JPEG, slow enough to decode that a batch of 64 takes seconds."""
    rng = random.Random(seed)
    image = Image.frombytes("RGB", (1600, 1200), rng.randbytes(1600 * 1200 * 3))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def blob_image_ids(storage: Storage, project_id: str) -> set[str]:
    container = storage.clients.blobs.get_container_client(names.CONTAINER_IMAGES)
    return {b.name.split("/")[1] for b in container.list_blobs(name_starts_with=project_id + "/")}


def kill_mid_batch(
    settings: Settings, storage: Storage, project_id: str, tag_id: str, batch: list[bytes]
) -> bool:
    """Upload `batch` and kill the API once some of its bytes are stored; True when the kill
    landed before the batch's rows were written (so orphans exist)."""
    with api_process(settings) as (process, client):
        before = blob_image_ids(storage, project_id)
        files = [("f", (f"{i}.jpg", data, "image/jpeg")) for i, data in enumerate(batch)]
        answered = threading.Event()

        def send() -> None:
            try:
                client.post(
                    f"/projects/{project_id}/images", params={"tagIds": tag_id}, files=files
                )
            except httpx.TransportError:
                pass  # the server died under us, as intended
            answered.set()

        sender = threading.Thread(target=send)
        sender.start()
        while not answered.is_set() and len(blob_image_ids(storage, project_id) - before) < 4:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        sender.join(timeout=60)
    return bool(blob_image_ids(storage, project_id) - before - storage.images.ids(project_id))


def test_kill_9_mid_batch_then_restart_is_consistent_and_orphans_are_swept(
    settings: Settings, storage: Storage
) -> None:
    with api_process(settings) as (_, client):
        name = f"crash-{uuid.uuid4().hex[:8]}"
        project_id = client.post("/projects", params={"name": name}).json()["id"]
        tag_id = client.post(f"/projects/{project_id}/tags", params={"name": "t"}).json()["id"]
        kept = client.post(
            f"/projects/{project_id}/images",
            params={"tagIds": tag_id},
            content=jpeg_bytes((9, 9, 9)),
            headers={"Content-Type": "application/octet-stream"},
        )
        assert kept.status_code == 200, kept.text
    kept_id = kept.json()["images"][0]["image"]["id"]

    left_orphans = False
    for attempt in range(4):  # a kill can land after the rows were written; try again
        batch = [noisy_photo(attempt * 100 + i) for i in range(64)]
        if kill_mid_batch(settings, storage, project_id, tag_id, batch):
            left_orphans = True
            break
    assert left_orphans, "the kill never landed between the blobs and the rows"

    with api_process(settings) as (_, client):
        assert_consistent(client, project_id)  # counts equal rows, listed bytes readable
        orphans = blob_image_ids(storage, project_id) - storage.images.ids(project_id)
        assert orphans
        # Within the grace period an orphan may be an upload in flight: it stays.
        assert OrphanSweeper(storage, TagService(storage)).sweep().image_blobs == 0
        assert blob_image_ids(storage, project_id) - storage.images.ids(project_id) == orphans
        swept = OrphanSweeper(storage, TagService(storage), grace=timedelta(0)).sweep()
        assert swept.image_blobs >= len(orphans)
        assert blob_image_ids(storage, project_id) == storage.images.ids(project_id)
        assert kept_id in storage.images.ids(project_id)
        tags_of = assert_consistent(client, project_id)
        assert kept_id in tags_of
        assert (
            len(all_images(client, project_id))
            == client.get(f"/projects/{project_id}/images/count").json()
        )


def test_sweep_finishes_a_tag_deletion_cut_short(http: httpx.Client, storage: Storage) -> None:
    project_id = http.post("/projects", params={"name": f"cut-{uuid.uuid4().hex[:8]}"}).json()["id"]
    tag = http.post(f"/projects/{project_id}/tags", params={"name": "gone"}).json()
    other = http.post(f"/projects/{project_id}/tags", params={"name": "kept"}).json()
    upload = http.post(
        f"/projects/{project_id}/images",
        params={"tagIds": f"{tag['id']},{other['id']}"},
        content=jpeg_bytes((1, 2, 3)),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert upload.status_code == 200, upload.text
    # A deletion that stopped right after removing the tag row (a crash).
    stored = storage.tags.get(project_id, tag["id"])
    assert stored is not None
    storage.tags.delete(project_id, stored)

    assert OrphanSweeper(storage, TagService(storage)).sweep().tags_finished >= 1
    tags_of = assert_consistent(http, project_id)
    assert list(tags_of.values()) == [{other["id"]}]
