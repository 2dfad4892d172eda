"""The claims check: run the notebooks for one or more seeds and list every claim they checked.

    python tools/claims.py                              # default mode, seeds 42 and 0
    python tools/claims.py --mode smoke --seeds 42      # a quick look
    python tools/claims.py notebooks/02_stacked_autoencoder.ipynb --seeds 42 7
    make claims MODE=default SEEDS="42 0"

A notebook states a number or a comparison in its prose only where a cell checks it on the run's
own values with `report.check_claim(...)`, which prints whether it held and records it. This tool
runs every notebook (each chapter, then its solutions notebook) once per seed (COURSE_SEED;
trained models are keyed by their starting weights, so another seed trains afresh and the
course's seed reloads), collects what was recorded, and writes one table, a row per claim and
a column per seed, to build/claims/claims_<mode>.md. It exits with 1 when a claim did not hold
for some seed (the prose then says more than the runs support) or a notebook failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
from unittest.mock import patch

from course_utils import config, report
from tools.run_notebooks import MODES, REPO_ROOT, execute_notebook, list_notebooks

CLAIMS_DIR = REPO_ROOT / "build" / "claims"


def run_seed(mode: str, seed: int, notebooks) -> tuple[dict, list[str]]:
    """Run the notebooks with COURSE_SEED=seed into a fresh claims folder; (claims, failures)."""
    folder = CLAIMS_DIR / f"{mode}-seed{seed}"
    shutil.rmtree(folder, ignore_errors=True)
    failures = []
    with patch.dict(os.environ, {report.QUALITY_DIR_ENV_VAR: str(folder),
                                 config.SEED_ENV_VAR: str(seed)}):
        for path in list_notebooks(notebooks):
            run = execute_notebook(path, mode)
            state = f"{run.seconds:.0f} s" if run.ok else f"FAILED: {run.error}"
            print(f"[{mode}, seed {seed}] {path.name}: {state}", flush=True)
            if not run.ok:
                failures.append(f"{path.name} (seed {seed}): {run.error}")
        return report.load_claims(mode), failures


def _cell(entry) -> str:
    if entry is None:
        return "not reached"
    values = ", ".join(f"{name} {value:.4g}" for name, value in entry["values"].items())
    return ("held" if entry["held"] else "**did not hold**") + (f" ({values})" if values else "")


def format_claims(by_seed: dict[int, dict]) -> str:
    """A Markdown table: a row per claim, a column per seed."""
    seeds = list(by_seed)
    rows = sorted({(notebook, claim) for claims in by_seed.values()
                   for notebook, named in claims.items() for claim in named})
    if not rows:
        return "(no claims were checked)"
    lines = ["| notebook | claim | " + " | ".join(f"seed {seed}" for seed in seeds) + " |",
             "|---|---|" + "---|" * len(seeds)]
    for notebook, claim in rows:
        cells = [_cell(by_seed[seed].get(notebook, {}).get(claim)) for seed in seeds]
        lines.append(f"| {notebook} | {claim} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def count_failed(by_seed: dict[int, dict]) -> int:
    return sum(not entry["held"] for claims in by_seed.values()
               for named in claims.values() for entry in named.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=MODES, default="default")
    parser.add_argument("--seeds", nargs="+", type=int, default=[config.DEFAULT_SEED, 0])
    parser.add_argument("notebooks", nargs="*", help="notebooks to run (default: all)")
    args = parser.parse_args(argv)
    by_seed, failures = {}, []
    for seed in args.seeds:
        config.check_seed(seed)
        by_seed[seed], failed = run_seed(args.mode, seed, args.notebooks)
        failures += failed
    failed_claims = count_failed(by_seed)
    total = sum(len(named) for claims in by_seed.values() for named in claims.values())
    text = (f"Claims check: {args.mode} mode, seeds {', '.join(map(str, args.seeds))}: "
            f"{total - failed_claims} of {total} checks held\n\n{format_claims(by_seed)}\n")
    if failures:
        text += "\nNotebooks that failed:\n" + "".join(f"- {line}\n" for line in failures)
    CLAIMS_DIR.mkdir(parents=True, exist_ok=True)
    (CLAIMS_DIR / f"claims_{args.mode}.md").write_text(text, encoding="utf-8")
    print(text)
    return 1 if failed_claims or failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
