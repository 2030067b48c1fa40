"""Signed, short-lived links to image blobs (what originalImageUri and friends point to)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from functions.api.deps import ServicesDep
from functions.api.links import LINK_CONTAINERS, LINK_ROOT
from functions.domain import names
from functions.domain.errors import NotFound
from functions.domain.ids import parse_id

router = APIRouter(tags=["image links"])


@router.get(LINK_ROOT + "/{kind}/{projectId}/{imageId}/{variant}")
def get_image_blob(
    services: ServicesDep,
    kind: str,
    projectId: str,
    imageId: str,
    variant: str,
    se: int,
    sig: str,
) -> Response:
    path = f"{LINK_ROOT}/{kind}/{projectId}/{imageId}/{variant}"
    services.links.verify(path, se, sig)
    if variant not in names.IMAGE_VARIANTS or kind not in LINK_CONTAINERS:
        raise NotFound("NotFound", f"Unknown image '{kind}/{variant}'.")
    blob_path = names.image_blob_path(parse_id(projectId), parse_id(imageId), variant)
    found = services.storage.blobs.get_with_type(LINK_CONTAINERS[kind], blob_path)
    if found is None:
        raise NotFound("NotFoundImage", "The image no longer exists.")
    data, content_type = found
    return Response(
        data, media_type=content_type, headers={"Cache-Control": "private, max-age=3600"}
    )
