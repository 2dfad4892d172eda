"""Solutions notebooks: run_chapter's behaviour, and every exercise solved in code or answered."""

import copy
import re
from pathlib import Path

import matplotlib.pyplot as plt
import nbformat
import pytest
from IPython.core.interactiveshell import InteractiveShell

from course_utils import solutions
from tools.clean_notebooks import CHECKED_TAG, clean

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
CHAPTERS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = sorted((NOTEBOOKS_DIR / "solutions").glob("[0-9][0-9]_*_solutions.ipynb"))
SMOKE_LINE = "Run mode: smoke ("
EXERCISE_ITEM = re.compile(r"^(\d+)\. (.*?)(?=^\d+\. |\n\n|\Z)", re.MULTILINE | re.DOTALL)
TRAINING_NAME = re.compile(r'checkpoints\.(?:once|compute_once)\(\s*run,\s*"(\d\d)",\s*f?"([^"]+)"')


# --- run_chapter ---------------------------------------------------------------------------------

def _write_chapter(folder: Path, name: str, sources: list[str]) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("# 7. A chapter")]
    for source in sources:
        cell = nbformat.v4.new_code_cell(source)
        if source.startswith("COURSE_MODE = None"):
            cell.metadata["tags"] = ["parameters"]
        notebook.cells.append(cell)
    path = folder / name
    nbformat.write(notebook, path)
    return path


@pytest.fixture(scope="module")
def shell():
    return InteractiveShell.instance()


@pytest.fixture
def chapter_dir(tmp_path):
    _write_chapter(tmp_path, "07_chapter.ipynb", [
        "COURSE_MODE = None\nRETRAIN = None",
        "seen_mode, seen_retrain = COURSE_MODE, RETRAIN\nanswer = 41 + 1\n"
        "print('a line the reader of the solutions should not see')",
        "print('Reloaded the trained a in 0.1 s'); print('Reloaded the trained b in 0.2 s')\n"
        "print('Trained c in 3 s and saved it; the next run reloads it')",
        "import matplotlib.pyplot as plt\nfigure = plt.figure()\nplt.plot([1, 2])",
    ])
    return tmp_path


def test_run_chapter_leaves_the_chapters_names_and_shows_none_of_its_output(
        shell, chapter_dir, capsys):
    plt.close("all")
    result = solutions.run_chapter("07", shell=shell, chapters_dir=chapter_dir)
    assert shell.user_ns["answer"] == 42
    assert capsys.readouterr().out == ""
    assert plt.get_fignums() == []  # its figure was closed, not left to show later
    assert (result.reloaded, result.trained) == (2, 1)
    assert result.path.name == "07_chapter.ipynb" and result.seconds >= 0
    assert re.fullmatch(r"Ran 07_chapter\.ipynb quietly in \d+ s: 2 trained models reloaded, "
                        r"1 trained afresh\.", str(result))


def test_run_chapter_sets_the_switches_right_after_the_parameters_cell(shell, chapter_dir):
    solutions.run_chapter("07", mode="smoke", retrain=True, shell=shell, chapters_dir=chapter_dir)
    assert (shell.user_ns["seen_mode"], shell.user_ns["seen_retrain"]) == ("smoke", True)
    solutions.run_chapter("07", shell=shell, chapters_dir=chapter_dir)
    assert (shell.user_ns["seen_mode"], shell.user_ns["seen_retrain"]) == (None, None)


def test_changes_apply_right_after_the_cell_that_assigns_the_name(shell, tmp_path):
    _write_chapter(tmp_path, "04_steps.ipynb", [
        "EPOCHS = 3\nSIZES = {4: 10,\n         8: 20}\nsame_cell = SIZES[8]",
        "trained_for = EPOCHS * 2", "EPOCHS_TOO = EPOCHS\nlast = SIZES[8]\nEPOCHS = 100"])
    result = solutions.run_chapter("04", shell=shell, chapters_dir=tmp_path, changes={
        "EPOCHS": lambda epochs: 2 * epochs, "SIZES": {4: 10, 8: 40}})
    assert (shell.user_ns["trained_for"], shell.user_ns["last"]) == (12, 40)
    assert shell.user_ns["same_cell"] == 40  # the next line of the same cell sees the change
    assert shell.user_ns["EPOCHS"] == 100  # a later assignment is the chapter's own again
    assert result.changed == {"EPOCHS": (3, 6), "SIZES": ({4: 10, 8: 20}, {4: 10, 8: 40})}
    assert str(result).endswith("changed EPOCHS: 3 -> 6\n  changed SIZES: {4: 10, 8: 20} -> "
                                "{4: 10, 8: 40}")
    assert "EPOCHS_TOO" not in result.changed  # a longer name that starts the same is not it


