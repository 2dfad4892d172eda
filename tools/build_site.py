"""Build the course web site and slide decks from executed notebooks; they work offline.

    python tools/run_notebooks.py --mode smoke --no-html    # first, the executed copies
    python tools/build_site.py --mode smoke                  # then build/site/smoke/
    python tools/build_site.py --mode smoke --execute        # both steps in one

For every build/executed/<mode>/NN_*.ipynb it writes NN_*.html (the JupyterLab look, with an
"index | previous | next" bar) and, for a chapter, NN_*.slides.html (a reveal.js deck); a
chapter's solutions notebook (NN_*_solutions) gets a page, right after its chapter, and no deck.
index.html lists the chapters in order, each with its deck and its solutions. reveal.js,
require.js, jQuery and MathJax are copied into _static/, links
between notebooks point at their pages, and the build fails if a page would still load
anything from another host. Cells without a slide type get one from tools/slide_metadata.py's
rules, so every deck is cut into slides even before the notebooks carry the metadata.
"""

from __future__ import annotations

import argparse
import copy
import html
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter, SlidesExporter
from slide_metadata import apply_slide_types, split_long_code_cells
from vendor_assets import (
    JQUERY_URL,
    MATHJAX_URL,
    REQUIRE_JS_URL,
    REVEAL_PREFIX,
    REVEAL_THEME,
    VendorError,
    install_assets,
)

from course_utils.config import MODE_DESCRIPTIONS, MODES

REPO_ROOT = Path(__file__).resolve().parent.parent
EXECUTED_DIR = REPO_ROOT / "build" / "executed"
SITE_DIR = REPO_ROOT / "build" / "site"
TEMPLATES_DIR = Path(__file__).resolve().parent / "site_templates"
COURSE_TITLE = "Autoencoders and GANs, hands-on"

# Chapters link to solutions/NN_name_solutions.ipynb, solutions to ../NN_name.ipynb: on the site
# every page lies in one folder.
NOTEBOOK_LINK = re.compile(r'href="(?:solutions/|\.\./)?(\d\d_[\w-]+)\.ipynb(#[^"]*)?"')
SOLUTIONS_SUFFIX = "_solutions"
# Plotly's notebook renderer adds a MathJax 3 <script> from a CDN to every figure; the pages
# already load MathJax 2 locally, which Plotly uses too, so the CDN copy is dropped.
CDN_MATHJAX_SCRIPT = re.compile(
    r'<script[^>]*\bsrc="https?://[^"]*mathjax[^"]*"[^>]*>\s*</script>', re.IGNORECASE
)
# What a browser would fetch by itself: script and image sources, style sheets, CSS imports.
REMOTE_LOAD = re.compile(
    r'<(?:script|img|iframe|source|audio|video)\b[^>]*\bsrc\s*=\s*["\']?((?:https?:)?//[^"\' >]+)'
    r'|<link\b[^>]*\bhref\s*=\s*["\']?((?:https?:)?//[^"\' >]+)'
    r'|@import\s+(?:url\()?["\']?((?:https?:)?//[^"\' )]+)'
    r'|\burl\(\s*["\']?((?:https?:)?//[^"\' )]+)'
    r'|\bimport\b[^;\n]*?\bfrom\s*["\']((?:https?:)?//[^"\']+)',
    re.IGNORECASE,
)


@dataclass
class Chapter:
    """One executed notebook and the names of its pages."""

    source: Path
    title: str

    @property
    def stem(self) -> str:
        return self.source.stem

    @property
    def is_solutions(self) -> bool:
        return self.stem.endswith(SOLUTIONS_SUFFIX)

    @property
    def page(self) -> str:
        return f"{self.stem}.html"

    @property
    def slides(self) -> str:
        return f"{self.stem}.slides.html"


