"""The built course site, served on 127.0.0.1, and a headless Chromium that may load nothing else.

The site comes from `make site MODE=smoke` (build/site/smoke/, or $COURSE_SITE_DIR). Without it,
or without Chromium and Playwright, these tests skip and say why; `make test` builds the site
first and sets COURSE_SITE_REQUIRED=1, which turns those skips into failures.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from site_layout import REPO_ROOT, SCREENSHOTS_DIR, SITE_DIR, local_only_context, unavailable

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
def chromium():
    """Debian's Chromium under Playwright, for the whole session. Playwright's sync API runs once
    per thread, so every browser test shares this one; it needs no built site."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright is not installed: run `make setup` (it is in the dev extra)")
    if not Path(CHROMIUM).is_file():
        unavailable(f"no Chromium at {CHROMIUM}: run `sh tools/ensure_system_packages.sh chromium`")
    with sync_playwright() as playwright:
        # Debian's Chromium, never Playwright's own download (`playwright install` is not run).
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def browser(site_dir, chromium):
    """Chromium for the tests of the built site, which skip (or fail) without one."""
    return chromium


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
    refused = []
    context = local_only_context(browser, site_url, {"width": 1280, "height": 900}, refused)
    page = context.new_page()
    watch = WatchedPage(page, site_url, foreign_requests=refused)
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


# --- JupyterLab with the RISE slideshow (tests/browser/test_presenting_in_jupyterlab.py) -------
# These need no built site: Chromium, Playwright and the course's own virtual environment.

JUPYTERLAB_READY_WITHIN_S = 60


@dataclass
class JupyterLabServer:
    """A JupyterLab server of this session: where it listens, its token, what it serves."""

    url: str  # http://127.0.0.1:PORT/
    token: str
    root_dir: Path  # a snapshot of the repository's notebooks/ (RISE saves what it presents)
    log_path: Path


def _log_tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def _lab_config(token: str) -> dict:
    """JupyterLab as `make course` runs it, minus whatever would reach the internet or the user's
    own settings: no announcements feed, no update check, no PyPI extension manager, no kernel
    started just for opening a notebook (the slideshow shows the stored cells)."""
    return {
        "ServerApp": {"open_browser": False, "ip": "127.0.0.1"},
        "IdentityProvider": {"token": token},
        "LabApp": {"news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
                   "extension_manager": "readonly"},
        "LabServerApp": {"notebook_starts_kernel": False},
    }


# Set in the (temporary) user settings: "Never" for the news question JupyterLab asks in a toast
# (the server would not fetch them anyway), so that the screenshots show the slides.
_LAB_USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
}


def _jpserver_info(runtime_dir: Path, pid: int) -> dict | None:
    try:
        return json.loads((runtime_dir / f"jpserver-{pid}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):  # not written yet, or caught half-written
        return None


def _status_answers(url: str, token: str) -> bool:
    request = urllib.request.Request(url + "api/status",
                                     headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False


def _stop(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM (JupyterLab shuts down cleanly), then SIGKILL to its process group if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def jupyterlab(tmp_path_factory):
    """JupyterLab started from the repository root, as `make course` does, on a free port of
    127.0.0.1 with a random token. Its configuration, runtime, settings and workspace folders are
    temporary (the user's own are never read or written), and it serves a snapshot of notebooks/:
    starting RISE saves the notebook, which must not touch the working tree."""
    base = tmp_path_factory.mktemp("jupyterlab")
    root_dir = base / "root"
    shutil.copytree(REPO_ROOT / "notebooks", root_dir / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    folders = {name: base / name
               for name in ("config", "data", "runtime", "settings", "workspaces")}
    for folder in folders.values():
        folder.mkdir()
    token = secrets.token_hex(24)
    (folders["config"] / "jupyter_server_config.json").write_text(
        json.dumps(_lab_config(token), indent=1), encoding="utf-8")
    for name, values in _LAB_USER_SETTINGS.items():
        path = folders["settings"] / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values), encoding="utf-8")
    env = {key: value for key, value in os.environ.items()
           if key not in ("JUPYTER_TOKEN", "JUPYTER_PORT", "DISPLAY", "WAYLAND_DISPLAY")}
    env.update(JUPYTER_CONFIG_DIR=str(folders["config"]), JUPYTER_DATA_DIR=str(folders["data"]),
               JUPYTER_RUNTIME_DIR=str(folders["runtime"]),
               JUPYTERLAB_SETTINGS_DIR=str(folders["settings"]),
               JUPYTERLAB_WORKSPACES_DIR=str(folders["workspaces"]))
    with socket.socket() as sock:  # a free port to start from (JupyterLab moves on if taken)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser",
               "--ServerApp.open_browser=False", "--ip=127.0.0.1", f"--port={port}",
               f"--ServerApp.root_dir={root_dir}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    log_path = base / "jupyterlab.log"
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = None
    try:
        deadline = time.monotonic() + JUPYTERLAB_READY_WITHIN_S
        while server is None and process.poll() is None and time.monotonic() < deadline:
            info = _jpserver_info(folders["runtime"], process.pid)
            url = f"http://127.0.0.1:{info['port']}/" if info else None
            if url and _status_answers(url, token):
                server = JupyterLabServer(url, token, root_dir, log_path)
            else:
                time.sleep(0.2)
        if server is None:
            state = (f"it exited with status {process.returncode}" if process.poll() is not None
                     else f"it did not answer /api/status within {JUPYTERLAB_READY_WITHIN_S} s")
            pytest.fail(f"JupyterLab did not start ({state}): {' '.join(command)}\n"
                        f"--- the end of its log ({log_path}) ---\n{_log_tail(log_path)}",
                        pytrace=False)
        yield server
    finally:
        _stop(process)


@dataclass
class WatchedContext:
    """A browser context on JupyterLab (every tab and iframe in it) that records console errors
    with where they came from, failed requests and requests for anything but the server."""

    context: object
    base_url: str
    console_errors: list[tuple[str, str]] = field(default_factory=list)  # (text, source URL)
    failed_requests: list[tuple[str, str]] = field(default_factory=list)  # (URL, why)
    foreign_requests: list[str] = field(default_factory=list)


@pytest.fixture
def watched_lab(chromium, jupyterlab):
    """A fresh browser context for the JupyterLab server; anything not on its host is refused
    and recorded, like the site tests' `watched`."""
    refused = []
    context = local_only_context(chromium, jupyterlab.url, {"width": 1600, "height": 1000},
                                 refused)
    watch = WatchedContext(context, jupyterlab.url, foreign_requests=refused)

    def console(message):
        if message.type == "error":
            watch.console_errors.append((message.text, message.location.get("url", "")))

    context.on("console", console)
    context.on("weberror", lambda error: watch.console_errors.append(
        (f"uncaught: {error.error}", error.page.url if error.page else "")))
    context.on("requestfailed", lambda request: watch.failed_requests.append(
        (request.url, request.failure or "")))
    context.on("response", lambda response: response.status >= 400
               and watch.failed_requests.append((response.url, f"HTTP {response.status}")))
    yield watch
    context.close()
