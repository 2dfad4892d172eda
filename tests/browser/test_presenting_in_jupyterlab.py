"""Presenting from JupyterLab, as an instructor does after `make course`: a chapter opens in
JupyterLab, Alt+R (jupyterlab-rise's RISE:preview, the toolbar's slideshow button) renders it as a
reveal.js slideshow beside the notebook, the keyboard steps through the slides, and each slide
shows the notebook's own cells. The palette's "Open as Reveal Slideshow" (RISE:slideshow) opens
the same deck in a browser tab of its own. Nothing is loaded from another host.

Needs no built site, only Chromium, Playwright and the course's virtual environment (the
`jupyterlab` and `chromium` fixtures); without Chromium or Playwright it skips, and fails
under COURSE_SITE_REQUIRED=1 (`make test`). Screenshots go to build/screenshots/.
"""

import json
import re

import pytest

CHAPTER = "notebooks/01_pca_linear_autoencoder.ipynb"
RISE_READY_WITHIN_MS = 60_000
# RISE puts each slide in a <section> of its own inside one per column, id "slide-H-V".
PRESENT = ".reveal .slides > section.present > section.present"
READY = ".reveal.ready .slides > section.present > section.present"  # reveal.js has started
SLIDESHOW_IFRAME = "iframe[src*='/rise/']"
RISE_BUTTON = ".jp-NotebookPanel-toolbar [data-jp-item-name='RISE-button'] jp-button"
FOCUSED = "document.hasFocus()"  # where reveal.js, listening on the document, gets the keys
TRANSITION_MS = 900  # RISE's default "linear" transition, then a little longer
FRAGMENTS_SHOWN = ".reveal .fragment.visible"
MAX_PRESSES = 12

# What the slideshow does on its own that is no fault of the course, each matched narrowly (the
# course's notebooks pick reveal.js' "white" theme: RISE's default loads Google's fonts):
# - RISE links two optional stylesheets next to the notebook, rise.css and <notebook>.css; the
#   course has none, so both answer 404 (and the browser refuses the error page as a style).
RISE_OPTIONAL_CSS = ("rise.css", CHAPTER.rsplit("/", 1)[1].removesuffix(".ipynb") + ".css")
# - The slideshow app's bundled UI toolkit (FAST design tokens, served from static/rise/)
#   catches a "Maximum call stack size exceeded" while resolving its design tokens and logs it
#   with console.error, some twenty times per load in every run; the slides render regardless.
RISE_TOKEN_RECURSION = "RangeError: Maximum call stack size exceeded"


def known_noise(text: str, source: str, base_url: str) -> bool:
    if text == RISE_TOKEN_RECURSION:
        return source.startswith(base_url + "static/rise/")
    css = [f"{base_url}files/notebooks/{name}" for name in RISE_OPTIONAL_CSS]
    return any(text.startswith(f"Refused to apply style from '{url}'") for url in css)


def assert_clean(watch):
    base = watch.base_url
    css = {f"{base}files/notebooks/{name}" for name in RISE_OPTIONAL_CSS}
    foreign = watch.foreign_requests
    failed = [(url, why) for url, why in watch.failed_requests
              if url not in watch.foreign_requests  # refused by the guard: listed above
              and not (url in css and why in ("HTTP 404", "net::ERR_ABORTED"))
              # A slideshow URL that RISE replaced while loading (?activeCellIndex=0 first).
              and not (url.startswith(base + "rise/") and why == "net::ERR_ABORTED")]
    errors = [text for text, source in watch.console_errors
              if not known_noise(text, source, base)]
    assert foreign == [], "requests left 127.0.0.1"
    assert failed == [], "some requests failed"
    assert errors == [], "the console reported errors"


def first_heading(source: str) -> tuple[int, str]:
    """The level and text of a markdown cell's first heading, without its inline markup."""
    match = re.search(r"^(#{1,6})\s+(.+?)\s*#*\s*$", source, re.MULTILINE)
    assert match, f"no heading in a cell that opens a slide: {source[:80]!r}"
    return len(match.group(1)), normalized(match.group(2))


