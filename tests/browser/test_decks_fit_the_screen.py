"""Every slide deck on a 1280x720 screen: how many slides fit without scrolling, and how tall the
tallest one is. The limits are the course's: at least 95% of a mode's slides fit, and none is
taller than 1.3 screens. Each slide is measured with all its fragments shown, after the deck's own
script has cut the tall ones (tools/site_templates/course_reveal). The figures are written to
build/screenshots/deck_fit_<mode>.md with a screenshot of each deck's tallest slide; point
COURSE_SITE_DIR at build/site/default to measure the default-mode decks."""

from __future__ import annotations

import pytest
from site_layout import CHAPTER_STEMS, SITE_DIR, local_only_context

SCREEN = {"width": 1280, "height": 720}  # a projector's 720p
MIN_SHARE_FITTING = 0.95
MAX_HEIGHT_RATIO = 1.3

# Each slide with its fragments shown: its height against the deck's slide height (reveal.js
# scales the 960x700 slide to the screen, so that height is exactly one screen).
MEASURE_EVERY_SLIDE = """() => {
  Reveal.configure({transition: "none", backgroundTransition: "none"});
  const height = Reveal.getConfig().height;
  return Reveal.getSlides().map((slide) => {
    const at = Reveal.getIndices(slide);
    Reveal.slide(at.h, at.v);
    const shown = Reveal.getCurrentSlide();
    shown.querySelectorAll(".fragment").forEach((fragment) => fragment.classList.add("visible"));
    const heading = shown.querySelector("h1, h2, h3, p.course-continued");
    return {h: at.h, v: at.v, ratio: shown.scrollHeight / height,
            title: heading ? heading.textContent.replace(/\\u00b6$/, "").trim() : ""};
  });
}"""


def screen_context(browser, site_url):
    """A 1280x720 browser context that may load the site and nothing else."""
    return local_only_context(browser, site_url, SCREEN)


@pytest.fixture(scope="module")
def deck_heights(browser, site_url, screenshots_dir):
    """{"slides": {stem: [{h, v, ratio, title}, ...]}, "errors": [...]} over every chapter's deck;
    each deck's tallest slide is photographed."""
    context = screen_context(browser, site_url)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    measured = {}
    for stem in CHAPTER_STEMS:
        page.goto(f"{site_url}{stem}.slides.html", wait_until="load")
        page.wait_for_function("window.courseDeck && window.courseDeck.fitted", timeout=60_000)
        slides = page.evaluate(MEASURE_EVERY_SLIDE)
        measured[stem] = slides
        tallest = max(slides, key=lambda slide: slide["ratio"])
        page.evaluate(f"Reveal.slide({tallest['h']}, {tallest['v']})")
        page.wait_for_timeout(300)
        page.screenshot(path=screenshots_dir / f"deck_tallest_{stem[:2]}.png")
    context.close()
    mode = SITE_DIR.name
    (screenshots_dir / f"deck_fit_{mode}.md").write_text(fit_report(measured, mode),
                                                          encoding="utf-8")
    return {"slides": measured, "errors": errors}


def fit_report(measured: dict[str, list[dict]], mode: str) -> str:
    """A table, per deck and in all: slides, how many fit, the tallest and what it shows."""
    lines = [f"Decks on a {SCREEN['width']}x{SCREEN['height']} screen, {mode} mode", "",
             "| deck | slides | fit | tallest (screens) | tallest slide |",
             "|---|---:|---:|---:|---|"]
    for stem, slides in measured.items():
        tallest = max(slides, key=lambda slide: slide["ratio"])
        fitting = sum(slide["ratio"] <= 1 for slide in slides)
        lines.append(f"| {stem} | {len(slides)} | {fitting} | {tallest['ratio']:.2f} | "
                     f"{tallest['h']}/{tallest['v']} {tallest['title'][:50]} |")
    every = [slide for slides in measured.values() for slide in slides]
    fitting = sum(slide["ratio"] <= 1 for slide in every)
    lines.append(f"| all | {len(every)} | {fitting} ({fitting / len(every):.1%}) | "
                 f"{max(slide['ratio'] for slide in every):.2f} | |")
    return "\n".join(lines) + "\n"


