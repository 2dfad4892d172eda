"""tools/slide_metadata.py: heading cells are split and slide types follow the course's rules."""

import nbformat
import pytest

from tools.slide_metadata import (
    apply_slide_types,
    code_cut_points,
    main,
    problems,
    split_at_headings,
    split_code_lines,
    split_long_code_cells,
    suggested_slide_types,
)

TAKEAWAY_AND_HEADING = (
    "**Codings are small.**\n"
    "\n"
    "## The decoder\n"
    "\n"
    "It mirrors the encoder."
)


def markdown(source, cell_id):
    cell = nbformat.v4.new_markdown_cell(source)
    cell.id = cell_id
    return cell


def code(source, cell_id, tags=()):
    cell = nbformat.v4.new_code_cell(source)
    cell.id = cell_id
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def course_like_notebook():
    """The shape every course notebook has: title, run mode, plumbing, then sections."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        markdown("# 4. Convolutional autoencoder\n\nIntro text.", "c00"),
        markdown("### Run mode\nThe next cell is the only parameter.", "c01"),
        code("COURSE_MODE = None", "c02", tags=["parameters"]),
        markdown("*Plumbing you may skip:* imports, then `config.setup`.", "c03"),
        code("from course_utils import config\nrun = config.setup(COURSE_MODE)", "c04"),
        code("print(run)", "c05", tags=["nbval-check-output"]),
        markdown("## The encoder\n\nConvolutions and pooling.", "c06"),
        code("encoder = make_encoder()", "c07"),
        code("plot(encoder)", "c08"),
        markdown(TAKEAWAY_AND_HEADING, "c09"),
        code("decoder = make_decoder()", "c10"),
        markdown("The shapes come back.\n\n### A detail\n\nStrides.", "c11"),
        markdown("*Plumbing you may skip:* the benchmark collects this.", "c12"),
        code("report.record_quality(run)", "c13"),
        code("plt.imshow(picture)", "c14"),
    ]
    return notebook


def sources_and_types(notebook):
    return [(cell.source, cell.metadata["slideshow"]["slide_type"]) for cell in notebook.cells]


def test_a_cell_is_split_before_each_inner_heading_and_not_in_fenced_code():
    assert split_at_headings(TAKEAWAY_AND_HEADING) == [
        "**Codings are small.**",
        "## The decoder\n\nIt mirrors the encoder.",
    ]
    assert split_at_headings("## Already first\n\ntext") == ["## Already first\n\ntext"]
    fenced = "Run this:\n\n```\n## a comment, not a heading\n```\n\n# Part 2\nnext"
    assert split_at_headings(fenced) == [
        "Run this:\n\n```\n## a comment, not a heading\n```",
        "# Part 2\nnext",
    ]
    assert split_at_headings("#hashtag is not a heading\n####### nor this") == [
        "#hashtag is not a heading\n####### nor this"
    ]


def test_the_course_rules_give_title_sections_skipped_plumbing_and_fragments():
    notebook = course_like_notebook()
    assert apply_slide_types(notebook)
    assert sources_and_types(notebook) == [
        ("# 4. Convolutional autoencoder\n\nIntro text.", "slide"),
        ("### Run mode\nThe next cell is the only parameter.", "subslide"),
        ("COURSE_MODE = None", "-"),  # the switch stays visible, below the title slide
        ("*Plumbing you may skip:* imports, then `config.setup`.", "skip"),
        ("from course_utils import config\nrun = config.setup(COURSE_MODE)", "skip"),
        ("print(run)", "skip"),
        ("## The encoder\n\nConvolutions and pooling.", "slide"),
        ("encoder = make_encoder()", "-"),
        ("plot(encoder)", "fragment"),  # a second code cell builds the slide up
        ("**Codings are small.**", "fragment"),  # the takeaway, split off its cell
        ("## The decoder\n\nIt mirrors the encoder.", "slide"),
        ("decoder = make_decoder()", "-"),
        ("The shapes come back.", "fragment"),  # a comment under a picture
        ("### A detail\n\nStrides.", "subslide"),
        ("*Plumbing you may skip:* the benchmark collects this.", "skip"),
        ("report.record_quality(run)", "skip"),
        ("plt.imshow(picture)", "-"),  # mid-notebook plumbing covers one code cell only
    ]


def test_split_cells_get_new_unique_valid_ids_and_keep_the_original_first():
    notebook = course_like_notebook()
    notebook.cells.append(markdown("Last.\n## One\n## Two", "c09-2"))  # taken on purpose
    apply_slide_types(notebook)
    ids = [cell.id for cell in notebook.cells]
    assert len(ids) == len(set(ids))
    assert ids[9:11] == ["c09", "c09-3"]  # c09-2 is taken, so the split part skips it
    assert ids[-3:] == ["c09-2", "c09-2-2", "c09-2-3"]
    nbformat.validate(notebook)


def test_hand_set_types_are_kept_unless_reset():
    notebook = course_like_notebook()
    notebook.cells[7].metadata["slideshow"] = {"slide_type": "notes"}
    apply_slide_types(notebook)
    assert notebook.cells[7].metadata["slideshow"]["slide_type"] == "notes"
    # The cell the instructor hid no longer counts as a code cell shown before the next one.
    assert notebook.cells[8].metadata["slideshow"]["slide_type"] == "-"
    assert suggested_slide_types(notebook.cells)[7:9] == ["-", "fragment"]
    apply_slide_types(notebook, reset=True)
    assert [cell.metadata["slideshow"]["slide_type"] for cell in notebook.cells[7:9]] == [
        "-", "fragment"
    ]


def test_applying_twice_changes_nothing_the_second_time():
    notebook = course_like_notebook()
    assert apply_slide_types(notebook)
    first = nbformat.writes(notebook)
    assert not apply_slide_types(notebook)
    assert nbformat.writes(notebook) == first


def test_check_lists_missing_types_and_inner_headings():
    notebook = course_like_notebook()
    found = problems(notebook)
    assert "cell 0 has no slide type" in found
    assert "cell 9 has a heading that does not start the cell" in found
    apply_slide_types(notebook)
    assert problems(notebook) == []


@pytest.fixture
def notebook_file(tmp_path):
    path = tmp_path / "04_conv.ipynb"
    path.write_text(nbformat.writes(course_like_notebook()) + "\n", encoding="utf-8")
    return path


def test_the_command_line_checks_then_applies_in_the_clean_notebooks_format(notebook_file, capsys):
    assert main(["--check", str(notebook_file)]) == 1
    assert "needs slide metadata" in capsys.readouterr().out
    assert main([str(notebook_file)]) == 0
    text = notebook_file.read_text(encoding="utf-8")
    assert text == nbformat.writes(nbformat.reads(text, as_version=4)) + "\n"
    assert main(["--check", str(notebook_file)]) == 0


LONG_CODE = """import numpy as np

