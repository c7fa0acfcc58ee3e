"""The explorer page in headless Chromium: load it, move ψ, change the seed, take a screenshot.

``drive_page`` is what ``tests/test_explore.py`` runs in the browser; run as a script it serves
a checkpoint and writes the README's screenshot (Debian's ``chromium`` is driven by Playwright
with ``executable_path``; Playwright's own browsers are never downloaded):

    python benchmarks/explorer_screenshot.py CKPT docs/explorer.png [explore.py overrides ...]
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

IMAGE = "#faces-image img"
WAIT_MS = 60_000  # a busy CPU may take a while to render and the page to update


def chromium_path() -> str | None:
    """Debian's chromium, or None when it is not installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def drive_page(
    url: str, screenshot: str | Path, *, psi: str = "0.5", seed: str = "7", tab: str | None = None
) -> tuple[bytes, list[bytes]]:
    """Open ``url``, then set ψ and then the seed, waiting each time for the faces image to
    change. Returns the first image's bytes and the image's bytes after each change; the full
    page is saved to ``screenshot``. ``tab``: a tab to click before the screenshot."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_path(), headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 960})
            page.goto(url)
            image = page.locator(IMAGE)
            image.wait_for(timeout=WAIT_MS)

            def shown() -> bytes:
                return page.request.get(image.get_attribute("src")).body()

            first, after = shown(), []
            for field, value in (("#psi", psi), ("#seed", seed)):
                before = image.get_attribute("src")
                box = page.locator(f"{field} input[type=number]")
                box.fill(value)
                box.press("Enter")
                page.wait_for_function(
                    "([sel, old]) => { const i = document.querySelector(sel);"
                    " return i !== null && i.src !== old; }",
                    arg=[IMAGE, before],
                    timeout=WAIT_MS,
                )
                after.append(shown())
            if tab:
                page.get_by_role("tab", name=tab).click()
                page.wait_for_timeout(1000)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return first, after


def main(argv: list[str]) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import tempfile

    from hydra import compose, initialize_config_dir

    import explore

    ckpt, out, *overrides = argv
    with tempfile.TemporaryDirectory() as run_dir:
        with initialize_config_dir(config_dir=explore.CONF_DIR, version_base="1.3"):
            cfg = compose("explore", [f"ckpt={ckpt}", f"out_dir={run_dir}", *overrides])
        served = explore.explore(cfg, block=False)
        try:
            drive_page(served.url, out)
        finally:
            served.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
