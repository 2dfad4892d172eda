"""Strip outputs and execution counts from the course notebooks, so they stay reviewable source.

    python tools/clean_notebooks.py          # clean every notebook in place
    python tools/clean_notebooks.py --check  # list notebooks that need cleaning; exit 1 if any

Cells tagged `nbval-check-output` keep their output and execution count: nbval compares that
output (it proves, for example, that CI ran in smoke mode) and refuses a reference cell that
has outputs but no count.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

REPO_ROOT = Path(__file__).resolve().parent.parent
CHECKED_TAG = "nbval-check-output"
VOLATILE_CELL_METADATA = ("execution", "collapsed", "scrolled", "ExecuteTime")


def clean(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return the notebook without outputs, counts or volatile metadata (checked cells kept)."""
    for cell in notebook.cells:
        for key in VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
        if cell.cell_type != "code":
            continue
        if CHECKED_TAG in cell.metadata.get("tags", []):
            cell.execution_count = cell.execution_count or 1
            continue
        cell.outputs = []
        cell.execution_count = None
    notebook.metadata.pop("widgets", None)
    return notebook


def notebook_paths() -> list[Path]:
    """Every notebook of the course (checkpoints excluded)."""
    return sorted(
        path for path in (REPO_ROOT / "notebooks").rglob("*.ipynb")
        if ".ipynb_checkpoints" not in path.parts
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report only, change nothing")
    args = parser.parse_args(argv)
    dirty = []
    for path in notebook_paths():
        original = path.read_text(encoding="utf-8")
        cleaned = nbformat.writes(clean(nbformat.reads(original, as_version=4))) + "\n"
        if cleaned != original:
            dirty.append(path)
            if not args.check:
                path.write_text(cleaned, encoding="utf-8")
    for path in dirty:
        print(f"{'needs cleaning' if args.check else 'cleaned'}: {path.relative_to(REPO_ROOT)}")
    return 1 if (args.check and dirty) else 0


if __name__ == "__main__":
    sys.exit(main())
