"""The portal shows the server's figures, not its own: each precision-recall curve is the one
the server serves, and the dot on it at the chosen threshold is the performance answer's
precision and recall at that threshold (the table beside it). The Projects page gets every
project's counts in one request.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from functions.settings import Settings
from functions.storage.clients import Storage
from tests.browser.portal_helpers import (
    GENERAL_COMPACT,
    Page,
    Tab,
    api,
    browser_fixture,  # noqa: F401 (a fixture: browser)
    expect,
    needs_chromium,
    sign_in,
    tab_fixture,  # noqa: F401 (a fixture: tab)
)
from tests.conftest import TRAINING_PREFIX, photo_paths

pytestmark = needs_chromium

FLOWERS = ("daisy", "sunflower", "tulip")
PER_FLOWER = 5
# x and y of a point of the chart (performance.js curveChart), as the path draws them.
LEFT, RIGHT, TOP, BOTTOM, WIDTH, HEIGHT = 34, 16, 8, 26, 220, 170


def chart_x(recall: float) -> float:
    return LEFT + recall * (WIDTH - LEFT - RIGHT)


def chart_y(precision: float) -> float:
    return TOP + (1 - precision) * (HEIGHT - TOP - BOTTOM)


@dataclass(frozen=True)
class Trained:
    name: str
    project_id: str
    iteration_id: str


@pytest.fixture(scope="module")
def trained(endpoint: str, storage: Storage, settings: Settings) -> Iterator[Trained]:
    """A project trained (Quick) on real photos, 5 per flower, shared by the tests here."""
    from trainer_job.__main__ import process_one

    with api(endpoint) as client:
        name = f"metrics-{uuid.uuid4().hex[:8]}"
        project = client.post("/projects", params={"name": name, "domainId": GENERAL_COMPACT})
        project_id = project.json()["id"]
        for flower in FLOWERS:
            tag = client.post(f"/projects/{project_id}/tags", params={"name": flower}).json()
            files = [
                ("imageData", (p.name, p.read_bytes(), "image/jpeg"))
                for p in photo_paths(flower, PER_FLOWER)
            ]
            answer = client.post(
                f"/projects/{project_id}/images", params={"tagIds": tag["id"]}, files=files
            )
            assert answer.json()["isBatchSuccessful"], answer.text
        iteration = client.post(f"/projects/{project_id}/train").json()
        while process_one(storage, settings):  # also ends queued jobs of earlier tests
            pass
        done = client.get(f"/projects/{project_id}/iterations/{iteration['id']}").json()
        assert done["status"] == "Completed", done
        yield Trained(name, project_id, iteration["id"])
        client.delete(f"/projects/{project_id}")


def dots(page: Page) -> list[dict[str, Any]]:
    """Each chart's dot (its data attributes and position) and its curve's path."""
    found: list[dict[str, Any]] = page.evaluate(
        """() => [...document.querySelectorAll("svg.pr-chart")].map((chart) => {
          const dot = chart.querySelector("circle.pr-dot");
          return { tagId: dot.dataset.tagId, threshold: Number(dot.dataset.threshold),
            precision: Number(dot.dataset.precision), recall: Number(dot.dataset.recall),
            cx: Number(dot.getAttribute("cx")), cy: Number(dot.getAttribute("cy")),
            path: chart.querySelector("path").getAttribute("d") };
        })"""
    )
    return found


def path_points(d: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(r"[ML](-?[\d.]+),(-?[\d.]+)", d)]


def check_threshold(page: Page, endpoint: str, trained: Trained, percent: int) -> None:
    """At this slider position every dot is at the API's precision and recall for the threshold,
    on the curve the server serves, and the curve is drawn point for point."""
    threshold = percent / 100
    charts = page.locator("svg.pr-chart circle.pr-dot")
    expect(charts).to_have_count(len(FLOWERS))
    for i in range(len(FLOWERS)):
        expect(charts.nth(i)).to_have_attribute("data-threshold", f"{threshold:g}")
    base = f"/projects/{trained.project_id}/iterations/{trained.iteration_id}"
    with api(endpoint) as client:
        performance = client.get(base + "/performance", params={"threshold": threshold}).json()
        curves = client.get(f"/portal{base}/curves").json()
    by_tag = {t["id"]: t for t in performance["perTagPerformance"]}
    curve_of = {c["id"]: c for c in curves}
    shown = dots(page)
    assert sorted(d["tagId"] for d in shown) == sorted(by_tag)
    for dot in shown:
        expected = by_tag[dot["tagId"]]
        assert dot["precision"] == pytest.approx(expected["precision"], abs=1e-9)
        assert dot["recall"] == pytest.approx(expected["recall"], abs=1e-9)
        assert dot["cx"] == pytest.approx(chart_x(expected["recall"]))
        assert dot["cy"] == pytest.approx(chart_y(expected["precision"]))
        curve = curve_of[dot["tagId"]]
        drawn = [v for point in path_points(dot["path"]) for v in point]
        served = [
            v
            for p, r in zip(curve["precision"], curve["recall"], strict=True)
            for v in (chart_x(r), chart_y(p))
        ]
        assert drawn == pytest.approx(served, abs=0.051)  # drawn to 0.1
        # The dot is the curve's point for this threshold: the lowest listed threshold >= it.
        # Compared in float32, the probabilities' precision, as the server compares them.
        listed = np.asarray(curve["thresholds"], dtype=np.float32)
        k = int(np.flatnonzero(listed >= np.float32(threshold))[-1])
        assert (curve["precision"][k], curve["recall"][k]) == pytest.approx(
            (expected["precision"], expected["recall"])
        )
    # The table beside the charts shows the same figures.
    for tag in by_tag.values():
        row = page.locator("table.per-tag tr", has=page.get_by_role("rowheader", name=tag["name"]))
        expect(row.locator("td").nth(0)).to_have_text(f"{tag['precision'] * 100:.1f}%")
        expect(row.locator("td").nth(1)).to_have_text(f"{tag['recall'] * 100:.1f}%")


def test_the_curves_dot_is_the_apis_precision_and_recall(
    tab: Tab, endpoint: str, trained: Trained
) -> None:
    page = tab.page
    sign_in(page, endpoint, screenshot=None)
    page.goto(f"{endpoint}/#/projects/{trained.project_id}/performance/{trained.iteration_id}")
    check_threshold(page, endpoint, trained, 50)
    for percent in (10, 90, 100, 0):
        page.locator("#threshold").fill(str(percent))
        check_threshold(page, endpoint, trained, percent)


def test_the_projects_page_gets_the_counts_in_one_request(
    tab: Tab, endpoint: str, trained: Trained
) -> None:
    page = tab.page
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/training/" in r.url else None)
    sign_in(page, endpoint, screenshot=None)
    card = page.get_by_role("article", name=trained.name)
    expect(card.locator(".count")).to_have_text(f"{3 * PER_FLOWER} images · 3 tags")
    # Signing in checks the key (GET /projects); the page then asks once, for every project
    # (and once for the domains, which say each project's kind).
    training = endpoint + TRAINING_PREFIX
    assert asked[0] == training + "/projects", asked
    assert sorted(asked[1:]) == [training + "/domains", training + "/portal/projects"], asked
    assert not [u for u in asked if re.search(r"/projects/[0-9a-fA-F-]{36}", u)], asked
