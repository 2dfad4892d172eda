"""Build the course web site and slide decks from executed notebooks; they work offline.

    python tools/run_notebooks.py --mode smoke --no-html    # first, the executed copies
    python tools/build_site.py --mode smoke                  # then build/site/smoke/
    python tools/build_site.py --mode smoke --execute        # both steps in one

The pages come from Sphinx: myst-nb reads a temporary copy of build/executed/<mode>/NN_*.ipynb
(outputs as they are, nothing executed) and sphinx-book-theme lays out NN_*.html with the course's
table of contents beside it (a chapter's solutions notebook, NN_*_solutions, right after it),
previous/next links and an offline search (searchindex.js); the settings are in
site_templates/sphinx/conf.py. index.html lists the chapters in order, each with its deck and its
solutions. Each chapter also gets NN_*.slides.html, a reveal.js deck from nbconvert; cells without
a slide type get one from tools/slide_metadata.py's rules, so every deck is cut into slides even
before the notebooks carry the metadata. reveal.js, require.js, jQuery and MathJax 2 (for the
pages too) are copied into _static/, links between notebooks point at their pages, and the build
fails on any Sphinx warning or if a page, style sheet or script would still load anything from
another host.
"""

from __future__ import annotations

import argparse
import copy
import html
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbconvert import SlidesExporter

