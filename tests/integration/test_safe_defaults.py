"""Safe defaults: links never follow the Host header, the portal cannot be framed or run
foreign scripts, and the default keys are refused outside local storage."""

from __future__ import annotations

import uuid

import httpx
import pytest

from functions.api.app import create_app
from functions.settings import Settings
from tests.conftest import jpeg_bytes


def test_links_ignore_the_host_header(http: httpx.Client, endpoint: str) -> None:
    project_id = http.post("/projects", params={"name": uuid.uuid4().hex}).json()["id"]
    uploaded = http.post(
        f"/projects/{project_id}/images",
        content=jpeg_bytes(),
        headers={"Content-Type": "application/octet-stream", "Host": "evil.example"},
    )
    assert uploaded.status_code == 200, uploaded.text
    listed = http.get(f"/projects/{project_id}/images", headers={"Host": "evil.example"}).json()
    for image in [uploaded.json()["images"][0]["image"], *listed]:
        for name in ("originalImageUri", "resizedImageUri", "thumbnailUri"):
            assert image[name].startswith(endpoint + "/blobs/"), image[name]
            assert httpx.get(image[name]).status_code == 200


def test_configured_public_url_is_used_for_links(settings: Settings, storage: object) -> None:
    from fastapi.testclient import TestClient

    public = settings.model_copy(update={"public_base_url": "https://vision.example.com/"})
    client = TestClient(create_app(public, storage))  # type: ignore[arg-type]
    headers = {"Training-Key": settings.training_key}
    prefix = "/customvision/v3.3/training"
    project_id = client.post(f"{prefix}/projects?name={uuid.uuid4().hex}", headers=headers).json()[
        "id"
    ]
    response = client.post(
        f"{prefix}/projects/{project_id}/images",
        content=jpeg_bytes((1, 1, 1)),
        headers={**headers, "Content-Type": "application/octet-stream", "Host": "evil.example"},
    )
    link = response.json()["images"][0]["image"]["thumbnailUri"]
    assert link.startswith("https://vision.example.com/blobs/images/")


def test_portal_pages_carry_csp_and_frame_options(endpoint: str) -> None:
    for path in ("/", "/portal/app.js"):
        response = httpx.get(endpoint + path)
        assert response.status_code == 200
        assert response.headers["x-frame-options"] == "DENY"
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert f"img-src 'self' blob: data: {endpoint}" in csp


def test_default_keys_are_refused_outside_local_storage() -> None:
    remote = (
        "DefaultEndpointsProtocol=https;AccountName=prod;AccountKey=a2V5;"
        "EndpointSuffix=core.windows.net"
    )
    with pytest.raises(ValueError, match="CV_TRAINING_KEY"):
        create_app(Settings(storage_connection_string=remote))
    with pytest.raises(ValueError, match="CV_TRAINING_KEY"):
        create_app(Settings(storage_account_name="prod", training_key="my-own-secret-1"))
    own = Settings(
        storage_account_name="prod", training_key="my-own-secret-1", prediction_key="another-secret"
    )
    own.check_keys()  # no error
    assert Settings().local  # the Azurite default


def test_public_base_url_must_be_an_absolute_http_url() -> None:
    for bad in ("vision.example.com", "javascript:alert(1)", "https://vision.example.com/?a=b"):
        with pytest.raises(ValueError, match="CV_PUBLIC_BASE_URL"):
            Settings(public_base_url=bad)
    behind_proxy = Settings(public_base_url="https://example.com/vision")
    assert behind_proxy.public_base_url == "https://example.com/vision"