def test_the_report_counts_fitting_and_tallest_slides():
    measured = {"01_a": [{"h": 0, "v": 0, "ratio": 0.5, "title": "A"},
                         {"h": 1, "v": 0, "ratio": 1.2, "title": "B"}],
                "02_b": [{"h": 0, "v": 0, "ratio": 1.0, "title": "C"}]}
    report = fit_report(measured, "smoke")
    assert "| 01_a | 2 | 1 | 1.20 | 1/0 B |" in report
    assert "| 02_b | 1 | 1 | 1.00 | 0/0 C |" in report  # exactly one screen still fits
    assert "| all | 3 | 2 (66.7%) | 1.20 | |" in report


@pytest.mark.parametrize("stem", CHAPTER_STEMS)
def test_no_slide_is_much_taller_than_the_screen(deck_heights, stem):
    too_tall = [f"{slide['h']}/{slide['v']} {slide['title']!r}: {slide['ratio']:.2f} screens"
                for slide in deck_heights["slides"][stem] if slide["ratio"] > MAX_HEIGHT_RATIO]
    assert too_tall == []


def test_nearly_every_slide_fits_the_screen(deck_heights):
    every = [slide for slides in deck_heights["slides"].values() for slide in slides]
    fitting = sum(slide["ratio"] <= 1 for slide in every)
    assert len(every) >= 10 * len(CHAPTER_STEMS)  # the decks are cut into slides at all
    assert fitting / len(every) >= MIN_SHARE_FITTING, (
        f"{fitting} of {len(every)} slides fit; the rest scroll")


# The words the slides show, in order: the cut slides' "(continued)" labels left out, and each
# equation as its TeX source (MathJax typesets a slide again when it appears).
SHOWN_WORDS = """() => {
  const slides = document.querySelector(".reveal .slides").cloneNode(true);
  slides.querySelectorAll("p.course-continued, aside.notes, [class*=MathJax], [class*=mjx]")
    .forEach((node) => node.remove());
  const words = [];
  const walker = document.createTreeWalker(slides, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    words.push(...walker.currentNode.data.split(/\\s+/).filter(Boolean));
  }
  return {words: words,
          pictures: slides.querySelectorAll("img").length};
}"""


def is_in_order_within(wanted: list[str], found: list[str]) -> bool:
    """True when `wanted` appears in `found` in the same order, other words allowed between."""
    remaining = iter(found)
    return all(word in remaining for word in wanted)


def test_fitting_the_decks_raises_no_errors(deck_heights):
    assert deck_heights["errors"] == []


def test_in_order_within_finds_subsequences_only():
    assert is_in_order_within(["a", "c"], ["a", "b", "c"])
    assert not is_in_order_within(["c", "a"], ["a", "b", "c"])
    assert not is_in_order_within(["a", "d"], ["a", "b", "c"])


@pytest.mark.parametrize("stem", [CHAPTER_STEMS[0], CHAPTER_STEMS[12], CHAPTER_STEMS[-1]])
def test_cutting_slides_loses_and_reorders_nothing(browser, site_url, stem):
    context = screen_context(browser, site_url)
    page = context.new_page()
    page.goto(f"{site_url}{stem}.slides.html?fit=off", wait_until="load")
    page.wait_for_function("window.courseDeck && window.courseDeck.fitted === false")
    uncut = page.evaluate(SHOWN_WORDS)
    page.goto(f"{site_url}{stem}.slides.html", wait_until="load")
    page.wait_for_function("window.courseDeck && window.courseDeck.fitted", timeout=60_000)
    cut = page.evaluate(SHOWN_WORDS)
    added = page.evaluate("window.courseDeck.slidesAdded")
    context.close()
    assert added > 0  # this deck had slides to cut
    assert cut["pictures"] == uncut["pictures"]
    # Every word, in order; a table cut in two repeats its header, so words may be added.
    assert is_in_order_within(uncut["words"], cut["words"])
    assert len(cut["words"]) - len(uncut["words"]) < 0.05 * len(uncut["words"])
