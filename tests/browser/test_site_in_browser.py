"""The built site in headless Chromium: every page loads offline and without errors, the Plotly
figure and the equations are drawn, and a slide deck steps forward."""

import re

import pytest
from site_layout import CHAPTER_STEMS, SOLUTION_STEMS

PLOTLY_CHAPTER = "01_pca_linear_autoencoder"


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
    assert page.locator("h1").first.inner_text().startswith("Solutions to notebook")
    previous = page.locator("nav.course-nav.top a[rel='prev']")
    assert previous.get_attribute("href") == stem.removesuffix("_solutions") + ".html"
    assert page.locator("nav.course-nav a", has_text="slides").count() == 0
    watched.assert_clean()


@pytest.mark.parametrize("stem", CHAPTER_STEMS)
def test_chapter_page_loads_offline_without_errors(watched, stem):
    page = watched.open(f"{stem}.html")
    assert page.locator(".jp-Cell").count() > 5
    assert page.locator("nav.course-nav a[href='index.html']").count() == 2  # top and bottom
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
    assert page.locator(".jp-MarkdownOutput .MathJax_CHTML").count() > 5
    markdown = " ".join(page.locator(".jp-MarkdownOutput").all_inner_texts())
    # Typeset TeX leaves no source behind; a raw "$x_1$" or "$$" would mean MathJax did not run.
    assert not re.search(r"\$[^$\s][^$]*\$", markdown)
    assert "\\frac" not in markdown
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
