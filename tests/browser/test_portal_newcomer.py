"""Rough edges a newcomer hit in the portal, in a real browser against the real stack: a dialog
left open over the next page (and its upload going on into the project left behind), and
disabled actions that did not say why.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx

from functions.domain.clock import utcnow
from functions.domain.models import Iteration, IterationStatus
from functions.storage.clients import Storage
from tests.browser.portal_helpers import (
    GENERAL_COMPACT,
    Page,
    Tab,
    api,
    browser_fixture,  # noqa: F401 (a fixture: browser)
    expect,
    needs_chromium,
    shot,
    sign_in,
    sync_api,
    tab_fixture,  # noqa: F401 (a fixture: tab)
)
from tests.conftest import TRAINING_PREFIX, jpeg_bytes

pytestmark = needs_chromium
Locator = sync_api.Locator

UPLOAD_BATCH = 64  # images per upload request (images.js)


def swatch(i: int) -> bytes:
    """A small JPEG of one colour, different for each i."""
    return jpeg_bytes((i * 5 % 256, 255 - i * 5 % 256, i * 37 % 256), (64, 48))


def new_project(client: httpx.Client, prefix: str, tags: dict[str, int]) -> tuple[str, str]:
    """A project whose tags have this many images each; returns its id and name."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    project = client.post("/projects", params={"name": name, "domainId": GENERAL_COMPACT}).json()
    made = 0
    for tag_name, count in tags.items():
        tag = client.post(f"/projects/{project['id']}/tags", params={"name": tag_name}).json()
        files = [
            ("imageData", (f"{made + i}.jpg", swatch(made + i), "image/jpeg")) for i in range(count)
        ]
        made += count
        if files:
            answer = client.post(
                f"/projects/{project['id']}/images", params={"tagIds": tag["id"]}, files=files
            )
            assert answer.json()["isBatchSuccessful"], answer.text
    return str(project["id"]), name


def expect_disabled_because(page: Page, control: Locator, reason: str) -> None:
    """Disabled, with the reason as visible text beside it that describes it (aria-describedby)."""
    expect(control).to_be_disabled()
    expect(control).to_have_accessible_description(reason)
    described_by = control.get_attribute("aria-describedby") or ""
    why = page.locator(f"#{described_by}")
    expect(why).to_be_visible()
    expect(why).to_have_text(reason)
    # Beside it: in the same row of controls, not somewhere else on the page.
    expect(control.locator("xpath=../..").locator(f"#{described_by}")).to_have_count(1)


def wait_until(page: Page, condition: Callable[[], bool], what: str) -> None:
    """Wait (letting Playwright run its event handlers) until the condition holds."""
    for _ in range(400):
        if condition():
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"waited 20 s for {what}")


def expect_enabled(control: Locator) -> None:
    expect(control).to_be_enabled()
    expect(control).not_to_have_attribute("aria-describedby", re.compile("why"))


