"""Where the browser tests find the built site, and which chapters it must have."""

import os
from pathlib import Path

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