class Model:
    \"\"\"A docstring

    with a blank line inside.\"\"\"

    def first(self):
        values = [
            1,

            2,
        ]
        return values

    def second(self):
        return 2

result = Model().first()
print(result)"""


def test_code_is_cut_only_between_statements_and_best_at_top_level():
    lines = LONG_CODE.split("\n")
    points = dict(code_cut_points(lines))
    assert points[lines.index("class Model:")] == 0  # top level, after a blank line
    assert points[lines.index("    def first(self):")] == 1  # a method
    assert points[lines.index("print(result)")] == 3  # a statement, no blank line before
    assert lines.index("    with a blank line inside.\"\"\"") not in points  # in a string
    assert lines.index("            2,") not in points  # inside brackets


def non_blank(text):
    return [line for line in text.split("\n") if line.strip()]


def test_long_code_is_cut_into_even_pieces_within_the_limit_and_nothing_is_lost():
    assert split_code_lines(LONG_CODE, limit=30) == [LONG_CODE]  # short enough already
    pieces = split_code_lines(LONG_CODE, limit=14)
    assert non_blank("\n".join(pieces)) == non_blank(LONG_CODE)  # only blank lines at a cut go
    assert len(pieces) == 2 and all(len(piece.split("\n")) <= 14 for piece in pieces)
    assert pieces[1].startswith("    def first(self):")  # a method, not the list's middle
    # A tighter limit leaves no blank-line cut that keeps both pieces short: the next statement.
    assert split_code_lines(LONG_CODE, limit=12)[1].startswith("        values = [")
    # With no place to cut at all, plain cuts at even shares, still within the limit.
    flat = "\n".join(f"x{i} = [{i}," for i in range(10))
    pieces = split_code_lines(flat, limit=4)
    assert "\n".join(pieces) == flat
    assert sorted(len(piece.split("\n")) for piece in pieces) == [3, 3, 4]


def test_a_deck_shows_long_cells_in_pieces_with_outputs_on_the_last():
    notebook = nbformat.v4.new_notebook()
    long_cell = code(LONG_CODE, "long")
    long_cell.outputs = [nbformat.v4.new_output("stream", text="[1, 2]\n")]
    long_cell.metadata["slideshow"] = {"slide_type": "fragment"}
    notebook.cells = [markdown("## Title", "t"), long_cell, code("short()", "short")]
    assert split_long_code_cells(notebook, limit=14) == 1
    sources = [cell.source for cell in notebook.cells]
    assert sources[0] == "## Title" and sources[-1] == "short()"
    first, second = notebook.cells[1:3]
    assert non_blank(first.source + "\n" + second.source) == non_blank(LONG_CODE)
    assert first.outputs == [] and second.outputs == long_cell.outputs
    assert first.metadata["slideshow"]["slide_type"] == "fragment"  # the cell's own type
    assert second.metadata["slideshow"]["slide_type"] == "-"  # the rest goes with it
    assert first.id == "long" and second.id != "long"
    nbformat.validate(notebook)  # valid, unique cell ids


def test_notebooks_get_the_rise_theme_and_keep_their_own():
    notebook = course_like_notebook()
    assert any("no RISE setting theme" in problem for problem in problems(notebook))
    apply_slide_types(notebook)
    assert notebook.metadata["rise"] == {"theme": "white"}
    assert not any("RISE" in problem for problem in problems(notebook))
    chosen = course_like_notebook()
    chosen.metadata["rise"] = {"theme": "serif", "scroll": True}
    apply_slide_types(chosen)
    assert chosen.metadata["rise"] == {"theme": "serif", "scroll": True}
