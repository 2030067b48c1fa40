"""Racing region writers, released together by one barrier: no acknowledged region is lost,
nothing answers 500, and an image's tags, the views and the counts follow its regions."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable

import httpx

from tests.detection_data import detection_set
from tests.integration.checks import assert_consistent
from tests.integration.test_races import ROUNDS, clients, race

__all__ = ["clients"]  # the fixture, used by name

COMPACT_DETECTION = "a27d5ca5-bb19-49d8-a70a-fec086c47f5b"


def _project(http: httpx.Client, tags: list[str]) -> tuple[str, dict[str, str]]:
    params = {"name": f"region-race-{uuid.uuid4().hex[:8]}", "domainId": COMPACT_DETECTION}
    project_id = http.post("/projects", params=params).json()["id"]
    ids = {
        n: http.post(f"/projects/{project_id}/tags", params={"name": n}).json()["id"] for n in tags
    }
    return project_id, ids


def _images(http: httpx.Client, project_id: str, count: int) -> list[str]:
    photos = detection_set("raccoon")[:count]
    entries = [
        {"name": p.path.name, "contents": base64.b64encode(p.path.read_bytes()).decode()}
        for p in photos
    ]
    response = http.post(f"/projects/{project_id}/images/files", json={"images": entries})
    assert response.status_code == 200, response.text
    return [r["image"]["id"] for r in response.json()["images"]]


def _add(
    client: httpx.Client, project_id: str, image_id: str, tag_id: str, left: float
) -> httpx.Response:
    region = {
        "imageId": image_id,
        "tagId": tag_id,
        "left": left,
        "top": 0.1,
        "width": 0.2,
        "height": 0.3,
    }
    return client.post(f"/projects/{project_id}/images/regions", json={"regions": [region]})


def _regions(http: httpx.Client, project_id: str, image_id: str) -> dict[str, str]:
    image = http.get(f"/projects/{project_id}/images/id", params={"imageIds": image_id}).json()[0]
    return {r["regionId"]: r["tagId"] for r in image["regions"]}


def test_two_region_additions_on_one_image_both_stay(
    http: httpx.Client, clients: Callable[[], httpx.Client]
) -> None:
    project_id, tags = _project(http, ["a", "b"])
    one, two = clients(), clients()
    for image_id in _images(http, project_id, ROUNDS):
        first, second = race(
            lambda i=image_id: _add(one, project_id, i, tags["a"], 0.0),
            lambda i=image_id: _add(two, project_id, i, tags["b"], 0.5),
        )
        made = {r["regionId"] for r in (*first.json()["created"], *second.json()["created"])}
        assert len(made) == 2
        assert set(_regions(http, project_id, image_id)) == made
    tags_of = assert_consistent(http, project_id)
    assert all(t == set(tags.values()) for t in tags_of.values())


def test_region_addition_racing_region_deletion(
    http: httpx.Client, clients: Callable[[], httpx.Client]
) -> None:
    project_id, tags = _project(http, ["a"])
    adder, deleter = clients(), clients()
    for image_id in _images(http, project_id, ROUNDS):
        old = _add(http, project_id, image_id, tags["a"], 0.0).json()["created"][0]["regionId"]
        added, deleted = race(
            lambda i=image_id: _add(adder, project_id, i, tags["a"], 0.5),
            lambda old=old: deleter.delete(
                f"/projects/{project_id}/images/regions", params={"regionIds": old}
            ),
        )
        assert deleted.status_code == 204, deleted.text
        new = added.json()["created"][0]["regionId"]
        assert set(_regions(http, project_id, image_id)) == {new}
    assert all(t == {tags["a"]} for t in assert_consistent(http, project_id).values())


def test_region_addition_racing_its_tags_deletion(
    http: httpx.Client, clients: Callable[[], httpx.Client]
) -> None:
    project_id, tags = _project(http, ["keep"])
    adder, deleter = clients(), clients()
    for n, image_id in enumerate(_images(http, project_id, ROUNDS)):
        doomed = http.post(f"/projects/{project_id}/tags", params={"name": f"doomed{n}"}).json()[
            "id"
        ]
        _add(http, project_id, image_id, tags["keep"], 0.0)
        added, deleted = race(
            lambda i=image_id, t=doomed: _add(adder, project_id, i, t, 0.5),
            lambda t=doomed: deleter.delete(f"/projects/{project_id}/tags/{t}"),
        )
        assert deleted.status_code == 204, deleted.text
        assert added.status_code in (200, 404), added.text
        assert set(_regions(http, project_id, image_id).values()) == {tags["keep"]}
    assert all(t == {tags["keep"]} for t in assert_consistent(http, project_id).values())
