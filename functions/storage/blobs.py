"""Blob Storage: training images (original, resized, thumbnail) and prefix deletion."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import IO

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContentSettings

from functions.domain import names


class BlobStore:
    """Reads and writes blobs in the account's containers (whole, or streamed from and to files)."""

    def __init__(self, service: BlobServiceClient) -> None:
        self.service = service

    def put(
        self,
        container: str,
        path: str,
        data: bytes | IO[bytes],
        content_type: str,
        metadata: dict[str, str] | None = None,
    ) -> None:
        self.service.get_blob_client(container, path).upload_blob(
            data,
            overwrite=True,
            content_settings=ContentSettings(content_type=content_type),
            metadata=metadata,
        )

    def get(self, container: str, path: str) -> bytes | None:
        try:
            return self.service.get_blob_client(container, path).download_blob().readall()
        except ResourceNotFoundError:
            return None

    def download_to(self, container: str, path: str, out: IO[bytes]) -> bool:
        """Stream a blob into `out`; False when there is none."""
        try:
            self.service.get_blob_client(container, path).download_blob().readinto(out)
        except ResourceNotFoundError:
            return False
        return True

    def get_with_type(self, container: str, path: str) -> tuple[bytes, str] | None:
        try:
            downloader = self.service.get_blob_client(container, path).download_blob()
        except ResourceNotFoundError:
            return None
        content_type = downloader.properties.content_settings.content_type
        return downloader.readall(), content_type or "application/octet-stream"

    def delete(self, container: str, path: str) -> None:
        try:
            self.service.get_blob_client(container, path).delete_blob()
        except ResourceNotFoundError:
            pass

    def list_names(self, container: str, prefix: str = "") -> Iterator[str]:
        client = self.service.get_container_client(container)
        for blob in client.list_blobs(name_starts_with=prefix or None):
            yield blob.name

    def list_with_times(self, container: str, prefix: str = "") -> Iterator[tuple[str, datetime]]:
        """Every blob under `prefix`: its name and when it was last written."""
        client = self.service.get_container_client(container)
        for blob in client.list_blobs(name_starts_with=prefix or None):
            yield blob.name, blob.last_modified

    def copy(self, container: str, source: str, target: str) -> bool:
        """The blob `source` written again as `target` (bytes and content type); False when
        there is no `source`."""
        found = self.get_with_type(container, source)
        if found is not None:
            self.put(container, target, found[0], found[1])
        return found is not None

    def delete_prefix(self, container: str, prefix: str) -> int:
        client = self.service.get_container_client(container)
        names_ = [b.name for b in client.list_blobs(name_starts_with=prefix)]
        for start in range(0, len(names_), 256):
            batch = names_[start : start + 256]
            client.delete_blobs(*batch)
        return len(names_)

    # ------------------------------------------------------------ training images

    def put_image_variant(
        self, project_id: str, image_id: str, variant: str, data: bytes, content_type: str
    ) -> None:
        path = names.image_blob_path(project_id, image_id, variant)
        self.put(names.CONTAINER_IMAGES, path, data, content_type)

    def delete_image(self, project_id: str, image_id: str) -> None:
        self.delete_prefix(names.CONTAINER_IMAGES, f"{project_id}/{image_id}/")
