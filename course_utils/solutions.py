"""Run a chapter's code from elsewhere: whole and quietly before its solutions, or only its tagged
cells (tests and tools run a chapter's own model code this way). Plumbing.

A solutions notebook starts with `run_chapter("NN")`: every code cell of chapter NN runs in the
same kernel with its output hidden, so the chapter's data, functions and trained models are at
hand, reloaded through the train-once cache (checkpoints.once) instead of trained again. Only
what an exercise changes then trains afresh.
"""

from __future__ import annotations

import ast
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

# No TensorFlow import here: the chapter's first cell imports it quietly (config.setup).
CHAPTERS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
PARAMETERS_TAG = "parameters"


class ChapterError(RuntimeError):
    """A chapter's cell failed while a solutions notebook ran it quietly."""


@dataclass(frozen=True)
class ChapterRun:
    """What running a chapter quietly did: its file, time, and models reloaded or trained."""

    path: Path
    seconds: float
    reloaded: int
    trained: int
    changed: dict = field(default_factory=dict)  # name -> (the chapter's value, the value used)

    def __str__(self) -> str:
        models = (f"{self.reloaded} trained model{'s' * (self.reloaded != 1)} reloaded, "
                  f"{self.trained} trained afresh")
        changes = "".join(f"\n  changed {name}: {before!r} -> {after!r}"
                          for name, (before, after) in self.changed.items())
        return f"Ran {self.path.name} quietly in {self.seconds:.0f} s: {models}.{changes}"


def chapter_path(chapter: str, chapters_dir: Path = CHAPTERS_DIR) -> Path:
    """The notebook of chapter "NN" (two digits). Solutions notebooks."""
    if not (isinstance(chapter, str) and len(chapter) == 2 and chapter.isdigit()):
        raise ValueError(f'chapter must be the two-digit number of a notebook, e.g. "02"; '
                         f"got {chapter!r}.")
    matches = sorted(Path(chapters_dir).glob(f"{chapter}_*.ipynb"))
    if len(matches) != 1:
        found = ", ".join(path.name for path in matches) or "none"
        raise FileNotFoundError(f"Expected one notebook {chapter}_*.ipynb in {chapters_dir}, "
                                f"found {found}.")
    return matches[0]


def _check_switch(name: str, value, allowed: tuple) -> None:
    if value is not None and not isinstance(value, allowed):
        raise TypeError(f"{name} must be None (the chapter's own setting) or "
                        f"{' or '.join(kind.__name__ for kind in allowed)}, got {value!r}.")


CHANGE_HOOK = "_solutions_change_"  # the name run_chapter gives its hook in the kernel


def _assignments(source: str, names) -> list[tuple[int, str]]:
    """(last line, name) of each top-level statement of a cell's code that assigns one of names."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []  # the cell fails when it runs, with its own error
    found = []
    for statement in tree.body:
        if isinstance(statement, ast.Assign):
            targets = statement.targets
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            targets = [statement.target]
        else:
            continue
        found += [(statement.end_lineno, target.id) for target in targets
                  if isinstance(target, ast.Name) and target.id in names]
    return found


def _with_change_hooks(source: str, names) -> str:
    """The cell's code with `NAME = hook("NAME", NAME)` right after each assignment of NAME."""
    lines = source.splitlines()
    for end, name in sorted(_assignments(source, names), reverse=True):
        lines.insert(end, f"{name} = {CHANGE_HOOK}({name!r}, {name})")
    return "\n".join(lines)


def _check_changes(changes) -> dict[str, Callable | object]:
    if changes is None:
        return {}
    if not isinstance(changes, Mapping) or not all(
            isinstance(name, str) and name.isidentifier() for name in changes):
        raise TypeError("changes maps a name the chapter assigns to its new value or to a "
                        'function of the chapter\'s value, e.g. {"EPOCHS": lambda epochs: 2 * '
                        "epochs}; got " + repr(changes))
    return dict(changes)