def test_back_closes_add_images_and_stops_its_upload(
    tab: Tab, endpoint: str, tmp_path: Path
) -> None:
    """Back while an upload runs: the dialog closes (not left over the Projects page), its
    request is aborted and no later batch is sent; nothing reaches the project left behind."""
    page = tab.page
    with api(endpoint) as client:
        project_id, name = new_project(client, "newcomer-upload", {})
    files = []
    for i in range(UPLOAD_BATCH + 6):  # two batches
        files.append(tmp_path / f"swatch{i}.jpg")
        files[-1].write_bytes(swatch(i))
    posted: list[str] = []
    failed: list[str] = []
    held: list[sync_api.Route] = []

    def hold_uploads(route: sync_api.Route) -> None:
        """Upload requests wait here (as on a slow line) until the test lets them go."""
        if route.request.method == "POST":
            posted.append(route.request.url)
            held.append(route)
        else:
            route.continue_()

    page.route(re.compile(rf"{TRAINING_PREFIX}/projects/{project_id}/images(\?|$)"), hold_uploads)
    page.on("requestfailed", lambda r: failed.append(f"{r.method} {r.failure}"))
    sign_in(page, endpoint, screenshot=None)
    page.get_by_role("link", name=name, exact=True).click()
    expect(page.get_by_text("No images yet")).to_be_visible()
    page.get_by_role("button", name="Add images").first.click()
    dialog = page.get_by_role("dialog", name="Add images")
    dialog.locator("input[type=file]").set_input_files(files)
    dialog.get_by_role("button", name="Upload").click()
    expect(dialog.get_by_text(f"Uploading: 0 of {len(files)} processed")).to_be_visible()
    expect_disabled_because(
        page, dialog.get_by_role("button", name="Upload"), "Uploading: wait for it to finish."
    )
    wait_until(page, lambda: len(held) == 1, "the first batch's request")

    page.go_back()
    expect(page.get_by_role("heading", name="Projects", exact=True)).to_be_visible()
    expect(page.locator("dialog")).to_have_count(0)
    for route in held:  # too late: the page has aborted it
        with contextlib.suppress(sync_api.Error):
            route.abort()
    expect(page.get_by_role("article", name=name)).to_contain_text("0 images · 0 tags")
    shot(page, "40-back-closed-the-upload")
    assert len(posted) == 1, posted  # the second batch was never sent
    assert any("ERR_ABORTED" in f for f in failed if f.startswith("POST")), failed
    with api(endpoint) as client:
        assert client.get(f"/projects/{project_id}/images/count").json() == 0
        assert client.delete(f"/projects/{project_id}").status_code == 204


def test_back_cancels_a_confirmation(tab: Tab, endpoint: str) -> None:
    """A confirmation left by Back closes and counts as cancelled: nothing is deleted."""
    page = tab.page
    with api(endpoint) as client:
        project_id, name = new_project(client, "newcomer-confirm", {})
    sign_in(page, endpoint, screenshot=None)
    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", name="Settings")).to_be_visible()
    page.get_by_role("link", name="Projects", exact=True).click()
    card = page.get_by_role("article", name=name)
    card.get_by_role("button", name=f"Delete {name}").click()
    expect(page.get_by_role("dialog", name=f"Delete {name}?")).to_be_visible()

    page.go_back()
    expect(page.get_by_role("heading", name="Settings")).to_be_visible()
    expect(page.locator("dialog")).to_have_count(0)
    page.go_forward()
    expect(page.get_by_role("article", name=name)).to_be_visible()
    expect(page.locator("dialog")).to_have_count(0)
    with api(endpoint) as client:
        assert client.get(f"/projects/{project_id}").status_code == 200
        assert client.delete(f"/projects/{project_id}").status_code == 204


def test_train_says_why_it_is_disabled_when_the_data_is_short(tab: Tab, endpoint: str) -> None:
    """No tags, then a tag with too few images: Train is disabled with the reason beside it,
    as the API would refuse; the time budget says it is for Advanced training only."""
    page = tab.page
    with api(endpoint) as client:
        empty_id, _ = new_project(client, "newcomer-empty", {})
        short_id, _ = new_project(client, "newcomer-short", {"red": 5, "blue": 3})
        one_id, _ = new_project(client, "newcomer-one-tag", {"red": 6})
    sign_in(page, endpoint, screenshot=None)
    train = page.get_by_role("button", name="Train", exact=True)

    page.goto(f"{endpoint}/#/projects/{empty_id}/train")
    expect(page.get_by_text("No tags yet")).to_be_visible()
    expect_disabled_because(
        page, train, "Training needs at least 2 tags with 5 images or more; this project has none."
    )
    shot(page, "41-train-no-tags")

    page.goto(f"{endpoint}/#/projects/{one_id}/train")
    expect_disabled_because(
        page, train, "Training needs at least 2 tags with 5 images or more; this project has 1."
    )

    page.goto(f"{endpoint}/#/projects/{short_id}/train")
    expect_disabled_because(page, train, "Each tag needs at least 5 images; too few for: blue (3).")
    budget = page.get_by_label("Time budget for Advanced training (hours)")
    expect_disabled_because(page, budget, "Only Advanced training uses a time budget.")
    shot(page, "42-train-too-few")
    page.get_by_role("radio", name=re.compile("^Advanced training")).check()
    expect_enabled(budget)
    expect(train).to_be_disabled()  # still too few images

    with api(endpoint) as client:
        for project_id in (empty_id, short_id, one_id):
            assert client.delete(f"/projects/{project_id}").status_code == 204


