"""Regenerate docs/screenshot.png: serve app.py locally, run one example in Chromium, screenshot the page.

Usage: .venv/bin/python docs/make_screenshot.py [SIZE] [STEPS]   (needs Debian's chromium)
"""

import os
import re
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["NST_CACHE_EXAMPLES"] = "0"


def main(size: int = 256, steps: int = 150) -> None:
    from playwright.sync_api import expect, sync_playwright

    import app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **app.LAUNCH)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        # "load", not "networkidle": the page keeps Gradio's session heartbeat open (the app has a gr.State).
        page.goto(f"http://127.0.0.1:{port}/", wait_until="load")
        expect(page.locator("#run")).to_be_visible(timeout=60_000)
        page.locator("#content-gallery").get_by_label(re.compile(r"Thumbnail 7 of")).click()  # lake_boats
        expect(page.locator("#content img")).to_be_visible(timeout=20_000)
        page.locator("#style-gallery").get_by_label(re.compile(r"Thumbnail 10 of")).click()  # starry_night
        expect(page.locator("#style img")).to_be_visible(timeout=20_000)
        for label, value in (("Output size (px)", size), ("Steps", steps)):
            box = page.locator("#picture-tab").get_by_label(f"number input for {label}", exact=True)
            box.fill(str(value))
            box.press("Enter")
        page.locator("#picture-tab").get_by_role("button", name="Generate", exact=True).click()
        expect(page.locator("#status textarea")).to_have_value(re.compile(rf"^Done: {steps} steps"), timeout=1_800_000)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(ROOT / "docs" / "screenshot.png"), full_page=True)
        browser.close()
    app.demo.close()


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
