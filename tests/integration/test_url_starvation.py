"""A batch of slow image URLs never holds up an unrelated upload of files."""

from __future__ import annotations

import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from functions.domain.models import ImageCreateOutcome
from functions.services.images import ImageService, NewImage
from functions.services.url_fetch import UrlPolicy
from functions.storage.clients import Storage
from tests.conftest import jpeg_bytes
from tools.azurite import free_port


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # every download of the batch connects at once
    daemon_threads = True


def test_slow_urls_do_not_starve_file_uploads(http: httpx.Client, storage: Storage) -> None:
    release = threading.Event()
    arrived = threading.Semaphore(0)
    answered: list[str] = []
    photo = jpeg_bytes((5, 90, 200))

    class Slow(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            arrived.release()
            release.wait(timeout=120)  # held until the test lets go
            answered.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(photo)))
            self.end_headers()
            self.wfile.write(photo)

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    server = _Server(("127.0.0.1", port), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    project_id = http.post("/projects", params={"name": uuid.uuid4().hex}).json()["id"]
    # 64 URLs (the most in a batch) that answer only when released, with no timeout to cut
    # them short: the API process's pools are shared, so this batch (run beside the API, in
    # its process) holds every download thread it can get.
    policy = UrlPolicy(timeout_seconds=300, allowed_networks=("127.0.0.0/8",))
    sources = [NewImage(None, source_url=f"http://127.0.0.1:{port}/{i}.jpg") for i in range(64)]
    url_outcomes: list[ImageCreateOutcome] = []

    def send_urls() -> None:
        images = ImageService(storage)
        url_outcomes.extend(images.create_from_urls(project_id, sources, None, policy))

    sender = threading.Thread(target=send_urls)
    try:
        sender.start()
        for _ in range(8):  # the batch is in flight: at least 8 downloads are being held
            assert arrived.acquire(timeout=60)
        files = [("f", (f"{i}.jpg", jpeg_bytes((i * 30, 10, 10)), "image/jpeg")) for i in range(8)]
        upload = http.post(f"/projects/{project_id}/images", files=files)
        assert upload.status_code == 200, upload.text
        assert len(upload.json()["images"]) == 8
        # The files were stored while every URL was still held: not one had been answered.
        assert answered == []
        assert sender.is_alive()
    finally:
        release.set()
        sender.join(timeout=120)
        server.shutdown()
    assert len(url_outcomes) == 64
    assert {o.status.value for o in url_outcomes} <= {"OK", "OKDuplicate"}
    assert len(answered) == 64
