"""Give every notebook cell a slide type, so each notebook also presents as a slide deck.

    python tools/slide_metadata.py            # fill in missing slide types in notebooks/*.ipynb
    python tools/slide_metadata.py --check    # list notebooks that need it; exit 1 if any
    python tools/slide_metadata.py --reset    # recompute every slide type, hand-set ones too
    python tools/slide_metadata.py FILE ...   # only these notebooks

Slide types live in cell metadata `slideshow.slide_type`, read by the JupyterLab slideshow
extension (jupyterlab-rise) and by `jupyter nbconvert --to slides`. The rules: the title cell
and every `# `/`## ` heading open a slide, a `### ` heading a subslide (so "Run mode" and its
parameters cell sit below the title slide, out of a talk's way but one key away); the set-up
plumbing is skipped; a bold takeaway, a comment under a picture and a second code cell in a row
appear as fragments. A markdown cell that ends one section and starts the next heading is split
at the heading first, so that every heading starts its own cell. The notebook's `metadata.rise`
gets RISE_SETTINGS (the slideshow's theme).

For the built decks only, `split_long_code_cells` cuts a code cell longer than a slide holds into
consecutive cells (between statements where it can; the outputs stay with the last piece); the
deck's own script then cuts each slide that is still taller than the screen (tools/site_templates/
course_reveal). The notebooks themselves keep their cells whole.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

REPO_ROOT = Path(__file__).resolve().parent.parent
SLIDE, SUBSLIDE, FRAGMENT, SKIP, NOTES = "slide", "subslide", "fragment", "skip", "notes"
CONTINUE = "-"  # stays on the current slide, shown with it
HEADING = re.compile(r"^(#{1,3}) \S")
FENCE = re.compile(r"^\s*(```|~~~)")
CELL_ID = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")


def heading_level(source: str) -> int | None:
    """1, 2 or 3 when the text starts with a `#`, `##` or `###` heading line; None otherwise."""
    match = HEADING.match(source)
    return len(match.group(1)) if match else None


def heading_lines(source: str) -> list[int]:
    """Indices of the heading lines (levels 1-3) of a markdown text, outside fenced code."""
    found, in_fence = [], False
    for index, line in enumerate(source.split("\n")):
        if FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and HEADING.match(line):
            found.append(index)
    return found


def split_at_headings(source: str) -> list[str]:
    """The markdown text cut before every heading that is not its first line (blank edges off)."""
    lines = source.split("\n")
    cuts = [index for index in heading_lines(source) if index > 0]
    pieces = []
    for start, end in zip([0, *cuts], [*cuts, len(lines)], strict=True):
        piece = "\n".join(lines[start:end]).strip("\n")
        if piece.strip():
            pieces.append(piece)
    return pieces or [source]


def _new_cell_id(base: str, taken: set[str]) -> str:
    """A cell id derived from `base`, valid for nbformat 4.5 and not yet in `taken`."""
    number = 2
    while True:
        suffix = f"-{number}"
        candidate = base[: 64 - len(suffix)] + suffix
        if CELL_ID.match(candidate) and candidate not in taken:
            return candidate
        number += 1


def split_heading_cells(notebook: nbformat.NotebookNode) -> int:
    """Split markdown cells at inner headings, in place; return how many cells were added."""
    taken = {cell.get("id") for cell in notebook.cells if cell.get("id")}
    cells, added = [], 0
    for cell in notebook.cells:
        pieces = split_at_headings(cell.source) if cell.cell_type == "markdown" else [cell.source]
        if len(pieces) == 1:
            cells.append(cell)
            continue
        cell.source = pieces[0]
        cells.append(cell)
        for piece in pieces[1:]:
            twin = copy.deepcopy(cell)
            twin.source = piece
            twin.metadata.pop("slideshow", None)  # a hand-set type belongs to the first piece
            twin.pop("attachments", None)
            if "id" in cell:
                twin.id = _new_cell_id(cell.id, taken)
                taken.add(twin.id)
            cells.append(twin)
            added += 1
    notebook.cells = cells
    return added


# About 35 lines of 15 px code fill the 700 px slide; 30 leave room for a label and margins.
SLIDE_CODE_LINES = 30


def code_cut_points(lines: list[str]) -> list[tuple[int, int]]:
    """(line index, rank) where code may be cut for a slide; the lower the rank, the better.

    After a blank line: 0 before a top-level statement, 1 before an indented one (a method), 2
    before a deeper one; 3 before any other statement. Never inside brackets or a string.
    """
    points, depth, in_string = [], 0, None
    for index, line in enumerate(lines):
        stripped = line.strip()
        continued = index > 0 and lines[index - 1].rstrip().endswith("\\")
        if index > 0 and depth == 0 and in_string is None and stripped and not continued:
            indent = len(line) - len(line.lstrip())
            after_blank = not lines[index - 1].strip()
            points.append((index, (0 if indent == 0 else 1 if indent <= 4 else 2)
                           if after_blank else 3))
        text = line.split("#", 1)[0] if in_string is None else line
        for quote in ('"""', "'''"):
            if text.count(quote) % 2 == 1 and in_string in (None, quote):
                in_string = None if in_string == quote else quote
        if in_string is None:
            depth = max(0, depth + sum(text.count(c) for c in "([{")
                        - sum(text.count(c) for c in ")]}"))
    return points