def test_changes_reach_cells_with_magics(shell, tmp_path):
    _write_chapter(tmp_path, "04_magic.ipynb", ["names = %who_ls\nRATE = 0.1\nused = RATE"])
    result = solutions.run_chapter("04", shell=shell, chapters_dir=tmp_path,
                                   changes={"RATE": 0.5})
    assert shell.user_ns["used"] == 0.5 and result.changed == {"RATE": (0.1, 0.5)}


def test_a_change_to_a_name_the_chapter_never_assigns_is_refused_before_running(
        shell, tmp_path):
    _write_chapter(tmp_path, "04_steps.ipynb", ["EPOCHS = 3", "reached = True",
                                                "if EPOCHS == 3:\n    BATCH = 32",
                                                "%%time\nTIMED = 1"])
    shell.user_ns.pop("reached", None)
    for misspelt in ("EPOCH", "BATCH", "reached_later", "TIMED"):
        with pytest.raises(ValueError, match=f"never assigns {misspelt} at the top level"):
            solutions.run_chapter("04", shell=shell, chapters_dir=tmp_path,
                                  changes={misspelt: 1})
    assert "reached" not in shell.user_ns
    with pytest.raises(TypeError, match="changes maps a name"):
        solutions.run_chapter("04", shell=shell, chapters_dir=tmp_path, changes=[("EPOCHS", 1)])


def test_a_failing_chapter_cell_names_the_cell_and_the_error(shell, tmp_path):
    _write_chapter(tmp_path, "05_broken.ipynb", ["x = 1", "y = 1 / 0", "never = True"])
    shell.user_ns.pop("never", None)
    with pytest.raises(solutions.ChapterError,
                       match=r"05_broken\.ipynb stopped in its code cell 2 of 3 with "
                             r"ZeroDivisionError") as raised:
        solutions.run_chapter("05", shell=shell, chapters_dir=tmp_path)
    assert isinstance(raised.value.__cause__, ZeroDivisionError)
    assert "never" not in shell.user_ns  # it stopped there


def test_a_syntax_error_in_a_chapter_is_reported_too(shell, tmp_path):
    _write_chapter(tmp_path, "05_broken.ipynb", ["def broken(:\n    pass"])
    with pytest.raises(solutions.ChapterError, match="code cell 1 of 1 with SyntaxError"):
        solutions.run_chapter("05", shell=shell, chapters_dir=tmp_path)


@pytest.mark.parametrize("chapter", ["2", "002", 2, "ab", None])
def test_a_chapter_is_named_by_two_digits(chapter, tmp_path):
    with pytest.raises(ValueError, match="two-digit number"):
        solutions.chapter_path(chapter, tmp_path)


def test_a_missing_or_ambiguous_chapter_says_what_it_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"one notebook 04_\*\.ipynb .* found none"):
        solutions.chapter_path("04", tmp_path)
    for name in ("04_a.ipynb", "04_b.ipynb"):
        _write_chapter(tmp_path, name, ["x = 1"])
    with pytest.raises(FileNotFoundError, match="found 04_a.ipynb, 04_b.ipynb"):
        solutions.chapter_path("04", tmp_path)


def test_the_course_chapters_are_found():
    assert solutions.chapter_path("02").name == "02_stacked_autoencoder.ipynb"


@pytest.mark.parametrize(("switches", "message"), [
    ({"mode": 1}, "mode must be None"), ({"retrain": "yes"}, "retrain must be None")])
def test_switches_of_the_wrong_type_are_refused(switches, message, shell, chapter_dir):
    with pytest.raises(TypeError, match=message):
        solutions.run_chapter("07", shell=shell, chapters_dir=chapter_dir, **switches)


def test_outside_a_kernel_run_chapter_says_where_it_works(chapter_dir, monkeypatch):
    import IPython

    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    with pytest.raises(RuntimeError, match="inside a Jupyter"):
        solutions.run_chapter("07", chapters_dir=chapter_dir)


# --- The course's exercises and their solutions --------------------------------------------------

def _read(path):
    return nbformat.read(path, as_version=4)


def _exercises(chapter: Path) -> dict[int, str]:
    """The numbered exercises of a chapter's `## Exercises` cell, by number."""
    [cell] = [cell for cell in _read(chapter).cells
              if cell.cell_type == "markdown" and cell.source.startswith("## Exercises")]
    questions = cell.source.split("<details>")[0]
    return {int(number): text for number, text in EXERCISE_ITEM.findall(questions)}


def _solutions_of(chapter: Path) -> Path:
    return NOTEBOOKS_DIR / "solutions" / f"{chapter.stem}_solutions.ipynb"


def test_every_chapter_has_a_solutions_notebook():
    assert [path.name for path in SOLUTIONS] == [
        _solutions_of(chapter).name for chapter in CHAPTERS]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda path: path.name[:2])