def chapter_title(notebook: nbformat.NotebookNode, fallback: str) -> str:
    """The text of the notebook's first `# ` heading."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def remote_loads(page: str) -> list[str]:
    """Every URL on another host that the page would load by itself (links are not loads)."""
    return sorted({next(group for group in match.groups() if group)
                   for match in REMOTE_LOAD.finditer(page)})


def rewrite_notebook_links(page: str, suffix: str) -> str:
    """Point links to NN_name.ipynb at the built NN_name<suffix> instead (solutions: a page)."""
    def target(match: re.Match) -> str:
        stem = match.group(1)
        ending = ".html" if stem.endswith(SOLUTIONS_SUFFIX) else suffix  # no deck for solutions
        return f'href="{stem}{ending}{match.group(2) or ""}"'

    return NOTEBOOK_LINK.sub(target, page)


def without_cdn_scripts(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of the notebook whose HTML outputs no longer load MathJax from a CDN."""
    notebook = copy.deepcopy(notebook)
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "text/html" in data:
                text = data["text/html"]
                text = "".join(text) if isinstance(text, list) else text
                data["text/html"] = CDN_MATHJAX_SCRIPT.sub("", text)
    return notebook


def navigation(chapters: list[Chapter], index: int, slides: bool, css_class: str) -> str:
    """The "index | previous | next | slides" bar of one chapter's page."""
    links = ['<a href="index.html">&larr; index</a>']
    if index > 0:
        before = chapters[index - 1]
        links.append(f'<a href="{before.page}" rel="prev">previous: {html.escape(before.title)}'
                     '</a>')
    if index + 1 < len(chapters):
        after = chapters[index + 1]
        links.append(f'<a href="{after.page}" rel="next">next: {html.escape(after.title)}</a>')
    if slides and not chapters[index].is_solutions:
        links.append(f'<a href="{chapters[index].slides}">slides</a>')
    separator = '<span class="sep">|</span>'
    return f'<nav class="course-nav {css_class}">{separator.join(links)}</nav>'


