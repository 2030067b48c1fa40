"""create_app(): the FastAPI app behind both the Functions host and local uvicorn."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from functions.api.deps import Services
from functions.api.errors import install_error_handlers
from functions.api.routes import blobs, domains, image_uploads, images, projects, tags
from functions.settings import Settings, get_settings
from functions.storage.clients import Storage

log = logging.getLogger(__name__)

TRAINING_PREFIXES = ("/customvision/v3.3/training", "/customvision/v3.4-preview/training")

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


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


def prepare_storage(services: Services) -> None:
    """Create missing tables, containers and queues; finish interrupted project deletions."""
    services.storage.clients.ensure_resources()
    services.projects.resume_deletions()


def create_app(settings: Settings | None = None, storage: Storage | None = None) -> FastAPI:
    settings = settings or get_settings()
    storage = storage or Storage.from_settings(settings)
    services = Services.build(settings, storage)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(prepare_storage, services)
        yield

    app = FastAPI(
        lifespan=lifespan,
        title="Open Custom Vision",
        description="A self-hostable image classification service that speaks Azure Custom "
        "Vision's Training API.",
        version="0.1.0",
    )
    install_error_handlers(app)
    for prefix in TRAINING_PREFIXES:
        for module in (domains, projects, tags, images, image_uploads):
            app.include_router(module.router, prefix=prefix)
    app.include_router(blobs.router)
    app.state.services = services

    literals = {
        segment.lower()
        for route in app.routes
        if isinstance(route, Route)
        for segment in route.path.split("/")
        if segment and not segment.startswith("{")
    }
    app.add_middleware(CaseInsensitivePaths, literals=literals)
    return app
