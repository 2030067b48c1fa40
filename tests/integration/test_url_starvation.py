"""A batch of slow image URLs never holds up an unrelated upload of files."""

from __future__ import annotations

import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from tests.conftest import jpeg_bytes
from tools.azurite import free_port


def test_slow_urls_do_not_starve_file_uploads(http: httpx.Client, endpoint: str) -> None:
    release = threading.Event()
    photo = jpeg_bytes((5, 90, 200))

    class Slow(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            release.wait(timeout=20)
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(photo)))
            self.end_headers()
            self.wfile.write(photo)

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    project_id = http.post("/projects", params={"name": uuid.uuid4().hex}).json()["id"]
    urls_done = threading.Event()
    url_answer: list[httpx.Response] = []

    def send_urls() -> None:
        body = {"images": [{"url": f"http://127.0.0.1:{port}/{i}.jpg"} for i in range(32)]}
        with httpx.Client(base_url=str(http.base_url), headers=http.headers, timeout=120) as c:
            url_answer.append(c.post(f"/projects/{project_id}/images/urls", json=body))
        urls_done.set()

    try:
        sender = threading.Thread(target=send_urls)
        sender.start()
        files = [("f", (f"{i}.jpg", jpeg_bytes((i * 30, 10, 10)), "image/jpeg")) for i in range(8)]
        upload = http.post(f"/projects/{project_id}/images", files=files)
        assert upload.status_code == 200, upload.text
        # The files were stored while every URL was still being held by the slow server.
        assert not urls_done.is_set()
    finally:
        release.set()
        sender.join(timeout=120)
        server.shutdown()
    assert url_answer and url_answer[0].status_code in (200, 207)
    statuses = {e["status"] for e in url_answer[0].json()["images"]}
    assert statuses <= {"OK", "OKDuplicate"}