def normalized(text: str) -> str:
    return " ".join(re.sub(r"[*_`¶]", "", text).split())


def slide_layout(path) -> dict[tuple[int, int], tuple[int, str] | None]:
    """Every slide (H, V) in order, with the heading of the markdown cell that opens it (None
    for a code cell), as RISE cuts the notebook: the first cell opens slide (0, 0), a "slide"
    cell the next column, a "subslide" cell the next slide down the same column."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    layout, h, v = {}, 0, 0
    for index, cell in enumerate(cells):
        kind = cell["metadata"].get("slideshow", {}).get("slide_type", "-")
        if index > 0 and kind == "slide":
            h, v = h + 1, 0
        elif index > 0 and kind == "subslide":
            v += 1
        elif index > 0:
            continue
        source = "".join(cell["source"])
        layout[h, v] = first_heading(source) if cell["cell_type"] == "markdown" else None
    return layout


def present_slide(frame) -> dict:
    """The slide on show: its (H, V) from RISE's id, and its first heading."""
    state = frame.evaluate(f"""() => {{
        const slide = document.querySelector("{PRESENT}");
        const heading = slide && slide.querySelector("h1, h2, h3, h4");
        return {{id: slide ? slide.id : null, text: slide ? slide.innerText : "",
                 // textContent: the theme shows headings in capitals, the text is the cell's
                 heading: heading ? [Number(heading.tagName[1]), heading.textContent] : null}};
    }}""")
    match = re.fullmatch(r"slide-(\d+)-(\d+)", state["id"] or "")
    assert match, f"no slide on show: {state}"
    level, text = state["heading"] or (0, "")
    return {"id": state["id"], "index": (int(match.group(1)), int(match.group(2))),
            "heading": (level, normalized(text)), "text": state["text"]}


def wait_for_reveal(frame):
    frame.wait_for_selector(READY, timeout=RISE_READY_WITHIN_MS)
    frame.wait_for_function(FOCUSED, timeout=RISE_READY_WITHIN_MS)
    frame.wait_for_timeout(TRANSITION_MS)


def step(page, frame, key: str, before: dict) -> dict:
    """Press key until another slide is on show: Space first shows the slide's fragments."""
    for _ in range(MAX_PRESSES):
        shown = frame.evaluate(f"document.querySelectorAll('{FRAGMENTS_SHOWN}').length")
        page.keyboard.press(key)
        frame.wait_for_function(f"""() => {{
            const slide = document.querySelector("{PRESENT}");
            return (slide !== null && slide.id !== "{before['id']}")
                || document.querySelectorAll("{FRAGMENTS_SHOWN}").length !== {shown};
        }}""", timeout=10_000)
        if frame.evaluate(f"document.querySelector('{PRESENT}').id") != before["id"]:
            frame.wait_for_timeout(TRANSITION_MS)
            return present_slide(frame)
    pytest.fail(f"{MAX_PRESSES} x {key} did not leave slide {before['id']}")


def assert_shows_the_notebook(slide: dict, layout: dict):
    """The slide is the notebook's: it has the heading of the cell that opens it there."""
    assert slide["index"] in layout, slide
    if layout[slide["index"]] is not None:
        assert slide["heading"] == layout[slide["index"]], slide


@pytest.fixture
def chapter(jupyterlab):
    """The chapter as the server has it, and its slides."""
    path = jupyterlab.root_dir / CHAPTER
    return path, path.read_bytes(), slide_layout(path)


def open_chapter(watch, jupyterlab):
    page = watch.context.new_page()
    # ?reset: a fresh layout, never one that an earlier test left in the server's workspace.
    page.goto(f"{jupyterlab.url}lab/tree/{CHAPTER}?reset&token={jupyterlab.token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-MarkdownOutput h1", timeout=60_000)
    # The slideshow commands are enabled once the notebook is JupyterLab's current document.
    page.wait_for_selector(f"{RISE_BUTTON}[aria-disabled='false']", timeout=60_000)
    page.wait_for_load_state("networkidle")
    return page


