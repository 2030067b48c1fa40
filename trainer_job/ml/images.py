"""Reading training images from their stored bytes (the resized copies)."""

from __future__ import annotations

import io

from PIL import Image

from functions.domain import names
from functions.storage.clients import Storage


def decode_image(data: bytes | None) -> Image.Image | None:
    """RGB pixels of stored bytes; None when they are missing or cannot be decoded."""
    if data is None:
        return None
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
        return image.convert("RGB")
    except Exception:  # any decoding failure means: skip this image
        return None


def load_resized(storage: Storage, project_id: str, image_id: str) -> Image.Image | None:
    """The training copy of an image (shorter side 256-512 px), decoded."""
    path = names.image_blob_path(project_id, image_id, "resized")
    return decode_image(storage.blobs.get(names.CONTAINER_IMAGES, path))
