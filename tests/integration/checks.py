"""What every integrity test checks at the end: a project's counts, views and bytes agree."""

from __future__ import annotations

from typing import Any

import httpx


def all_images(http: httpx.Client, project_id: str, view: str = "") -> list[dict[str, Any]]:
    images: list[dict[str, Any]] = []
    while True:
        page = http.get(
            f"/projects/{project_id}/images{view}", params={"take": 256, "skip": len(images)}
        )
        assert page.status_code == 200, page.text
        images += page.json()
        if len(page.json()) < 256:
            return images


def assert_consistent(http: httpx.Client, project_id: str) -> dict[str, set[str]]:
    """Counts equal rows, every view agrees with the images' own tags, and every listed
    image's bytes are readable. Returns each image's tag ids."""
    images = all_images(http, project_id)
    tags_of = {i["id"]: {t["tagId"] for t in i.get("tags") or []} for i in images}
    assert len(tags_of) == len(images), "an image is listed twice"
    for image in images:  # object detection: an image's tags are its regions' tags
        if image.get("regions"):
            assert tags_of[image["id"]] == {r["tagId"] for r in image["regions"]}, image["id"]
    count = http.get(f"/projects/{project_id}/images/count").json()
    tagged = http.get(f"/projects/{project_id}/images/tagged/count").json()
    untagged = http.get(f"/projects/{project_id}/images/untagged/count").json()
    assert count == len(images)
    assert tagged == sum(1 for t in tags_of.values() if t)
    assert untagged == count - tagged
    assert {i["id"] for i in all_images(http, project_id, "/tagged")} == {
        i for i, t in tags_of.items() if t
    }
    assert {i["id"] for i in all_images(http, project_id, "/untagged")} == {
        i for i, t in tags_of.items() if not t
    }
    for tag in http.get(f"/projects/{project_id}/tags").json():
        carrying = {i for i, t in tags_of.items() if tag["id"] in t}
        listed = http.get(
            f"/projects/{project_id}/images/tagged", params={"tagIds": tag["id"], "take": 256}
        ).json()
        assert tag["imageCount"] == len(carrying) == len(listed), tag["name"]
        assert {i["id"] for i in listed} == carrying
    known_tags = {t["id"] for t in http.get(f"/projects/{project_id}/tags").json()}
    for image_id, tag_ids in tags_of.items():
        assert tag_ids <= known_tags, f"image {image_id} carries a deleted tag"
    with httpx.Client(timeout=30) as plain:
        for image in images:
            for link in ("originalImageUri", "resizedImageUri", "thumbnailUri"):
                assert plain.get(image[link]).status_code == 200, (image["id"], link)
    return tags_of
