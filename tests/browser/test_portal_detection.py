"""Object detection in the portal, in a real browser against the real stack: a detection project
made in the portal, real photos, boxes drawn, tagged, moved, resized and deleted with the mouse
(zoomed in too), a proposal accepted, and the stored regions checked through the REST API.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from functions.settings import Settings
from functions.storage.clients import Storage
from tests.browser.portal_helpers import (
    Page,
    Tab,
    api,
    browser_fixture,  # noqa: F401 (a fixture: browser)
    close_upload,
    expect,
    needs_chromium,
    shot,
    sign_in,
    sync_api,
    tab_fixture,  # noqa: F401 (a fixture: tab)
    upload,
)
from tests.detection_data import detection_set
from trainer_job.__main__ import process_one

pytestmark = needs_chromium
Locator = sync_api.Locator

COMPACT_DETECTION = "a27d5ca5-bb19-49d8-a70a-fec086c47f5b"
PHOTOS = 4  # one uploaded with its box through the API, three through the portal
Px = tuple[float, float, float, float]  # left, top, right, bottom in px of the displayed photo


def wait_until(page: Page, condition: Callable[[], bool], what: str) -> None:
    for _ in range(200):
        if condition():
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"waited 20 s for {what}")


def drag(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=6)
    page.mouse.up()


def photo_box(labeler: Locator) -> dict[str, float]:
    box = labeler.locator(".labeler-photo").bounding_box()
    assert box, "the photo is not on screen"
    return box


def regions_of(client: httpx.Client, project_id: str, image_id: str) -> list[dict[str, Any]]:
    images = client.get(f"/projects/{project_id}/images/id", params={"imageIds": image_id}).json()
    return list(images[0]["regions"])


def as_px(region: dict[str, Any], photo: dict[str, float]) -> Px:
    """A stored region (fractions) in px of the photo as it was displayed."""
    left, top = float(region["left"]) * photo["width"], float(region["top"]) * photo["height"]
    right = left + float(region["width"]) * photo["width"]
    bottom = top + float(region["height"]) * photo["height"]
    return left, top, right, bottom


def close_to(got: Px, drawn: Px) -> bool:
    return all(abs(a - b) <= 1 for a, b in zip(got, drawn, strict=True))


def saved(labeler: Locator, boxes: int) -> None:
    expect(labeler.get_by_text("Saving…")).to_have_count(0)
    expect(labeler.locator(".stage .box[data-region-id]")).to_have_count(boxes)


def test_label_photos_in_a_detection_project(tab: Tab, endpoint: str) -> None:
    page = tab.page
    name = f"detect-{uuid.uuid4().hex[:8]}"
    photos = detection_set("raccoon")[:PHOTOS]
    sign_in(page, endpoint, screenshot=None)

    # The kind first, then its domains: "General (compact)" means the detection one here.
    page.get_by_role("button", name="New project").click()
    create = page.get_by_role("dialog", name="New project")
    create.get_by_label("Name").fill(name)
    expect(create.get_by_role("radio", name=re.compile("^Multiclass"))).to_be_visible()
    create.get_by_role("radio", name=re.compile("^Object detection")).check()
    expect(create.get_by_role("radio", name=re.compile("^Multiclass"))).to_be_hidden()
    domain = create.get_by_label("Domain")
    names = domain.locator("option").all_inner_texts()
    assert names == [
        "General",
        "General [A1]",
        "Logo",
        "Products on shelves",
        "General (compact)",
        "General (compact) [S1]",
    ], names
    domain.select_option(COMPACT_DETECTION)
    expect(create.get_by_text("Object detection on EfficientNet-Lite0")).to_be_visible()
    shot(page, "60-new-detection-project")
    create.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()
    expect(page.locator(".project-head .badge")).to_have_text("Object detection")
    project_id = page.url.split("#/projects/")[1].split("/")[0]

    # One photo with its box through the API (the tag "raccoon" exists), three in the portal.
    with api(endpoint) as client:
        assert client.get(f"/projects/{project_id}").json()["settings"]["domainId"] == (
            COMPACT_DETECTION
        )
        raccoon = client.post(f"/projects/{project_id}/tags", params={"name": "raccoon"}).json()
        first = photos[0]
        _, left, top, width, height = first.regions[0]
        entry = {
            "name": first.path.name,
            "contents": base64.b64encode(first.path.read_bytes()).decode(),
            "regions": [
                {"tagId": raccoon["id"], "left": left, "top": top, "width": width, "height": height}
            ],
        }
        answer = client.post(f"/projects/{project_id}/images/files", json={"images": [entry]})
        assert answer.json()["isBatchSuccessful"], answer.text
    page.reload()
    upload(page, [p.path for p in photos[1:]], None, PHOTOS - 1)
    expect(
        page.get_by_role("dialog", name="Add images").get_by_text("Tags to apply")
    ).to_have_count(0)
    close_upload(page)
    sidebar = page.get_by_role("complementary", name="Tags")
    expect(sidebar.get_by_role("button", name=re.compile(r"^Tagged"))).to_contain_text("1")
    expect(sidebar.get_by_role("button", name=re.compile(r"^Untagged"))).to_contain_text(
        str(PHOTOS - 1)
    )
    expect(page.locator(".thumb-box")).to_have_count(1)  # the API's box, drawn on its thumbnail
    page.get_by_role("button", name="Select page").click()
    # No image-level tagging in a detection project (the API refuses it): only Delete.
    expect(page.get_by_role("button", name="Tag", exact=True)).to_have_count(0)
    expect(page.get_by_role("button", name="Untag", exact=True)).to_have_count(0)
    page.get_by_role("button", name="Clear selection").click()
    shot(page, "61-detection-images")

    # The labeler, on an untagged photo.
    page.get_by_role("button", name=re.compile(r"^Open image \d+ \(untagged\)")).first.click()
    labeler = page.get_by_role("dialog", name="Label image")
    photo_el = labeler.locator(".labeler-photo")
    expect(photo_el).to_have_js_property("complete", True)
    expect(labeler.get_by_text("No boxes yet")).to_be_visible()
    image_id = labeler.locator(".stage").get_attribute("data-image-id")
    assert image_id
    photo = photo_box(labeler)
    x, y = photo["x"], photo["y"]
    w, ht = photo["width"], photo["height"]

    # A short drag is a click, and Escape drops a box waiting for its tag (the labeler stays).
    drag(page, (x + 0.05 * w, y + 0.05 * ht), (x + 0.15 * w, y + 0.15 * ht))
    expect(labeler.get_by_role("form", name="Tag for the new box")).to_be_visible()
    page.keyboard.press("Escape")
    expect(labeler.get_by_role("form", name="Tag for the new box")).to_have_count(0)
    expect(labeler).to_be_visible()

    # Box A, tagged with the existing tag from the list.
    a: Px = (x + 0.1 * w, y + 0.1 * ht, x + 0.45 * w, y + 0.5 * ht)
    drag(page, (a[0], a[1]), (a[2], a[3]))
    picker = labeler.get_by_role("form", name="Tag for the new box")
    expect(picker.get_by_label("Tag name")).to_be_focused()
    shot(page, "62-labeler-new-box")
    picker.get_by_role("button", name="raccoon", exact=True).click()
    saved(labeler, 1)

    # Zoomed in (keys), box B drawn where the zoomed photo shows, tagged with a new tag typed in.
    page.keyboard.press("+")
    page.keyboard.press("+")
    expect(labeler.locator("output.zoom")).to_have_text("156%")
    zoomed = photo_box(labeler)
    view = labeler.locator(".labeler-canvas").bounding_box()
    assert view and zoomed["width"] > w * 1.5
    vx0, vy0 = max(view["x"], zoomed["x"]), max(view["y"], zoomed["y"])
    vx1 = min(view["x"] + view["width"], zoomed["x"] + zoomed["width"])
    vy1 = min(view["y"] + view["height"], zoomed["y"] + zoomed["height"])
    b_zoomed: Px = (
        vx0 + 0.55 * (vx1 - vx0),
        vy0 + 0.55 * (vy1 - vy0),
        vx0 + 0.9 * (vx1 - vx0),
        vy0 + 0.9 * (vy1 - vy0),
    )
    drag(page, (b_zoomed[0], b_zoomed[1]), (b_zoomed[2], b_zoomed[3]))
    picker.get_by_label("Tag name").fill("raccoon-face")
    picker.get_by_label("Tag name").press("Enter")
    saved(labeler, 2)
    zx, zy = zoomed["x"], zoomed["y"]
    with api(endpoint) as client:
        stored = regions_of(client, project_id, image_id)
        face = next(r for r in stored if r["tagName"] == "raccoon-face")
        drawn = (b_zoomed[0] - zx, b_zoomed[1] - zy, b_zoomed[2] - zx, b_zoomed[3] - zy)
        assert close_to(as_px(face, zoomed), drawn), (as_px(face, zoomed), drawn)
    labeler.get_by_role("button", name="Fit").click()
    expect(labeler.locator("output.zoom")).to_have_text("100%")
    fitted = photo_box(labeler)
    assert all(abs(fitted[k] - photo[k]) < 0.5 for k in photo), (fitted, photo)
    # Box B at the fitted size: the same fractions, so the same place on the photo.
    b = tuple(
        (v - o) / zoomed[s] * photo[s] + p
        for v, o, s, p in zip(
            b_zoomed, (zx, zy, zx, zy), ("width", "height") * 2, (x, y, x, y), strict=True
        )
    )
    shot(page, "62-labeler")

    # Move A by dragging inside it; resize B by its bottom-right handle.
    a_center = ((a[0] + a[2]) / 2, (a[1] + a[3]) / 2)
    drag(page, a_center, (a_center[0] + 30, a_center[1] + 20))
    saved(labeler, 2)
    a = (a[0] + 30, a[1] + 20, a[2] + 30, a[3] + 20)
    page.mouse.click((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)  # selects B: its handles show
    handle = labeler.locator(".box.selected .handle[data-handle='se']")
    corner = handle.bounding_box()
    assert corner
    grip = (corner["x"] + corner["width"] / 2, corner["y"] + corner["height"] / 2)
    drag(page, grip, (grip[0] - 40, grip[1] - 25))
    saved(labeler, 2)
    b = (b[0], b[1], b[2] - 40, b[3] - 25)
    with api(endpoint) as client:
        stored = regions_of(client, project_id, image_id)
        assert len(stored) == 2, stored
        by_tag = {r["tagName"]: as_px(r, photo) for r in stored}
        assert close_to(by_tag["raccoon"], (a[0] - x, a[1] - y, a[2] - x, a[3] - y)), by_tag
        assert close_to(by_tag["raccoon-face"], (b[0] - x, b[1] - y, b[2] - x, b[3] - y)), by_tag

    # Delete A: select it, then the Delete key.
    page.mouse.click((a[0] + a[2]) / 2, (a[1] + a[3]) / 2)
    expect(labeler.locator(".box.selected")).to_have_attribute("title", "raccoon")
    page.keyboard.press("Delete")
    saved(labeler, 1)

    # Proposals (key P): a click on one makes it a region with the tag chosen for it.
    page.keyboard.press("p")
    proposal_boxes = labeler.locator(".box.proposal")
    expect(proposal_boxes.first).to_be_visible()
    shot(page, "63-labeler-proposals")
    target = page.evaluate(
        """() => [...document.querySelectorAll('.box.proposal')].map((el) => {
             const r = el.getBoundingClientRect();
             const cx = r.x + r.width / 2, cy = r.y + r.height / 2;
             return document.elementFromPoint(cx, cy) === el ? [cx, cy, el.dataset.proposal] : null;
           }).filter(Boolean).pop()"""
    )
    assert target, "no proposal can be clicked"
    page.mouse.click(target[0], target[1])
    picker.get_by_role("button", name="raccoon", exact=True).click()
    saved(labeler, 2)

    with api(endpoint) as client:
        stored = regions_of(client, project_id, image_id)
        proposals = client.post(f"/projects/{project_id}/images/{image_id}/regionproposals").json()
        tags = {t["name"]: t for t in client.get(f"/projects/{project_id}/tags").json()}
        tagged = client.get(f"/projects/{project_id}/images/tagged/count").json()
        untagged = client.get(f"/projects/{project_id}/images/untagged/count").json()
    assert sorted(r["tagName"] for r in stored) == ["raccoon", "raccoon-face"], stored
    face = next(r for r in stored if r["tagName"] == "raccoon-face")
    assert close_to(as_px(face, photo), (b[0] - x, b[1] - y, b[2] - x, b[3] - y))
    accepted = next(r for r in stored if r["tagName"] == "raccoon")
    keys = ("left", "top", "width", "height")
    assert any(
        all(abs(float(p["boundingBox"][k]) - float(accepted[k])) < 1e-6 for k in keys)
        for p in proposals["proposals"]
    ), (accepted, proposals)
    assert tags["raccoon-face"]["imageCount"] == 1
    assert tags["raccoon"]["imageCount"] == 2
    assert (tagged, untagged) == (2, PHOTOS - 2)

    # Ctrl+wheel zooms; ] and [ (or the arrows) step; N steps to the next image without boxes.
    page.mouse.move(x + w / 2, y + ht / 2)
    page.keyboard.down("Control")
    page.mouse.wheel(0, -100)
    page.keyboard.up("Control")
    expect(labeler.locator("output.zoom")).to_have_text("125%")
    page.keyboard.press("0")
    expect(labeler.locator("output.zoom")).to_have_text("100%")
    position = labeler.locator(".position")
    where = position.inner_text()
    page.keyboard.press("]")
    expect(position).not_to_have_text(where)
    page.keyboard.press("ArrowLeft")
    expect(position).to_have_text(where)
    expect(labeler.locator(".stage")).to_have_attribute("data-image-id", image_id)
    page.keyboard.press("n")
    expect(labeler.get_by_text("No boxes yet")).to_be_visible()
    expect(labeler.locator(".stage")).not_to_have_attribute("data-image-id", image_id)
    # Escape closes, and the grid follows.
    page.keyboard.press("Escape")
    expect(labeler).to_have_count(0)
    expect(sidebar.get_by_role("button", name=re.compile(r"^Tagged"))).to_contain_text("2")
    expect(sidebar.get_by_role("button", name=re.compile(r"^Untagged"))).to_contain_text(
        str(PHOTOS - 2)
    )
    expect(sidebar.locator("li", has_text="raccoon-face").locator(".count")).to_have_text("1")
    expect(page.locator(".thumb-box")).to_have_count(3)
    shot(page, "65-detection-images-labelled")
    page.get_by_label("Filter by raccoon-face").check()
    expect(page.get_by_text("Page 1 of 1 · 1 images")).to_be_visible()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Projects").click()
    card = page.get_by_role("article", name=name)
    expect(card.locator(".badge")).to_have_text("Object detection")
    shot(page, "64-projects-with-detection")
    # Editing keeps the kind: no choice of type, the detection domains only.
    card.get_by_role("button", name=f"Edit {name}").click()
    edit = page.get_by_role("dialog", name=f"Edit {name}")
    expect(edit.get_by_text("Project type: Object detection")).to_be_visible()
    expect(edit.get_by_label("Domain")).to_have_value(COMPACT_DETECTION)
    assert "Logo" in edit.get_by_label("Domain").locator("option").all_inner_texts()
    expect(edit.get_by_role("radio")).to_have_count(0)
    edit.get_by_role("button", name="Cancel").click()
    with api(endpoint) as client:
        assert client.delete(f"/projects/{project_id}").status_code == 204


def test_train_a_detection_project(
    tab: Tab, endpoint: str, storage: Storage, settings: Settings
) -> None:
    """A detector needs one tag on 15 images: with 14 Train says why it is disabled; with 15
    it starts (no trainer runs in these tests, so the iteration stays queued)."""
    page = tab.page
    photos = detection_set("raccoon")[:15]
    with api(endpoint) as client:
        project = client.post(
            "/projects",
            params={"name": f"detect-train-{uuid.uuid4().hex[:8]}", "domainId": COMPACT_DETECTION},
        ).json()
        tag_id = client.post(f"/projects/{project['id']}/tags", params={"name": "raccoon"}).json()[
            "id"
        ]
        entries = []
        for photo in photos:
            _, left, top, width, height = photo.regions[0]
            box = {"left": left, "top": top, "width": width, "height": height}
            entries.append(
                {
                    "name": photo.path.name,
                    "contents": base64.b64encode(photo.path.read_bytes()).decode(),
                    "regions": [{"tagId": tag_id, **box}],
                }
            )
        files = f"/projects/{project['id']}/images/files"
        answer = client.post(files, json={"images": entries[:14]})
        assert answer.json()["isBatchSuccessful"], answer.text
    sign_in(page, endpoint, screenshot=None)
    page.goto(f"{endpoint}/#/projects/{project['id']}/train")
    train = page.get_by_role("button", name="Train", exact=True)
    expect(train).to_be_disabled()
    expect(
        page.get_by_text("Each tag needs at least 15 images; too few for: raccoon (14).")
    ).to_be_visible()
    with api(endpoint) as client:
        answer = client.post(files, json={"images": entries[14:]})
        assert answer.json()["isBatchSuccessful"], answer.text
    page.reload()
    expect(train).to_be_enabled()
    train.click()
    expect(page.get_by_text("Queued: waiting for a trainer")).to_be_visible()
    shot(page, "66-train-detection")
    page.goto(f"{endpoint}/#/settings")  # leaving the page stops its polling
    expect(page.get_by_role("heading", name="Settings")).to_be_visible()
    # Deleting the project under the open portal: a request of the page already on its way
    # (the Settings page reads every project's iterations) may meet it gone.
    tab.expected.append("status of 404")
    with api(endpoint) as client:
        assert client.delete(f"/projects/{project['id']}").status_code == 204
    while process_one(storage, settings):  # its job, a no-op now: no other test meets it
        pass