def test_train_says_a_training_runs_then_that_nothing_changed(
    tab: Tab, endpoint: str, storage: Storage
) -> None:
    """While a training runs Train says so; once it is done, the API's "nothing changed" shows
    beside the button, which ticking "Train even if nothing changed" enables again."""
    page = tab.page
    tab.expected.append("status of 400")  # the refused training: the browser logs it
    with api(endpoint) as client:
        project_id, _ = new_project(client, "newcomer-retrain", {"red": 5, "blue": 5})
        iteration = client.post(f"/projects/{project_id}/train").json()
    sign_in(page, endpoint, screenshot=None)
    page.goto(f"{endpoint}/#/projects/{project_id}/train")
    train = page.get_by_role("button", name="Train", exact=True)
    expect(page.get_by_text("Queued: waiting for a trainer")).to_be_visible()
    expect_disabled_because(page, train, "A training is running; wait for it to finish.")

    # What the trainer does when it finishes (without training a model: none is needed here).
    def complete(it: Iteration) -> Iteration:
        return replace(
            it,
            status=IterationStatus.COMPLETED,
            trained_at=utcnow(),
            progress_stage="Completed",
            progress_fraction=1.0,
            last_modified=utcnow(),
        )

    storage.iterations.edit(project_id, iteration["id"], complete)
    storage.iterations.unlock(project_id, iteration["id"])
    expect(page.get_by_text("Iteration 1 is trained")).to_be_visible()
    expect_enabled(train)

    with page.expect_response(lambda r: r.request.method == "POST" and "/train" in r.url) as sent:
        train.click()
    assert sent.value.status == 400
    reason = (
        "Nothing changed since the last iteration; tick “Train even if nothing changed” "
        "to train again."
    )
    expect_disabled_because(page, train, reason)
    expect(page.get_by_role("alert")).to_have_count(0)  # said beside the button, not as an error
    shot(page, "43-train-nothing-changed")
    force = page.get_by_label("Train even if nothing changed since the last iteration")
    force.check()
    expect_enabled(train)
    force.uncheck()
    expect_disabled_because(page, train, reason)
    page.get_by_role("radio", name=re.compile("^Advanced training")).check()
    expect_enabled(train)  # the last iteration was Quick: Advanced is not the same training

    with api(endpoint) as client:
        assert client.delete(f"/projects/{project_id}").status_code == 204


def test_image_actions_say_they_need_a_selection(tab: Tab, endpoint: str) -> None:
    """Tag, Untag, Delete and Clear selection wait for a selection and say so; the pager's
    buttons are described by the page count."""
    page = tab.page
    with api(endpoint) as client:
        project_id, _ = new_project(client, "newcomer-select", {"red": 2})
    sign_in(page, endpoint, screenshot=None)
    page.goto(f"{endpoint}/#/projects/{project_id}/images")
    toolbar = page.get_by_role("toolbar", name="Images")
    reason = "Select images to tag, untag or delete them."
    for name in ("Clear selection", "Tag", "Untag", "Delete"):
        expect_disabled_because(page, toolbar.get_by_role("button", name=name, exact=True), reason)
    pages = page.get_by_role("navigation", name="Pages")
    for name in ("← Previous", "Next →"):
        button = pages.get_by_role("button", name=name)
        expect(button).to_be_disabled()
        expect(button).to_have_accessible_description("Page 1 of 1 · 2 images")
    shot(page, "44-images-nothing-selected")

    page.get_by_role("checkbox", name=re.compile(r"^Select image 1 ")).check()
    expect(toolbar.get_by_text("1 selected")).to_be_visible()
    for name in ("Clear selection", "Tag", "Untag", "Delete"):
        expect_enabled(toolbar.get_by_role("button", name=name, exact=True))
    expect(toolbar.get_by_text(reason)).to_have_count(0)

    with api(endpoint) as client:
        assert client.delete(f"/projects/{project_id}").status_code == 204
