"""Portal paths the end-to-end walk does not take, in a real browser against the real stack:
a failed training, a quick test by URL, a Multilabel project, paging past one page of images,
and requesting Advanced training. Each checks what the page shows, and any console error or
page error fails it (the `tab` fixture).
"""

from __future__ import annotations

import re
import threading
import uuid
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from functions.domain.jobs import TrainingJob
from functions.settings import Settings
from functions.storage.clients import Storage
from tests.browser.portal_helpers import (
    GENERAL_COMPACT,
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
    trainer_worker_fixture,  # noqa: F401 (a fixture: trainer_worker)
    upload,
)
from tests.conftest import jpeg_bytes, photo_paths

pytestmark = needs_chromium

FLOWERS = ("daisy", "sunflower", "tulip")
PER_FLOWER = 5
PAGE_SIZE = 48  # the grid's page size (images.js)


def swatches(count: int, start: int = 0) -> list[bytes]:
    """Distinct small JPEGs: a solid colour each."""
    return [
        jpeg_bytes(((start + i) * 5 % 256, 255 - (start + i) * 5 % 256, (start + i) * 37 % 256))
        for i in range(count)
    ]


def add_images(
    client: httpx.Client, project_id: str, images: list[bytes], tag_ids: list[str]
) -> list[dict[str, Any]]:
    """Upload through the API (faster than the dialog); returns the created images."""
    created = []
    for start in range(0, len(images), 64):
        files = [
            ("imageData", (f"image{start + i}.jpg", data, "image/jpeg"))
            for i, data in enumerate(images[start : start + 64])
        ]
        query = {"tagIds": ",".join(tag_ids)} if tag_ids else {}
        answer = client.post(f"/projects/{project_id}/images", params=query, files=files)
        summary = answer.json()
        assert summary["isBatchSuccessful"], answer.text
        created += [result["image"] for result in summary["images"]]
    return created


def new_project(client: httpx.Client, prefix: str, tags: dict[str, list[bytes]]) -> str:
    """A project with these tags, each on its images; returns its id."""
    project = client.post(
        "/projects",
        params={"name": f"{prefix}-{uuid.uuid4().hex[:8]}", "domainId": GENERAL_COMPACT},
    ).json()
    for name, images in tags.items():
        tag = client.post(f"/projects/{project['id']}/tags", params={"name": name}).json()
        add_images(client, project["id"], images, [tag["id"]])
    return str(project["id"])


def open_project(page: Page, endpoint: str, project_id: str, tab: str) -> None:
    sign_in(page, endpoint, screenshot=None)
    page.goto(f"{endpoint}/#/projects/{project_id}/{tab}")
    expect(page.get_by_role("link", name="Train", exact=True)).to_be_visible()


@dataclass(frozen=True)
class Trained:
    project_id: str
    iteration_id: str
    tags: list[str]


@pytest.fixture(scope="module")
def trained(endpoint: str, storage: Storage, settings: Settings) -> Iterator[Trained]:
    """A project trained (Quick) on real photos, 5 per flower, shared by the tests here."""
    from trainer_job.__main__ import process_one

    with api(endpoint) as client:
        photos = {f: [p.read_bytes() for p in photo_paths(f, PER_FLOWER)] for f in FLOWERS}
        project_id = new_project(client, "paths-trained", photos)
        iteration = client.post(f"/projects/{project_id}/train").json()
        while process_one(storage, settings):  # also ends queued jobs of earlier tests
            pass
        done = client.get(f"/projects/{project_id}/iterations/{iteration['id']}").json()
        assert done["status"] == "Completed", done
        yield Trained(project_id, iteration["id"], list(FLOWERS))
        client.delete(f"/projects/{project_id}")


