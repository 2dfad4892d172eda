"""Sphinx settings for the course site (tools/build_site.py runs Sphinx with them).

The sources are a temporary folder of executed notebooks plus a generated index.md; nothing is
executed here. MathJax 2 is the site's vendored copy (_static/mathjax/, as in the slide decks);
nothing is loaded from another host.
"""

import re

project = "Autoencoders and GANs, hands-on"
html_title = project
extensions = ["myst_nb"]
exclude_patterns = ["jupyter_execute", "**.ipynb_checkpoints"]
# Each notebook's "Run mode" cell is a ### heading right under its # title, on purpose.
suppress_warnings = ["myst.header"]

# The notebooks come executed by tools/run_notebooks.py; their outputs are shown as they are.
nb_execution_mode = "off"
nb_merge_streams = True
# Only for pages with widget state: their loaders come from CDNs, and no notebook has widgets.
nb_ipywidgets_js = {}

# $...$ and $$...$$ in the markdown cells become math nodes, typeset by MathJax 2 below.
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3  # [text](NN_name_solutions.ipynb#exercise-1) finds its heading
myst_update_mathjax = False  # it would write a MathJax 4 configuration
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe"
mathjax2_config = {
    # Sphinx writes \( \) and \[ \] inside elements of class "math"; nothing else is TeX.
    "tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]],
                "processEscapes": False, "processEnvironments": False,
                "processClass": "math", "ignoreClass": "tex2jax_ignore|mathjax_ignore"},
}

html_theme = "sphinx_book_theme"
# Light unless the reader switches: figures are drawn on white. (Unset, the theme logs an error.)
html_context = {"default_mode": "light"}
html_static_path = ["_static"]
html_css_files = ["course.css"]
html_copy_source = False  # a page's source is its notebook, served nowhere on the site
html_show_sourcelink = False
html_last_updated_fmt = None
html_theme_options = {
    "home_page_in_toc": False,  # the site title above the table of contents links to it
    "show_navbar_depth": 1,
    "show_toc_level": 2,
    "use_download_button": False,
    "use_fullscreen_button": True,
    "footer_content_items": [],  # no author or copyright line to show
}

CHAPTER_PAGE = re.compile(r"\d\d_[\w-]+")


def add_deck_button(app, pagename, templatename, context, doctree):
    """A chapter's page (not a solutions page) gets a header button to NN_name.slides.html."""
    if CHAPTER_PAGE.fullmatch(pagename) and not pagename.endswith("_solutions"):
        context["header_buttons"].insert(0, {
            "type": "link", "url": f"{pagename}.slides.html", "label": "slides",
            "text": "Slides", "icon": "fa-solid fa-person-chalkboard",
            "tooltip": "Present this chapter as reveal.js slides",
        })


def setup(app):
    # After the theme has listed its own buttons (at priority 501).
    app.connect("html-page-context", add_deck_button, priority=600)
