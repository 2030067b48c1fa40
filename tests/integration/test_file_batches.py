"""POST /images/files (the Python SDK's base64 JSON batch) read as it streams in: large image
contents go through temporary files, and the answers are those of a body parsed whole."""

from __future__ import annotations

import base64
import io
import json
import os
import uuid
from collections.abc import Iterator

import httpx
import numpy as np
from PIL import Image

from functions.api.json_spool import LONG_STRING
from tests.conftest import assert_error, jpeg_bytes


def _noisy_jpeg(seed: int) -> bytes:
    """A JPEG of noise: large enough that its base64 is spooled to a file."""
    pixels = np.random.default_rng(seed).integers(0, 256, (400, 400, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def _pieces(body: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_large_and_small_contents_are_stored_and_bad_ones_refused(http: httpx.Client) -> None:
    project_id = http.post("/projects", params={"name": uuid.uuid4().hex}).json()["id"]
    tag_id = http.post(f"/projects/{project_id}/tags", params={"name": "t"}).json()["id"]
    large, escaped = _noisy_jpeg(1), _noisy_jpeg(2)
    assert len(base64.b64encode(large)) > LONG_STRING
    images = [
        {"name": "large.jpg", "contents": base64.b64encode(large).decode()},
        {"name": "small.jpg", "contents": base64.b64encode(jpeg_bytes()).decode()},
        {"name": "bad-long", "contents": "*" * (LONG_STRING + 10)},
        {"name": "bad-short", "contents": "not base64!"},
        {"name": "escaped.jpg", "contents": "ESCAPED"},
    ]
    body = json.dumps({"images": images, "tagIds": [tag_id]}).encode()
    # Some encoders escape '/': the escapes must survive the spooling.
    body = body.replace(b'"ESCAPED"', b'"' + base64.b64encode(escaped).replace(b"/", b"\\/") + b'"')
    answer = http.post(
        f"/projects/{project_id}/images/files",
        content=_pieces(body),  # chunked, in small pieces
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 207, answer.text
    results = answer.json()["images"]
    assert [r["status"] for r in results] == ["OK", "OK", "ErrorSource", "ErrorSource", "OK"]
    assert [r["sourceUrl"] for r in results] == [i["name"] for i in images]
    stored = {r["image"]["id"]: r["image"] for r in results if r["status"] == "OK"}
    assert all(image["tags"][0]["tagId"] == tag_id for image in stored.values())
    originals = [
        httpx.get(r["image"]["originalImageUri"]).content for r in results if r["status"] == "OK"
    ]
    assert originals == [large, jpeg_bytes(), escaped]


def test_a_full_batch_of_small_images_is_read_whole(http: httpx.Client) -> None:
    """64 contents each just short of being spooled: the most the in-memory part can hold."""
    project_id = http.post("/projects", params={"name": uuid.uuid4().hex}).json()["id"]
    contents = [base64.b64encode(os.urandom(LONG_STRING * 3 // 4 - 3)).decode() for _ in range(64)]
    assert all(len(c) < LONG_STRING for c in contents)
    batch = {"images": [{"name": f"{i}", "contents": c} for i, c in enumerate(contents)]}
    answer = http.post(f"/projects/{project_id}/images/files", json=batch)
    assert answer.status_code == 207, answer.text  # read, then refused one by one (not images)
    assert {r["status"] for r in answer.json()["images"]} == {"ErrorImageFormat"}


def test_a_body_that_is_not_a_batch_is_a_bad_request(http: httpx.Client) -> None:
    project_id = http.post("/projects", params={"name": uuid.uuid4().hex}).json()["id"]
    path = f"/projects/{project_id}/images/files"
    headers = {"Content-Type": "application/json"}
    long_string = b'["' + b"A" * (LONG_STRING + 1) + b'"]'
    deep = b"[" * 100_000 + b"]" * 100_000
    for body in (b'{"images": [', b'{"images": "x"}', long_string, deep):
        assert_error(http.post(path, content=body, headers=headers), 400, "BadRequest")
    assert_error(http.post(path, json={"images": []}), 400, "BadRequestImageBatch")


def test_the_document_still_describes_the_body(endpoint: str) -> None:
    document = httpx.get(endpoint + "/openapi.json").json()
    operation = document["paths"]["/customvision/v3.3/training/projects/{projectId}/images/files"]
    schema = operation["post"]["requestBody"]["content"]["application/json"]["schema"]
    entry = schema["properties"]["images"]["anyOf"][0]["items"]
    assert {"name", "contents", "tagIds"} <= entry["properties"].keys()
    assert "$ref" not in json.dumps(schema)
