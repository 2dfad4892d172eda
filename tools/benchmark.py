"""Benchmark the notebooks: wall time and peak memory of each, per run mode, in one table.

    python tools/benchmark.py                       # smoke and default, every notebook
    python tools/benchmark.py --modes smoke         # one mode
    python tools/benchmark.py --modes default notebooks/01_pca_linear_autoencoder.ipynb
    python tools/benchmark.py --save                # keep the executed copies to look at
    python tools/benchmark.py --parts gan-speed     # only notebook 9's GAN speed comparison

Times exclude kernel start and the TensorFlow import (see run_notebooks.py). The table is
printed as Markdown and also written to build/benchmark/notebooks.md, with a plot of the times
(notebooks.png) and the quality figures the notebooks recorded during this run
(`report.record_quality`: PCA angle, reconstruction accuracy, FID, coverage, AUC...). The GAN
training-speed comparison (gan_speed.py: the compiled train_step against the textbook
train_on_batch loop, side by side) goes to build/benchmark/gan_speed.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil

from gan_speed import format_gan_speed, measure_gan_speed
from run_notebooks import (
    BUILD_DIR,
    MODES,
    REPO_ROOT,
    execute_notebook,
    list_notebooks,
    save_outputs,
)

REPORT_DIR = REPO_ROOT / "build" / "benchmark"
QUALITY_DIR = REPORT_DIR / "quality"
PARTS = ("notebooks", "gan-speed")


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=["smoke", "default"])
    parser.add_argument("--save", action="store_true",
                        help="also write executed copies, HTML and figures to build/executed/")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="what to measure (default: both)")
    parser.add_argument("notebooks", nargs="*", help="default: every numbered notebook")
    args = parser.parse_args(argv)
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"

    runs = []
    if "notebooks" in args.parts:
        # The notebooks' kernels inherit this: each records its figures here, fresh per run.
        from course_utils import report

        os.environ[report.QUALITY_DIR_ENV_VAR] = str(QUALITY_DIR)
        for mode in args.modes:
            shutil.rmtree(QUALITY_DIR / mode, ignore_errors=True)
        for mode in args.modes:
            for path in list_notebooks(args.notebooks):
                run = execute_notebook(path, mode)
                runs.append(run)
                if args.save:
                    save_outputs(run, BUILD_DIR / mode)
                result = f"{run.seconds:.1f} s, {run.peak_mib:.0f} MiB" if run.ok else run.error
                print(f"[{mode}] {path.name}: {result}", flush=True)
        quality = format_quality_table({mode: report.load_quality(mode) for mode in args.modes})
        text = (f"Notebook benchmark on {machine}\n\n{format_table(runs)}\n\n"
                f"Quality figures recorded by the notebooks\n\n{quality}\n")
        (REPORT_DIR / "notebooks.md").write_text(text, encoding="utf-8")
        plot_times(runs, REPORT_DIR / "notebooks.png")
        print("\n" + text, flush=True)

    if "gan-speed" in args.parts:
        speed = format_gan_speed(measure_gan_speed())
        (REPORT_DIR / "gan_speed.md").write_text(f"On {machine}\n\n{speed}\n", encoding="utf-8")
        print(speed)
    return 0 if all(run.ok for run in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
