"""A streamed JSON body: long strings go to files, everything else parses as json.loads would."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from functions.api import json_spool
from functions.api.json_spool import LONG_STRING, SpooledJson, decode_base64, spool_json
from functions.domain.errors import BadRequest, PayloadTooLarge


async def _chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def _spool(body: bytes, size: int, max_strings: int = 64, **limits: Any) -> SpooledJson:
    return asyncio.run(spool_json(_chunks(body, size), max_strings, **limits))


PHOTO = os.urandom(3 * LONG_STRING)
BATCH: dict[str, Any] = {
    "images": [
        {"name": 'a "quoted" \\ name \u00e9\u4e2d', "contents": base64.b64encode(PHOTO).decode()},
        {"name": "small", "contents": base64.b64encode(b"tiny").decode()},
    ],
    "tagIds": ["5f3a6b2e-0000-4000-8000-000000000001"],
    # Long strings that are not images, one of them under a key named "contents":
    "metadata": {"k\n": "v" * (LONG_STRING + 5), "contents": "w" * (LONG_STRING + 1)},
}


@pytest.mark.parametrize("size", [1, 3, 7, 4096, 10**7])
def test_any_chunking_gives_the_document_back(size: int) -> None:
    body = json.dumps(BATCH).encode()
    spooled = _spool(body, size)
    try:
        assert len(spooled.files) == 3  # the photo and the long metadata values
        assert spooled.restored(spooled.document) == BATCH
        kept = spooled.restored(spooled.document, keep=("images", "*", "contents"))
        first, second = kept["images"]
        assert first["name"] == BATCH["images"][0]["name"]
        assert second["contents"] == BATCH["images"][1]["contents"]  # short: inline
        assert kept["metadata"] == BATCH["metadata"]  # long, but not at the path: read back
        file = spooled.spooled(first["contents"])
        assert file is not None
        decoded = decode_base64(file)
        assert decoded is not None and decoded.read() == PHOTO
    finally:
        spooled.close()


def test_escaped_base64_still_decodes() -> None:
    text = base64.b64encode(PHOTO).decode().replace("/", "\\/")  # some encoders escape '/'
    body = b'{"contents": "' + text.encode() + b'"}'
    spooled = _spool(body, 1000)
    file = spooled.spooled(spooled.document["contents"])
    assert file is not None
    decoded = decode_base64(file)
    assert decoded is not None and decoded.read() == PHOTO


def test_invalid_base64_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_spool, "_BASE64_CHUNK", 8)
    for text in (b"QUJD*EVG" * 9000, b"QUI=QUJD" * 9000):  # a bad letter; padding inside
        spooled = _spool(b'["' + text + b'"]', 4096)
        file = spooled.spooled(spooled.document[0])
        assert file is not None and decode_base64(file) is None
    spooled = _spool(b'["' + b"QUJD" * 20000 + b'QQ=="]', 4096)  # padding at the end is fine
    file = spooled.spooled(spooled.document[0])
    assert file is not None
    decoded = decode_base64(file)
    assert decoded is not None and decoded.read() == b"ABC" * 20000 + b"A"


def test_no_more_long_strings_than_images() -> None:
    body = json.dumps(["x" * (LONG_STRING + 1)] * 3).encode()
    with pytest.raises(BadRequest) as raised:
        _spool(body, 4096, max_strings=2)
    assert raised.value.code == "BadRequestImageBatch"


def test_the_rest_of_the_body_is_bounded() -> None:
    body = json.dumps(["short"] * 1000).encode()
    with pytest.raises(PayloadTooLarge):
        _spool(body, 4096, max_skeleton=1000)


@pytest.mark.parametrize("body", [b'{"a": "unterminated', b'{"a": 1,}', b"", b'{"a": "\xff"}'])
def test_malformed_json_is_a_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        _spool(body, 3)


def test_a_user_string_cannot_pass_for_a_placeholder() -> None:
    spooled = _spool(json.dumps({"contents": "\u0000deadbeef:0"}).encode(), 5)
    assert spooled.spooled(spooled.document["contents"]) is None
