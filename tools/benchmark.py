"""Benchmark the notebooks: wall time and peak memory of each, per run mode, in one table.

    python tools/benchmark.py                       # smoke and default, every notebook
    python tools/benchmark.py --modes smoke         # one mode
    python tools/benchmark.py notebooks/01_pca_linear_autoencoder.ipynb --modes default
    python tools/benchmark.py --save                # keep the executed copies to look at
    python tools/benchmark.py --parts gan-speed     # only notebook 9's GAN speed comparison
    python tools/benchmark.py --parts train-once --modes default  # a training run, then a reload
    python tools/benchmark.py --parts hash-search   # notebook 13: Hamming vs pixel search
    python tools/benchmark.py --parts diffusion-sampling  # notebook 14: 1,000 images per sampler

Times exclude kernel start and the TensorFlow import (see run_notebooks.py). The table is
printed as Markdown and also written to build/benchmark/notebooks.md, with a plot of the times
(notebooks.png) and the quality figures the notebooks recorded during this run
(`report.record_quality`: PCA angle, reconstruction accuracy, FID, coverage, AUC...). The
solutions notebooks run after their chapters; build/benchmark/solutions.md times each exercise's
solution (its cells, and the quiet run of the chapter before them) and counts the claims it
checked and how many held. The GAN
training-speed comparison (gan_speed.py: the compiled train_step against the textbook
train_on_batch loop, side by side) goes to build/benchmark/gan_speed.md.

The train-once part runs every notebook twice against an empty model folder: the first run
trains and saves (checkpoints.once(...).fit), the second reloads. Only the judge classifier, shared
plumbing trained once per machine, is copied in beforehand, so notebook 9's first run does not
include it. The trainings are counted from the entries each run saved in that folder and their
manifests (checkpoints.saved_entries), not from printed text; see format_train_once_table.
Table: build/benchmark/train_once_<mode>.md.

The hash-search part times notebook 13's retrieval side by side: finding the 10 nearest of the
55,000 training images for each of 100 test images by Hamming distance between 16-bit hashes
(PCA signs: the timing does not depend on how the bits were learned) and by Euclidean distance
between pixels, one query at a time and all queries at once. Table: build/benchmark/hash_search.md.

The diffusion-sampling part reloads the four generators notebook 14 saved for each mode in
--modes (run it in that mode first) and times 1,000 images from each, side by side, best of
two rounds: DDIM, DDPM-style, guided DDIM and flow matching. Table:
build/benchmark/diffusion_sampling.md. Notebook 14's training times are in the quality table.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from unittest.mock import patch

import numpy as np

from course_utils import checkpoints, report
from tools.gan_speed import format_gan_speed, measure_gan_speed
from tools.run_notebooks import (
    BUILD_DIR,
    MODES,
    REPO_ROOT,
    NotebookRun,
    execute_notebook,
    list_notebooks,
    save_outputs,
)

REPORT_DIR = REPO_ROOT / "build" / "benchmark"
QUALITY_DIR = REPORT_DIR / "quality"
PARTS = ("notebooks", "gan-speed", "train-once", "hash-search", "diffusion-sampling")
DIFFUSION_GENERATORS = ("diffusion_ddim_generator", "diffusion_ddpm_generator",
                        "diffusion_guided_generator", "flow_matching_generator")
TRAIN_ONCE_DIR = REPORT_DIR / "train_once_models"


def format_table(runs) -> str:
    """A Markdown table: one row per notebook, a time and a memory column per mode."""
    modes = list(dict.fromkeys(run.mode for run in runs))
    by_key = {(run.path.name, run.mode): run for run in runs}
    names = list(dict.fromkeys(run.path.name for run in runs))
    header = "| notebook | " + " | ".join(f"{m} time (s) | {m} peak (MiB)" for m in modes) + " |"
    rule = "|---|" + "---:|---:|" * len(modes)
    rows = []
    for name in names:
        cells = []
        for mode in modes:
            run = by_key.get((name, mode))
            if run is None:
                cells += ["", ""]
            elif not run.ok:
                cells += ["FAILED", ""]
            else:
                cells += [f"{run.seconds:.1f}", f"{run.peak_mib:.0f}"]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join([header, rule, *rows])


def format_quality_table(quality_by_mode) -> str:
    """A Markdown table: one row per recorded figure, one column per mode."""
    modes = list(quality_by_mode)
    keys = sorted({(notebook, name) for figures in quality_by_mode.values()
                   for notebook, named in figures.items() for name in named})
    if not keys:
        return "(no quality figures were recorded)"
    rows = [f"| notebook | figure | {' | '.join(modes)} |", "|---|---|" + "---:|" * len(modes)]
    for notebook, name in keys:
        values = [quality_by_mode[mode].get(notebook, {}).get(name) for mode in modes]
        cells = ["" if value is None else f"{value:.4g}" for value in values]
        rows.append(f"| {notebook} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


EXERCISE_HEADING = re.compile(r"^## Exercise (\d+)\s*$", re.MULTILINE)
CHAPTER_PART = "running the chapter quietly"
CLAIM_LINES = ("Checked in this run: ", "In this run, this did not hold: ")


def exercise_parts(run) -> dict[str, dict[str, float]]:
    """A solutions notebook's time and claims per part: the chapter's quiet run, each exercise."""
    parts: dict[str, dict[str, float]] = {}
    part = CHAPTER_PART
    for index, cell in enumerate(run.executed.cells if run.executed is not None else []):
        if cell.cell_type == "markdown":
            heading = EXERCISE_HEADING.search(cell.source)
            if heading:
                part = f"exercise {heading.group(1)}"
            continue
        entry = parts.setdefault(part, {"seconds": 0.0, "claims": 0, "held": 0})
        entry["seconds"] += run.cell_seconds.get(index, 0.0)
        for line in "".join(_printed_texts(cell)).splitlines():
            entry["claims"] += line.startswith(CLAIM_LINES)
            entry["held"] += line.startswith(CLAIM_LINES[0])
    return parts


def format_exercise_table(runs) -> str:
    """A Markdown table: per solutions notebook and part, seconds and claims held, per mode."""
    solved = [run for run in runs if run.path.stem.endswith("_solutions")]
    modes = list(dict.fromkeys(run.mode for run in solved))
    if not solved:
        return "(no solutions notebook was run)"
    by_key = {(run.path.name, run.mode): exercise_parts(run) for run in solved}
    rows = ["| solutions notebook | part | "
            + " | ".join(f"{mode} time (s) | {mode} claims held" for mode in modes) + " |",
            "|---|---|" + "---:|---:|" * len(modes)]
    for name in dict.fromkeys(run.path.name for run in solved):
        labels = dict.fromkeys(label for mode in modes for label in by_key.get((name, mode), {}))
        for label in labels:
            cells = []
            for mode in modes:
                entry = by_key.get((name, mode), {}).get(label)
                cells += (["", ""] if entry is None else [
                    f"{entry['seconds']:.1f}",
                    f"{entry['held']} of {entry['claims']}" if entry["claims"] else "-"])
            rows.append(f"| {name} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def plot_times(runs, path) -> None:
    """Horizontal bars: each notebook's time per mode, on a log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    modes = list(dict.fromkeys(run.mode for run in runs))
    names = list(dict.fromkeys(run.path.stem for run in runs))
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(names) * len(modes) + 1.2))
    height = 0.8 / len(modes)
    for index, mode in enumerate(modes):
        seconds = {run.path.stem: run.seconds for run in runs if run.mode == mode and run.ok}
        positions = np.arange(len(names)) + index * height
        ax.barh(positions, [seconds.get(name, 0.0) for name in names], height=height,
                label=f"{mode} mode")
    ax.set_yticks(np.arange(len(names)) + 0.4 - height / 2, names)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("execution time (s, log scale)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _printed_texts(cell):
    """The text of each stream output (print) of an executed cell."""
    return [output.get("text", "") for output in cell.get("outputs", [])
            if output.get("output_type") == "stream"]


@dataclass(frozen=True)
class SavedEntry:
    """A train-once entry as found in the model folder: its file, its file time, its manifest."""

    path: Path
    mtime_ns: int  # rewritten in place (the same key trained again), the file gets a new time
    manifest: dict

    @property
    def model(self) -> tuple:
        """(notebook, name): which model this is an entry of, whatever its key."""
        return self.manifest.get("notebook"), self.manifest.get("name")


def list_saved(model_root: Path) -> dict[Path, SavedEntry]:
    """The train-once entries saved in a model folder (checkpoints.saved_entries), by file."""
    return {path: SavedEntry(path, path.stat().st_mtime_ns, manifest)
            for path, manifest in checkpoints.saved_entries(model_root).items()}


@dataclass
class TrainOnceRun:
    """One notebook run of the train-once part, with the model folder's entries around it."""

    run: NotebookRun
    before: dict[Path, SavedEntry]
    after: dict[Path, SavedEntry]

    @property
    def saved(self) -> list[SavedEntry]:
        """The entries the run wrote (new files, or files written anew): the models it trained."""
        return [entry for path, entry in self.after.items() if self.before.get(path) != entry]


def saving_cells(run: NotebookRun, entries) -> list[int]:
    """The cells that wrote the entries: each the first cell to finish after its file's time."""
    cells = set()
    for entry in entries:
        finished = [index for index, at in run.cell_finished_at.items()
                    if at >= entry.mtime_ns / 1e9]
        if finished:
            cells.add(min(finished, key=run.cell_finished_at.get))
    return sorted(cells)


def format_train_once_table(first_runs, second_runs) -> str:
    """A Markdown table: first (training) and second (reloading) run per notebook, and the ratio.

    Trainings are counted from the model folder, not from what the notebooks print: an entry
    that a run wrote (a new file, or one written anew) is a model it trained, with the training
    time its manifest records. "Models reloaded" are the entries the first run saved that the
    second run left as they were, and whose notebook and name (from their manifests) it did not
    save again: checkpoints.once(...).fit either reloads or trains and saves, so those were
    reloaded. What saves no entry is not counted: compute_once's arrays, a training whose
    callbacks make it run every time, a save that failed. A name saved more than ENTRIES_KEPT
    times in one run counts ENTRIES_KEPT (the older ones are pruned before the run ends).
    Besides the whole notebook, it times the cells that saved in the first run (the first to
    finish after each entry's file time), again in the second: what reloading saves, without
    the import, data and plotting both runs share.
    """
    rows = ["| notebook | first run (s) | models trained (entries saved) "
            "| training (s, from manifests) | second run (s) "
            "| models reloaded (first run's entries left as they were) "
            "| trained again (entries saved) | speed-up | training cells: first → second (s) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for first, second in zip(first_runs, second_runs, strict=True):
        name = first.run.path.name
        if not (first.run.ok and second.run.ok):
            rows.append(f"| {name} | {'FAILED' if not first.run.ok else ''} | | | "
                        f"{'FAILED' if not second.run.ok else ''} | | | | |")
            continue
        trained, again = first.saved, second.saved
        # A second run that trains anything means a key that changed without an edit: a bug.
        saved_again = {entry.model for entry in again}
        reloaded = [entry for entry in trained
                    if entry.path in second.before
                    and second.after.get(entry.path) == second.before[entry.path]
                    and entry.model not in saved_again]
        seconds = sum(float(entry.manifest.get("train_seconds", 0.0)) for entry in trained)
        ratio = (f"{first.run.seconds / second.run.seconds:.1f}x" if trained
                 else "(trains nothing)")
        cells = saving_cells(first.run, trained)
        cell_times = ""
        if cells:
            before = sum(first.run.cell_seconds.get(index, 0.0) for index in cells)
            after = sum(second.run.cell_seconds.get(index, 0.0) for index in cells)
            cell_times = f"{before:.1f} → {after:.1f}"
        rows.append(f"| {name} | {first.run.seconds:.1f} | {len(trained)} | "
                    f"{f'{seconds:.1f}' if trained else ''} | {second.run.seconds:.1f} | "
                    f"{len(reloaded)} | {len(again)} | {ratio} | {cell_times} |")
    return "\n".join(rows)


def measure_train_once(mode: str, notebooks) -> tuple[list[TrainOnceRun], list[TrainOnceRun]]:
    """Run the notebooks twice against a fresh model folder: training, then reloading."""
    from course_utils import config

    model_root = TRAIN_ONCE_DIR / mode
    shutil.rmtree(model_root, ignore_errors=True)
    (model_root / "trained" / "judge").mkdir(parents=True)
    for judge in (checkpoints.trained_dir() / "judge").glob(f"fashion_classifier-{mode}-*.npz"):
        shutil.copy2(judge, model_root / "trained" / "judge" / judge.name)
    passes = []
    # The kernels inherit the environment; the block puts it back as it was on leaving.
    # Its own quality folder too: these runs' figures and claims stay out of the student's.
    with patch.dict(os.environ, {checkpoints.MODEL_DIR_ENV_VAR: str(model_root),
                                 report.QUALITY_DIR_ENV_VAR: str(model_root / "quality")}):
        os.environ.pop(config.RETRAIN_ENV_VAR, None)
        for label in ("first", "second"):
            runs = []
            for path in list_notebooks(notebooks):
                before = list_saved(model_root)
                run = execute_notebook(path, mode)
                runs.append(TrainOnceRun(run, before, list_saved(model_root)))
                result = f"{run.seconds:.1f} s" if run.ok else run.error
                print(f"[{mode}, {label} run] {path.name}: {result}", flush=True)
            passes.append(runs)
    return passes[0], passes[1]


def _seconds_per_query(search, n_queries: int, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):  # the best of a few repeats: the least disturbed by other work
        start = time.perf_counter()
        search()
        best = min(best, time.perf_counter() - start)
    return best / n_queries


def measure_hash_search(database, queries, n_bits: int = 16, k: int = 10) -> list[dict]:
    """Seconds per query and memory of Hamming search over hashes vs pixel search. NB 13."""
    from course_utils import metrics

    flat_database = database.reshape(len(database), -1).astype("float32")
    flat_queries = queries.reshape(len(queries), -1).astype("float32")
    center = flat_database.mean(axis=0)
    # PCA signs from an SVD of a sample: the hash's bits, not their quality, set the cost.
    _, _, components = np.linalg.svd(flat_database[:5000] - center, full_matrices=False)
    def hash_of(x):
        return metrics.pack_bits((x - center) @ components[:n_bits].T > 0)
    database_hashes, query_hashes = hash_of(flat_database), hash_of(flat_queries)
    n = len(queries)

    def nearest(distances):
        return np.argpartition(distances, k, axis=-1)[..., :k]

    def hamming_each():
        for query in query_hashes:
            nearest(np.bitwise_count(database_hashes ^ query))

    # |q - x|^2 = |q|^2 - 2 q.x + |x|^2: |q|^2 cannot change a query's ranking and the |x|^2
    # are computed once, so a search is one matrix-vector product (as in notebook 13).
    norms = (flat_database ** 2).sum(axis=1)

    def pixels_each():
        for query in flat_queries:
            nearest(norms - 2 * flat_database @ query)

    def pixels_batched():
        nearest(norms[None, :] - 2 * flat_queries @ flat_database.T)

    hash_bytes = len(database) * int(np.ceil(n_bits / 8))
    return [
        {"search": f"Hamming, {n_bits}-bit hashes, one query at a time",
         "seconds_per_query": _seconds_per_query(hamming_each, n), "database_bytes": hash_bytes},
        {"search": "Euclidean on pixels, one query at a time",
         "seconds_per_query": _seconds_per_query(pixels_each, n),
         "database_bytes": flat_database.nbytes},
        {"search": f"Euclidean on pixels, {n} queries as one matrix product",
         "seconds_per_query": _seconds_per_query(pixels_batched, n),
         "database_bytes": flat_database.nbytes},
    ]


def format_hash_search(rows, n_database: int) -> str:
    """Markdown table of measure_hash_search's rows, with each time relative to the hashes'."""
    fastest = rows[0]["seconds_per_query"]
    lines = [f"Nearest 10 of {n_database:,} images per query", "",
             "| search | ms per query | x the hash search | database |", "|---|---:|---:|---:|"]
    for row in rows:
        size = row["database_bytes"]
        shown = f"{size / 1e6:,.1f} MB" if size >= 1e6 else f"{size / 1e3:,.0f} kB"
        lines.append(f"| {row['search']} | {row['seconds_per_query'] * 1e3:.3f} | "
                     f"{row['seconds_per_query'] / fastest:,.0f} | {shown} |")
    return "\n".join(lines)


def measure_sampling(generators, n_images: int = 1000, rounds: int = 2,
                     batch_size: int = 500) -> list[dict]:
    """Seconds for n_images from each generator (codings in, images out), best of rounds. NB 14."""
    rows = []
    for name, generator in generators.items():
        codings = np.random.default_rng(0).standard_normal(
            (n_images, generator.inputs[0].shape[-1])).astype("float32")
        inputs = codings if len(generator.inputs) == 1 else [
            codings, (np.arange(n_images) % 10).astype("int32")]
        first_two = inputs[:2] if len(generator.inputs) == 1 else [part[:2] for part in inputs]
        generator.predict(first_two, verbose=0)  # traced before the clock starts
        best = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            generator.predict(inputs, batch_size=batch_size, verbose=0)
            best = min(best, time.perf_counter() - start)
        sampler = next((layer for layer in generator.layers if hasattr(layer, "steps")), None)
        rows.append({"generator": name, "seconds": best,
                     "steps": getattr(sampler, "steps", None)})
    return rows


def format_sampling(rows, n_images: int) -> str:
    """Markdown table of measure_sampling's rows, with the time per step where known."""
    lines = [f"{n_images:,} images per generator", "",
             "| generator | steps | seconds | ms per step |", "|---|---:|---:|---:|"]
    for row in rows:
        steps = row["steps"]
        per_step = f"{row['seconds'] / steps * 1e3:,.0f}" if steps else "-"
        lines.append(f"| {row['generator']} | {steps or '-'} | {row['seconds']:.1f} | {per_step} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=["smoke", "default"])
    parser.add_argument("--save", action="store_true",
                        help="also write executed copies, HTML and figures to build/executed/")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="what to measure (default: all)")
    parser.add_argument("notebooks", nargs="*", help="default: every numbered notebook")
    args = parser.parse_args(argv)
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"

    runs = []
    if "notebooks" in args.parts:
        # The notebooks' kernels inherit this: each records its figures here, fresh per run.
        with patch.dict(os.environ, {report.QUALITY_DIR_ENV_VAR: str(QUALITY_DIR)}):
            for mode in args.modes:
                shutil.rmtree(QUALITY_DIR / mode, ignore_errors=True)
            for mode in args.modes:
                for path in list_notebooks(args.notebooks):
                    run = execute_notebook(path, mode)
                    runs.append(run)
                    if args.save:
                        save_outputs(run, BUILD_DIR / mode)
                    result = (f"{run.seconds:.1f} s, {run.peak_mib:.0f} MiB" if run.ok
                              else run.error)
                    print(f"[{mode}] {path.name}: {result}", flush=True)
            quality = format_quality_table({mode: report.load_quality(mode)
                                            for mode in args.modes})
        text = (f"Notebook benchmark on {machine}\n\n{format_table(runs)}\n\n"
                f"Quality figures recorded by the notebooks\n\n{quality}\n")
        (REPORT_DIR / "notebooks.md").write_text(text, encoding="utf-8")
        exercises = f"Exercise solutions on {machine}\n\n{format_exercise_table(runs)}\n"
        (REPORT_DIR / "solutions.md").write_text(exercises, encoding="utf-8")
        print("\n" + exercises, flush=True)
        plot_times(runs, REPORT_DIR / "notebooks.png")
        print("\n" + text, flush=True)

    if "train-once" in args.parts:
        for mode in args.modes:
            first, second = measure_train_once(mode, args.notebooks)
            runs += [measured.run for measured in first + second]
            text = (f"Train once, reload after: {mode} mode on {machine}\n\n"
                    f"{format_train_once_table(first, second)}\n")
            (REPORT_DIR / f"train_once_{mode}.md").write_text(text, encoding="utf-8")
            print("\n" + text, flush=True)

    if "gan-speed" in args.parts:
        speed = format_gan_speed(measure_gan_speed())
        (REPORT_DIR / "gan_speed.md").write_text(f"On {machine}\n\n{speed}\n", encoding="utf-8")
        print(speed)

    if "hash-search" in args.parts:
        from course_utils import data

        fashion = data.load_fashion_mnist()
        rows = measure_hash_search(fashion.X_train, fashion.X_test[:100])
        text = f"On {machine}\n\n{format_hash_search(rows, len(fashion.X_train))}\n"
        (REPORT_DIR / "hash_search.md").write_text(text, encoding="utf-8")
        print(text)

    if "diffusion-sampling" in args.parts:
        from course_utils import config, evaluation

        for mode in args.modes:
            run = config.RunSettings(mode=mode, seed=config.DEFAULT_SEED)
            generators = {name: evaluation.load_published_model(name, run)
                          for name in DIFFUSION_GENERATORS}
            text = (f"Diffusion sampling, {mode} mode, on {machine}\n\n"
                    f"{format_sampling(measure_sampling(generators), 1000)}\n")
            (REPORT_DIR / f"diffusion_sampling_{mode}.md").write_text(text, encoding="utf-8")
            print(text, flush=True)
    return 0 if all(run.ok for run in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
