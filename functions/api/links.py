"""Short-lived signed links to image blobs, served by the API so browsers can load them."""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlencode

from functions.domain import names
from functions.domain.errors import NotFound

LINK_ROOT = "/blobs"
# Link kinds and the containers they read: training images, images of stored predictions,
# and export packages.
LINK_CONTAINERS = {
    "images": names.CONTAINER_IMAGES,
    "predictions": names.CONTAINER_PREDICTIONS,
    "exports": names.CONTAINER_EXPORTS,
}


class LinkSigner:
    def __init__(self, secret: str, ttl_seconds: int) -> None:
        self._key = hmac.new(secret.encode(), b"image-links", hashlib.sha256).digest()
        self.ttl_seconds = ttl_seconds

    def _signature(self, path: str, expires: int) -> str:
        message = f"{path}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def link(
        self, base_url: str, project_id: str, image_id: str, variant: str, kind: str = "images"
    ) -> str:
        path = f"{LINK_ROOT}/{kind}/{project_id}/{image_id}/{variant}"
        # Round the expiry so repeated listings give identical, cacheable URLs.
        expires = (int(time.time()) // 600 + 1) * 600 + self.ttl_seconds
        query = urlencode({"se": expires, "sig": self._signature(path, expires)})
        return f"{base_url.rstrip('/')}{path}?{query}"

    def verify(self, path: str, expires: int, signature: str) -> None:
        good = signature.isascii() and hmac.compare_digest(
            self._signature(path, expires), signature
        )
        if not good or expires < time.time():
            raise NotFound("NotFound", "This image link is invalid or has expired.")
