"""Wire mapping that several routers share: signed links for this request, images with their
tag names, and the 200-or-207 answer of an image batch."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from functions.api.deps import Services, base_url
from functions.api.schemas.predictions import LinkFn
from functions.api.schemas.training import ImageCreateSummaryOut, ImageMapper
from functions.domain.models import ImageCreateOutcome


def image_links(services: Services, request: Request) -> LinkFn:
    """Signed links to training images, pointing where this request's links should."""
    root = base_url(request)
    return lambda p, i, v: services.links.link(root, p, i, v)


def prediction_links(services: Services, request: Request) -> LinkFn:
    """Signed links to the images of stored predictions."""
    root = base_url(request)
    return lambda p, i, v: services.links.link(root, p, i, v, kind="predictions")


def image_mapper(services: Services, request: Request, project_id: str) -> ImageMapper:
    names = {t.id: t.name for t in services.storage.tags.list(project_id)}
    return ImageMapper(project_id, names, image_links(services, request))


def summary_response(
    services: Services, request: Request, project_id: str, outcomes: list[ImageCreateOutcome]
) -> JSONResponse:
    mapper = image_mapper(services, request, project_id)
    summary = ImageCreateSummaryOut(
        isBatchSuccessful=all(o.ok for o in outcomes),
        images=[mapper.outcome(o) for o in outcomes],
    )
    status = 200 if summary.isBatchSuccessful else 207
    return JSONResponse(summary.model_dump(mode="json"), status_code=status)
