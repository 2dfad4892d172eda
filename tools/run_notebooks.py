"""Execute the course notebooks headlessly in one run mode; write executed copies, HTML and PNGs.

    python tools/run_notebooks.py --mode default            # every notebook
    python tools/run_notebooks.py --mode smoke notebooks/01_pca_linear_autoencoder.ipynb
    python tools/run_notebooks.py --mode smoke --jobs 2     # two kernels at a time (make site)

Output goes to build/executed/<mode>/ (gitignored): NAME.ipynb, NAME.html and figures/NAME-*.png.
The kernel is started and TensorFlow imported before the clock starts, so the times measure the
notebook's own work. benchmark.py reuses `execute_notebook` for its table. With --jobs N, N
chapters run at once (use it for outputs, not for times): each chapter's solutions notebook
runs after it in the same worker, and a chapter that reloads published models (notebook 15)
or runs another chapter (a solutions notebook's run_chapter) starts once those have finished.
"""

from __future__ import annotations

import argparse
import base64
import multiprocessing
import os
import re
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from unittest.mock import patch

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from course_utils.config import MODES

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
SOLUTIONS_DIR = NOTEBOOKS_DIR / "solutions"
BUILD_DIR = REPO_ROOT / "build" / "executed"

# Run before the timed cells: the kernel pays for its TensorFlow import here, not in cell 1.
PREAMBLE = "from course_utils import config as _config\n_config.quiet_tensorflow()"
# ru_maxrss is the kernel process's peak resident set, in KiB on Linux.
PEAK_MEMORY_PROBE = (
    "import resource as _resource\n"
    "print(_resource.getrusage(_resource.RUSAGE_SELF).ru_maxrss)"
)


@dataclass
class NotebookRun:
    """What executing one notebook produced: the executed copy, its time and its peak memory."""

    path: Path
    mode: str
    executed: nbformat.NotebookNode | None = None
    seconds: float = float("nan")
    peak_mib: float = float("nan")
    error: str | None = None
    cell_seconds: dict[int, float] = field(default_factory=dict)
    # When each cell finished, by the wall clock (time.time()), comparable with files' times.
    cell_finished_at: dict[int, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


def list_notebooks(selected: list[str] | None = None) -> list[Path]:
    """The course notebooks in chapter order, each followed by its solutions (or those selected)."""
    if selected:
        paths = [Path(name).resolve() for name in selected]
        missing = [str(path) for path in paths if not path.is_file()]
        if missing:
            raise SystemExit(f"No such notebook: {', '.join(missing)}")
        return paths
    # By file name: NN_name.ipynb sorts before NN_name_solutions.ipynb, so a chapter runs first
    # and its solutions notebook reloads the models it trained.
    return sorted([*NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"),
                   *SOLUTIONS_DIR.glob("[0-9][0-9]_*_solutions.ipynb")],
                  key=lambda path: path.name)


def execute_notebook(path: Path, mode: str, timeout: int = 1800) -> NotebookRun:
    """Run one notebook top to bottom in a fresh kernel with COURSE_MODE set to `mode`."""
    run = NotebookRun(path=path, mode=mode)
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_code_cell(PREAMBLE))
    notebook.cells.append(nbformat.v4.new_code_cell(PEAK_MEMORY_PROBE))
    finished_at: dict[int, float] = {}
    finished_at_wall: dict[int, float] = {}

    def note_time(cell, cell_index, execute_reply):  # nbclient passes these as keywords
        finished_at[cell_index] = time.perf_counter()
        finished_at_wall[cell_index] = time.time()

    try:
        with patch.dict(os.environ, COURSE_MODE=mode):  # the kernel inherits this environment
            client = NotebookClient(
                notebook, timeout=timeout, kernel_name="python3",
                resources={"metadata": {"path": str(path.parent)}},
                on_cell_executed=note_time,
            )
            client.execute()
    except CellExecutionError as error:
        run.error = str(error).strip().splitlines()[-1] if str(error).strip() else repr(error)

    last = len(notebook.cells) - 1
    if run.ok and 0 in finished_at and last in finished_at:
        # The probe cell takes microseconds, so preamble end -> probe end is the notebook's time.
        run.seconds = finished_at[last] - finished_at[0]
        code_cells = sorted(finished_at)
        run.cell_seconds = {
            index - 1: finished_at[index] - finished_at[before]
            for before, index in zip(code_cells[:-1], code_cells[1:], strict=True) if index != last
        }
        run.cell_finished_at = {index - 1: finished_at_wall[index]
                                for index in code_cells[1:] if index != last}
        probe_text = "".join(out.get("text", "") for out in notebook.cells[last].outputs)
        run.peak_mib = int(probe_text.split()[-1]) / 1024
    notebook.cells = notebook.cells[1:last]
    run.executed = notebook
    return run