from course_utils import files
from course_utils.config import MODE_DESCRIPTIONS, MODES
from tools.slide_metadata import apply_slide_types, split_long_code_cells
from tools.vendor_assets import (
    JQUERY_URL,
    MATHJAX_URL,
    REQUIRE_JS_URL,
    REVEAL_PREFIX,
    REVEAL_THEME,
    VendorError,
    install_assets,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
EXECUTED_DIR = REPO_ROOT / "build" / "executed"
SITE_DIR = REPO_ROOT / "build" / "site"
TEMPLATES_DIR = Path(__file__).resolve().parent / "site_templates"
SPHINX_CONF_DIR = TEMPLATES_DIR / "sphinx"  # conf.py, and _static/course.css for the index
COURSE_TITLE = "Autoencoders and GANs, hands-on"

# Chapters link to solutions/NN_name_solutions.ipynb, solutions to ../NN_name.ipynb: on the site
# every page lies in one folder.
NOTEBOOK_LINK = re.compile(r'href="(?:solutions/|\.\./)?(\d\d_[\w-]+)\.ipynb(#[^"]*)?"')
SOLUTIONS_SUFFIX = "_solutions"
# The same links in a markdown cell, as Sphinx reads them: every notebook is in its source folder.
SOURCE_NOTEBOOK_LINK = re.compile(r"\]\((?:solutions/|\.\./)?(\d\d_[\w-]+\.ipynb)(?:#([^)\s]*))?\)")
# Plotly's notebook renderer adds a MathJax 3 <script> from a CDN to every figure; the pages
# already load MathJax 2 locally, which Plotly uses too, so the CDN copy is dropped.
CDN_MATHJAX_SCRIPT = re.compile(
    r'<script[^>]*\bsrc="https?://[^"]*mathjax[^"]*"[^>]*>\s*</script>', re.IGNORECASE
)
PLOTLY_JSON = "application/vnd.plotly.v1+json"
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
    """Point links to NN_name.ipynb at the built NN_name<suffix> instead (solutions: a page,
    whose headings carry MyST's anchors)."""
    def target(match: re.Match) -> str:
        stem, anchor = match.group(1), match.group(2) or ""
        if stem.endswith(SOLUTIONS_SUFFIX):  # no deck for solutions: their Sphinx page
            return f'href="{stem}.html' + (f"#{heading_slug(anchor[1:])}" if anchor else "") + '"'
        return f'href="{stem}{suffix}{anchor}"'

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


def sphinx_source(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook as Sphinx reads it: no CDN scripts, links between notebooks in one folder."""
    notebook = without_cdn_scripts(notebook)

    def target(match: re.Match) -> str:
        anchor = match.group(2)
        return f"]({match.group(1)}" + (f"#{heading_slug(anchor)}" if anchor else "") + ")"

    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            cell.source = SOURCE_NOTEBOOK_LINK.sub(target, cell.source)
        for output in cell.get("outputs", []):
            # The figure's text/html draws it; myst-nb has no renderer for Plotly's JSON.
            output.get("data", {}).pop(PLOTLY_JSON, None)
    return notebook


def heading_slug(anchor: str) -> str:
    """JupyterLab's anchor of a heading ("Exercise-1") as MyST spells it ("exercise-1")."""
    return re.sub(r"[^\w\-]", "", anchor.lower())


def index_source(chapters: list[Chapter], mode: str) -> str:
    """index.md: the course title, the run mode, the chapters in order and the table of contents
    (every page, each solutions page right after its chapter)."""
    solved = {chapter.stem for chapter in chapters if chapter.is_solutions}

    def row(chapter: Chapter) -> str:
        solutions = chapter.stem + SOLUTIONS_SUFFIX
        link = (f' <a class="solutions" href="{solutions}.html">solutions</a>'
                if solutions in solved else "")
        return (f'<li><a class="chapter" href="{chapter.page}">'
                f'{html.escape(chapter.title)}</a>{link}'
                f' <a class="deck" href="{chapter.slides}">slides</a></li>')

    rows = "\n".join(row(chapter) for chapter in chapters if not chapter.is_solutions)
    toctree = "\n".join(chapter.stem for chapter in chapters)
    return f"""# {COURSE_TITLE}

Autoencoders and generative adversarial networks with TensorFlow and Keras 3, as notebooks to
read and slide decks to present. Every page works offline.

<p class="mode">These pages were executed in <strong>{mode}</strong> mode:
{html.escape(MODE_DESCRIPTIONS[mode])}. Figures and numbers from other modes differ; the code is
the same.</p>

## Chapters

Each chapter ends with exercises; its *solutions* page solves them in code, run in the same
mode, with the results to compare yours with. The search box finds a word on every page.

<ol class="chapters">
{rows}
</ol>

```{{toctree}}
:hidden:
:caption: Chapters and solutions

{toctree}
```
"""


def deck_exporter() -> SlidesExporter:
    """nbconvert's deck exporter, pointed at the site's own copies of the scripts."""
    local = dict(mathjax_url=MATHJAX_URL, require_js_url=REQUIRE_JS_URL, jquery_url=JQUERY_URL,
                 extra_template_basedirs=[str(TEMPLATES_DIR)])
    return SlidesExporter(template_name="course_reveal", reveal_url_prefix=REVEAL_PREFIX,
                          reveal_theme=REVEAL_THEME, reveal_scroll=True, **local)


def run_sphinx(source_dir: Path, html_dir: Path, doctree_dir: Path, jobs: int) -> None:
    """Sphinx's HTML build of source_dir; any warning (a broken link, say) fails it."""
    from sphinx.cmd.build import build_main  # only the build needs Sphinx, not remote_loads

    arguments = ["-b", "html", "-q", "-E", "-W", "--keep-going", "-j", str(jobs),
                 "-c", str(SPHINX_CONF_DIR), "-d", str(doctree_dir),
                 str(source_dir), str(html_dir)]
    if build_main(arguments) != 0:
        raise SystemExit("Sphinx could not build the site: its messages are above.")


def site_remote_loads(html_dir: Path) -> dict[str, list[str]]:
    """remote_loads of every page, style sheet and script of a built site, by file."""
    found = {}
    for path in sorted(html_dir.rglob("*")):
        if path.suffix in (".html", ".css", ".js") and path.is_file():
            urls = remote_loads(path.read_text(encoding="utf-8", errors="replace"))
            if urls:
                found[str(path.relative_to(html_dir))] = urls
    return found


def build_site(mode: str, executed_dir: Path, site_dir: Path, jobs: int = 1) -> list[Chapter]:
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

    def fill(html_dir: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="course-site-source-") as work:
            source_dir = Path(work) / "source"
            source_dir.mkdir()
            for chapter, notebook in zip(chapters, notebooks, strict=True):
                nbformat.write(sphinx_source(notebook), source_dir / chapter.source.name)
            (source_dir / "index.md").write_text(index_source(chapters, mode), encoding="utf-8")
            # Sphinx builds in the work folder, because myst-nb writes a folder of its own next
            # to Sphinx's output; only the pages go into the site.
            run_sphinx(source_dir, Path(work) / "html", Path(work) / "doctrees", jobs)
            shutil.copytree(Path(work) / "html", html_dir, dirs_exist_ok=True)
        install_assets(html_dir / "_static")
        exporter = deck_exporter()
        for chapter, notebook in zip(chapters, notebooks, strict=True):
            if chapter.is_solutions:
                continue
            deck_notebook = without_cdn_scripts(notebook)
            apply_slide_types(deck_notebook)  # fills in only what the notebook lacks
            split_long_code_cells(deck_notebook)  # the deck's script cuts what is still tall
            deck, _ = exporter.from_notebook_node(
                deck_notebook, resources={"metadata": {"name": chapter.title}}
            )
            (html_dir / chapter.slides).write_text(
                rewrite_notebook_links(deck, ".slides.html"), encoding="utf-8")
            print(f"{chapter.page:48s} {chapter.slides}", flush=True)
        remote = site_remote_loads(html_dir)
        if remote:
            raise SystemExit(f"These files would load files from other hosts: {remote}")

    # Built beside the old site and swapped in whole: a failed build leaves the old site.
    files.replace_folder(site_dir, fill)
    return chapters


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=MODES, default="default")
    parser.add_argument("--execute", action="store_true",
                        help="first execute every notebook (tools/run_notebooks.py --no-html)")
    parser.add_argument("--executed", type=Path, default=EXECUTED_DIR,
                        help="where the executed notebooks are, per mode (build/executed)")
    parser.add_argument("--out", type=Path, default=SITE_DIR, help="default: build/site")
    parser.add_argument("--jobs", type=int, default=1,
                        help="Sphinx reads this many notebooks at once (default: 1)")
    args = parser.parse_args(argv)
    if args.execute:
        from tools import run_notebooks

        if run_notebooks.main(["--mode", args.mode, "--no-html",
                               "--out", str(args.executed)]) != 0:
            print("error: a notebook failed; the site was not built.", file=sys.stderr)
            return 1
    try:
        chapters = build_site(args.mode, args.executed / args.mode, args.out / args.mode,
                              args.jobs)
    except VendorError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    solved = sum(chapter.is_solutions for chapter in chapters)
    print(f"{len(chapters) - solved} chapters and {solved} solutions pages: open "
          f"{args.out / args.mode / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
