"""A real browser (Debian's Chromium driven by Playwright): upload, pick a style, generate, watch, stop."""

import re
import shutil
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")


@pytest.fixture(scope="module")
def page(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(app_url, wait_until="networkidle")
        yield page
        browser.close()


def _set_number(page, label: str, value: int) -> None:
    box = page.get_by_label(f"number input for {label}")
    box.fill(str(value))
    box.press("Enter")


def _status(page) -> str:
    return page.locator("#status textarea").input_value()


def test_generate_streams_into_the_page_then_stop(page, tmp_path):
    from playwright.sync_api import expect

    page.locator("#content input[type=file]").set_input_files(str(ROOT / "examples" / "content" / "cat.jpg"))
    expect(page.locator("#content img")).to_be_visible(timeout=20_000)
    page.locator("#style-gallery").get_by_label(re.compile(r"Thumbnail 1 of \d+")).click()
    expect(page.locator("#style img")).to_be_visible(timeout=20_000)

    _set_number(page, "Output size (px)", 64)
    _set_number(page, "Steps", 40)
    page.get_by_text("Advanced settings").click()
    _set_number(page, "Preview every N steps", 4)

    page.get_by_role("button", name="Generate").click()
    sources: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        img = page.locator("#result img")
        src = img.first.get_attribute("src") if img.count() else None
        if src and (not sources or sources[-1] != src):
            sources.append(src)
        if _status(page).startswith("step 40/40"):
            break
        time.sleep(0.02)
    assert _status(page).startswith("step 40/40"), _status(page)
    assert len(sources) >= 3, f"the result changed only {len(sources) - 1} times: {sources}"
    page.screenshot(path=str(tmp_path / "after_generate.png"), full_page=True)

    # A long run, stopped after it has started streaming: the status must freeze well before the end.
    _set_number(page, "Steps", 3000)
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#status textarea")).to_have_value(re.compile(r"^step ([1-9]\d*)/3000"), timeout=60_000)
    page.get_by_role("button", name="Stop").click()
    time.sleep(1.0)
    stopped_at = _status(page)
    time.sleep(3.0)
    assert _status(page) == stopped_at, "the run kept streaming after Stop"
    step = int(re.match(r"step (\d+)/3000", stopped_at).group(1))
    assert step < 3000
    page.screenshot(path=str(tmp_path / "after_stop.png"), full_page=True)
    assert (tmp_path / "after_stop.png").stat().st_size > 10_000
