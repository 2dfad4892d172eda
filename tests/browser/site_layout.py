"""Where the browser tests find the built site, which chapters it must have, and the one way they
open a browser context that may load nothing but the local server."""

import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SITE_DIR = Path(os.environ.get("COURSE_SITE_DIR", REPO_ROOT / "build" / "site" / "smoke"))
SCREENSHOTS_DIR = REPO_ROOT / "build" / "screenshots"
CHAPTER_STEMS = sorted(path.stem for path in (REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOLUTION_STEMS = sorted(path.stem for path in (REPO_ROOT / "notebooks" / "solutions")
                        .glob("[0-9][0-9]_*_solutions.ipynb"))


def unavailable(reason: str):
    """Skip, or fail where the caller asked for these tests to run (make test sets it)."""
    if os.environ.get("COURSE_SITE_REQUIRED") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def local_only_context(browser, base_url: str, viewport: dict, refused: list | None = None):
    """A browser context that loads base_url's host (and data:/blob:) and refuses everything else,
    appending each refused URL to `refused`: the proof that a page works offline."""
    context = browser.new_context(viewport=viewport)
    local_host = urlsplit(base_url).netloc

    def guard(route):
        url = urlsplit(route.request.url)
        if url.scheme in ("data", "blob") or url.netloc == local_host:
            route.continue_()
        else:
            if refused is not None:
                refused.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    return context
