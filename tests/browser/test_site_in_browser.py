"""The built site in headless Chromium: every page loads offline and without errors, the table of
contents lists every page, search finds the chapters, the Plotly figure and the equations are
drawn, and a slide deck steps forward."""

import re

import pytest
from site_layout import CHAPTER_STEMS, SOLUTION_STEMS

PLOTLY_CHAPTER = "01_pca_linear_autoencoder"
# Every page in the order of the table of contents: each solutions page right after its chapter.
ALL_STEMS = sorted(CHAPTER_STEMS + SOLUTION_STEMS)
# The text a reader sees in the prose of a page: no code cells, outputs or typeset formulas.
PROSE_TEXT = """() => {
  const article = document.querySelector("article.bd-article").cloneNode(true);
  article.querySelectorAll("div.cell, pre, script, .MathJax_CHTML, .MJX_Assistive_MathML")
    .forEach((element) => element.remove());
  return article.innerText;
}"""


def test_index_lists_every_chapter_in_order(watched, screenshots_dir):
    page = watched.open("index.html")
    chapters = page.locator("a.chapter")
    hrefs = [chapters.nth(i).get_attribute("href") for i in range(chapters.count())]
    titles = chapters.all_inner_texts()
    assert hrefs == [f"{stem}.html" for stem in CHAPTER_STEMS]
    assert len(hrefs) == 16  # notebooks 0-15
    # Each title is the notebook's own heading, numbered like the file: "0. ...", "1. ...".
    assert [int(title.split(".")[0]) for title in titles] == list(range(len(titles)))
    assert page.locator("a.deck").count() == len(hrefs)
    assert "smoke" in page.locator(".mode").inner_text()
    page.screenshot(path=screenshots_dir / "index.png", full_page=True)
    watched.assert_clean()


def test_index_links_each_chapter_to_its_solutions(watched):
    page = watched.open("index.html")
    for stem in SOLUTION_STEMS:
        chapter = stem.removesuffix("_solutions")
        row = page.locator("li", has=page.locator(f"a.chapter[href='{chapter}.html']"))
        assert row.locator(f"a.solutions[href='{stem}.html']").count() == 1
    assert page.locator("a.solutions").count() == len(SOLUTION_STEMS)
    watched.assert_clean()


@pytest.mark.parametrize("stem", SOLUTION_STEMS)
def test_solutions_page_loads_after_its_chapter_and_is_marked(watched, stem):
    page = watched.open(f"{stem}.html")
    assert page.locator("article h1").first.inner_text().startswith("Solutions to notebook")
    previous = page.locator(".prev-next-area a.left-prev")
    assert previous.get_attribute("href") == stem.removesuffix("_solutions") + ".html"
    assert page.locator("a.btn-slides").count() == 0  # a solutions page has no deck
    watched.assert_clean()


@pytest.mark.parametrize("stem", CHAPTER_STEMS)
def test_chapter_page_loads_offline_without_errors(watched, stem):
    page = watched.open(f"{stem}.html")
    assert page.locator("div.cell").count() > 5
    deck = page.locator("a.btn-slides")
    assert deck.count() == 1 and deck.get_attribute("href") == f"{stem}.slides.html"
    assert deck.is_visible()
    assert page.locator("a.navbar-brand[href='index.html']").first.is_visible()
    watched.assert_clean()


def test_the_table_of_contents_beside_each_page_lists_every_page_in_order(watched):
    page = watched.open(f"{PLOTLY_CHAPTER}.html")
    sidebar = page.locator("nav.bd-docs-nav")
    assert sidebar.is_visible()
    links = sidebar.locator("a.reference.internal")
    hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
    # The page itself is listed as "#", and marked as the current one.
    assert [href if href != "#" else f"{PLOTLY_CHAPTER}.html" for href in hrefs] == [
        f"{stem}.html" for stem in ALL_STEMS]
    assert sidebar.locator("li.current > a").get_attribute("href") == "#"
    assert all(links.nth(i).is_visible() for i in range(links.count()))
    # This page's own sections are listed beside it too, to the right of the text.
    sections = page.locator("nav.page-toc a")
    assert sections.count() > 3 and sections.first.is_visible()
    article = page.locator("article.bd-article").bounding_box()
    assert sidebar.bounding_box()["x"] + sidebar.bounding_box()["width"] <= article["x"]
    assert sections.first.bounding_box()["x"] >= article["x"] + article["width"]
    watched.assert_clean()