def test_every_exercise_links_its_solution_or_has_a_written_answer(chapter):
    exercises = _exercises(chapter)
    assert exercises and sorted(exercises) == list(range(1, len(exercises) + 1))
    link = f"solutions/{chapter.stem}_solutions.ipynb"
    exercise_cell = next(cell.source for cell in _read(chapter).cells
                         if cell.source.startswith("## Exercises"))
    written = [number for number, text in exercises.items()
               if text.rstrip().endswith("(written answer below)")]
    solved = [number for number, text in exercises.items()
              if text.rstrip().endswith(f"([solution]({link}#Exercise-{number}))")]
    assert sorted(written + solved) == sorted(exercises), (
        f"{chapter.name}: each exercise ends with its solution link or '(written answer below)'")
    answers = exercise_cell.split("<details>")[1] if "<details>" in exercise_cell else ""
    assert ("Written answer" in answers) == bool(written)
    for number in written:
        assert re.search(rf"^{number}\. ", answers, re.MULTILINE), (
            f"{chapter.name}: exercise {number}'s written answer is missing")
    for number in solved:
        assert not re.search(rf"^{number}\. ", answers, re.MULTILINE), (
            f"{chapter.name}: code exercise {number} kept a prose solution")
    headings = re.findall(r"^## Exercise (\d+)\s*$", "\n".join(
        cell.source for cell in _read(_solutions_of(chapter)).cells
        if cell.cell_type == "markdown"), re.MULTILINE)
    # In the exercises' order, or another the solutions notebook explains (15: one runs last).
    assert sorted(int(number) for number in headings) == solved


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda path: path.name[:2])
def test_a_solutions_notebook_runs_its_chapter_with_the_same_switches(path):
    number = path.name[:2]
    chapter = next(NOTEBOOKS_DIR.glob(f"{number}_*.ipynb"))
    cells = _read(path).cells
    assert cells[0].source.startswith(f"# Solutions to notebook {int(number)}: ")
    assert f"(../{chapter.name})" in cells[0].source  # the way back to the exercises
    assert clean(copy.deepcopy(_read(path))) == _read(path), "run `make clean-notebooks`"
    [parameters] = [cell for cell in cells if "parameters" in cell.metadata.get("tags", [])]
    [chapter_parameters] = [cell for cell in _read(chapter).cells
                            if "parameters" in cell.metadata.get("tags", [])]
    assert parameters.source == chapter_parameters.source
    retrain = ", retrain=RETRAIN" if "RETRAIN" in parameters.source else ""
    calls = [cell for cell in cells if cell.cell_type == "code"
             and f'solutions.run_chapter("{number}", mode=COURSE_MODE{retrain})' in cell.source]
    assert len(calls) == 1
    checked = [cell for cell in cells if CHECKED_TAG in cell.metadata.get("tags", [])]
    assert len(checked) == 1
    assert "".join(output.get("text", "") for output in checked[0].outputs).startswith(SMOKE_LINE)
    assert cells.index(parameters) < cells.index(calls[0]) < cells.index(checked[0])
    assert any(cell.source.startswith("## Summary") for cell in cells)


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda path: path.name[:2])
def test_solutions_train_under_names_of_their_own(path):
    number = path.name[:2]
    chapter = next(NOTEBOOKS_DIR.glob(f"{number}_*.ipynb"))

    def names(notebook):
        code = "\n".join(cell.source for cell in _read(notebook).cells
                         if cell.cell_type == "code")
        found = TRAINING_NAME.findall(code)
        assert all(owner == number for owner, _ in found), f"{notebook.name} saves elsewhere"
        return {name for _, name in found}

    assert not names(path) & names(chapter), "a solution would overwrite a chapter's model"


def test_tagged_cells_run_quietly_in_the_order_given_and_must_exist_exactly_once(tmp_path, capsys):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("y = x * 10", metadata={"tags": ["b"]}),
                      nbformat.v4.new_code_cell("x = start + 1\nprint('for students')",
                                                metadata={"tags": ["a"]}),
                      nbformat.v4.new_code_cell("z = 0", metadata={"tags": ["twice"]}),
                      nbformat.v4.new_code_cell("z = 1", metadata={"tags": ["twice"]})]
    path = tmp_path / "tagged.ipynb"
    nbformat.write(notebook, path)
    names = solutions.run_tagged_cells(path, ["a", "b"], {"start": 1})
    assert (names["x"], names["y"]) == (2, 20)  # "a" ran first, although its cell comes second
    assert {"keras", "tf", "ops"} <= set(names)
    assert capsys.readouterr().out == ""
    assert solutions.tagged_cell_source(path, "b") == "y = x * 10"
    with pytest.raises(ValueError, match="exactly one cell tagged 'twice', has 2"):
        solutions.run_tagged_cells(path, ["a", "twice"], {"start": 1})
    with pytest.raises(ValueError, match="tagged 'c', has 0"):
        solutions.tagged_cell_source(path, "c")
