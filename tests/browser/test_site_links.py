"""The built site without a browser: every link and source resolves to a file of the site, and
no page, style sheet or script loads anything from another host."""

from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

import pytest
from site_layout import CHAPTER_STEMS, SITE_DIR, SOLUTION_STEMS, unavailable

from tools.build_site import remote_loads, site_remote_loads


class _References(HTMLParser):
    """Collects href and src values, and the ids that a #fragment can point at."""

    def __init__(self):
        super().__init__()
        self.references, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and value is not None:
                self.references.append(value)
            elif name == "id" and value:
                self.ids.add(value)


def _parse(path):
    parser = _References()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def pages():
    if not (SITE_DIR / "index.html").is_file():
        unavailable(f"no built site in {SITE_DIR}: run `make site MODE=smoke` first")
    return sorted(SITE_DIR.glob("*.html"))


def test_the_site_has_a_page_and_a_deck_per_chapter(pages):
    names = {page.name for page in pages}
    for stem in CHAPTER_STEMS:
        assert f"{stem}.html" in names and f"{stem}.slides.html" in names


def test_each_solutions_notebook_has_a_page_and_no_deck(pages):
    names = {page.name for page in pages}
    assert SOLUTION_STEMS, "the course has solutions notebooks"
    for stem in SOLUTION_STEMS:
        assert f"{stem}.html" in names and f"{stem}.slides.html" not in names


def test_every_local_link_and_source_resolves(pages):
    parsed = {page.name: _parse(page) for page in pages}
    broken = []
    for page in pages:
        for reference in parsed[page.name].references:
            parts = urlsplit(reference)
            if parts.scheme in ("http", "https", "mailto", "data", "javascript") or parts.netloc:
                continue  # outward links are for the reader to follow; loads are checked below
            target = page if not parts.path else page.parent / unquote(parts.path)
            if not target.resolve().is_file():
                broken.append(f"{page.name}: {reference}")
            elif (parts.fragment and target.name != page.name and target.name in parsed
                  and unquote(parts.fragment) not in parsed[target.name].ids):
                broken.append(f"{page.name}: {reference} (no such anchor)")
    assert broken == []


def test_notebook_links_point_at_built_pages(pages):
    for page in pages:
        assert ".ipynb" not in " ".join(_parse(page).references), page.name


def test_no_page_loads_anything_from_another_host(pages):
    assert {page.name: remote_loads(page.read_text(encoding="utf-8")) for page in pages
            if remote_loads(page.read_text(encoding="utf-8"))} == {}


def test_no_style_sheet_or_script_of_the_site_loads_from_another_host(pages):
    # The theme's, Sphinx's and the vendored ones alike (fonts and icons included).
    assert site_remote_loads(SITE_DIR) == {}


def test_the_search_index_and_the_sphinx_pages_are_there(pages):
    names = {page.name for page in pages}
    assert {"index.html", "search.html"} <= names
    index = (SITE_DIR / "searchindex.js").read_text(encoding="utf-8")
    assert all(f'"{stem}"' in index for stem in CHAPTER_STEMS + SOLUTION_STEMS)
