"""What every integrity test checks at the end: a project's counts, views and bytes agree."""

from __future__ import annotations

import hashlib
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


def project_contents(trainer: Any, project_id: str) -> dict[str, Any]:
    """What a copy of a project must carry, read through the SDK: its settings, its tags
    (name, type, description, image count) and its images keyed by their bytes' hash (tag
    names, regions as tag name and box, metadata)."""
    project = trainer.get_project(project_id)
    images: dict[str, Any] = {}
    with httpx.Client(timeout=60) as http:
        skip = 0
        while True:
            page = trainer.get_images(project_id, take=256, skip=skip)
            for image in page:
                data = http.get(image.original_image_uri)
                data.raise_for_status()
                images[hashlib.sha256(data.content).hexdigest()] = (
                    sorted(t.tag_name for t in image.tags or []),
                    sorted(
                        (r.tag_name, *(round(v, 6) for v in (r.left, r.top, r.width, r.height)))
                        for r in image.regions or []
                    ),
                    image.metadata or {},
                )
            skip += len(page)
            if len(page) < 256:
                break
    tags = trainer.get_tags(project_id)
    return {
        "description": project.description,
        "domain": project.settings.domain_id,
        "classification": project.settings.classification_type,
        "tags": sorted((t.name, t.type, t.description, t.image_count) for t in tags),
        "images": images,
    }


def labelled_contents(trainer: Any, project_id: str, metadata: bool) -> Any:
    """Images by their bytes' hash: tag names, regions (tag, box), metadata if kept; and the
    tags' names with their image counts."""
    images = {}
    with httpx.Client(timeout=60) as plain:
        for image in trainer.get_images(project_id, take=256):
            data = plain.get(image.original_image_uri).content
            images[hashlib.sha256(data).hexdigest()] = (
                sorted(t.tag_name for t in image.tags or []),
                sorted(
                    (r.tag_name, *(round(v, 4) for v in (r.left, r.top, r.width, r.height)))
                    for r in image.regions or []
                ),
                (image.metadata or {}) if metadata else {},
            )
    tags = sorted((t.name, t.image_count) for t in trainer.get_tags(project_id))
    return images, tags