def run_chapter(chapter: str, mode: str | None = None, retrain: bool | None = None, *,
                changes: Mapping[str, object] | None = None, shell=None,
                chapters_dir: Path = CHAPTERS_DIR) -> ChapterRun:
    """Run chapter NN's code cells quietly in this kernel, with this notebook's switches.

    `mode` and `retrain` replace the chapter's COURSE_MODE and RETRAIN right after its
    parameters cell (None keeps the chapter's: the COURSE_MODE environment variable, or
    "default"). `changes` edits the chapter as an exercise asks: right after the chapter first
    assigns a name at the top level of a cell (`NAME = ...`), before the next line runs, the
    name gets the new value, or a function of the chapter's value applied to it; what that
    changes trains afresh, the rest reloads. The result
    says how long it took, how many models were reloaded or trained, and what was changed.
    Every solutions notebook calls it first.
    """
    import matplotlib.pyplot as plt
    import nbformat
    from IPython import get_ipython
    from IPython.utils.capture import capture_output

    _check_switch("mode", mode, (str,))
    _check_switch("retrain", retrain, (bool,))
    changes = _check_changes(changes)
    path = chapter_path(chapter, chapters_dir)
    shell = shell if shell is not None else get_ipython()
    if shell is None:
        raise RuntimeError("run_chapter runs a chapter inside a Jupyter (IPython) kernel; open "
                           "the solutions notebook in JupyterLab, or run the chapter itself.")
    cells = [cell for cell in nbformat.read(path, as_version=4).cells
             if cell.cell_type == "code"]
    # IPython's own transformation first (magics become calls), so the hooks go into Python.
    sources = [shell.transform_cell(cell.source) if changes else cell.source for cell in cells]
    assigned = {name for source in sources for _, name in _assignments(source, changes)}
    unassigned = [name for name in changes if name not in assigned]
    if unassigned:
        raise ValueError(f"{path.name} never assigns {', '.join(unassigned)} at the top level of "
                         "a cell (NAME = ...), so changes cannot change it; check the spelling.")
    started, error, failed_cell, changed = time.perf_counter(), None, 0, {}

    def change_hook(name, value):
        if name in changed:  # only the first assignment is the line an exercise edits
            return value
        change = changes[name]
        changed[name] = (value, change(value) if callable(change) else change)
        return changed[name][1]

    shell.user_ns[CHANGE_HOOK] = change_hook
    with capture_output() as captured:
        for number, (cell, source) in enumerate(zip(cells, sources, strict=True), start=1):
            if changes:
                source = _with_change_hooks(source, changes)
            result = shell.run_cell(source, silent=True, store_history=False)
            plt.close("all")  # its figures were hidden with the rest of its output
            error = result.error_before_exec or result.error_in_exec
            if error is not None:
                failed_cell = number
                break
            if PARAMETERS_TAG in cell.metadata.get("tags", []):
                if mode is not None:
                    shell.user_ns["COURSE_MODE"] = mode
                if retrain is not None:
                    shell.user_ns["RETRAIN"] = retrain
    shell.user_ns.pop(CHANGE_HOOK, None)
    if error is not None:
        raise ChapterError(
            f"{path.name} stopped in its code cell {failed_cell} of {len(cells)} with "
            f"{type(error).__name__}: {error}. Open {path.name} and run it to see where; this "
            "notebook needs it to run first.") from error
    from course_utils.checkpoints import RELOADED_LINE, TRAINED_LINE

    return ChapterRun(path=path, seconds=time.perf_counter() - started,
                      reloaded=captured.stdout.count(RELOADED_LINE),
                      trained=captured.stdout.count(TRAINED_LINE), changed=changed)


def tagged_cell_source(path: Path, tag: str, cells=None) -> str:
    """The source of a notebook's one cell tagged `tag`, else raise. run_tagged_cells, tests."""
    import nbformat

    if cells is None:  # run_tagged_cells passes the cells it read once for all its tags
        cells = nbformat.read(path, as_version=4).cells
    tagged = [cell for cell in cells if tag in cell.metadata.get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"{Path(path).name} needs exactly one cell tagged {tag!r}, has "
                         f"{len(tagged)}; tag the cell in JupyterLab's property inspector.")
    return tagged[0].source


def run_tagged_cells(path: Path, tags, namespace: Mapping[str, object] | None = None) -> dict:
    """Run a notebook's cells tagged `tags`, in that order, quietly; return their names.

    `namespace` supplies what the cells expect from earlier cells (imports, constants); keras,
    tf and ops are there already. Tests and tools/gan_speed.py run a chapter's own code this way.
    """
    import contextlib
    import io

    import keras
    import nbformat
    import tensorflow as tf
    from keras import ops

    cells = nbformat.read(path, as_version=4).cells
    names = {"keras": keras, "tf": tf, "ops": ops, **(namespace or {})}
    for tag in tags:
        source = tagged_cell_source(path, tag, cells)
        with contextlib.redirect_stdout(io.StringIO()):  # the cells' own prints are for students
            exec(compile(source, f"{Path(path).name}[{tag}]", "exec"), names)
    return names
