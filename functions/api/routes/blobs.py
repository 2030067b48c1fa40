"""Signed, short-lived links to blobs: images (what originalImageUri and friends point to) and
export packages (downloadUri)."""

from __future__ import annotations

import re

from fastapi import APIRouter, Response

from functions.api.deps import ServicesDep
from functions.api.links import LINK_CONTAINERS, LINK_ROOT
from functions.domain import names
from functions.domain.errors import NotFound
from functions.domain.exports import export_blob_path
from functions.domain.ids import parse_id

_EXPORT_FILE = re.compile(r"^[A-Za-z0-9]+(-[A-Za-z0-9]+)?\.zip$")

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
    project_id, item_id = parse_id(projectId), parse_id(imageId)
    headers = {"Cache-Control": "private, max-age=3600"}
    if kind == "exports" and _EXPORT_FILE.match(variant):
        blob_path = export_blob_path(project_id, item_id, variant)
        headers["Content-Disposition"] = f'attachment; filename="{variant}"'
    elif kind in LINK_CONTAINERS and variant in names.IMAGE_VARIANTS:
        blob_path = names.image_blob_path(project_id, item_id, variant)
    else:
        raise NotFound("NotFound", f"Unknown file '{kind}/{variant}'.")
    if kind == "predictions":
        found = services.stored_predictions.image(project_id, item_id, variant)
    else:
        found = services.storage.blobs.get_with_type(LINK_CONTAINERS[kind], blob_path)
    if found is None:
        raise NotFound("NotFound", "The file no longer exists.")
    data, content_type = found
    return Response(data, media_type=content_type, headers=headers)
