"""Bad region requests over raw HTTP: Custom Vision's codes, the right status, nothing stored."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
import pytest

from functions.settings import Settings
from functions.storage.clients import Storage
from tests.conftest import assert_error
from tests.detection_data import detection_set
from trainer_job.__main__ import process_one

COMPACT_DETECTION = "a27d5ca5-bb19-49d8-a70a-fec086c47f5b"


def _project(http: httpx.Client, domain_id: str | None = COMPACT_DETECTION) -> str:
    params = {"name": f"regions-{uuid.uuid4().hex[:8]}"}
    if domain_id:
        params["domainId"] = domain_id
    response = http.post("/projects", params=params)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def _tag(http: httpx.Client, project_id: str, name: str = "raccoon") -> str:
    response = http.post(f"/projects/{project_id}/tags", params={"name": name})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def _photo(n: int = 0) -> bytes:
    return detection_set("raccoon")[n].path.read_bytes()


def _upload(http: httpx.Client, project_id: str, entries: list[dict[str, Any]]) -> httpx.Response:
    return http.post(f"/projects/{project_id}/images/files", json={"images": entries})


def _entry(n: int, regions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": f"{n}.jpg", "contents": base64.b64encode(_photo(n)).decode()}
    if regions is not None:
        entry["regions"] = regions
    return entry


def _box(
    tag_id: str, left: float = 0.1, top: float = 0.1, width: float = 0.5, height: float = 0.5
) -> dict[str, Any]:
    return {"tagId": tag_id, "left": left, "top": top, "width": width, "height": height}


def _image_id(http: httpx.Client, project_id: str) -> str:
    response = _upload(http, project_id, [_entry(0)])
    assert response.status_code == 200, response.text
    return str(response.json()["images"][0]["image"]["id"])


def _regions_of(http: httpx.Client, project_id: str, image_id: str) -> list[dict[str, Any]]:
    response = http.get(f"/projects/{project_id}/images/id", params={"imageIds": image_id})
    assert response.status_code == 200, response.text
    return list(response.json()[0]["regions"])


def _nothing_stored(http: httpx.Client, project_id: str) -> None:
    assert http.get(f"/projects/{project_id}/images/count").json() == 0


BAD_BOXES = {
    "outside on the right": {"left": 0.6, "width": 0.5},
    "outside at the bottom": {"top": 0.7, "height": 0.31},
    "negative left": {"left": -0.1},
    "negative top": {"top": -0.01},
    "zero width": {"width": 0.0},
    "zero height": {"height": 0},
    "negative width": {"width": -0.2},
    "beyond 1": {"left": 1.2, "width": 0.1},
}


@pytest.mark.parametrize("change", BAD_BOXES.values(), ids=list(BAD_BOXES))
def test_a_bad_box_is_refused_on_upload_and_on_create(
    http: httpx.Client, change: dict[str, float]
) -> None:
    project_id = _project(http)
    tag_id = _tag(http, project_id)
    bad = {**_box(tag_id), **change}
    assert_error(_upload(http, project_id, [_entry(0, [bad])]), 400, "BadRequestImageRegions")
    _nothing_stored(http, project_id)
    image_id = _image_id(http, project_id)
    good = {**_box(tag_id), "imageId": image_id}
    response = http.post(
        f"/projects/{project_id}/images/regions",
        json={"regions": [good, {**good, **change}]},
    )
    assert_error(response, 400, "BadRequestImageRegions")
    assert _regions_of(http, project_id, image_id) == []  # the good one was not stored either


def test_a_box_on_the_edge_is_kept(http: httpx.Client) -> None:
    project_id = _project(http)
    tag_id = _tag(http, project_id)
    edge = _box(tag_id, left=0.25, top=0.0, width=0.75, height=1.0)
    response = _upload(http, project_id, [_entry(0, [edge])])
    assert response.status_code == 200, response.text
    (region,) = response.json()["images"][0]["image"]["regions"]
    assert (region["left"], region["top"], region["width"], region["height"]) == (0.25, 0, 0.75, 1)


def test_too_many_regions_on_one_upload_entry(http: httpx.Client) -> None:
    project_id = _project(http)
    tag_id = _tag(http, project_id)
    boxes = [_box(tag_id, (n % 20) / 20, (n // 20) / 20, 0.04, 0.04) for n in range(301)]
    response = _upload(http, project_id, [_entry(0, boxes)])
    assert response.status_code == 207, response.text
    (result,) = response.json()["images"]
    assert result["status"] == "ErrorRegionLimitExceed" and result["image"] is None
    _nothing_stored(http, project_id)
    assert _upload(http, project_id, [_entry(0, boxes[:300])]).status_code == 200


def test_unknown_tags(http: httpx.Client) -> None:
    project_id = _project(http)
    unknown = str(uuid.uuid4())
    response = _upload(http, project_id, [_entry(0, [_box(unknown)])])
    assert response.status_code == 207, response.text
    assert response.json()["images"][0]["status"] == "ErrorInvalidTag"
    _nothing_stored(http, project_id)
    image_id = _image_id(http, project_id)
    response = http.post(
        f"/projects/{project_id}/images/regions",
        json={"regions": [{**_box(unknown), "imageId": image_id}]},
    )
    assert_error(response, 404, "NotFoundTag")
    assert _regions_of(http, project_id, image_id) == []


def test_unknown_image_refuses_the_whole_batch(http: httpx.Client) -> None:
    project_id = _project(http)
    tag_id = _tag(http, project_id)
    image_id = _image_id(http, project_id)
    regions = [
        {**_box(tag_id), "imageId": image_id},
        {**_box(tag_id), "imageId": str(uuid.uuid4())},
    ]
    response = http.post(f"/projects/{project_id}/images/regions", json={"regions": regions})
    assert_error(response, 404, "NotFoundImage")
    assert _regions_of(http, project_id, image_id) == []


def test_regions_in_a_classification_project(http: httpx.Client) -> None:
    project_id = _project(http, None)
    tag_id = _tag(http, project_id)
    assert_error(
        _upload(http, project_id, [_entry(0, [_box(tag_id)])]), 400, "BadRequestImageRegions"
    )
    _nothing_stored(http, project_id)
    response = http.post(
        f"/projects/{project_id}/images",
        params={"tagIds": tag_id},
        content=_photo(),
        headers={"Content-Type": "application/octet-stream"},
    )
    image_id = response.json()["images"][0]["image"]["id"]
    response = http.post(
        f"/projects/{project_id}/images/regions",
        json={"regions": [{**_box(tag_id), "imageId": image_id}]},
    )
    assert_error(response, 400, "BadRequestImageRegions")
    response = http.post(f"/projects/{project_id}/images/{image_id}/regionproposals")
    assert_error(response, 400, "BadRequestImageRegions")
    assert _regions_of(http, project_id, image_id) == []


def test_a_detection_project_has_no_negative_tag_and_no_image_level_tags(
    http: httpx.Client,
) -> None:
    project_id = _project(http)
    response = http.post(
        f"/projects/{project_id}/tags", params={"name": "none", "type": "Negative"}
    )
    assert_error(response, 400, "BadRequestTagType")
    tag_id = _tag(http, project_id)
    response = http.patch(f"/projects/{project_id}/tags/{tag_id}", json={"type": "Negative"})
    assert_error(response, 400, "BadRequestTagType")
    assert [t["type"] for t in http.get(f"/projects/{project_id}/tags").json()] == ["Regular"]
    response = http.post(
        f"/projects/{project_id}/images/files",
        json={"images": [_entry(0)], "tagIds": [tag_id]},
    )
    assert response.status_code == 207, response.text
    assert response.json()["images"][0]["status"] == "ErrorInvalidTag"
    _nothing_stored(http, project_id)
    image_id = _image_id(http, project_id)
    response = http.post(
        f"/projects/{project_id}/images/tags",
        json={"tags": [{"imageId": image_id, "tagId": tag_id}]},
    )
    assert_error(response, 400, "BadRequestImageTags")
    assert http.get(f"/projects/{project_id}/images/tagged/count").json() == 0


def test_batch_sizes_and_empty_requests(http: httpx.Client) -> None:
    project_id = _project(http)
    tag_id = _tag(http, project_id)
    image_id = _image_id(http, project_id)
    many = [{**_box(tag_id, n / 100, 0, 0.01, 0.5), "imageId": image_id} for n in range(65)]
    response = http.post(f"/projects/{project_id}/images/regions", json={"regions": many})
    assert_error(response, 400, "BadRequestExceededBatchSize")
    assert_error(
        http.post(f"/projects/{project_id}/images/regions", json={"regions": []}),
        400,
        "BadRequestImageRegions",
    )
    ids = ",".join(str(uuid.uuid4()) for _ in range(65))
    response = http.delete(f"/projects/{project_id}/images/regions", params={"regionIds": ids})
    assert_error(response, 400, "BadRequestExceededBatchSize")
    assert_error(
        http.delete(f"/projects/{project_id}/images/regions"), 400, "BadRequestImageRegions"
    )
    response = http.post(
        f"/projects/{project_id}/images/regions",
        json={"regions": [{"imageId": image_id, "tagId": tag_id, "left": 0.1}]},
    )
    assert response.status_code == 400, response.text
    assert _regions_of(http, project_id, image_id) == []


def test_proposals_for_an_unknown_image(http: httpx.Client) -> None:
    project_id = _project(http)
    response = http.post(f"/projects/{project_id}/images/{uuid.uuid4()}/regionproposals")
    assert_error(response, 404, "NotFoundImage")


def test_training_a_detection_project_validates_as_custom_vision_does(
    http: httpx.Client, storage: Storage, settings: Settings
) -> None:
    project_id = _project(http)
    train = f"/projects/{project_id}/train"
    assert_error(http.post(train), 400, "BadRequestDetectionTrainingValidationFailed")
    tag_id = _tag(http, project_id)
    photos = detection_set("raccoon")[:15]
    entries = [
        {
            "name": p.path.name,
            "contents": base64.b64encode(p.path.read_bytes()).decode(),
            "regions": [_box(tag_id, *box) for _, *box in p.regions],
        }
        for p in photos
    ]
    assert _upload(http, project_id, entries[:14]).status_code == 200
    body = assert_error(http.post(train), 400, "BadRequestDetectionTrainingValidationFailed")
    assert "raccoon" in body["message"] and "15" in body["message"]
    assert _upload(http, project_id, entries[14:]).status_code == 200
    queued = http.post(train)
    assert queued.status_code == 200, queued.text
    assert queued.json()["status"] == "Training"
    # No trainer runs here: the project goes, and its queued job (a no-op now) is consumed,
    # so that no other test's worker finds it first.
    assert http.delete(f"/projects/{project_id}").status_code == 204
    while process_one(storage, settings):
        pass
