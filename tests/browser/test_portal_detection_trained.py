"""A detection project trained in the portal, end to end against the real stack and the real
trainer (in-process, its quick budget cut short): mAP and per-tag figures on Performance at both
thresholds, the held-out photos with their boxes, a quick test's boxes drawn above the slider and
added to the training images as regions, and a suggested box accepted in the labeler.
"""

from __future__ import annotations

import base64
import math
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

import trainer_job.tasks.detection.train
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
    tab_fixture,  # noqa: F401 (a fixture: tab)
    upload,
)
from tests.detection_data import LabelledPhoto, detection_set
from trainer_job.__main__ import process_one

pytestmark = needs_chromium

COMPACT_DETECTION = "a27d5ca5-bb19-49d8-a70a-fec086c47f5b"
TRAINED = 15  # Custom Vision's minimum per tag
BOX_KEYS = ("left", "top", "width", "height")


def as_percent(fraction: float) -> str:
    """A fraction as the portal writes it (ui.js percent())."""
    return f"{fraction * 100:.1f}%"


def set_slider(page: Page, label: str, percent: int, scope: Any = None) -> None:
    """Move the range slider labelled `label` to `percent` (input events, as a drag sends)."""
    (scope or page).get_by_label(label, exact=True).fill(str(percent))


def above(predictions: list[dict[str, Any]], threshold: float) -> list[dict[str, Any]]:
    return [p for p in predictions if p.get("boundingBox") and p["probability"] >= threshold]


