"""Read the parts of a multipart/form-data body as raw bytes, streamed into temporary files.

Clients differ: the Python SDK sends image bytes as a plain form field (no filename), the
JavaScript SDK and browsers as files. Starlette would decode plain fields as text and cap them
at 1 MB, so we parse the body ourselves (python-multipart's streaming parser), each part into
its own file, on disk past 1 MB: a body is never held in memory whole.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import IO, Protocol

from python_multipart.decoders import Base64Decoder, QuotedPrintableDecoder
from python_multipart.multipart import MultipartParser

from functions.domain.errors import BadRequest

_SPOOL_IN_MEMORY_BYTES = 1024 * 1024


@dataclass
class SpooledPart:
    """One part of a multipart body, its (decoded) bytes in a temporary file."""

    field_name: str | None
    filename: str | None
    file: IO[bytes]


class _Sink(Protocol):
    def write(self, data: bytes) -> int: ...


class _Spooler:
    """Feeds chunks of a multipart body to the parser; each part's bytes go to its own file
    (through a base64 or quoted-printable decoder when its Content-Transfer-Encoding says so)."""

    def __init__(self, content_type: str) -> None:
        boundary = _boundary(content_type)
        if boundary is None:
            raise BadRequest("BadRequestImageStream", "multipart/form-data needs a boundary.")
        self.parts: list[SpooledPart] = []
        self._sink: _Sink | None = None
        self._name = bytearray()
        self._value = bytearray()
        self._headers: dict[str, str] = {}
        callbacks = {
            "on_part_begin": self._headers.clear,
            "on_header_field": lambda d, s, e: self._name.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._value.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }
        self._parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]

    def _header_end(self) -> None:
        self._headers[self._name.decode("latin-1").lower()] = self._value.decode("utf-8", "replace")
        self._name.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        disposition = self._headers.get("content-disposition", "")
        file = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY_BYTES)  # noqa: SIM115
        self.parts.append(
            SpooledPart(_param(disposition, "name"), _param(disposition, "filename"), file)
        )
        encoding = self._headers.get("content-transfer-encoding", "").strip().lower()
        if encoding == "base64":
            self._sink = Base64Decoder(file)
        elif encoding == "quoted-printable":
            self._sink = QuotedPrintableDecoder(file)
        else:
            self._sink = file

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._sink is not None:
            self._sink.write(data[start:end])

    def _part_end(self) -> None:
        if isinstance(self._sink, Base64Decoder | QuotedPrintableDecoder):
            self._sink.finalize()
        self._sink = None

    def feed(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except ValueError as error:  # python-multipart's parse and decode errors are ValueErrors
            self.close()
            message = f"The multipart body is malformed: {error}"
            raise BadRequest("BadRequestImageStream", message) from None

    def finish(self) -> list[SpooledPart]:
        self._parser.finalize()
        for part in self.parts:
            part.file.seek(0)
        return self.parts

    def close(self) -> None:
        for part in self.parts:
            part.file.close()


async def spool_multipart(content_type: str, chunks: AsyncIterator[bytes]) -> list[SpooledPart]:
    """Parse a multipart/form-data body as it streams in, each part into its own file (the
    caller closes them)."""
    spooler = _Spooler(content_type)
    try:
        async for chunk in chunks:
            spooler.feed(chunk)
    except BaseException:
        spooler.close()
        raise
    return spooler.finish()


async def image_from_stream(content_type: str, chunks: AsyncIterator[bytes]) -> bytes:
    """The one image of a request: the raw body, or the first part of a multipart body."""
    if content_type.lower().startswith("multipart/"):
        return _first_part(await spool_multipart(content_type, chunks))
    return _image(b"".join([chunk async for chunk in chunks]))


def image_from_body(content_type: str, body: bytes) -> bytes:
    """image_from_stream over a body already read."""
    if not content_type.lower().startswith("multipart/"):
        return _image(body)
    spooler = _Spooler(content_type)
    spooler.feed(body)
    return _first_part(spooler.finish())


def _first_part(parts: list[SpooledPart]) -> bytes:
    try:
        return _image(parts[0].file.read() if parts else b"")
    finally:
        for part in parts:
            part.file.close()


def _image(data: bytes) -> bytes:
    if not data:
        raise BadRequest("BadRequestImageStream", "The request holds no image data.")
    return data


def _boundary(content_type: str) -> bytes | None:
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary" and value:
            return value.strip('"').encode()
    return None


def _param(header: str, name: str) -> str | None:
    """A parameter of a Content-Disposition header (name="...", filename="...")."""
    message = EmailMessage()
    message["content-disposition"] = header
    value = message.get_param(name, header="content-disposition")
    return value if isinstance(value, str) else None
