"""create_app(): the FastAPI app behind both the Functions host and local uvicorn."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from functions.api.deps import Services
from functions.api.errors import CatchAll, install_error_handlers
from functions.api.middleware import BodyLimit, CaseInsensitivePaths, KeyGate
from functions.api.openapi import install_openapi
from functions.api.routes import (
    blobs,
    datasets,
    domains,
    exports,
    image_uploads,
    images,
    iterations,
    portal,
    portal_data,
    prediction,
    predictions,
    project_transfer,
    projects,
    regions,
    suggestions,
    tags,
)
from functions.domain.limits import (
    MAX_DATASET_ARCHIVE_BYTES,
    MAX_IMAGES_PER_BATCH,
    MAX_PREDICTION_IMAGE_BYTES,
    MAX_TRAINING_IMAGE_BYTES,
)
from functions.settings import Settings, get_settings
from functions.storage.clients import Storage

log = logging.getLogger(__name__)

TRAINING_PREFIXES = ("/customvision/v3.3/training", "/customvision/v3.4-preview/training")
PREDICTION_PREFIXES = ("/customvision/v3.0/prediction", "/customvision/v3.1/prediction")

# The largest body each operation can legally need (Custom Vision's limits) plus room for the
# multipart or JSON framing; anything larger is refused before it is read.
_FRAMING = 1024 * 1024
_BATCH = MAX_IMAGES_PER_BATCH * MAX_TRAINING_IMAGE_BYTES
BODY_LIMITS = (
    (r"/training/projects/[^/]+/images$", _BATCH + _FRAMING),  # multipart or raw bytes
    (r"/training/projects/[^/]+/images/files$", _BATCH * 4 // 3 + _FRAMING),  # base64 JSON
    (r"/training/projects/[^/]+/datasets/import$", MAX_DATASET_ARCHIVE_BYTES),
    (r"/training/projects/[^/]+/quicktest/image$", MAX_PREDICTION_IMAGE_BYTES + _FRAMING),
    (r"/prediction/.+/image(/nostore)?$", MAX_PREDICTION_IMAGE_BYTES + _FRAMING),
)
DEFAULT_BODY_LIMIT = _FRAMING  # every other body is a small JSON document


def prepare_storage(services: Services) -> None:
    """Create missing tables, containers and queues; finish interrupted project deletions."""
    services.storage.prepare()
    services.projects.resume_deletions()


def create_app(
    settings: Settings | None = None,
    storage: Storage | None = None,
    services: Services | None = None,
) -> FastAPI:
    """The app over `services` (by default built from `settings` and `storage`)."""
    settings = services.settings if services else settings or get_settings()
    settings.check_keys()
    services = services or Services.build(settings, storage)

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
    install_openapi(app, (*TRAINING_PREFIXES, *PREDICTION_PREFIXES))
    # Suggestions before images: /images/suggested must not be read as /images/{imageId}.
    routers = (
        domains,
        portal_data,
        projects,
        tags,
        suggestions,
        predictions,
        regions,
        images,
        image_uploads,
        iterations,
        exports,
        project_transfer,
        datasets,
    )
    for prefix in TRAINING_PREFIXES:
        for module in routers:
            app.include_router(module.router, prefix=prefix)
    for prefix in PREDICTION_PREFIXES:
        app.include_router(prediction.router, prefix=prefix)
    app.include_router(blobs.router)
    app.include_router(portal.router)
    app.state.services = services

    modules = (*routers, prediction)
    prefixes = (*TRAINING_PREFIXES, *PREDICTION_PREFIXES)
    paths = [*prefixes, *(r.path for m in modules for r in m.router.routes)]
    literals = {s.lower() for p in paths for s in p.split("/") if s and not s.startswith("{")}
    # Added last runs first: errors are caught, paths normalised, the key checked, and only
    # then is a body read, within its limit.
    app.add_middleware(BodyLimit, limits=BODY_LIMITS, default=DEFAULT_BODY_LIMIT)
    app.add_middleware(
        KeyGate, prefixes=TRAINING_PREFIXES, header="Training-Key", key=settings.training_key
    )
    app.add_middleware(
        KeyGate,
        prefixes=PREDICTION_PREFIXES,
        header="Prediction-Key",
        key=settings.prediction_key,
    )
    app.add_middleware(CaseInsensitivePaths, literals=literals)
    app.add_middleware(CatchAll)  # outermost of ours: it answers what everything else raised
    return app
