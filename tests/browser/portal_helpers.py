"""What the portal's browser tests share: the browser, a watched tab, the trainer in a thread,
screenshots at two widths, and small steps (sign in, upload) done the way a person does them.

Test modules import the fixtures (`browser_fixture`, `tab_fixture`, `trainer_worker_fixture`;
pytest finds them in a test module's namespace under the names `browser`, `tab` and
`trainer_worker`), so no conftest.py is needed in this folder.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from functions.settings import Settings
from functions.storage.clients import Storage
from tests.conftest import PREDICTION_KEY, ROOT, TRAINING_KEY, TRAINING_PREFIX

sync_api = pytest.importorskip("playwright.sync_api")
Page = sync_api.Page
expect = sync_api.expect
# The Projects page asks for every project's counts; in a full `make test` run the session's
# storage holds the projects of every test before, and on 2 busy cores that page can take
# longer than Playwright's default 5 s (an expectation that holds returns at once anyway).
expect.set_options(timeout=30_000)

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / ".artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
TABLET = {"width": 768, "height": 1024}
GENERAL_COMPACT = "0732100f-1a38-4e49-a514-c9b44c697ab5"
TIMEOUT_MS = 20_000

needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="chromium is not installed")


@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True
        )
        yield launched
        launched.close()


@dataclass
class Tab:
    """A browser tab, the console errors and uncaught exceptions it met, and the expected ones."""

    page: Page
    problems: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)  # substrings of problems a test expects

    def unexpected(self) -> list[str]:
        return [p for p in self.problems if not any(e in p for e in self.expected)]


@pytest.fixture(name="tab")
def tab_fixture(browser: sync_api.Browser, endpoint: str) -> Iterator[Tab]:
    """A fresh tab; any console error, page error or request off the server fails the test."""
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    opened = Tab(page)
    local = (endpoint + "/", "data:", "blob:")
    page.on(
        "request",
        lambda r: None if r.url.startswith(local) else opened.problems.append(f"request: {r.url}"),
    )
    page.on(
        "console",
        lambda m: opened.problems.append(f"console: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: opened.problems.append(f"page error: {e}"))
    page.on(  # which request it was (the console message does not say)
        "response",
        lambda r: (
            opened.problems.append(f"status of {r.status}: {r.request.method} {r.url}")
            if r.status >= 400
            else None
        ),
    )
    yield opened
    context.close()
    assert not opened.unexpected(), opened.problems


@pytest.fixture(name="trainer_worker")
def trainer_worker_fixture(storage: Storage, settings: Settings) -> Iterator[threading.Event]:
    """The trainer, as `python -m trainer_job --watch` runs it, in a background thread. It
    starts working the queue when the test sets the event it yields."""
    from trainer_job.__main__ import process_one

    go = threading.Event()
    stop = threading.Event()

    def work() -> None:
        go.wait()
        while not stop.is_set():
            if not process_one(storage, settings):
                stop.wait(0.3)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    yield go
    stop.set()
    go.set()
    thread.join(timeout=120)


# What a value the code forgot to check would show as: never text for a person.
PLACEHOLDER = re.compile(r"\b(?:null|undefined|NaN)\b|\[object \w+\]")
# Disabled controls on screen whose aria-describedby names no visible text saying why.
UNEXPLAINED_DISABLED = """() => [...document.querySelectorAll(
    "button:disabled, input:disabled, select:disabled, textarea:disabled")]
  .filter((el) => el.checkVisibility())
  .filter((el) => !(el.getAttribute("aria-describedby") || "").split(/\\s+/).filter(Boolean)
    .map((id) => document.getElementById(id))
    .some((why) => why && why.checkVisibility() && why.innerText.trim()))
  .map((el) => el.outerHTML.slice(0, 160))"""


def assert_no_placeholder_text(page: Page) -> None:
    """No null, undefined, NaN or [object Object] in the text on screen."""
    text = page.inner_text("body")
    found = [text[max(0, m.start() - 40) : m.end() + 40] for m in PLACEHOLDER.finditer(text)]
    assert not found, found


def assert_disabled_controls_say_why(page: Page) -> None:
    """Every disabled control on screen has visible text saying why (its aria-describedby)."""
    unexplained = page.evaluate(UNEXPLAINED_DISABLED)
    assert not unexplained, unexplained


def shot(page: Page, name: str) -> None:
    """Screenshots of what is on screen, at the laptop and the tablet width; the screen shows no
    placeholder text (null, undefined...) and says why each disabled control is disabled."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("networkidle")
    page.evaluate("document.getElementById('toasts').replaceChildren()")
    assert_no_placeholder_text(page)
    assert_disabled_controls_say_why(page)
    page.screenshot(path=SCREENSHOTS / f"{name}-desktop.png", full_page=True)
    page.set_viewport_size(TABLET)
    page.screenshot(path=SCREENSHOTS / f"{name}-tablet.png", full_page=True)
    page.set_viewport_size(DESKTOP)


def upload(page: Page, files: list[Path], new_tag: str | None, added: int) -> None:
    page.get_by_role("button", name="Add images").first.click()
    dialog = page.get_by_role("dialog", name="Add images")
    dialog.locator("input[type=file]").set_input_files(files)
    expect(dialog.get_by_text(re.compile(rf"^{len(files)} files? chosen"))).to_be_visible()
    if new_tag:
        dialog.get_by_label("New tags (comma-separated)").fill(new_tag)
    dialog.get_by_role("button", name="Upload").click()
    expect(dialog.get_by_text(re.compile(rf"^Done: {added} added"))).to_be_visible()


def close_upload(page: Page) -> None:
    page.get_by_role("dialog", name="Add images").get_by_role(
        "button", name="Close", exact=True
    ).click()


def api(endpoint: str) -> httpx.Client:
    return httpx.Client(
        base_url=endpoint + TRAINING_PREFIX, headers={"Training-Key": TRAINING_KEY}, timeout=60
    )


def sign_in(page: Page, endpoint: str, screenshot: str | None = "01-sign-in") -> None:
    page.goto(endpoint + "/")
    if screenshot:
        shot(page, screenshot)
    page.get_by_label("Training key").fill(TRAINING_KEY)
    page.get_by_label("Prediction key (optional)").fill(PREDICTION_KEY)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Projects", exact=True)).to_be_visible()