def test_search_finds_a_word_on_the_chapter_pages(watched, screenshots_dir):
    page = watched.open("search.html?q=autoencoder")
    results = page.locator("#search-results ul.search li a")
    page.wait_for_function("document.querySelector('#search-results')"
                           " && document.querySelector('#search-results').innerText"
                           ".includes('Search finished')")
    found = {results.nth(i).get_attribute("href").split("?")[0].split("#")[0]
             for i in range(results.count())}
    assert {f"{stem}.html" for stem in CHAPTER_STEMS[1:9]} <= found  # the autoencoder chapters
    assert found <= {f"{stem}.html" for stem in ALL_STEMS} | {"index.html"}
    page.screenshot(path=screenshots_dir / "search.png")
    watched.assert_clean()


def test_the_plotly_figure_is_drawn_and_interactive(watched, screenshots_dir):
    page = watched.open(f"{PLOTLY_CHAPTER}.html", settle_ms=1500)
    figures = page.locator(".plotly-graph-div")
    assert figures.count() >= 1
    figure = figures.first
    figure.scroll_into_view_if_needed()
    box = figure.bounding_box()
    assert box["width"] > 300 and box["height"] > 300
    # A 3D scatter draws its points on a WebGL canvas, and its axes and mode bar in SVG.
    canvas = figure.locator("canvas").first.bounding_box()
    assert canvas["width"] > 300 and canvas["height"] > 300
    assert figure.locator(".modebar-btn").count() > 3  # zoom, rotate, ...: it is interactive
    figure.screenshot(path=screenshots_dir / "plotly_figure.png")
    page.screenshot(path=screenshots_dir / "chapter_01.png")
    watched.assert_clean()


def test_equations_are_typeset_by_mathjax(watched):
    page = watched.open(f"{PLOTLY_CHAPTER}.html")
    page.wait_for_function("window.MathJax && MathJax.Hub && MathJax.Hub.queue.pending === 0")
    page.wait_for_timeout(500)
    formulas = page.locator("article.bd-article .math")
    assert formulas.count() > 5
    # Each formula that the markdown held is drawn by MathJax (CommonHTML output).
    assert formulas.locator(".MathJax_CHTML").count() >= formulas.count()
    assert page.evaluate("""() => [...document.querySelectorAll("article.bd-article .math")]
        .filter((formula) => !formula.querySelector(".MathJax_CHTML")).length""") == 0
    prose = page.evaluate(PROSE_TEXT)
    # Typeset TeX leaves no source behind; a raw "$x_1$", "$$", "\(x\)" or "\frac" would mean
    # that the markdown or MathJax did not handle it.
    assert not re.search(r"\$[^$\s][^$]*\$", prose)
    assert "\\frac" not in prose and "\\(" not in prose and "\\[" not in prose
    watched.assert_clean()


def test_a_slide_deck_starts_and_steps_to_the_next_slide(watched, screenshots_dir):
    page = watched.open(f"{PLOTLY_CHAPTER}.slides.html")
    page.wait_for_function("window.Reveal && Reveal.isReady()")
    assert page.evaluate("Reveal.getTotalSlides()") > 5
    assert page.evaluate("Reveal.getIndices().h") == 0
    assert page.locator("section.present h1").first.inner_text().startswith("1.")
    page.screenshot(path=screenshots_dir / "slide_1.png")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("Reveal.getIndices().h === 1")
    page.wait_for_function("MathJax.Hub.queue.pending === 0")
    page.wait_for_timeout(800)  # the slide transition
    assert page.locator("section.present h2").first.inner_text().strip() != ""
    # Each formula is typeset once: nbconvert's re-render on a new slide once doubled every
    # glyph ("εε"), which the site's deck template prevents.
    formulas = page.locator("section.present .mjx-math").all_inner_texts()
    assert formulas and not [text for text in formulas
                             if len(text) % 2 == 0 and text[: len(text) // 2] * 2 == text]
    page.screenshot(path=screenshots_dir / "slide_2.png")
    watched.assert_clean()
