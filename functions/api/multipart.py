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
