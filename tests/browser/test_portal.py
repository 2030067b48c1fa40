"""The web portal in a real browser (Chromium from Debian, driven by Playwright) against the
real stack: the API over HTTP, Azurite, and the trainer working the queue in a thread.

Screenshots of every page, at laptop and tablet widths, go to .artifacts/screenshots/.
"""

from __future__ import annotations

import re
import threading
import uuid
from pathlib import Path

import httpx

from tests.browser.portal_helpers import (
    GENERAL_COMPACT,
    Tab,
    api,
    browser_fixture,  # noqa: F401 (a fixture: browser)
    close_upload,
    expect,
    needs_chromium,
    shot,
    sign_in,
    tab_fixture,  # noqa: F401 (a fixture: tab)
    trainer_worker_fixture,  # noqa: F401 (a fixture: trainer_worker)
    upload,
)
from tests.conftest import PREDICTION_KEY, TRAINING_KEY, photo_paths

FLOWERS = ("daisy", "sunflower", "tulip")
PER_FLOWER = 6

pytestmark = needs_chromium


def test_sign_in_refuses_a_wrong_key(tab: Tab, endpoint: str) -> None:
    page = tab.page
    tab.expected.append("status of 401")  # the browser logs the refused request
    page.goto(endpoint + "/")
    expect(page).to_have_url(re.compile(r"#/start$"))
    page.get_by_label("Training key").fill("not-the-key")
    page.get_by_label("Training key").press("Enter")  # the keyboard submits the form
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("The server refused this training key")
    expect(alert).to_contain_text("Unauthorized")
    expect(page).to_have_url(re.compile(r"#/start$"))


