"""ASGI middleware: case-insensitive paths, the key check that runs before anything else, and
the body limit that runs before any body is read."""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from functions.domain.errors import PayloadTooLarge

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")

ACCESS_DENIED = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide "
    "a valid key for an active subscription and use a correct regional API endpoint for your "
    "resource."
)


class CaseInsensitivePaths:
    """Lower-case the literal segments of known routes (and GUIDs), keeping other values."""

    def __init__(self, app: ASGIApp, literals: set[str]) -> None:
        self.app = app
        self.literals = literals

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            parts = scope["path"].split("/")
            fixed = [
                p.lower() if p.lower() in self.literals or _GUID.match(p) else p for p in parts
            ]
            scope["path"] = "/".join(fixed)
        await self.app(scope, receive, send)


class KeyGate:
    """Refuse requests under `prefixes` without the right key header, before any parsing."""

    def __init__(self, app: ASGIApp, prefixes: tuple[str, ...], header: str, key: str) -> None:
        self.app = app
        self.prefixes = tuple(p.lower() + "/" for p in prefixes)
        self.header = header.lower().encode()
        self.key = key.encode()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and (scope["path"].lower() + "/").startswith(self.prefixes):
            given = next((v for k, v in scope["headers"] if k.lower() == self.header), None)
            if given is None or not hmac.compare_digest(given, self.key):
                await _deny(send)
                return
        await self.app(scope, receive, send)


async def _deny(send: Any) -> None:
    body = json.dumps({"code": "Unauthorized", "message": ACCESS_DENIED}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuse a request body larger than its route can legally need, before it is buffered:
    by Content-Length when the client sends one, else while it streams in. The answer is
    413 with Custom Vision's code for an image too large, BadRequestImageSizeBytes."""

    def __init__(self, app: ASGIApp, limits: tuple[tuple[str, int], ...], default: int) -> None:
        self.app = app
        self.limits = tuple((re.compile(pattern), size) for pattern, size in limits)
        self.default = default

    def limit(self, path: str) -> int:
        return next((size for rule, size in self.limits if rule.search(path)), self.default)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope["path"])
        declared = next((v for k, v in scope["headers"] if k.lower() == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(send, limit)
            return
        received = 0
        overflowed = responded = False

        async def counted() -> Any:
            nonlocal received, overflowed
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                overflowed = True
                raise PayloadTooLarge("BadRequestImageSizeBytes", _too_large_message(limit))
            return message

        async def guarded(message: MutableMapping[str, Any]) -> None:
            # Once the body overflowed, whatever the app answers (a route may turn the error
            # into another one while parsing) becomes the 413.
            nonlocal responded
            if not overflowed:
                await send(message)
            elif message["type"] == "http.response.start" and not responded:
                await _too_large(send, limit)
            responded = responded or message["type"] == "http.response.start"

        try:
            await self.app(scope, counted, guarded)
        except Exception:  # whatever reading past the limit led to, the answer is the 413
            if not overflowed:
                raise
            if not responded:
                await _too_large(send, limit)


def _too_large_message(limit: int) -> str:
    return f"The request body is over {limit} bytes, the most this operation accepts."


async def _too_large(send: Any, limit: int) -> None:
    body = json.dumps({"code": "BadRequestImageSizeBytes", "message": _too_large_message(limit)})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),  # the rest of the body is not read
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body.encode()})