def test_a_failed_training_shows_failed_and_why(
    tab: Tab, endpoint: str, storage: Storage, settings: Settings
) -> None:
    """The trainer gives up after repeated failures; the Train view says Failed and why, also
    when opened again later, and so does the iteration's performance page."""
    from trainer_job.job import record_failure

    page = tab.page
    with api(endpoint) as client:
        project_id = new_project(
            client, "paths-failed", {"red": swatches(5), "blue": swatches(5, start=20)}
        )
    open_project(page, endpoint, project_id, "train")
    train = page.get_by_role("button", name="Train", exact=True)
    expect(train).to_be_enabled()
    train.click()
    expect(page.get_by_text("Queued: waiting for a trainer")).to_be_visible()
    expect(train).to_be_disabled()
    with api(endpoint) as client:
        (iteration,) = client.get(f"/projects/{project_id}/iterations").json()
    assert iteration["status"] == "Training", iteration

    # What the trainer does: a failed attempt is noted, then the last delivery gives up.
    job = TrainingJob(project_id, iteration["id"], "Regular", 0)
    record_failure(storage, job, "RuntimeError: CUDA out of memory", final=False)
    reason = (
        f"Training stopped {settings.trainer_max_deliveries} times without finishing "
        "(the job was killed, ran out of memory or kept failing)."
    )
    record_failure(storage, job, reason, final=True)

    failure = page.locator(".train-status").get_by_role("alert")
    expect(failure).to_contain_text("Iteration 1 failed")
    expect(failure).to_contain_text(reason)
    expect(failure.locator("code")).to_have_text("Failed")
    expect(page.get_by_role("progressbar", name="Training progress")).to_have_count(0)
    expect(train).to_be_enabled()  # training again is possible
    shot(page, "30-training-failed")

    # Opened again later: still Failed, with the reason.
    page.reload()
    failure = page.locator(".train-status").get_by_role("alert")
    expect(failure).to_contain_text(reason)
    expect(failure.locator("code")).to_have_text("Failed")
    expect(page.get_by_text(re.compile(r"^Latest: Iteration 1, failed "))).to_be_visible()
    expect(page.get_by_role("button", name="Train", exact=True)).to_be_enabled()

    page.get_by_role("link", name="See its performance").click()
    iterations = page.get_by_role("navigation", name="Iterations")
    expect(iterations.get_by_role("link", name=re.compile("Iteration 1"))).to_contain_text("Failed")
    expect(page.get_by_text("Regular · Failed")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("This training failed")
    expect(page.get_by_role("alert")).to_contain_text(reason)
    expect(page.get_by_role("button", name="Publish", exact=True)).to_have_count(0)
    shot(page, "31-performance-failed")
    page.get_by_role("link", name="Quick test").click()
    expect(page.get_by_text("Nothing to test yet")).to_be_visible()
    with api(endpoint) as client:
        failed = client.get(f"/projects/{project_id}/iterations/{iteration['id']}").json()
        assert failed["status"] == "Failed" and failed["trainingErrorDetails"] == reason, failed
        assert client.delete(f"/projects/{project_id}").status_code == 204


def test_quick_test_by_url_shows_every_tag(tab: Tab, endpoint: str, trained: Trained) -> None:
    """A signed image link the API serves (an image of another project) is classified; every
    tag is listed with its probability, as the API answered. A broken link shows the error."""
    page = tab.page
    held_out = photo_paths("sunflower", 1, start=PER_FLOWER + 2)[0]
    with api(endpoint) as client:
        other = new_project(client, "paths-url-source", {})
        (image,) = add_images(client, other, [held_out.read_bytes()], [])
    link = image["originalImageUri"]
    assert link.startswith(endpoint + "/"), link

    open_project(page, endpoint, trained.project_id, "quicktest")
    expect(page.get_by_label("Iteration")).to_contain_text("Iteration 1")
    page.get_by_label("Or an image URL").fill(link)
    with page.expect_response(lambda r: "/quicktest/url" in r.url) as answered:
        page.get_by_role("button", name="Test URL").click()
    assert answered.value.ok, answered.value.text()
    prediction = answered.value.json()
    assert sorted(p["tagName"] for p in prediction["predictions"]) == sorted(trained.tags)

    rows = page.locator(".quicktest-result .scores li")
    expect(rows).to_have_count(len(trained.tags))
    for row, predicted in zip(rows.all(), prediction["predictions"], strict=True):
        expect(row.locator(".score-name")).to_have_text(predicted["tagName"])
        expect(row.locator(".score-value")).to_have_text(f"{predicted['probability'] * 100:.1f}%")
    top = prediction["predictions"][0]["tagName"]
    expect(page.locator(".top-tag")).to_have_text(f"Most likely: {top}")
    preview = page.get_by_role("img", name="The tested image")
    expect(preview).to_have_attribute("src", link)
    # The link served it: the browser decodes it a moment after the src is set.
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=preview.element_handle(), timeout=10_000
    )
    shot(page, "32-quick-test-url")

    # A link whose signature is wrong: the server cannot fetch it; the page says so.
    tab.expected.append("status of 400")
    page.get_by_label("Or an image URL").fill(re.sub(r"sig=[^&]+", "sig=forged", link))
    with page.expect_response(lambda r: "/quicktest/url" in r.url) as refused:
        page.get_by_role("button", name="Test URL").click()
    assert refused.value.status == 400, refused.value.text()
    alert = page.locator(".quicktest-result").get_by_role("alert")
    expect(alert).to_contain_text(refused.value.json()["code"])
    expect(page.locator(".quicktest-result .scores")).to_have_count(0)
    with api(endpoint) as client:
        assert client.delete(f"/projects/{other}").status_code == 204