def save_outputs(run: NotebookRun, out_dir: Path, html: bool = True) -> None:
    """Write the executed notebook, its HTML export and every PNG it drew under out_dir."""
    from nbconvert import HTMLExporter

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = run.path.stem
    nbformat.write(run.executed, out_dir / f"{stem}.ipynb")
    if html:
        body, _ = HTMLExporter().from_notebook_node(run.executed)
        (out_dir / f"{stem}.html").write_text(body, encoding="utf-8")
    figures = out_dir / "figures"
    figures.mkdir(exist_ok=True)
    for old in figures.glob(f"{stem}-*.png"):
        old.unlink()
    for index, cell in enumerate(run.executed.cells):
        for number, output in enumerate(cell.get("outputs", [])):
            png = output.get("data", {}).get("image/png")
            if png:
                (figures / f"{stem}-cell{index:02d}-{number}.png").write_bytes(
                    base64.b64decode(png)
                )


RUNS_CHAPTER = re.compile(r'run_chapter\(\s*"(\d\d)"')
PUBLISHES, RELOADS_PUBLISHED = "publish_model(", "load_published_model("


def chapter_groups(paths: list[Path]) -> dict[str, tuple[list[Path], set[str]]]:
    """Per chapter number: its notebooks in order, and the chapters that must have run first."""
    groups: dict[str, list[Path]] = {}
    for path in paths:
        groups.setdefault(path.name[:2], []).append(path)
    sources = {number: "\n".join(cell.source for path in members
                                 for cell in nbformat.read(path, as_version=4).cells)
               for number, members in groups.items()}
    publishers = {number for number, text in sources.items() if PUBLISHES in text}
    plan = {}
    for number, members in groups.items():
        needs = set(RUNS_CHAPTER.findall(sources[number]))
        if RELOADS_PUBLISHED in sources[number]:
            needs |= publishers
        plan[number] = (members, (needs & set(groups)) - {number})
    return plan


def _execute_group(paths: list[Path], mode: str) -> list[NotebookRun]:
    return [execute_notebook(path, mode) for path in paths]


def execute_in_order(paths: list[Path], mode: str, jobs: int = 1, on_done=None):
    """Execute the notebooks, `jobs` chapters at a time, each after the chapters it needs."""
    plan = chapter_groups(paths)
    done: dict[str, list[NotebookRun]] = {}
    context = multiprocessing.get_context("fork")  # before any kernel starts: nothing to copy
    with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=context) as pool:
        running = {}
        while len(done) < len(plan):
            for number, (members, needs) in plan.items():
                if (number not in done and number not in running.values()
                        and needs <= set(done) and len(running) < max(1, jobs)):
                    running[pool.submit(_execute_group, members, mode)] = number
            if not running:
                waiting = sorted(set(plan) - set(done))
                raise RuntimeError(f"These chapters wait for each other: {waiting}")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                number = running.pop(future)
                done[number] = future.result()
                for run in done[number]:
                    if on_done is not None:
                        on_done(run)
    return [run for number in plan for run in done[number]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=MODES, default="default")
    parser.add_argument("--out", type=Path, default=BUILD_DIR, help="default: build/executed")
    parser.add_argument("--no-html", action="store_true", help="skip the HTML export")
    parser.add_argument("--jobs", type=int, default=1,
                        help="chapters run at once (default 1; times are then comparable)")
    parser.add_argument("notebooks", nargs="*", help="default: every numbered notebook")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs needs a whole number of at least 1, got {args.jobs}")

    def report_run(run: NotebookRun) -> None:
        save_outputs(run, args.out / args.mode, html=not args.no_html)
        status = f"{run.seconds:7.1f} s  {run.peak_mib:7.0f} MiB" if run.ok else "FAILED"
        print(f"{run.path.name:45s} {status}", flush=True)
        if not run.ok:
            print(f"    {run.error}", file=sys.stderr)

    runs = execute_in_order(list_notebooks(args.notebooks), args.mode, args.jobs, report_run)
    print(f"Executed copies in {args.out / args.mode}")
    return 1 if any(not run.ok for run in runs) else 0


if __name__ == "__main__":
    raise SystemExit(main())
