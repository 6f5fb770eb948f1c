"""Render a local HTML report in the system's headless Chromium and say what went wrong in it.

How: playwright's sync API drives the Chromium found on PATH (Debian's `chromium`, installed by .ci/run)
through `executable_path=`, so playwright never downloads a browser of its own and nothing leaves the
machine. Playwright 1.65 drives Debian 12's Chromium 156 directly (it speaks the DevTools protocol over
--remote-debugging-pipe), so there is no fallback path: a Chromium that is on PATH but cannot be driven
fails the test rather than skipping it.

A report must be self-contained and static, so every request (web sockets included) that is not file: or
data: is blocked and recorded, and console errors/warnings, uncaught exceptions and images that did not
decode are collected for the caller to assert on.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import sync_playwright  # a test dependency (pyproject.toml): missing is a broken venv

CHROMIUM_NAMES = ("chromium", "chromium-browser")
# Headless as root in a container: no sandbox (it needs user namespaces), no GPU, nothing Chromium would
# fetch by itself; /dev/shm is often tiny in containers. Unresolvable hosts are a second wall behind the
# request blocking below, for anything that would bypass the page (there should be nothing).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-extensions", "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--no-default-browser-check", "--host-resolver-rules=MAP * ~NOTFOUND"]
LOCAL_SCHEMES = {"file", "data"}
VIEWPORT = {"width": 1280, "height": 800}

# Run in the page after the load event (which waits for every <img>, failed ones included).
PAGE_FACTS_JS = """() => ({
    images: document.images.length,
    broken: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))
                 .map(i => i.getAttribute('src') || '(no src)'),
    svgs: document.querySelectorAll('svg:not(svg svg)').length,
    titles: Array.from(document.querySelectorAll('svg title')).map(t => t.textContent.trim()),
    text: document.body ? document.body.innerText : '',
})"""


@dataclass
class Rendered:
    """What the page did. `problems()` is everything a clean report must not have."""

    browser: str  # the Chromium version that rendered it
    screenshot: Path
    console: list[str] = field(default_factory=list)  # "error: ..." / "warning: ..." console messages
    page_errors: list[str] = field(default_factory=list)  # uncaught exceptions
    external_requests: list[str] = field(default_factory=list)  # blocked: neither file: nor data:
    broken_images: list[str] = field(default_factory=list)  # src (shortened) of <img> that did not decode
    n_images: int = 0
    n_svgs: int = 0  # inline <svg> elements (outermost only)
    svg_titles: list[str] = field(default_factory=list)  # <title> texts inside inline SVG: the tooltips
    text: str = ""  # document.body.innerText, as a reader sees it
    probe: object = None  # the value of the caller's `probe` expression

    def problems(self) -> list[str]:
        return ([f"console {m}" for m in self.console] + [f"page error: {e}" for e in self.page_errors]
                + [f"external request: {u}" for u in self.external_requests]
                + [f"image not loaded: {s}" for s in self.broken_images])


def chromium_path() -> str:
    """The system Chromium, or skip the calling test saying why."""
    for name in CHROMIUM_NAMES:
        if found := shutil.which(name):
            return found
    pytest.skip(f"no Chromium on PATH (looked for {', '.join(CHROMIUM_NAMES)}); .ci/run installs Debian's "
                "chromium package")


def _short(url: str) -> str:
    return url if len(url) <= 100 else url[:100] + "..."  # data: URIs are whole PNGs


def render(html: Path, screenshot: Path, probe: str | None = None, timeout_ms: int = 30_000) -> Rendered:
    """Open `html` from disk, wait for it to load, collect what went wrong, screenshot the full page to
    `screenshot`. `probe` is a JavaScript expression evaluated in the page afterwards (its value is
    `Rendered.probe`), e.g. "typeof window.__xss"."""
    executable = chromium_path()
    screenshot = Path(screenshot)
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    console, page_errors, external = [], [], []

    def route(r):
        if urlsplit(r.request.url).scheme in LOCAL_SCHEMES:
            r.continue_()
        else:
            external.append(_short(r.request.url))
            r.abort("blockedbyclient")

    def blocked_socket(ws):  # never connected to a server: recorded and closed
        external.append(_short(ws.url))
        ws.close()

    def on_console(message):
        if message.type in ("error", "warning"):
            console.append(f"{message.type}: {message.text} ({_short(message.location.get('url', ''))})")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS,
                                     timeout=timeout_ms)
        try:
            # service workers would answer requests outside page.route; a report has no business with them
            context = browser.new_context(viewport=VIEWPORT, service_workers="block")
            context.set_default_timeout(timeout_ms)
            context.route("**/*", route)
            context.route_web_socket("**/*", blocked_socket)  # playwright >= 1.48; web sockets skip route()
            page = context.new_page()
            page.on("console", on_console)
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            page.goto(Path(html).resolve().as_uri(), wait_until="load")
            facts = page.evaluate(PAGE_FACTS_JS)
            probed = page.evaluate(probe) if probe else None
            page.screenshot(path=str(screenshot), full_page=True)
            version = browser.version
        finally:
            browser.close()
    return Rendered(browser=version, screenshot=screenshot, console=console, page_errors=page_errors,
                    external_requests=external, broken_images=[_short(s) for s in facts["broken"]],
                    n_images=facts["images"], n_svgs=facts["svgs"], svg_titles=facts["titles"],
                    text=facts["text"], probe=probed)