def test_multilabel_project_performance(
    tab: Tab, endpoint: str, trainer_worker: threading.Event
) -> None:
    """A Multilabel project made in the portal, some images with two tags, trained: per-tag
    figures, a PR curve per tag and the predicted-tags matrix with its "nothing" column."""
    page = tab.page
    name = f"paths-multilabel-{uuid.uuid4().hex[:8]}"
    sign_in(page, endpoint, screenshot=None)
    page.get_by_role("button", name="New project").click()
    create = page.get_by_role("dialog", name="New project")
    create.get_by_label("Name").fill(name)
    create.get_by_label("Domain").select_option(GENERAL_COMPACT)
    create.get_by_role("radio", name=re.compile("^Multilabel")).check()
    create.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()
    expect(page.locator(".project-head .badge")).to_have_text("Multilabel")
    project_id = page.url.split("#/projects/")[1].split("/")[0]

    uploads = {"daisy": "daisy", "sunflower": "sunflower, yellow", "tulip": "tulip"}
    for flower, tags in uploads.items():
        upload(page, photo_paths(flower, PER_FLOWER), tags, PER_FLOWER)
        close_upload(page)
    sidebar = page.get_by_role("complementary", name="Tags")
    for tag in ("daisy", "sunflower", "tulip", "yellow"):
        expect(sidebar.locator("li", has_text=tag).locator(".count")).to_have_text(str(PER_FLOWER))
    expect(page.get_by_text(f"Page 1 of 1 · {3 * PER_FLOWER} images")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile(r"\(sunflower, yellow\)$"))).to_have_count(
        PER_FLOWER
    )

    page.get_by_role("link", name="Train", exact=True).click()
    page.get_by_role("button", name="Train", exact=True).click()
    trainer_worker.set()
    expect(page.get_by_text("is trained")).to_be_visible(timeout=180_000)
    page.get_by_role("link", name="See performance").click()

    tags = ["daisy", "sunflower", "tulip", "yellow"]
    rows = page.locator("table.per-tag tbody tr")
    expect(rows).to_have_count(len(tags))
    for row in rows.all():
        cells = row.locator("td").all_inner_texts()
        assert row.locator("th").inner_text() in tags
        for value in cells[:3]:
            assert re.fullmatch(r"\d{1,3}\.\d%", value), cells
        assert cells[3] == str(PER_FLOWER), cells
    expect(page.locator("svg.pr-chart")).to_have_count(len(tags))
    for tag in tags:
        expect(
            page.get_by_role("img", name=re.compile(f"^Precision-recall curve of {tag};"))
        ).to_be_visible()
    expect(page.get_by_role("heading", name="Predicted tags")).to_be_visible()
    matrix = page.locator("table.matrix")
    expect(matrix.locator("caption")).to_contain_text("Columns: tags predicted at the threshold")
    header = matrix.locator("thead th")
    expect(header).to_have_count(1 + len(tags) + 1)
    columns = header.all_inner_texts()[1:]
    assert sorted(columns[:-1]) == tags and columns[-1] == "nothing", columns
    expect(matrix.locator("tbody tr")).to_have_count(len(tags))

    # The matrix holds what the API's out-of-sample predictions give at 50%.
    with api(endpoint) as client:
        iteration = client.get(f"/projects/{project_id}/iterations").json()[0]
        scored = client.get(
            f"/projects/{project_id}/iterations/{iteration['id']}/performance/images",
            params={"take": 256},
        ).json()
    assert len(scored) == 3 * PER_FLOWER
    expected: Counter[str] = Counter()
    for image in scored:
        predicted = [p["tagName"] for p in image["predictions"] if p["probability"] >= 0.5]
        for actual in image["tags"]:
            for column in predicted or ["nothing"]:
                expected[f"images tagged {actual['tagName']}, predicted {column}"] += 1
    shown = {
        cell.get_attribute("aria-label") or "": int(cell.inner_text())
        for cell in matrix.locator("button.cell").all()
    }
    assert shown == {f"{n} {label}": n for label, n in expected.items()}, (shown, expected)
    shot(page, "33-performance-multilabel")
    with api(endpoint) as client:
        assert client.delete(f"/projects/{project_id}").status_code == 204


