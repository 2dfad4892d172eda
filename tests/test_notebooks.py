"""The notebooks as source: clean, in order, each with the parameters cell and the smoke check."""

import copy
import os
import re

import nbformat
import pytest

from tools.clean_notebooks import CHECKED_TAG, clean, notebook_paths

# The chapters; their solutions notebooks (notebooks/solutions/) are checked in test_solutions.py.
NOTEBOOKS = [path for path in notebook_paths()
             if re.match(r"\d\d_", path.name) and path.parent.name == "notebooks"]
SMOKE_LINE = "Run mode: smoke ("
# How a notebook trains a model once and reloads it later (checkpoints.once, formerly train_once).
TRAINS_ONCE = re.compile(r"\bcheckpoints\.(?:once|train_once)\(")


def _read(path):
    return nbformat.read(path, as_version=4)


def test_notebooks_are_numbered_from_zero_without_gaps():
    numbers = [int(path.name[:2]) for path in NOTEBOOKS]
    assert numbers == list(range(len(numbers)))
    assert len(numbers) >= 2


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_is_committed_clean(path):
    notebook = _read(path)
    assert clean(copy.deepcopy(notebook)) == notebook, (
        f"{path.name} has outputs or execution counts: run `make clean-notebooks`"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_has_one_visible_mode_switch_and_the_smoke_check(path):
    cells = _read(path).cells
    parameters = [cell for cell in cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(parameters) == 1
    switches = parameters[0].source.strip().splitlines()
    assert re.fullmatch(r'COURSE_MODE = None\s*#.*', switches[0])
    # Both ways round, so that a renamed training call cannot make this check silently skip.
    trains = any(TRAINS_ONCE.search(cell.source) for cell in cells if cell.cell_type == "code")
    has_retrain = len(switches) == 2 and bool(re.fullmatch(r"RETRAIN = None\s*#.*", switches[1]))
    assert has_retrain is trains, (
        f"{path.name}: a RETRAIN switch exactly when it trains with checkpoints ({trains})")
    assert len(switches) == 1 + trains
    if trains:
        assert any("config.setup(COURSE_MODE, retrain=RETRAIN)" in cell.source for cell in cells)
    checked = [cell for cell in cells if CHECKED_TAG in cell.metadata.get("tags", [])]
    assert len(checked) == 1
    stored = "".join(output.get("text", "") for output in checked[0].outputs)
    assert stored.startswith(SMOKE_LINE)
    assert checked[0].execution_count is not None
    assert cells.index(parameters[0]) < cells.index(checked[0])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_has_a_title_a_summary_and_exercises(path):
    markdown = "\n".join(cell.source for cell in _read(path).cells if cell.cell_type == "markdown")
    assert markdown.startswith(f"# {int(path.name[:2])}. ")
    assert "## Summary" in markdown
    assert "## Exercises" in markdown  # each exercise's solution: tests/test_solutions.py


def test_ci_runs_in_smoke_mode():
    # CI sets CI=true; the test command must then have put every notebook in smoke mode. The
    # checked cell in each notebook proves the kernels saw it too (nbval compares its output).
    if not os.environ.get("CI"):
        pytest.skip("only meaningful under CI (CI is not set)")
    assert os.environ.get("COURSE_MODE") == "smoke"


def test_links_between_notebooks_point_to_existing_files():
    for path in notebook_paths():
        for cell in _read(path).cells:
            if cell.cell_type != "markdown":
                continue
            for target in re.findall(r"\]\(([^)#\s]+\.ipynb)", cell.source):
                assert (path.parent / target).is_file(), f"{path.name} links to missing {target}"
