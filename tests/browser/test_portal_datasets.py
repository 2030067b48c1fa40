"""The Dataset tab in a real browser against the real stack: a detection project's images
exported as COCO with a progress bar and downloaded, the archive imported into another project
(boxes kept, tag created), and imported again (every photo reported as already there)."""

from __future__ import annotations

import io
import json
import re
import threading
import uuid
import zipfile
from pathlib import Path
from typing import Any

import httpx

from tests.browser.portal_helpers import (
    Tab,
    api,
    browser_fixture,  # noqa: F401 (a fixture: browser)
    expect,
    needs_chromium,
    shot,
    sign_in,
    tab_fixture,  # noqa: F401 (a fixture: tab)
    trainer_worker_fixture,  # noqa: F401 (a fixture: trainer_worker)
)
from tests.detection_data import detection_set

pytestmark = needs_chromium
COMPACT_DETECTION = "a27d5ca5-bb19-49d8-a70a-fec086c47f5b"


def new_project(client: httpx.Client, name: str) -> dict[str, Any]:
    params = {"name": f"{name}-{uuid.uuid4().hex[:6]}", "domainId": COMPACT_DETECTION}
    project: dict[str, Any] = client.post("/projects", params=params).json()
    return project


def boxes_by_size(client: httpx.Client, project_id: str) -> list[tuple[int, list[Any]]]:
    images = client.get(f"/projects/{project_id}/images", params={"take": 256}).json()
    corners = ("left", "top", "width", "height")
    return sorted(
        (image["width"], sorted([round(r[k], 4) for k in corners] for r in image["regions"]))
        for image in images
    )


def test_export_and_import_a_dataset(
    tab: Tab, endpoint: str, trainer_worker: threading.Event, tmp_path: Path
) -> None:
    page = tab.page
    photos = detection_set("raccoon")[:3]
    with api(endpoint) as client:
        source = new_project(client, "ds-portal")
        tag = client.post(f"/projects/{source['id']}/tags", params={"name": "raccoon"}).json()
        for photo in photos:
            uploaded = client.post(
                f"/projects/{source['id']}/images", content=photo.path.read_bytes()
            )
            image_id = uploaded.json()["images"][0]["image"]["id"]
            regions = [
                {
                    "imageId": image_id,
                    "tagId": tag["id"],
                    "left": x,
                    "top": y,
                    "width": w,
                    "height": h,
                }
                for _, x, y, w, h in photo.regions
            ]
            created = client.post(
                f"/projects/{source['id']}/images/regions", json={"regions": regions}
            )
            assert created.status_code == 200, created.text
        target = new_project(client, "ds-target")
    trainer_worker.set()
    sign_in(page, endpoint, screenshot=None)

    page.goto(f"{endpoint}/#/projects/{source['id']}/dataset")
    expect(page.get_by_text("No dataset exports or imports yet.")).to_be_visible()
    export_form = page.locator("form", has=page.get_by_role("heading", name="Export the dataset"))
    export_form.get_by_label("Format").select_option("coco")
    expect(export_form.get_by_text(re.compile("Keeps metadata"))).to_be_visible()
    export_form.get_by_role("button", name="Export dataset").click()
    row = page.locator("tr[data-job]")
    expect(row).to_have_attribute("data-status", "Done", timeout=60_000)
    expect(row.get_by_text("3 of 3 images")).to_be_visible()
    shot(page, "60-dataset-exported")
    with page.expect_download() as download:
        row.get_by_role("link", name="Download").click()
    archive = tmp_path / "raccoons-coco.zip"
    download.value.save_as(archive)
    with zipfile.ZipFile(io.BytesIO(archive.read_bytes())) as opened:
        coco = json.loads(opened.read("annotations.json"))
    assert len(coco["images"]) == 3 and coco["categories"] == [{"id": 1, "name": "raccoon"}]

    page.goto(f"{endpoint}/#/projects/{target['id']}/dataset")
    import_form = page.locator("form", has=page.get_by_role("heading", name="Import a dataset"))
    import_form.get_by_label("Format").select_option("coco")
    import_form.get_by_label("Zip archive").set_input_files(archive)
    import_form.get_by_role("button", name="Import dataset").click()
    first = page.locator("tr[data-job]")
    expect(first).to_have_attribute("data-status", "Done", timeout=60_000)
    expect(
        first.get_by_text(re.compile(r"3 added · 0 duplicates · tags created: raccoon"))
    ).to_be_visible()
    shot(page, "61-dataset-imported")
    with api(endpoint) as client:
        assert boxes_by_size(client, target["id"]) == boxes_by_size(client, source["id"])

    import_form.get_by_label("Zip archive").set_input_files(archive)
    import_form.get_by_role("button", name="Import dataset").click()
    again = page.locator("tr[data-job]").first
    expect(page.locator("tr[data-job]")).to_have_count(2)
    expect(again).to_have_attribute("data-status", "Done", timeout=60_000)
    expect(again.get_by_text(re.compile(r"0 added · 3 duplicates"))).to_be_visible()
    again.get_by_text("3 not added").click()
    expect(again.get_by_text(re.compile(": already in the project"))).to_have_count(3)
    shot(page, "62-dataset-duplicates")