def test_paging_past_one_page(tab: Tab, endpoint: str) -> None:
    """50 images: page 1 holds 48, page 2 the other 2; deleting page 2 goes back to page 1."""
    page = tab.page
    total = PAGE_SIZE + 2
    with api(endpoint) as client:
        project_id = new_project(client, "paths-paging", {"swatch": swatches(total)})
        all_ids = {
            i["id"]
            for i in client.get(
                f"/projects/{project_id}/images/tagged", params={"take": 256}
            ).json()
        }
    assert len(all_ids) == total

    def shown_ids() -> set[str]:
        sources = page.locator(".image-grid .thumb img").evaluate_all(
            "imgs => imgs.map(i => i.src)"
        )
        return {next(i for i in all_ids if i in src) for src in sources}

    open_project(page, endpoint, project_id, "images")
    pager = page.get_by_role("navigation", name="Pages")
    thumbs = page.locator(".image-grid .thumb")
    expect(pager).to_contain_text(f"Page 1 of 2 · {total} images")
    expect(thumbs).to_have_count(PAGE_SIZE)
    expect(pager.get_by_role("button", name="← Previous")).to_be_disabled()
    first_page = shown_ids()
    assert len(first_page) == PAGE_SIZE

    pager.get_by_role("button", name="Next →").click()
    expect(pager).to_contain_text(f"Page 2 of 2 · {total} images")
    expect(thumbs).to_have_count(total - PAGE_SIZE)
    expect(page.get_by_role("button", name=f"Open image {PAGE_SIZE + 1} (swatch)")).to_be_visible()
    expect(page.get_by_role("button", name=f"Open image {total} (swatch)")).to_be_visible()
    expect(pager.get_by_role("button", name="Next →")).to_be_disabled()
    expect(pager.get_by_role("button", name="← Previous")).to_be_enabled()
    second_page = shown_ids()
    assert len(second_page) == total - PAGE_SIZE and first_page.isdisjoint(second_page)
    assert first_page | second_page == all_ids
    shot(page, "34-images-page-2")

    pager.get_by_role("button", name="← Previous").click()
    expect(pager).to_contain_text(f"Page 1 of 2 · {total} images")
    expect(thumbs).to_have_count(PAGE_SIZE)

    # Emptying the last page leads back to the page before it.
    pager.get_by_role("button", name="Next →").click()
    expect(thumbs).to_have_count(total - PAGE_SIZE)
    page.get_by_role("button", name="Select page").click()
    expect(page.get_by_text(f"{total - PAGE_SIZE} selected")).to_be_visible()
    page.get_by_role("button", name="Delete", exact=True).click()
    page.get_by_role("dialog", name=f"Delete {total - PAGE_SIZE} images?").get_by_role(
        "button", name="Delete"
    ).click()
    expect(pager).to_contain_text(f"Page 1 of 1 · {PAGE_SIZE} images")
    expect(thumbs).to_have_count(PAGE_SIZE)
    expect(pager.get_by_role("button", name="Next →")).to_be_disabled()
    sidebar = page.get_by_role("complementary", name="Tags")
    expect(sidebar.locator("li", has_text="swatch").locator(".count")).to_have_text(str(PAGE_SIZE))
    with api(endpoint) as client:
        assert client.get(f"/projects/{project_id}/images/count").json() == PAGE_SIZE
        assert client.delete(f"/projects/{project_id}").status_code == 204


