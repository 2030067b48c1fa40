"""Multipart bodies parse as they stream in, each part into its own temporary file."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import pytest

from functions.api.multipart import image_from_body, image_from_stream, spool_multipart
from functions.domain.errors import BadRequest

CONTENT_TYPE = 'multipart/form-data; boundary="b0undary"'


def _part(headers: str, data: bytes) -> bytes:
    return b"--b0undary\r\n" + headers.encode() + b"\r\n\r\n" + data + b"\r\n"


def _body(*parts: bytes) -> bytes:
    return b"".join(parts) + b"--b0undary--\r\n"


async def _in_chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_the_python_sdk_shape_a_plain_field_without_filename() -> None:
    data = bytes(range(256)) * 40  # every byte value, CR and LF included
    body = _body(_part('Content-Disposition: form-data; name="imageData"', data))
    assert image_from_body(CONTENT_TYPE, body) == data
    for size in (1, 7, 4096):  # chunks cutting the boundary anywhere
        assert asyncio.run(image_from_stream(CONTENT_TYPE, _in_chunks(body, size))) == data


def test_the_browser_shape_files_with_names_and_types() -> None:
    images = [b"\xff\xd8first", b"\x89PNGsecond"]
    body = _body(
        *(
            _part(
                f'Content-Disposition: form-data; name="f"; filename="{i}.jpg"\r\n'
                "Content-Type: image/jpeg",
                data,
            )
            for i, data in enumerate(images)
        )
    )
    parts = asyncio.run(spool_multipart(CONTENT_TYPE, _in_chunks(body, 5)))
    assert [(p.field_name, p.filename, p.file.read()) for p in parts] == [
        ("f", "0.jpg", images[0]),
        ("f", "1.jpg", images[1]),
    ]


def test_large_parts_go_to_disk_not_memory() -> None:
    data = b"\x00\x01" * (1024 * 1024)  # 2 MB
    body = _body(_part('Content-Disposition: form-data; name="imageData"', data))
    parts = asyncio.run(spool_multipart(CONTENT_TYPE, _in_chunks(body, 64 * 1024)))
    assert parts[0].file._rolled  # type: ignore[attr-defined]  # SpooledTemporaryFile on disk
    assert parts[0].file.read() == data


def test_a_base64_transfer_encoding_is_decoded() -> None:
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(200))
    encoded = base64.encodebytes(data)  # with line breaks, as MIME writes it
    headers = 'Content-Disposition: form-data; name="a"\r\nContent-Transfer-Encoding: base64'
    assert image_from_body(CONTENT_TYPE, _body(_part(headers, encoded))) == data


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"--x\r\n\r\ndata\r\n--x--"),  # no boundary
        (CONTENT_TYPE, b"not multipart at all"),
        (CONTENT_TYPE, _body()),  # no parts
        (CONTENT_TYPE, _body(_part('Content-Disposition: form-data; name="a"', b""))),
    ],
)
def test_malformed_or_empty_bodies_are_bad_image_streams(content_type: str, body: bytes) -> None:
    with pytest.raises(BadRequest) as error:
        image_from_body(content_type, body)
    assert error.value.code == "BadRequestImageStream"
