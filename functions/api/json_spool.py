"""Read a JSON body as it streams in, its long strings (base64 image contents) into temporary
files, so a 64-image batch of base64 JSON is never held in memory (nor decoded, nor parsed into
Python strings) whole.

What stays in memory is the document's skeleton: every string of up to LONG_STRING bytes, the
structure, and in place of each long string a placeholder only this request can produce.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import tempfile
from collections.abc import AsyncIterator
from typing import IO, Any

from functions.domain.errors import BadRequest, PayloadTooLarge
from functions.domain.limits import MAX_IMAGES_PER_BATCH

LONG_STRING = 16 * 1024  # strings longer than this go to a file
# A batch's small images stay inline; names, tag ids and metadata add well under 1 MB.
MAX_SKELETON_BYTES = MAX_IMAGES_PER_BATCH * LONG_STRING + 1024 * 1024
_QUOTE_OR_BACKSLASH = re.compile(rb'["\\]')
_BASE64_CHUNK = 4 * 256 * 1024  # decoded a quarter megabyte at a time


class SpooledJson:
    """A JSON body read by `spool_json`: `document` holds placeholders for the long strings,
    whose raw JSON text (escapes kept) lies in `files`."""

    def __init__(self, document: Any, nonce: str, files: list[IO[bytes]]) -> None:
        self.document = document
        self._prefix = f"\x00{nonce}:"
        self.files = files

    def spooled(self, value: object) -> IO[bytes] | None:
        """The file holding a long string, given its placeholder; None for any other value."""
        if isinstance(value, str) and value.startswith(self._prefix):
            return self.files[int(value[len(self._prefix) :])]
        return None

    def restored(self, value: Any, keep: tuple[str, ...] | None = None) -> Any:
        """`value` with every long string read back as text (ValueError if it is not valid
        JSON text), except the one at the path `keep`, which stays a placeholder for `spooled`
        (keys name object members, "*" any list item: ("images", "*", "contents"))."""

        def rest(step: str) -> tuple[str, ...] | None:
            return keep[1:] if keep and keep[0] == step else None

        if isinstance(value, dict):
            return {self.restored(k): self.restored(v, rest(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.restored(v, rest("*")) for v in value]
        file = self.spooled(value)
        if file is None or keep == ():
            return value
        file.seek(0)
        return json.loads(b'"' + file.read() + b'"')

    def close(self) -> None:
        for file in self.files:
            file.close()


async def spool_json(
    chunks: AsyncIterator[bytes],
    max_strings: int,
    max_skeleton: int = MAX_SKELETON_BYTES,
) -> SpooledJson:
    """Read a JSON body; at most `max_strings` long strings (each a file) are accepted."""
    nonce = secrets.token_hex(8)
    skeleton = bytearray()
    files: list[IO[bytes]] = []
    string = bytearray()  # the string being read, while it is short
    file: IO[bytes] | None = None  # ...and once it is long
    in_string = escaped = False

    def take(segment: bytes | memoryview) -> None:
        nonlocal file
        if file is not None:
            file.write(segment)
            return
        string.extend(segment)
        if len(string) > LONG_STRING:
            if len(files) >= max_strings:
                raise BadRequest(
                    "BadRequestImageBatch",
                    f"The body holds more than {max_strings} long strings (images).",
                )
            file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by SpooledJson.close)
            files.append(file)
            file.write(string)
            string.clear()

    def grow(segment: bytes | bytearray | memoryview) -> None:
        skeleton.extend(segment)
        if len(skeleton) > max_skeleton:
            raise PayloadTooLarge(
                "BadRequestImageBatch",
                f"The body besides image contents is over {max_skeleton} bytes.",
            )

    def end_string() -> None:
        nonlocal file
        if file is None:
            grow(string + b'"')
        else:
            grow(f'\\u0000{nonce}:{len(files) - 1}"'.encode())
            file = None
        string.clear()

    try:
        async for chunk in chunks:
            view, i, end = memoryview(chunk), 0, len(chunk)
            while i < end:
                if not in_string:
                    quote = chunk.find(b'"', i)
                    stop = end if quote < 0 else quote + 1
                    grow(view[i:stop])
                    in_string, i = quote >= 0, stop
                    continue
                if escaped:  # the byte after a backslash that ended the previous chunk
                    take(view[i : i + 1])
                    escaped, i = False, i + 1
                    continue
                found = _QUOTE_OR_BACKSLASH.search(chunk, i)
                if found is None:
                    take(view[i:])
                    i = end
                elif chunk[found.start()] == ord("\\"):
                    stop = min(found.start() + 2, end)
                    take(view[i:stop])
                    escaped, i = stop - found.start() == 1, stop
                else:
                    take(view[i : found.start()])
                    end_string()
                    in_string, i = False, found.start() + 1
        if in_string:
            raise json.JSONDecodeError("Unterminated string", "", len(skeleton))
        document = json.loads(skeleton)
    except BaseException:
        for spooled in files:
            spooled.close()
        raise
    return SpooledJson(document, nonce, files)


def decode_base64(file: IO[bytes]) -> IO[bytes] | None:
    """The bytes of a spooled base64 string, into a new temporary file (on disk past 1 MB);
    None when it is not valid base64 (what base64.b64decode(validate=True) refuses)."""
    file.seek(0)
    decoded = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)  # noqa: SIM115
    try:
        chunk = file.read(_BASE64_CHUNK)
        while chunk:
            following = file.read(_BASE64_CHUNK)
            if b"\\" in chunk:  # escaped JSON (rare): unescape the whole string at once
                file.seek(0)
                text = json.loads(b'"' + file.read() + b'"')
                decoded.seek(0)
                decoded.truncate()
                decoded.write(base64.b64decode(text, validate=True))
                break
            if following and b"=" in chunk:  # padding belongs at the very end only
                raise binascii.Error("padding inside the data")
            decoded.write(base64.b64decode(chunk, validate=True))
            chunk = following
    except (binascii.Error, ValueError):
        decoded.close()
        return None
    decoded.seek(0)
    return decoded