def test_advanced_training_request(tab: Tab, endpoint: str) -> None:
    """Advanced with a budget: the request carries both; the iteration is queued as Advanced.
    It is left queued and the project deleted (the trainer drops a deleted project's job)."""
    page = tab.page
    with api(endpoint) as client:
        project_id = new_project(
            client, "paths-advanced", {"red": swatches(5), "blue": swatches(5, start=20)}
        )
    open_project(page, endpoint, project_id, "train")
    budget = page.get_by_label("Time budget for Advanced training (hours)")
    expect(page.get_by_role("radio", name=re.compile("^Quick training"))).to_be_checked()
    expect(budget).to_be_disabled()
    page.get_by_role("radio", name=re.compile("^Advanced training")).check()
    expect(budget).to_be_enabled()
    budget.fill("3")
    shot(page, "35-train-advanced")
    with page.expect_request(lambda r: r.method == "POST" and "/train" in r.url) as sent:
        page.get_by_role("button", name="Train", exact=True).click()
    query = parse_qs(urlsplit(sent.value.url).query)
    assert query["trainingType"] == ["Advanced"], query
    assert query["reservedBudgetInHours"] == ["3"], query
    expect(page.get_by_text("Queued: waiting for a trainer")).to_be_visible()
    expect(page.get_by_text(re.compile(r"^Advanced training started "))).to_be_visible()
    with api(endpoint) as client:
        (iteration,) = client.get(f"/projects/{project_id}/iterations").json()
        assert iteration["trainingType"] == "Advanced", iteration
        assert iteration["reservedBudgetInHours"] == 3, iteration
        assert iteration["status"] == "Training", iteration
        name = client.get(f"/projects/{project_id}").json()["name"]
    # Delete the project from its card: the portal stops watching the iteration first.
    page.get_by_role("link", name="Projects", exact=True).first.click()
    card = page.get_by_role("article", name=name)
    expect(card).to_contain_text("10 images · 2 tags")
    card.get_by_role("button", name=f"Delete {name}").click()
    page.get_by_role("dialog", name=f"Delete {name}?").get_by_role("button", name="Delete").click()
    expect(card).to_have_count(0)
    with api(endpoint) as client:
        assert client.get(f"/projects/{project_id}").status_code == 404


def test_export_view_requests_follows_and_downloads(
    tab: Tab, endpoint: str, trained: Trained, trainer_worker: threading.Event
) -> None:
    """The Export tab starts an ONNX export, follows it to Done (the trainer builds it) and
    offers the zip, which holds the model and its description."""
    page = tab.page
    open_project(page, endpoint, trained.project_id, "export")
    row = page.locator("tr", has=page.get_by_role("rowheader", name="ONNX, float32", exact=True))
    expect(row.get_by_role("button", name="Export")).to_be_visible()
    shot(page, "36-export")
    with page.expect_request(lambda r: "/export?" in r.url and r.method == "POST") as sent:
        row.get_by_role("button", name="Export").click()
    assert "platform=ONNX" in sent.value.url, sent.value.url
    expect(row.get_by_role("status")).to_have_text("Exporting…")
    trainer_worker.set()
    download_link = row.get_by_role("link", name="Download")
    expect(download_link).to_be_visible(timeout=120_000)
    shot(page, "37-export-done")
    with page.expect_download() as downloading:
        download_link.click()
    path = downloading.value.path()
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
    assert {"labels.txt", "preprocessing.json", "MODEL_CARD.md", "predict.py"} <= names
    assert any(n.endswith(".onnx") for n in names), names
    others = page.locator("tbody tr").filter(has_not=page.get_by_role("link", name="Download"))
    expect(others).to_have_count(8)  # every other format still offers Export
