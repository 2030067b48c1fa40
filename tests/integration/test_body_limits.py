"""Bodies larger than an operation can legally need are refused before they are buffered."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from http.client import HTTPConnection
from urllib.parse import urlsplit

import httpx

from functions.api.app import BODY_LIMITS, DEFAULT_BODY_LIMIT
from functions.domain.limits import MAX_PREDICTION_IMAGE_BYTES
from tests.conftest import PREDICTION_KEY, TRAINING_KEY, TRAINING_PREFIX, assert_error


def _chunks(total: int, size: int = 256 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


def test_declared_length_over_the_limit_is_refused_before_reading(
    endpoint: str, http: httpx.Client
) -> None:
    project_id = http.post("/projects", params={"name": uuid.uuid4().hex}).json()["id"]
    where = urlsplit(endpoint)
    connection = HTTPConnection(where.hostname or "", where.port, timeout=30)
    # 600 MB announced, none sent: the answer comes without the server waiting for the body.
    connection.putrequest("POST", f"{TRAINING_PREFIX}/projects/{project_id}/images/files")
    for name, value in (
        ("Training-Key", TRAINING_KEY),
        ("Content-Type", "application/json"),
        ("Content-Length", str(600 * 10**6)),
    ):
        connection.putheader(name, value)
    connection.endheaders()
    response = connection.getresponse()
    body = json.loads(response.read())
    assert response.status == 413
    assert body["code"] == "BadRequestImageSizeBytes"
    connection.close()
    assert http.get("/projects").status_code == 200


def test_a_streamed_body_over_the_limit_is_cut_off(http: httpx.Client) -> None:
    project_id = http.post("/projects", params={"name": uuid.uuid4().hex}).json()["id"]
    response = http.post(
        f"/projects/{project_id}/images/tags",
        content=_chunks(DEFAULT_BODY_LIMIT + 1),  # chunked: no Content-Length
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 413, "BadRequestImageSizeBytes")
    quick = http.post(
        f"/projects/{project_id}/quicktest/image",
        content=_chunks(MAX_PREDICTION_IMAGE_BYTES + 2 * 1024 * 1024),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert_error(quick, 413, "BadRequestImageSizeBytes")
    assert http.get(f"/projects/{project_id}").status_code == 200


def test_a_streamed_prediction_over_the_limit_is_cut_off(endpoint: str) -> None:
    path = f"/customvision/v3.0/prediction/{uuid.uuid4()}/classify/iterations/any/image"
    with httpx.Client(base_url=endpoint, headers={"Prediction-Key": PREDICTION_KEY}) as client:
        head = b'--b\r\nContent-Disposition: form-data; name="imageData"\r\n\r\n'
        for content_type, first in (
            ("application/octet-stream", b""),
            ("multipart/form-data; boundary=b", head),  # a part that never ends
        ):
            response = client.post(
                path,
                content=itertools.chain([first], _chunks(MAX_PREDICTION_IMAGE_BYTES + 2**21)),
                headers={"Content-Type": content_type},
            )
            assert_error(response, 413, "BadRequestImageSizeBytes")
        # The server is still healthy: a small body gets its ordinary answer.
        small = client.post(path, content=b"x", headers={"Content-Type": "image/png"})
        assert_error(small, 404, "NotFoundProject")


def test_limits_fit_the_largest_legal_requests() -> None:
    sizes = dict(BODY_LIMITS)
    assert sizes[r"/training/projects/[^/]+/images$"] >= 64 * 6 * 1024 * 1024
    assert sizes[r"/training/projects/[^/]+/images/files$"] >= 64 * 8 * 1024 * 1024
    assert sizes[r"/prediction/.+/image(/nostore)?$"] >= MAX_PREDICTION_IMAGE_BYTES
