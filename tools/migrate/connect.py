"""Reaching a Custom Vision Training endpoint from the command line: a paced SDK client, a
paced download of image links, and the projects a user names."""

from __future__ import annotations

from typing import Any

import httpx
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from msrest.authentication import ApiKeyCredentials

from tools.migrate.copier import Endpoint
from tools.migrate.pacing import Pacer


def endpoint(url: str, key: str, rate: float) -> Endpoint:
    credentials = ApiKeyCredentials(in_headers={"Training-key": key})
    return Endpoint(CustomVisionTrainingClient(url, credentials), Pacer(rate))


def downloader(client: httpx.Client, pacer: Pacer) -> Any:
    def download(url: str) -> bytes:
        def get() -> bytes:
            response = client.get(url)
            response.raise_for_status()
            return response.content

        return pacer.call(get)

    return download


def selected(source: Endpoint, wanted: list[str]) -> list[Any]:
    projects = source("get_projects")
    if not wanted:
        return list(projects)
    chosen = [p for p in projects if p.id in wanted or p.name in wanted]
    unknown = set(wanted) - {p.id for p in chosen} - {p.name for p in chosen}
    if unknown:
        raise SystemExit(f"the source has no project {', '.join(sorted(unknown))}")
    return chosen
