"""Benchmark the notebooks: wall time and peak memory of each, per run mode, in one table.

    python tools/benchmark.py                       # smoke and default, every notebook
    python tools/benchmark.py --modes smoke         # one mode
    python tools/benchmark.py --modes default notebooks/01_pca_linear_autoencoder.ipynb
    python tools/benchmark.py --save                # keep the executed copies to look at
    python tools/benchmark.py --parts gan-speed     # only notebook 9's GAN speed comparison

Times exclude kernel start and the TensorFlow import (see run_notebooks.py). The table is
printed as Markdown and also written to build/benchmark/notebooks.md; the GAN training-speed
comparison (gan_speed.py: the compiled train_step against the textbook train_on_batch loop, side
by side) goes to build/benchmark/gan_speed.md.
"""

from __future__ import annotations

import argparse
import os
import platform

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
        for mode in args.modes:
            for path in list_notebooks(args.notebooks):
                run = execute_notebook(path, mode)
                runs.append(run)
                if args.save:
                    save_outputs(run, BUILD_DIR / mode)
                result = f"{run.seconds:.1f} s, {run.peak_mib:.0f} MiB" if run.ok else run.error
                print(f"[{mode}] {path.name}: {result}", flush=True)
        report = f"Notebook benchmark on {machine}\n\n{format_table(runs)}\n"
        (REPORT_DIR / "notebooks.md").write_text(report, encoding="utf-8")
        print("\n" + report, flush=True)

    if "gan-speed" in args.parts:
        speed = format_gan_speed(measure_gan_speed())
        (REPORT_DIR / "gan_speed.md").write_text(f"On {machine}\n\n{speed}\n", encoding="utf-8")
        print(speed)
    return 0 if all(run.ok for run in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