def test_an_instructor_presents_a_chapter_from_jupyterlab(watched_lab, jupyterlab, chapter,
                                                        screenshots_dir):
    path, stored, layout = chapter
    order = list(layout)  # the slides in reading order: what Space walks through
    title = layout[0, 0]
    assert title and title[0] == 1, "the chapter does not open with its # title"
    page = open_chapter(watched_lab, jupyterlab)
    assert normalized(page.locator(".jp-NotebookPanel .jp-MarkdownOutput h1").first
                      .inner_text()) == title[1]
    # The notebook toolbar's slideshow button runs the same command as Alt+R.
    button = page.locator(RISE_BUTTON)
    assert button.count() == 1
    assert button.get_attribute("data-command") == "RISE:preview"
    assert "(Alt+R)" in button.get_attribute("title")
    page.screenshot(path=screenshots_dir / "jupyterlab_notebook.png")

    # Select the title cell (the slideshow starts at the selected cell's slide), then Alt+R:
    # RISE saves the notebook and shows the deck in a panel beside it, not in a browser tab.
    page.locator(".jp-NotebookPanel .jp-Cell").first.click()
    page.keyboard.press("Alt+R")
    iframe = page.wait_for_selector(SLIDESHOW_IFRAME, timeout=RISE_READY_WITHIN_MS)
    frame = iframe.content_frame()
    wait_for_reveal(frame)
    assert frame.url.split("#")[0] == f"{jupyterlab.url}rise/{CHAPTER}"
    assert len(watched_lab.context.pages) == 1, "Alt+R opened a browser tab, not a panel"

    slide = present_slide(frame)
    assert slide["index"] == (0, 0) and slide["heading"] == title
    iframe.screenshot(path=screenshots_dir / "rise_slide_1.png")
    seen = [slide]
    for number, key in enumerate(["Space", "ArrowRight", "ArrowRight"], start=2):
        before = seen[-1]["index"]
        slide = step(page, frame, key, seen[-1])
        if key == "Space":  # the next slide in reading order, down a column or across
            assert slide["index"] == order[order.index(before) + 1]
        else:  # the top of the next column, past any sub-slides and fragments
            assert slide["index"] == (before[0] + 1, 0)
        assert_shows_the_notebook(slide, layout)
        iframe.screenshot(path=screenshots_dir / f"rise_slide_{number}.png")
        seen.append(slide)
    assert any(slide["heading"][0] == 2 for slide in seen), "no ## slide was shown"
    page.screenshot(path=screenshots_dir / "jupyterlab_rise.png")
    # The save that starts the slideshow leaves a clean, output-free notebook as it was.
    assert path.read_bytes() == stored

    # For a projector: the palette's "Open as Reveal Slideshow" opens the deck in a tab.
    page.locator(".jp-NotebookPanel .jp-Cell").first.click()  # the notebook is current again
    page.keyboard.press("Control+Shift+C")
    page.locator("#modal-command-palette .lm-CommandPalette-input").fill(
        "Open as Reveal Slideshow")
    active = page.locator("#modal-command-palette .lm-CommandPalette-item.lm-mod-active")
    assert active.get_attribute("data-command") == "RISE:slideshow"
    with watched_lab.context.expect_page() as opened:
        page.keyboard.press("Enter")
    tab = opened.value
    wait_for_reveal(tab.main_frame)
    assert tab.url.split("#")[0] == f"{jupyterlab.url}rise/{CHAPTER}"
    slide = present_slide(tab.main_frame)
    assert slide["index"] == (0, 0) and slide["heading"] == title
    slide = step(tab, tab.main_frame, "Space", slide)
    assert slide["index"] == order[1]
    assert_shows_the_notebook(slide, layout)
    tab.screenshot(path=screenshots_dir / "rise_tab.png")
    assert path.read_bytes() == stored
    assert_clean(watched_lab)
