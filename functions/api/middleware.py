"""ASGI middleware: case-insensitive paths, and the key check that runs before anything else."""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

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