def test_static_files_are_public_and_listed(endpoint: str) -> None:
    with httpx.Client(base_url=endpoint) as client:
        index = client.get("/")
        assert index.status_code == 200
        assert index.headers["content-type"].startswith("text/html")
        assert '<script type="module" src="/portal/app.js">' in index.text
        script = client.get("/portal/app.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        for missing in ("/portal/nothing.js", "/portal/%2e%2e/index.html", "/portal/"):
            answer = client.get(missing)
            assert answer.status_code == 404, missing
            assert answer.json()["code"] == "NotFound"


def test_portal_end_to_end(
    tab: Tab, endpoint: str, trainer_worker: threading.Event, tmp_path: Path
) -> None:
    page = tab.page
    name = f"portal-{uuid.uuid4().hex[:8]}"
    training_photos = {f: photo_paths(f, PER_FLOWER) for f in FLOWERS}
    # Held-out photos that this training (seed 7) classifies right, with a clear margin.
    held_out = {
        f: photo_paths(f, 1, start=PER_FLOWER + i)[0]
        for f, i in zip(FLOWERS, (1, 2, 3), strict=True)
    }
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"this is not an image")

    sign_in(page, endpoint)
    shot(page, "02-projects")

    # Create a project.
    page.get_by_role("button", name="New project").click()
    create = page.get_by_role("dialog", name="New project")
    create.get_by_label("Name").fill(name)
    create.get_by_label("Description").fill("Daisies, sunflowers and tulips")
    create.get_by_label("Domain").select_option(GENERAL_COMPACT)
    shot(page, "03-new-project")
    create.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()
    expect(page.get_by_text("No images yet")).to_be_visible()
    project_id = page.url.split("#/projects/")[1].split("/")[0]
    shot(page, "04-images-empty")

    # Upload 6 photos per flower with their tag; the broken file is refused with its reason.
    upload(page, [*training_photos["daisy"], broken], "daisy", PER_FLOWER)
    dialog = page.get_by_role("dialog", name="Add images")
    expect(dialog.get_by_role("alert")).to_contain_text("1 file could not be added")
    expect(dialog.get_by_role("alert")).to_contain_text("broken.jpg")
    expect(dialog.get_by_role("alert")).to_contain_text("ErrorImageFormat")
    shot(page, "05-upload-errors")
    close_upload(page)
    for flower in FLOWERS[1:]:
        upload(page, training_photos[flower], flower, PER_FLOWER)
        close_upload(page)
    tags = page.get_by_role("complementary", name="Tags")
    for flower in FLOWERS:
        row = tags.locator("li", has_text=flower)
        expect(row.locator(".count")).to_have_text(str(PER_FLOWER))
    expect(page.get_by_text(f"Page 1 of 1 · {3 * PER_FLOWER} images")).to_be_visible()

    # Filter by one tag, open an image.
    page.get_by_label("Filter by tulip").check()
    expect(page.get_by_text(f"Page 1 of 1 · {PER_FLOWER} images")).to_be_visible()
    shot(page, "06-images")
    page.get_by_role("button", name=re.compile(r"^Open image 1 ")).click()
    image_view = page.get_by_role("dialog", name="Image")
    expect(image_view.locator(".chip")).to_have_text(re.compile("tulip"))
    expect(image_view.get_by_text(re.compile(r"\d+ \u00d7 \d+ px"))).to_be_visible()
    shot(page, "07-image-view")
    image_view.get_by_role("button", name="Done").click()

    # Train (Quick) and watch the progress until it completes.
    page.get_by_role("link", name="Train", exact=True).click()
    expect(page.get_by_role("button", name="Train", exact=True)).to_be_enabled()
    shot(page, "08-train")
    page.get_by_role("button", name="Train", exact=True).click()
    expect(page.get_by_text("Queued: waiting for a trainer")).to_be_visible()
    expect(page.get_by_role("progressbar", name="Training progress")).to_be_visible()
    shot(page, "09-training")
    trainer_worker.set()
    expect(page.get_by_text("is trained")).to_be_visible(timeout=180_000)
    shot(page, "10-trained")

    # Performance: real figures, PR curves and a confusion matrix of all 18 images.
    page.get_by_role("link", name="See performance").click()
    stats = page.locator(".stat-value")
    expect(stats).to_have_count(3)
    for value in stats.all_inner_texts():
        assert re.fullmatch(r"\d{1,3}\.\d%", value), value
    expect(page.locator("table.per-tag tbody tr")).to_have_count(3)
    expect(page.locator("svg.pr-chart")).to_have_count(3)
    cells = page.locator("table.matrix button.cell")
    expect(cells.first).to_be_visible()
    assert sum(int(t) for t in cells.all_inner_texts()) == 3 * PER_FLOWER
    diagonal = page.get_by_role("button", name="images tagged sunflower, predicted sunflower")
    right = int(diagonal.inner_text())
    assert right >= PER_FLOWER // 2, right
    shot(page, "11-performance")
    diagonal.click()
    expect(page.locator(".cell-images img")).to_have_count(right)
    recall_at_half = float(stats.nth(1).inner_text().rstrip("%"))
    with page.expect_response(lambda r: "performance?threshold=0.9" in r.url):
        page.get_by_label("Probability threshold").fill("90")
    expect(page.locator("output[for=threshold]")).to_have_text("90%")
    expect(stats.nth(1)).not_to_have_text(f"{recall_at_half:.1f}%")  # fewer images pass 90%
    assert float(stats.nth(1).inner_text().rstrip("%")) < recall_at_half

    # Publish.
    page.get_by_role("button", name="Publish", exact=True).click()
    publish = page.get_by_role("dialog", name=re.compile("^Publish"))
    publish.get_by_label("Published name").fill("portal-live")
    publish.get_by_role("button", name="Publish").click()
    expect(page.get_by_text("published: portal-live")).to_be_visible()
    page.get_by_role("button", name="Prediction URL").click()
    url_dialog = page.get_by_role("dialog", name="Prediction URL")
    prediction_url = (
        f"{endpoint}/customvision/v3.1/prediction/{project_id}/classify/iterations/portal-live"
    )
    expect(url_dialog.get_by_text(prediction_url + "/image", exact=True)).to_be_visible()
    shot(page, "12-prediction-url")
    url_dialog.get_by_role("button", name="Close dialog").click()

    # Quick test a held-out photo: the right tag is on top; add it to the training set.
    page.get_by_role("link", name="Quick test").click()
    page.get_by_label("Image file").set_input_files(held_out["sunflower"])
    expect(page.locator(".top-tag")).to_have_text("Most likely: sunflower")
    page.get_by_role("combobox", name="Tag", exact=True).select_option(label="sunflower")
    page.get_by_role("button", name="Add to training images").click()
    expect(page.get_by_text("Added to the training images as sunflower.")).to_be_visible()
    shot(page, "13-quick-test")

    # An app calls the prediction API; the stored prediction is reviewed in the portal.
    with httpx.Client(timeout=60) as client:
        answer = client.post(
            prediction_url + "/image",
            headers={"Prediction-Key": PREDICTION_KEY, "Content-Type": "application/octet-stream"},
            content=held_out["daisy"].read_bytes(),
        )
    assert answer.status_code == 200, answer.text
    predicted = answer.json()["predictions"][0]["tagName"]
    assert predicted == "daisy", answer.json()
    page.get_by_role("link", name="Predictions").click()
    cards = page.locator(".image-grid .thumb")
    expect(cards).to_have_count(2)  # the quick test and the app's call, newest first
    expect(cards.first.locator(".thumb-tags strong")).to_have_text(predicted)
    shot(page, "14-predictions")
    cards.first.get_by_role("checkbox").check()
    page.get_by_label("Tag for the selected predictions").select_option(label="daisy")
    page.get_by_role("button", name="Add to training images").click()
    expect(page.get_by_text("Added 1 image to the training images as daisy.")).to_be_visible()
    expect(cards).to_have_count(1)
    with api(endpoint) as client:
        assert client.get(f"/projects/{project_id}/images/count").json() == 3 * PER_FLOWER + 2
        daisy = next(
            t for t in client.get(f"/projects/{project_id}/tags").json() if t["name"] == "daisy"
        )
        assert daisy["imageCount"] == PER_FLOWER + 1

    # Suggested tags for an untagged upload, confirmed in bulk.
    page.get_by_role("link", name="Training images").click()
    upload(page, [held_out["tulip"]], None, 1)
    close_upload(page)
    page.get_by_role("link", name="Suggested tags").click()
    chips = page.get_by_role("group", name="Suggested tags for image 1").get_by_role("button")
    expect(chips.first).to_be_visible()
    shot(page, "15-suggested")
    first_chip = chips.first.inner_text().split(" ")[0]
    if chips.first.get_attribute("aria-pressed") != "true":
        chips.first.click()
    page.get_by_role("button", name="Confirm suggestions").click()
    expect(page.get_by_text("All images are tagged")).to_be_visible()
    with api(endpoint) as client:
        assert client.get(f"/projects/{project_id}/images/untagged/count").json() == 0
        assert first_chip in {t["name"] for t in client.get(f"/projects/{project_id}/tags").json()}

    # Settings list the published iteration's prediction URL.
    page.get_by_role("link", name="Settings").click()
    # (other tests' projects may be published too: look at this one's entry only)
    published = page.locator("details.published", has_text=name)
    published.locator("summary").click()
    expect(page.get_by_text(prediction_url + "/url", exact=True)).to_be_visible()
    tryout = published.get_by_label("Try it with a photo (uses the prediction key)")
    tryout.set_input_files(held_out["sunflower"])
    expect(published.locator(".try-out .scores li").first).to_contain_text("sunflower")
    shot(page, "16-settings")

    # Unpublish and delete the iteration, then delete the project from the list.
    page.goto(f"{endpoint}/#/projects/{project_id}/performance")
    page.get_by_role("button", name="Unpublish").click()
    page.get_by_role("dialog").get_by_role("button", name="Unpublish").click()
    expect(page.get_by_role("button", name="Publish", exact=True)).to_be_visible()
    page.get_by_role("button", name="Delete iteration").click()
    page.get_by_role("dialog", name="Delete Iteration 1?").get_by_role(
        "button", name="Delete"
    ).click()
    expect(page.get_by_text("No iterations yet")).to_be_visible()
    page.get_by_role("link", name="Projects", exact=True).first.click()
    card = page.get_by_role("article", name=name)
    expect(card).to_contain_text(f"{3 * PER_FLOWER + 3} images · 3 tags")
    shot(page, "17-projects")
    card.get_by_role("button", name=f"Delete {name}").click()
    page.get_by_role("dialog", name=f"Delete {name}?").get_by_role("button", name="Delete").click()
    expect(page.get_by_role("article", name=name)).to_have_count(0)
    with api(endpoint) as client:
        assert client.get(f"/projects/{project_id}").status_code == 404