def performance(
    client: httpx.Client, project_id: str, iteration_id: str, threshold: float, overlap: float
) -> dict[str, Any]:
    answer = client.get(
        f"/projects/{project_id}/iterations/{iteration_id}/performance",
        params={"threshold": threshold, "overlapThreshold": overlap},
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def create_project(client: httpx.Client, photos: list[LabelledPhoto]) -> tuple[str, str]:
    project = client.post(
        "/projects",
        params={"name": f"detect-trained-{uuid.uuid4().hex[:8]}", "domainId": COMPACT_DETECTION},
    ).json()
    tag_id = client.post(f"/projects/{project['id']}/tags", params={"name": "raccoon"}).json()["id"]
    entries = [
        {
            "name": photo.path.name,
            "contents": base64.b64encode(photo.path.read_bytes()).decode(),
            "regions": [
                {"tagId": tag_id, "left": x, "top": y, "width": w, "height": h}
                for _, x, y, w, h in photo.regions
            ],
        }
        for photo in photos
    ]
    answer = client.post(f"/projects/{project['id']}/images/files", json={"images": entries})
    assert answer.json()["isBatchSuccessful"], answer.text
    return project["id"], tag_id


def quick_test(
    client: httpx.Client, project_id: str, iteration_id: str, photo: Path
) -> dict[str, Any]:
    """A quick test through the API: a stored prediction, with its boxes."""
    answer = client.post(
        f"/projects/{project_id}/quicktest/image",
        params={"iterationId": iteration_id},
        content=photo.read_bytes(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def best_probability(prediction: dict[str, Any]) -> float:
    return max(float(p["probability"]) for p in prediction["predictions"])


def assert_made_with_regions(
    client: httpx.Client, project_id: str, response: Any, shown: list[dict[str, Any]]
) -> None:
    """The images/predictions call answered one new image, whose regions are the boxes shown."""
    [made] = response.json()["images"]
    assert made["status"] == "OK", made
    image = client.get(
        f"/projects/{project_id}/images/id", params={"imageIds": made["image"]["id"]}
    )
    assert image.status_code == 200, image.text
    regions = image.json()[0]["regions"]

    def key(tag_id: str, box: dict[str, Any]) -> tuple[Any, ...]:
        return (tag_id, *(round(float(box[k]), 6) for k in BOX_KEYS))

    got = sorted(key(r["tagId"], r) for r in regions)
    assert got == sorted(key(p["tagId"], p["boundingBox"]) for p in shown), (regions, shown)


def stat_value(page: Page, label: str) -> Any:
    return page.locator(".stats .stat", has=page.locator(".stat-label", has_text=label)).locator(
        ".stat-value"
    )


def test_train_a_detector_and_use_it_in_the_portal(
    tab: Tab,
    endpoint: str,
    storage: Storage,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(trainer_job.tasks.detection.train, "QUICK_SECONDS", 12.0)
    page = tab.page
    photos = detection_set("raccoon")
    assert len(photos) >= TRAINED + 2, "a quick-test photo and an untagged one besides"
    with api(endpoint) as client:
        project_id, tag_id = create_project(client, photos[:TRAINED])

    # Train in the portal; the trainer runs the job it queued.
    sign_in(page, endpoint, screenshot=None)
    page.goto(f"{endpoint}/#/projects/{project_id}/train")
    page.get_by_role("button", name="Train", exact=True).click()
    expect(page.get_by_text("Queued: waiting for a trainer")).to_be_visible()
    page.goto(f"{endpoint}/#/settings")  # no polling while the trainer works in this thread
    while process_one(storage, settings):
        pass
    with api(endpoint) as client:
        iterations = client.get(f"/projects/{project_id}/iterations").json()
        assert [i["status"] for i in iterations] == ["Completed"], iterations
        iteration_id = iterations[0]["id"]
        first = performance(client, project_id, iteration_id, 0.5, 0.3)
        held_out = client.get(
            f"/projects/{project_id}/iterations/{iteration_id}/performance/images",
            params={"take": 256},
        ).json()
    assert held_out, "the held-out split kept no photo"

    # Performance: mAP, precision and recall at 50 % and 30 % overlap, as the API has them.
    page.goto(f"{endpoint}/#/projects/{project_id}/performance")
    expect(stat_value(page, "mAP")).to_have_text(as_percent(first["averagePrecision"]))
    expect(stat_value(page, "Precision")).to_have_text(as_percent(first["precision"]))
    expect(stat_value(page, "Recall")).to_have_text(as_percent(first["recall"]))
    expect(page.get_by_text("Precision-recall curves", exact=True)).to_have_count(0)
    row = page.locator("table.per-tag tbody tr", has=page.get_by_role("rowheader", name="raccoon"))
    tag_figures = first["perTagPerformance"][0]
    expected_row = [
        as_percent(tag_figures["precision"]),
        as_percent(tag_figures["recall"]),
        as_percent(tag_figures["averagePrecision"]),
        str(len(held_out)),
    ]
    expect(row.locator("td")).to_have_text(expected_row)
    # The held-out photos: predicted boxes above the threshold, labelled boxes beside them.
    figures = page.locator(".held-out-grid figure")
    expect(figures).to_have_count(len(held_out))
    expect(page.get_by_role("list", name="Legend")).to_contain_text("Labelled box")

    def check_held_out(threshold: float) -> None:
        for image in held_out:
            figure = page.locator(f".held-out-grid figure[data-image-id='{image['id']}']")
            predicted = len(above(image["predictions"], threshold))
            expect(figure.locator(".detect-box.predicted")).to_have_count(predicted)
            expect(figure.locator(".detect-box.labelled")).to_have_count(len(image["regions"]))

    check_held_out(0.5)
    shot(page, "70-detection-performance")

    # Overlap 90 %: a box must sit almost exactly on its labelled one; the figures follow.
    with api(endpoint) as client:
        strict = performance(client, project_id, iteration_id, 0.5, 0.9)
        loose = performance(client, project_id, iteration_id, 0.1, 0.9)
    assert strict["averagePrecision"] != first["averagePrecision"], (strict, first)
    set_slider(page, "Overlap threshold", 90)
    expect(stat_value(page, "mAP")).to_have_text(as_percent(strict["averagePrecision"]))
    expect(stat_value(page, "Recall")).to_have_text(as_percent(strict["recall"]))
    set_slider(page, "Probability threshold", 10)
    expect(stat_value(page, "Recall")).to_have_text(as_percent(loose["recall"]))
    expect(stat_value(page, "Precision")).to_have_text(as_percent(loose["precision"]))
    check_held_out(0.1)
    shot(page, "71-detection-performance-thresholds")

    # Quick test: the boxes at least as probable as the slider are drawn and listed.
    page.goto(f"{endpoint}/#/projects/{project_id}/quicktest")
    with page.expect_response(re.compile(r"/quicktest/image")) as quick:
        page.get_by_label("Image file").set_input_files(photos[TRAINED].path)
    answer = quick.value.json()
    result = page.locator(".quicktest-result")
    expect(result.get_by_label("Show boxes at least")).to_have_value("50")
    drawn = result.locator(".detect-box.predicted")
    expect(drawn).to_have_count(len(above(answer["predictions"], 0.5)))
    best = max(p["probability"] for p in answer["predictions"])
    lower = math.floor(best * 100)  # at least the most probable box shows
    set_slider(page, "Show boxes at least", lower, result)
    shown = above(answer["predictions"], lower / 100)
    assert shown
    expect(drawn).to_have_count(len(shown))
    expect(result.locator("ol.box-list li")).to_have_count(len(shown))
    expect(result.locator("ol.box-list li").first).to_contain_text(
        as_percent(max(p["probability"] for p in shown))
    )
    shot(page, "72-detection-quicktest")
    # Added to the training images: the boxes shown are its regions.
    with page.expect_response(re.compile(r"/images/predictions$")) as promoted:
        result.get_by_role("button", name=re.compile(r"^Add to training images with")).click()
    expect(
        result.get_by_role("status").filter(has_text="Added to the training images")
    ).to_be_visible()
    with api(endpoint) as client:
        assert_made_with_regions(client, project_id, promoted.value, shown)
        assert all(p["tagId"] == tag_id for p in shown)

    # Stored predictions on Predictions: the page's slider counts their boxes, a prediction's
    # photo shows them, and adding one (opened, or selected) sends them as its regions.
    with api(endpoint) as client:
        one, two = (
            quick_test(client, project_id, iteration_id, photos[TRAINED + n].path) for n in (2, 3)
        )
    page.goto(f"{endpoint}/#/projects/{project_id}/predictions")
    lower = math.floor(min(best_probability(one), best_probability(two)) * 100)
    set_slider(page, "Show boxes at least", lower)
    shown_of = {p["id"]: above(p["predictions"], lower / 100) for p in (one, two)}

    def thumb(prediction: dict[str, Any]) -> Any:
        return page.locator(f".image-grid .thumb[data-prediction-id='{prediction['id']}']")

    for stored in (one, two):
        n = len(shown_of[stored["id"]])
        expect(thumb(stored)).to_contain_text(f"{n} box{'' if n == 1 else 'es'} at {lower}.0%")
    thumb(one).get_by_role("button", name=re.compile(r"^Open prediction")).click()
    dialog = page.get_by_role("dialog", name="Prediction")
    expect(dialog.get_by_label("Show boxes at least")).to_have_value(str(lower))
    expect(dialog.locator(".detect-box.predicted")).to_have_count(len(shown_of[one["id"]]))
    shot(page, "75-detection-stored-prediction")
    with page.expect_response(re.compile(r"/images/predictions$")) as promoted:
        dialog.get_by_role("button", name=re.compile(r"^Add to training images with")).click()
    expect(dialog).to_have_count(0)  # it closes, and the prediction leaves the list
    expect(thumb(one)).to_have_count(0)
    with api(endpoint) as client:
        assert_made_with_regions(client, project_id, promoted.value, shown_of[one["id"]])
    thumb(two).get_by_role("checkbox").check()
    with page.expect_response(re.compile(r"/images/predictions$")) as promoted:
        page.get_by_role("button", name="Add to training images with their boxes").click()
    expect(thumb(two)).to_have_count(0)
    with api(endpoint) as client:
        assert_made_with_regions(client, project_id, promoted.value, shown_of[two["id"]])

    # Suggested tags on a detector: each untagged photo's suggested boxes, counted per tag.
    page.goto(f"{endpoint}/#/projects/{project_id}/images")
    upload(page, [photos[TRAINED + 1].path], None, 1)
    close_upload(page)
    with page.expect_response(re.compile(r"/tagsandregions/suggestions")) as counted:
        page.goto(f"{endpoint}/#/projects/{project_id}/suggested")
    [counted_suggestion] = counted.value.json()
    card = page.locator(".thumb.suggestion")
    expect(card).to_have_count(1)
    low = math.floor(max(p["probability"] for p in counted_suggestion["predictions"]) * 100)
    set_slider(page, "Count boxes at least", low)
    count = len(above(counted_suggestion["predictions"], low / 100))
    expect(card.get_by_role("group")).to_have_text(f"raccoon \u00d7 {count}")
    expect(page.get_by_role("button", name="Confirm suggestions")).to_have_count(0)
    shot(page, "76-detection-suggested")

    # The labeler on that untagged photo: the model's suggested boxes, one accepted by a click.
    page.goto(f"{endpoint}/#/projects/{project_id}/images")
    with page.expect_response(re.compile(r"/tagsandregions/suggestions")) as suggested:
        page.get_by_role("button", name=re.compile(r"^Open image \d+ \(untagged\)")).first.click()
    labeler = page.get_by_role("dialog", name="Label image")
    image_id = labeler.locator(".stage").get_attribute("data-image-id")
    assert image_id
    assert suggested.value.status == 200, suggested.value.text()
    [suggestion] = suggested.value.json()
    assert suggestion["id"] == image_id
    offered = sorted(above(suggestion["predictions"], 0.0), key=lambda p: -p["probability"])
    assert len(offered) >= 5, suggestion  # a detector suggests up to 100 boxes, down to 1 %
    panel = labeler.get_by_role("region", name="Suggested boxes")
    boxes = labeler.locator(".stage .box.suggestion")
    expect(boxes).to_have_count(len(above(offered, 0.5)))
    low = math.floor(offered[4]["probability"] * 100)  # five at least
    set_slider(page, "Suggestions at least", low, panel)
    visible = above(offered, low / 100)
    expect(boxes).to_have_count(len(visible))
    shot(page, "73-labeler-suggestions")
    # The least probable one rejected (its Reject button): hidden, not saved.
    weakest = visible[-1]
    panel.get_by_role(
        "button", name=f"Reject {weakest['tagName']} {as_percent(weakest['probability'])}"
    ).first.click()
    expect(boxes).to_have_count(len(visible) - 1)
    visible.remove(weakest)
    # Another rejected by the x on its corner (one no other box covers).
    corner = page.evaluate(
        """() => [...document.querySelectorAll('.stage .suggestion-reject')].map((el) => {
             const r = el.getBoundingClientRect();
             const cx = r.x + r.width / 2, cy = r.y + r.height / 2;
             return document.elementFromPoint(cx, cy) === el ? [cx, cy, el.dataset.reject] : null;
           }).filter(Boolean)[0]"""
    )
    assert corner, "no suggestion's x can be clicked"
    page.mouse.click(corner[0], corner[1])
    expect(boxes).to_have_count(len(visible) - 1)
    expect(labeler.locator(".stage .box[data-region-id]")).to_have_count(0)
    visible.remove(suggestion["predictions"][int(corner[2])])
    # A click on the most probable box's own area (not under a smaller one) accepts it.
    target = page.evaluate(
        """() => [...document.querySelectorAll('.stage .box.suggestion')].map((el) => {
             const r = el.getBoundingClientRect();
             const cx = r.x + r.width / 2, cy = r.y + r.height / 2;
             const top = document.elementFromPoint(cx, cy) === el;
             return top ? [cx, cy, el.dataset.suggestion] : null;
           }).filter(Boolean)[0]"""
    )
    assert target, "no suggested box can be clicked"
    chosen = next(p for n, p in enumerate(suggestion["predictions"]) if str(n) == target[2])
    page.mouse.click(target[0], target[1])
    expect(labeler.get_by_text("Saving…")).to_have_count(0)
    expect(labeler.locator(".stage .box[data-region-id]")).to_have_count(1)
    expect(boxes).to_have_count(len(visible) - 1)
    expect(labeler.locator(".stage .box.selected")).to_have_attribute("title", "raccoon")
    with api(endpoint) as client:
        stored = client.get(f"/projects/{project_id}/images/id", params={"imageIds": image_id})
        [region] = stored.json()[0]["regions"]
    assert region["tagId"] == chosen["tagId"]
    assert all(abs(region[k] - chosen["boundingBox"][k]) < 1e-6 for k in BOX_KEYS), (region, chosen)
    shot(page, "74-labeler-suggestion-accepted")
    # Stepping away and back: the rejected and accepted suggestions stay gone.
    labeler.get_by_role("button", name="Next image").click()
    expect(labeler.locator(".stage")).not_to_have_attribute("data-image-id", image_id)
    labeler.get_by_role("button", name="Previous image").click()
    expect(labeler.locator(".stage")).to_have_attribute("data-image-id", image_id)
    expect(boxes).to_have_count(len(visible) - 1)
    # Keys: A accepts the most probable suggestion left, X rejects the next one.
    left = [p for p in visible if p is not chosen]
    page.keyboard.press("a")
    expect(labeler.locator(".stage .box[data-region-id]")).to_have_count(2)
    expect(boxes).to_have_count(len(left) - 1)
    page.keyboard.press("x")
    expect(boxes).to_have_count(len(left) - 2)
    with api(endpoint) as client:
        stored = client.get(f"/projects/{project_id}/images/id", params={"imageIds": image_id})
        regions = stored.json()[0]["regions"]
    assert len(regions) == 2, regions
    assert any(all(abs(r[k] - left[0]["boundingBox"][k]) < 1e-6 for k in BOX_KEYS) for r in regions)
    page.keyboard.press("Escape")
    expect(labeler).to_have_count(0)

    page.goto(f"{endpoint}/#/settings")
    expect(page.get_by_role("heading", name="Settings")).to_be_visible()
    tab.expected.append("status of 404")  # a request of Settings may meet the project gone
    with api(endpoint) as client:
        assert client.delete(f"/projects/{project_id}").status_code == 204
