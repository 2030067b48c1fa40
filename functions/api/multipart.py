"""Read the parts of a multipart/form-data body as raw bytes.

Clients differ: the Python SDK sends image bytes as a plain form field (no filename), the
JavaScript SDK and browsers as files. Starlette would decode plain fields as text and cap them
at 1 MB, so we parse the body ourselves with the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass
from email import policy
from email.parser import BytesParser

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
