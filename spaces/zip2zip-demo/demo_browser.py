"""Drive the demo page in headless Chromium (Playwright): what a visitor does, and a screenshot per tab.

Used by the browser tests and by ``take_screenshots.py``. Playwright's own browser download is not
needed: it drives the system's Chromium (Debian's ``chromium`` package, ``/usr/bin/chromium``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Without these, Chromium running as root refuses to start or stalls on refused background connections.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
VIEWPORT = {"width": 1360, "height": 900}
TIMEOUT_MS = 120_000

# Records the generated text each time the zip2zip pane changes, so a test sees every streamed state.
_RECORD_STREAM = """
() => {
  window.__z2zSnapshots = [];
  const root = document.querySelector('#generate-zip2zip');
  const record = () => {
    const pane = root.querySelector('pre');
    const text = pane ? pane.textContent : '';
    const last = window.__z2zSnapshots[window.__z2zSnapshots.length - 1];
    if (text !== last) window.__z2zSnapshots.push(text);
  };
  new MutationObserver(record).observe(root, {subtree: true, childList: true, characterData: true});
}
"""


def chromium_path() -> str | None:
    """``$ZIP2ZIP_CHROMIUM``, else ``chromium`` on the PATH (Debian: /usr/bin/chromium)."""
    return os.environ.get("ZIP2ZIP_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Tour:
    """What the page showed during :func:`run_tour`."""

    hypertokens_in_page: int = 0
    compress_status: str = ""
    empty_text_status: str = ""
    oversize_status: str = ""
    """What the page said to a 1 MB paste."""
    streamed: list[str] = field(default_factory=list)
    final_zip2zip: str = ""
    final_base: str = ""
    generate_status: str = ""
    comparison: str = ""
    results_images: int = 0
    screenshots: dict[str, str] = field(default_factory=dict)
    outside_requests: list[str] = field(default_factory=list)


@contextlib.contextmanager
def browser_page(url: str) -> Iterator[Any]:
    """A fresh headless Chromium page at ``url`` (a new profile each time); closes it afterwards."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        raise RuntimeError("no Chromium found: install Debian's `chromium` package or set $ZIP2ZIP_CHROMIUM")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def run_tour(url: str, text: str, prompt: str, new_tokens: int, out_dir: str | os.PathLike[str]) -> Tour:
    """Compress ``text``, generate from ``prompt``, open Results; screenshot each tab into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tour = Tour()
    host = url.rstrip("/")
    with browser_page(url) as page:
        page.on(
            "request",
            lambda r: (
                None if r.url.startswith((host, "data:", "blob:")) else tour.outside_requests.append(r.url)
            ),
        )
        page.goto(url)
        page.wait_for_selector("#compress-button")

        # Compress: bad input first (empty, then 1 MB), then the text.
        page.locator("#compress-text textarea").fill("")
        page.locator("#compress-button").click()
        page.wait_for_function("() => document.querySelector('#compress-status').innerText.includes('input')")
        tour.empty_text_status = page.locator("#compress-status").inner_text()
        page.locator("#compress-text textarea").fill("z2z " * 262_144)
        page.locator("#compress-button").click()
        page.wait_for_function(
            "() => document.querySelector('#compress-status').innerText.includes('1,048,576')"
        )
        tour.oversize_status = page.locator("#compress-status").inner_text()
        page.locator("#compress-text textarea").fill(text)
        page.locator("#compress-button").click()
        page.wait_for_function(
            "() => document.querySelector('#compress-status').innerText.includes('hypertokens')"
        )
        page.wait_for_selector("#compress-zip2zip pre")
        tour.compress_status = page.locator("#compress-status").inner_text()
        tour.hypertokens_in_page = page.locator("#compress-zip2zip .z2z-hyper").count()
        tour.screenshots["compress"] = _screenshot(page, out / "compress.png")

        # Generate: record every streamed state of the zip2zip pane.
        page.get_by_role("tab", name="Generate").click()
        page.locator("#generate-prompt textarea").fill(prompt)
        _set_slider(page, "#generate-tokens", new_tokens)
        page.wait_for_selector("#generate-zip2zip", state="attached")
        page.evaluate(_RECORD_STREAM)
        page.locator("#generate-button").click()
        page.wait_for_function(
            "() => document.querySelector('#generate-status').innerText.trim() === 'Done.'"
        )
        tour.generate_status = page.locator("#generate-status").inner_text()
        tour.streamed = page.evaluate("() => window.__z2zSnapshots")
        tour.final_zip2zip = page.locator("#generate-zip2zip pre").text_content()
        tour.final_base = page.locator("#generate-base pre").text_content()
        tour.comparison = page.locator("#generate-comparison").inner_text()
        tour.screenshots["generate"] = _screenshot(page, out / "generate.png")

        page.get_by_role("tab", name="Results").click()
        # Attached, not visible: plots below the fold are lazy images of no size until they load.
        page.wait_for_selector(".results-plot img, #results-missing", state="attached")
        page.evaluate(
            "() => document.querySelectorAll('.results-plot img').forEach(i => { i.loading = 'eager'; })"
        )
        page.wait_for_function(
            "() => [...document.querySelectorAll('.results-plot img')].every(i => i.complete && i.naturalWidth)"
        )
        tour.results_images = page.locator(".results-plot img").count()
        tour.screenshots["results"] = _screenshot(page, out / "results.png")
    return tour


def _set_slider(page: Any, elem_id: str, value: int) -> None:
    box = page.locator(f"{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def _screenshot(page: Any, path: Path) -> str:
    page.wait_for_timeout(300)  # let the last render settle
    page.screenshot(path=str(path), full_page=True)
    return str(path)
