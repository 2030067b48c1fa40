"""Read the parts of a multipart/form-data body as raw bytes.

Clients differ: the Python SDK sends image bytes as a plain form field (no filename), the
JavaScript SDK and browsers as files. Starlette would decode plain fields as text and cap them
at 1 MB, so we parse the body ourselves with the standard library.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import IO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser

from functions.domain.errors import BadRequest


@dataclass(frozen=True)
class Part:
    field_name: str | None
    filename: str | None
    data: bytes


def parse_multipart(content_type: str, body: bytes) -> list[Part]:
    if "boundary=" not in content_type:
        raise BadRequest("BadRequestImageStream", "multipart/form-data needs a boundary.")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise BadRequest("BadRequestImageStream", "The multipart body could not be read.")
    parts = []
    for part in message.iter_parts():
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            name = part.get_param("name", header="content-disposition")
            parts.append(
                Part(name if isinstance(name, str) else None, part.get_filename(), payload)
            )
    return parts


def _boundary(content_type: str) -> bytes | None:
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary" and value:
            return value.strip('"').encode()
    return None


def _first_part_fast(content_type: str, body: bytes) -> bytes | None:
    """The first part's bytes found by scanning for the boundary (no copy of the body into a
    MIME tree); None when the body is not laid out plainly, for the full parser to handle."""
    boundary = _boundary(content_type)
    if boundary is None:
        return None
    delimiter = b"--" + boundary
    start = body.find(delimiter)
    head_end = body.find(b"\r\n\r\n", start) if start >= 0 else -1
    if head_end < 0 or b"content-transfer-encoding" in body[start:head_end].lower():
        return None
    end = body.find(b"\r\n" + delimiter, head_end + 4)
    return body[head_end + 4 : end] if end >= 0 else None


def image_from_body(content_type: str, body: bytes) -> bytes:
    """The one image of a request: the raw body, or the first part of a multipart body."""
    data = body
    if content_type.lower().startswith("multipart/"):
        fast = _first_part_fast(content_type, body)
        if fast is not None:
            data = fast
        else:
            parts = parse_multipart(content_type, body)
            data = parts[0].data if parts else b""
    if not data:
        raise BadRequest("BadRequestImageStream", "The request holds no image data.")
    return data


@dataclass
class SpooledPart:
    """One part of a streamed multipart body, its bytes in a temporary file (on disk past
    1 MB), so a 64-image batch is never held in memory whole."""

    field_name: str | None
    filename: str | None
    file: IO[bytes]


async def spool_multipart(content_type: str, chunks: AsyncIterator[bytes]) -> list[SpooledPart]:
    """Parse a multipart/form-data body as it streams in, each part into its own file."""
    boundary = _boundary(content_type)
    if boundary is None:
        raise BadRequest("BadRequestImageStream", "multipart/form-data needs a boundary.")
    parts: list[SpooledPart] = []
    header_name = bytearray()
    header_value = bytearray()
    headers: dict[str, str] = {}

    def on_part_begin() -> None:
        headers.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_name.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        headers[header_name.decode("latin-1").lower()] = header_value.decode("utf-8", "replace")
        header_name.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        disposition = headers.get("content-disposition", "")
        parts.append(
            SpooledPart(
                _param(disposition, "name"),
                _param(disposition, "filename"),
                tempfile.SpooledTemporaryFile(max_size=1024 * 1024),  # noqa: SIM115 (kept open)
            )
        )

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1].file.write(data[start:end])

    callbacks = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data,
    }
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    try:
        async for chunk in chunks:
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as error:
        for part in parts:
            part.file.close()
        message = f"The multipart body is malformed: {error}"
        raise BadRequest("BadRequestImageStream", message) from None
    for part in parts:
        part.file.seek(0)
    return parts


def _param(header: str, name: str) -> str | None:
    """A parameter of a Content-Disposition header (name="...", filename="...")."""
    message = EmailMessage()
    message["content-disposition"] = header
    value = message.get_param(name, header="content-disposition")
    return value if isinstance(value, str) else None