def split_code_lines(source: str, limit: int = SLIDE_CODE_LINES) -> list[str]:
    """The code cut into as few pieces of at most `limit` lines as it needs, of even length.

    Each cut is the best-ranked cut point (see code_cut_points) that keeps every piece within
    the limit, the nearest to an even share; with none, a plain cut at the even share.
    """
    lines = source.split("\n")
    if len(lines) <= limit:
        return [source]
    points = code_cut_points(lines)
    pieces, start = [], 0
    while len(lines) - start > limit:
        left = -(-(len(lines) - start) // limit)  # pieces still to make, this one included
        share = start + round((len(lines) - start) / left)
        lowest = len(lines) - limit * (left - 1)  # the rest must still fit in left - 1 pieces
        window = [(rank, abs(index - share), index) for index, rank in points
                  if max(start + 1, lowest) <= index <= start + limit]
        end = min(window)[2] if window else share
        pieces.append("\n".join(lines[start:end]).rstrip("\n"))
        start = end
    pieces.append("\n".join(lines[start:]))
    return pieces


def split_long_code_cells(notebook: nbformat.NotebookNode,
                          limit: int = SLIDE_CODE_LINES) -> int:
    """For a deck: cut code cells longer than `limit` lines, in place; return the cells added."""
    taken = {cell.get("id") for cell in notebook.cells if cell.get("id")}
    cells, added = [], 0
    for cell in notebook.cells:
        pieces = (split_code_lines(cell.source, limit) if cell.cell_type == "code"
                  else [cell.source])
        if len(pieces) == 1:
            cells.append(cell)
            continue
        for number, piece in enumerate(pieces):
            part = copy.deepcopy(cell)
            part.source = piece
            last = number == len(pieces) - 1
            if not last:
                part.outputs = []
            if number > 0:
                part.metadata.setdefault("slideshow", {})["slide_type"] = CONTINUE
                if "id" in cell:
                    part.id = _new_cell_id(cell.id, taken)
                    taken.add(part.id)
            cells.append(part)
        added += len(pieces) - 1
    notebook.cells = cells
    return added


def _is_plumbing_note(cell) -> bool:
    """The italic "Plumbing you may skip" remark that precedes set-up code."""
    text = cell.source.lstrip().lower()
    return cell.cell_type == "markdown" and text.lstrip("*_").startswith("plumbing")


def suggested_slide_types(cells, keep_existing: bool = False) -> list[str]:
    """The slide type each cell gets under the course's rules; keep_existing: set ones stay."""
    types: list[str] = []
    before_first_section = True  # the title slide's set-up part, before the first `## ` heading
    skipping_plumbing = False
    previous_visible = None  # the type of the last cell shown on the current slide
    building_up = False  # the current slide has shown a fragment
    for index, cell in enumerate(cells):
        level = heading_level(cell.source) if cell.cell_type == "markdown" else None
        if level in (1, 2) and index > 0:
            before_first_section = False
        if index == 0:
            kind = SLIDE
        elif level is not None:
            kind = SUBSLIDE if level == 3 else SLIDE
            skipping_plumbing = False
        elif _is_plumbing_note(cell):
            kind = SKIP
            skipping_plumbing = True
        elif cell.cell_type == "code" and skipping_plumbing:
            kind = SKIP
            # Mid-notebook plumbing covers the one code cell after it; later cells may draw.
            skipping_plumbing = before_first_section
        elif cell.cell_type == "code":
            skipping_plumbing = False
            kind = FRAGMENT if previous_visible == "code" or building_up else CONTINUE
        else:
            skipping_plumbing = False
            takeaway = cell.source.lstrip().startswith("**")
            kind = FRAGMENT if takeaway or previous_visible == "code" or building_up else CONTINUE
        if keep_existing and slide_type(cell) is not None:
            kind = slide_type(cell)  # a hand-set type also shapes the cells after it
        if kind not in (SKIP, NOTES):
            previous_visible = cell.cell_type
        # Once a slide builds up, what follows waits its turn too, or it would show first.
        building_up = kind == FRAGMENT or (building_up and kind not in (SLIDE, SUBSLIDE))
        types.append(kind)
    return types


def slide_type(cell) -> str | None:
    """The cell's slide type, or None when it has none."""
    return cell.metadata.get("slideshow", {}).get("slide_type")


# The notebook's own RISE settings (JupyterLab's slideshow reads `metadata.rise`): reveal.js'
# "white" theme, as in the built decks; RISE's default ("simple") loads its fonts from Google.
RISE_SETTINGS = {"theme": "white"}


def apply_slide_types(notebook: nbformat.NotebookNode, reset: bool = False) -> bool:
    """Split heading cells, fill in missing slide types (all with reset) and the RISE settings;
    True if anything changed."""
    before = nbformat.writes(notebook)
    rise = notebook.metadata.setdefault("rise", {})
    for key, value in RISE_SETTINGS.items():
        rise.setdefault(key, value)
    split_heading_cells(notebook)
    kinds = suggested_slide_types(notebook.cells, keep_existing=not reset)
    for cell, kind in zip(notebook.cells, kinds, strict=True):
        cell.metadata.setdefault("slideshow", {})["slide_type"] = kind
    return nbformat.writes(notebook) != before


def problems(notebook: nbformat.NotebookNode) -> list[str]:
    """What --check reports: cells without a slide type and headings not at a cell's start."""
    found = []
    missing = [key for key in RISE_SETTINGS if key not in notebook.metadata.get("rise", {})]
    if missing:
        found.append(f"no RISE setting {', '.join(missing)} in the notebook's metadata")
    for index, cell in enumerate(notebook.cells):
        if slide_type(cell) is None:
            found.append(f"cell {index} has no slide type")
        if cell.cell_type == "markdown" and any(line > 0 for line in heading_lines(cell.source)):
            found.append(f"cell {index} has a heading that does not start the cell")
    return found


def notebook_paths(selected: list[str]) -> list[Path]:
    """The selected notebooks, or every numbered course notebook."""
    if selected:
        return [Path(name).resolve() for name in selected]
    return sorted([*(REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"),
                   *(REPO_ROOT / "notebooks" / "solutions").glob("[0-9][0-9]_*.ipynb")])


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report only, change nothing")
    parser.add_argument("--reset", action="store_true", help="also replace hand-set slide types")
    parser.add_argument("notebooks", nargs="*", help="default: notebooks/[0-9][0-9]_*.ipynb")
    args = parser.parse_args(argv)
    failing = 0
    for path in notebook_paths(args.notebooks):
        original = path.read_text(encoding="utf-8")
        notebook = nbformat.reads(original, as_version=4)
        if args.check:
            found = problems(notebook)
            if found:
                failing += 1
                print(f"needs slide metadata: {_shown(path)} ({'; '.join(found[:3])}"
                      f"{'; ...' if len(found) > 3 else ''})")
            continue
        apply_slide_types(notebook, reset=args.reset)
        # The same writer as clean_notebooks.py, so `make lint` sees no formatting change.
        updated = nbformat.writes(notebook) + "\n"
        if updated != original:
            path.write_text(updated, encoding="utf-8")
            print(f"slide types set: {_shown(path)}")
    if failing:
        print("Fix: python tools/slide_metadata.py (fills in missing types, keeps hand-set ones)")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
