"""Errors are responses: an unexpected exception is a 500 {code, message} on a connection that
stays usable, unreachable storage is a 503 with Retry-After, and odd inputs are 400/404."""

from __future__ import annotations

import http.client
import json
import uuid
from urllib.parse import urlsplit

import httpx
import pytest
from azure.core.exceptions import (
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseTimeoutError,
)
from fastapi.testclient import TestClient

from functions.api.app import create_app
from functions.settings import Settings
from functions.storage.clients import Storage
from tests.conftest import TRAINING_KEY, TRAINING_PREFIX, assert_error, jpeg_bytes
from tools.azurite import free_port
from tools.serve import serve_in_thread


def test_an_unexpected_error_is_a_500_body_and_the_connection_stays_open(
    settings: Settings, storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(settings, storage)

    def broken(project_id: str) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(app.state.services.tags, "all", broken)
    with serve_in_thread(app) as url:
        headers = {"Training-Key": TRAINING_KEY}
        with httpx.Client(base_url=url + TRAINING_PREFIX, headers=headers) as client:
            project_id = client.post("/projects", params={"name": uuid.uuid4().hex}).json()["id"]
        where = urlsplit(url)
        connection = http.client.HTTPConnection(where.hostname or "", where.port)
        connection.request("GET", f"{TRAINING_PREFIX}/projects/{project_id}/tags", headers=headers)
        first = connection.getresponse()
        body = json.loads(first.read())
        assert first.status == 500
        assert body == {"code": "ErrorUnknown", "message": "An internal error occurred."}
        assert (first.getheader("connection") or "").lower() != "close"
        # The same connection serves the next request.
        connection.request("GET", f"{TRAINING_PREFIX}/projects/{project_id}", headers=headers)
        second = connection.getresponse()
        assert second.status == 200
        assert json.loads(second.read())["id"] == project_id
        connection.close()


def test_unreachable_storage_answers_503_with_retry_after() -> None:
    blob, queue, table = free_port(), free_port(), free_port()
    down = Settings(
        storage_connection_string=(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
            "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
            f"BlobEndpoint=http://127.0.0.1:{blob}/devstoreaccount1;"
            f"QueueEndpoint=http://127.0.0.1:{queue}/devstoreaccount1;"
            f"TableEndpoint=http://127.0.0.1:{table}/devstoreaccount1;"
        ),
        training_key=TRAINING_KEY,
    )
    client = TestClient(create_app(down), raise_server_exceptions=False)  # no lifespan: no start-up
    headers = {"Training-Key": TRAINING_KEY}
    for method, path in (("GET", "/projects"), ("POST", f"/projects?name={uuid.uuid4().hex}")):
        response = client.request(method, TRAINING_PREFIX + path, headers=headers)
        assert_error(response, 503, "ErrorUnknown")  # type: ignore[arg-type]
        assert response.headers["retry-after"] == "5"


def test_absurd_paging_and_forged_links_are_refused(http: httpx.Client) -> None:
    project_id = http.post("/projects", params={"name": uuid.uuid4().hex}).json()["id"]
    for params in ({"skip": 9223372036854775807}, {"skip": -1}, {"take": 10**12}):
        assert_error(
            http.get(f"/projects/{project_id}/images", params=params), 400, "BadRequestInvalid"
        )
    upload = http.post(
        f"/projects/{project_id}/images",
        content=jpeg_bytes(),
        headers={"Content-Type": "application/octet-stream"},
    )
    link = upload.json()["images"][0]["image"]["thumbnailUri"]
    with httpx.Client() as plain:
        assert plain.get(link).status_code == 200
        base = link.split("&sig=")[0]
        for sig in ("é" * 64, "%00", "", "a" * 10000):
            assert_error(plain.get(f"{base}&sig={sig}"), 404, "NotFound")
        assert_error(plain.get(link.replace("se=", "se=99999999999999999999")), 404, "NotFound")


def _storage_answer(status: int) -> HttpResponseError:
    error = HttpResponseError(message=f"storage said {status}")
    error.status_code = status
    return error


@pytest.mark.parametrize(
    ("raised", "status"),
    [
        (ServiceResponseTimeoutError("read timed out"), 503),
        (ServiceRequestError("connection refused"), 503),
        (_storage_answer(503), 503),  # ServerBusy
        (_storage_answer(500), 503),  # InternalError
        (_storage_answer(412), 500),  # a condition the code should have handled: a bug
    ],
)
def test_storage_failures_are_503_with_retry_after_or_500(
    settings: Settings,
    storage: Storage,
    monkeypatch: pytest.MonkeyPatch,
    raised: Exception,
    status: int,
) -> None:
    app = create_app(settings, storage)

    def failing(project_id: str) -> None:
        raise raised

    monkeypatch.setattr(app.state.services.projects, "get", failing)
    client = TestClient(app, raise_server_exceptions=False)  # no lifespan: nothing to prepare
    response = client.get(
        f"{TRAINING_PREFIX}/projects/{uuid.uuid4()}", headers={"Training-Key": TRAINING_KEY}
    )
    assert_error(response, status, "ErrorUnknown")  # type: ignore[arg-type]
    assert ("retry-after" in response.headers) == (status == 503)