def test_tags_images_and_empty_states(tab: Tab, endpoint: str) -> None:
    """Without training: tag rename and delete, tagging a selection, deleting images, editing
    the project, and what the training pages say before there is anything to show."""
    page = tab.page
    name = f"portal-tags-{uuid.uuid4().hex[:8]}"
    with api(endpoint) as client:
        project = client.post("/projects", params={"name": name}).json()
        tag = client.post(f"/projects/{project['id']}/tags", params={"name": "daisy"}).json()
        files = [
            ("imageData", (p.name, p.read_bytes(), "image/jpeg")) for p in photo_paths("daisy", 2)
        ]
        answer = client.post(
            f"/projects/{project['id']}/images", params={"tagIds": tag["id"]}, files=files
        )
        assert answer.json()["isBatchSuccessful"], answer.text
    # A link into the portal leads there once signed in.
    page.goto(f"{endpoint}/#/projects/{project['id']}/images")
    expect(page).to_have_url(re.compile(r"#/start$"))
    page.get_by_label("Training key").fill(TRAINING_KEY)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()
    sidebar = page.get_by_role("complementary", name="Tags")
    expect(sidebar.locator("li", has_text="daisy").locator(".count")).to_have_text("2")

    # Drop a photo on the grid: the upload dialog opens with it.
    dropped = photo_paths("daisy", 1, start=2)[0]
    transfer = page.evaluate_handle(
        """([name, bytes]) => {
            const transfer = new DataTransfer();
            const file = new File([new Uint8Array(bytes)], name, { type: "image/jpeg" });
            transfer.items.add(file);
            return transfer;
        }""",
        [dropped.name, list(dropped.read_bytes())],
    )
    page.dispatch_event(".content", "drop", {"dataTransfer": transfer})
    drop_dialog = page.get_by_role("dialog", name="Add images")
    expect(drop_dialog.get_by_text("1 file chosen")).to_be_visible()
    drop_dialog.get_by_label("daisy").check()
    drop_dialog.get_by_role("button", name="Upload").click()
    expect(drop_dialog.get_by_text(re.compile(r"^Done: 1 added"))).to_be_visible()
    close_upload(page)
    expect(sidebar.locator("li", has_text="daisy").locator(".count")).to_have_text("3")

    page.get_by_role("button", name="Rename daisy").click()
    rename = page.get_by_role("dialog", name="Rename daisy")
    rename.get_by_label("Name").fill("daisies")
    rename.get_by_role("button", name="Rename").click()
    expect(sidebar.get_by_text("daisies")).to_be_visible()

    # A tag whose name is taken: the server's message is shown.
    sidebar.get_by_label("New tag name").fill("Daisies")
    sidebar.get_by_role("button", name="Add").click()
    tab.expected.append("status of 400")
    expect(sidebar.get_by_role("alert")).to_contain_text("BadRequestTagNameNotUnique")
    sidebar.get_by_label("New tag name").fill("meadow")
    sidebar.get_by_role("button", name="Add").click()
    expect(sidebar.locator("li", has_text="meadow").locator(".count")).to_have_text("0")

    page.get_by_label(re.compile(r"^Select image 1 ")).check()
    page.get_by_label(re.compile(r"^Select image 2 ")).check()
    expect(page.get_by_text("2 selected")).to_be_visible()
    page.get_by_label("Tag for the selected images").select_option(label="meadow")
    page.get_by_role("button", name="Tag", exact=True).click()
    expect(sidebar.locator("li", has_text="meadow").locator(".count")).to_have_text("2")
    page.get_by_label(re.compile(r"^Select image 3 ")).check()
    page.get_by_role("button", name="Delete", exact=True).click()
    page.get_by_role("dialog", name="Delete 1 image?").get_by_role("button", name="Delete").click()
    expect(page.get_by_text("Page 1 of 1 · 2 images")).to_be_visible()

    page.get_by_role("button", name="Delete meadow").click()
    page.get_by_role("dialog", name="Delete tag meadow?").get_by_role(
        "button", name="Delete"
    ).click()
    expect(sidebar.locator("li", has_text="meadow")).to_have_count(0)

    page.get_by_role("link", name="Train", exact=True).click()
    expect(page.get_by_text("needs 3 more")).to_be_visible()
    expect(page.get_by_role("button", name="Train", exact=True)).to_be_disabled()
    page.get_by_role("link", name="Performance").click()
    expect(page.get_by_text("No iterations yet")).to_be_visible()
    shot(page, "20-performance-empty")
    page.get_by_role("link", name="Quick test").click()
    expect(page.get_by_text("Nothing to test yet")).to_be_visible()
    page.get_by_role("link", name="Predictions").click()
    expect(page.get_by_text("No stored predictions")).to_be_visible()
    page.get_by_role("link", name="Suggested tags").click()
    expect(page.get_by_text("No untagged images")).to_be_visible()

    page.get_by_role("link", name="Projects", exact=True).first.click()
    card = page.get_by_role("article", name=name)
    card.get_by_role("button", name=f"Edit {name}").click()
    edit = page.get_by_role("dialog", name=f"Edit {name}")
    edit.get_by_label("Multilabel").check()
    edit.get_by_label("Description").fill("Edited in the portal")
    edit.get_by_role("button", name="Save").click()
    expect(card).to_contain_text("Edited in the portal")
    expect(card).to_contain_text("Multilabel")
    expect(card).to_contain_text("2 images · 1 tag")
    with api(endpoint) as client:
        assert client.delete(f"/projects/{project['id']}").status_code == 204
