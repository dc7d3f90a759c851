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
    from playwright.sync_api import expect, sync_playwright

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
        # "load", not "networkidle": the page keeps Gradio's session heartbeat open (the app has a gr.State).
        page.goto(app_url, wait_until="load")
        expect(page.locator("#run")).to_be_visible(timeout=60_000)
        yield page
        browser.close()


def _picture(page):
    """The Picture tab: the Video tab has a Generate, a Stop and steps of its own, so lookups stay inside."""
    return page.locator("#picture-tab")


def _set_number(page, label: str, value: int) -> None:
    box = _picture(page).get_by_label(f"number input for {label}", exact=True)
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
    _picture(page).get_by_text("Advanced settings").click()
    _set_number(page, "Preview every N steps", 4)

    _picture(page).get_by_role("button", name="Generate", exact=True).click()
    sources: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        img = page.locator("#result img")
        src = img.first.get_attribute("src") if img.count() else None
        if src and (not sources or sources[-1] != src):
            sources.append(src)
        if _status(page).startswith("Done: 40 steps"):
            break
        time.sleep(0.02)
    assert _status(page).startswith("Done: 40 steps"), _status(page)
    assert len(sources) >= 3, f"the result changed only {len(sources) - 1} times: {sources}"
    page.screenshot(path=str(tmp_path / "after_generate.png"), full_page=True)
    # The status says where the run is in words; the cost J and its terms are under "Cost details".
    assert "Cost J" not in _status(page)
    _picture(page).get_by_text("Cost details").click()
    expect(page.locator("#cost-detail textarea")).to_have_value(re.compile(r"^Cost J = \S+ \(α·content "))
    # The cost plot's legend (which line is which term) is inside the plot's box, not cut off below it.
    plot = page.locator("#losses").bounding_box()
    for term in ("total J", "α·content", "β·style", "smoothness (TV)"):
        label = page.locator("#losses").get_by_text(term, exact=True).first.bounding_box()
        assert label and label["y"] + label["height"] <= plot["y"] + plot["height"], (term, label, plot)

    # Stop with no run in progress changes nothing.
    finished = _status(page)
    _picture(page).get_by_role("button", name="Stop", exact=True).click()
    time.sleep(1.5)
    assert _status(page) == finished

    # A long run, stopped after it has started streaming: it ends at once with the latest image as the result,
    # and the status says so; the download and the before/after are those of that image.
    first_after = page.locator("#compare img").last.get_attribute("src")
    _set_number(page, "Steps", 3000)
    _picture(page).get_by_role("button", name="Generate", exact=True).click()
    expect(page.locator("#status textarea")).to_have_value(re.compile(r"^Step ([1-9]\d*) of 3000"), timeout=60_000)
    expect(page.locator("#download a")).to_have_count(0)  # a run's download comes with its end
    expect(page.locator("#compare img")).to_have_count(0)  # and its before/after: the last run's is not shown
    _picture(page).get_by_role("button", name="Stop", exact=True).click()
    expect(page.locator("#status textarea")).to_have_value(re.compile(r"Stopped at step \d+ of 3000"), timeout=10_000)
    stopped_at = _status(page)
    step = int(re.match(r"Stopped at step (\d+) of 3000", stopped_at).group(1))
    assert " left" not in stopped_at and f"Stopped at step {step} of 3000:" in stopped_at
    time.sleep(3.0)
    assert _status(page) == stopped_at, "the run kept streaming after Stop"
    expect(page.locator("#download a")).to_have_count(1)
    expect(page.locator("#compare img")).to_have_count(2)
    assert page.locator("#compare img").last.get_attribute("src") != first_after
    page.screenshot(path=str(tmp_path / "after_stop.png"), full_page=True)
    assert (tmp_path / "after_stop.png").stat().st_size > 10_000


def test_video_is_a_tab_of_its_own(page):
    """The clip page is a second tab: opening it shows its own controls and hides the picture's, and back."""
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Video").click()
    video = page.locator("#video-tab")
    expect(video.get_by_role("button", name="Generate", exact=True)).to_be_visible(timeout=10_000)
    expect(video.get_by_label("number input for Steps (first frame)", exact=True)).to_be_visible()
    expect(page.locator("#run")).to_be_hidden()
    page.get_by_role("tab", name="Picture").click()
    expect(page.locator("#run")).to_be_visible(timeout=10_000)
    expect(page.locator("#video-run")).to_be_hidden()