def index_page(chapters: list[Chapter], mode: str) -> str:
    """The site's front page: the course title, the run mode and the chapters in order."""
    solved = {chapter.stem for chapter in chapters if chapter.is_solutions}

    def row(chapter: Chapter) -> str:
        solutions = chapter.stem + SOLUTIONS_SUFFIX
        link = (f' <a class="solutions" href="{solutions}.html">solutions</a>'
                if solutions in solved else "")
        return (f'      <li><a class="chapter" href="{chapter.page}">'
                f'{html.escape(chapter.title)}</a>{link}'
                f' <a class="deck" href="{chapter.slides}">slides</a></li>')

    rows = "\n".join(row(chapter) for chapter in chapters if not chapter.is_solutions)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1.0">
  <title>{html.escape(COURSE_TITLE)}</title>
  <style>
    body {{ font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto;
            padding: 0 1rem; line-height: 1.5; color: #222; }}
    h1 {{ margin-bottom: 0.2rem; }}
    .mode {{ background: #f3f6fa; border-left: 4px solid #4a7ab5; padding: 0.6rem 1rem; }}
    ol.chapters {{ list-style: none; padding: 0; }}
    ol.chapters li {{ padding: 0.35rem 0; border-bottom: 1px solid #eee; }}
    a {{ color: #1f5fa8; text-decoration: none; }}
    a.deck {{ float: right; font-size: 0.9em; }}
    a.solutions {{ font-size: 0.9em; margin-left: 0.6rem; padding: 0 0.4rem;
                   border: 1px solid #c9d6e8; border-radius: 3px; }}
  </style>
</head>
<body>
  <h1>{html.escape(COURSE_TITLE)}</h1>
  <p>Autoencoders and generative adversarial networks with TensorFlow and Keras 3, as
  notebooks to read and slide decks to present. Every page works offline.</p>
  <p class="mode">These pages were executed in <strong>{mode}</strong> mode:
  {html.escape(MODE_DESCRIPTIONS[mode])}. Figures and numbers from other modes differ; the
  code is the same.</p>
  <h2>Chapters</h2>
  <p>Each chapter ends with exercises; its <em>solutions</em> page solves them in code, run in
  the same mode, with the results to compare yours with.</p>
  <ol class="chapters">
{rows}
  </ol>
</body>
</html>
"""


def exporters() -> tuple[HTMLExporter, SlidesExporter]:
    """nbconvert's page and deck exporters, pointed at the site's own copies of the scripts."""
    local = dict(mathjax_url=MATHJAX_URL, require_js_url=REQUIRE_JS_URL, jquery_url=JQUERY_URL,
                 extra_template_basedirs=[str(TEMPLATES_DIR)])
    page = HTMLExporter(template_name="course_lab", **local)
    deck = SlidesExporter(template_name="course_reveal", reveal_url_prefix=REVEAL_PREFIX,
                          reveal_theme=REVEAL_THEME, reveal_scroll=True, **local)
    return page, deck


def build_site(mode: str, executed_dir: Path, site_dir: Path) -> list[Chapter]:
    """Write the pages, decks, index and assets of one mode into site_dir (replaced whole)."""
    sources = sorted(executed_dir.glob("[0-9][0-9]_*.ipynb"))
    if not sources:
        raise SystemExit(
            f"No executed notebooks in {executed_dir}. Run first: "
            f"python tools/run_notebooks.py --mode {mode} --no-html (or add --execute)."
        )
    notebooks = [nbformat.read(path, as_version=4) for path in sources]
    chapters = [Chapter(path, chapter_title(notebook, path.stem))
                for path, notebook in zip(sources, notebooks, strict=True)]
    page_exporter, deck_exporter = exporters()
    site_dir.parent.mkdir(parents=True, exist_ok=True)
    # Built beside the old site and swapped in at the end: a failed build leaves no half site.
    staging = Path(tempfile.mkdtemp(prefix=f".{site_dir.name}-", dir=site_dir.parent))
    try:
        install_assets(staging / "_static")
        remote = {}
        for number, (chapter, notebook) in enumerate(zip(chapters, notebooks, strict=True)):
            notebook = without_cdn_scripts(notebook)
            resources = {
                "metadata": {"name": chapter.title},
                "course_nav": navigation(chapters, number, slides=True, css_class="top"),
                "course_nav_bottom": navigation(chapters, number, slides=True,
                                                css_class="bottom"),
            }
            page, _ = page_exporter.from_notebook_node(notebook, resources=resources)
            outputs = [(chapter.page, rewrite_notebook_links(page, ".html"))]
            if not chapter.is_solutions:
                deck_notebook = copy.deepcopy(notebook)
                apply_slide_types(deck_notebook)  # fills in only what the notebook lacks
                split_long_code_cells(deck_notebook)  # the deck's script cuts what is still tall
                deck, _ = deck_exporter.from_notebook_node(
                    deck_notebook, resources={"metadata": {"name": chapter.title}}
                )
                outputs.append((chapter.slides, rewrite_notebook_links(deck, ".slides.html")))
            for name, text in outputs:
                (staging / name).write_text(text, encoding="utf-8")
                if remote_loads(text):
                    remote[name] = remote_loads(text)
            print(f"{chapter.page:48s} {'' if chapter.is_solutions else chapter.slides}",
                  flush=True)
        for style_sheet in (staging / "_static").rglob("*.css"):
            if remote_loads(style_sheet.read_text(encoding="utf-8")):
                remote[str(style_sheet.relative_to(staging))] = remote_loads(
                    style_sheet.read_text(encoding="utf-8"))
        if remote:
            raise SystemExit(f"These pages would load files from other hosts: {remote}")
        (staging / "index.html").write_text(index_page(chapters, mode), encoding="utf-8")
        staging.chmod(0o755)
        old = site_dir.with_name(f".{site_dir.name}-old")
        shutil.rmtree(old, ignore_errors=True)
        if site_dir.exists():
            os.replace(site_dir, old)
        os.replace(staging, site_dir)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return chapters


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=MODES, default="default")
    parser.add_argument("--execute", action="store_true",
                        help="first execute every notebook (tools/run_notebooks.py --no-html)")
    parser.add_argument("--executed", type=Path, default=EXECUTED_DIR,
                        help="where the executed notebooks are, per mode (build/executed)")
    parser.add_argument("--out", type=Path, default=SITE_DIR, help="default: build/site")
    args = parser.parse_args(argv)
    if args.execute:
        import run_notebooks

        if run_notebooks.main(["--mode", args.mode, "--no-html",
                               "--out", str(args.executed)]) != 0:
            print("error: a notebook failed; the site was not built.", file=sys.stderr)
            return 1
    try:
        chapters = build_site(args.mode, args.executed / args.mode, args.out / args.mode)
    except VendorError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    solved = sum(chapter.is_solutions for chapter in chapters)
    print(f"{len(chapters) - solved} chapters and {solved} solutions pages: open "
          f"{args.out / args.mode / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
