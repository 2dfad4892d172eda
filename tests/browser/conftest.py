"""The built course site, served on 127.0.0.1, and a headless Chromium that may load nothing else.

The site comes from `make site MODE=smoke` (build/site/smoke/, or $COURSE_SITE_DIR). Without it,
or without Chromium and Playwright, these tests skip and say why; `make test` builds the site
first and sets COURSE_SITE_REQUIRED=1, which turns those skips into failures.
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from site_layout import SCREENSHOTS_DIR, SITE_DIR, unavailable

CHROMIUM = os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium")
# Headless, and quiet on the network: no QUIC, no component or sync traffic of its own.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="session")
def site_dir() -> Path:
    if not (SITE_DIR / "index.html").is_file():
        unavailable(f"no built site in {SITE_DIR}: run `make site MODE=smoke` first")
    return SITE_DIR


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@pytest.fixture(scope="session")
def site_url(site_dir):
    """The site over HTTP on a free local port, served from a thread for the whole session."""
    handler = functools.partial(_QuietHandler, directory=str(site_dir))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser(site_dir):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright is not installed: run `make setup` (it is in the dev extra)")
    if not Path(CHROMIUM).is_file():
        unavailable(f"no Chromium at {CHROMIUM}: run `sh tools/ensure_system_packages.sh chromium`")
    with sync_playwright() as playwright:
        # Debian's Chromium, never Playwright's own download (`playwright install` is not run).
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class WatchedPage:
    """A browser tab that records console errors, failed requests and off-site requests."""

    page: object
    base_url: str
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)

    def open(self, name: str, settle_ms: int = 500):
        """Load a page of the site, wait for its network to go quiet, then a little longer."""
        self.page.goto(self.base_url + name, wait_until="load")
        self.page.wait_for_load_state("networkidle")
        self.page.wait_for_timeout(settle_ms)  # late console errors (MathJax, Plotly) show up
        return self.page

    def assert_clean(self):
        assert self.foreign_requests == [], "requests left the local site"
        assert self.failed_requests == [], "some requests failed"
        assert self.console_errors == [], "the console reported errors"


@pytest.fixture
def watched(browser, site_url):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    watch = WatchedPage(page, site_url)
    local_host = urlsplit(site_url).netloc

    def guard(route):
        url = urlsplit(route.request.url)
        if url.scheme in ("data", "blob") or url.netloc == local_host:
            route.continue_()
        else:  # proof that the site works offline: anything else is refused and recorded
            watch.foreign_requests.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page.on("console", lambda message: message.type == "error"
            and watch.console_errors.append(message.text))
    page.on("pageerror", lambda error: watch.console_errors.append(f"uncaught: {error}"))
    page.on("requestfailed", lambda request: watch.failed_requests.append(
        f"{request.url} ({request.failure})"))
    page.on("response", lambda response: response.status >= 400
            and watch.failed_requests.append(f"{response.url} (HTTP {response.status})"))
    yield watch
    context.close()


@pytest.fixture(scope="session")
def screenshots_dir() -> Path:
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS_DIR
