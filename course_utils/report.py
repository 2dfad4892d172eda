"""Headline quality figures and checked claims that notebooks record (benchmark, claims check)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from course_utils import checkpoints, files

QUALITY_DIR_ENV_VAR = "COURSE_QUALITY_DIR"
DEFAULT_QUALITY_DIR = Path(__file__).resolve().parent.parent / "build" / "quality"


def quality_dir() -> Path:
    """Where recorded figures go: $COURSE_QUALITY_DIR, else build/quality. Notebooks 1-15."""
    return checkpoints.folder_from_env(QUALITY_DIR_ENV_VAR, DEFAULT_QUALITY_DIR)


def figure_name(*parts) -> str:
    """A figure's key from readable parts: ("MSE", "plain AE") -> "mse_plain_ae". NB 1-15."""
    words = re.findall(r"[a-z0-9]+", " ".join(str(part) for part in parts).lower())
    if not words:
        raise ValueError(f"A figure name needs letters or digits, got {parts!r}.")
    return "_".join(words)


def _check_figures(figures: dict) -> dict[str, float]:
    if not figures:
        raise ValueError("record_quality needs at least one figure, e.g. dcgan_fid=12.3.")
    checked = {}
    for name, value in figures.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"Figure {name!r} must be a number, got {value!r}.") from None
        if not math.isfinite(number):
            raise ValueError(f"Figure {name!r} is {number}; only finite numbers are recorded.")
        checked[name] = number
    return checked


def record_quality(notebook: str, run, **figures) -> dict[str, float]:
    """Save (atomically) and print a notebook's headline quality figures. Notebooks 1-15."""
    if not (isinstance(notebook, str) and len(notebook) == 2 and notebook.isdigit()):
        raise ValueError(f'notebook must be its two-digit number, e.g. "12"; got {notebook!r}.')
    figures = _check_figures(figures)
    path = quality_dir() / run.mode / f"{notebook}.json"
    recorded = load_notebook_quality(path)
    recorded.update(figures)  # a notebook may record in several cells; the newest value wins
    files.write_atomically(path, lambda tmp: tmp.write_text(
        json.dumps(recorded, indent=1, sort_keys=True), encoding="utf-8"))
    print("Recorded for the benchmark report: "
          + ", ".join(f"{name} = {value:.4g}" for name, value in figures.items()))
    return recorded


def load_notebook_quality(path: Path) -> dict[str, float]:
    """The figures in one notebook's file ({} if there is none). Used by tools/benchmark.py."""
    loaded = _read_record(path, "quality")
    try:
        return _check_figures(loaded) if loaded else {}
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path} holds a figure that is not a finite number ({error}); delete "
                         "it and re-run its notebook.") from None


def _read_record(path: Path, kind: str) -> dict:
    """A notebook's JSON record (quality or claims) as a dict, {} if there is none, else raise."""
    if not path.exists():
        return {}
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a readable {kind} record ({error}); delete it and "
                         "re-run its notebook.") from error
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} should hold a JSON object; delete it and re-run its notebook.")
    return loaded


def load_quality(mode: str) -> dict[str, dict[str, float]]:
    """Every notebook's recorded figures for one run mode, keyed by notebook number."""
    directory = quality_dir() / mode
    # Only NN.json: a hidden .NN.json-<pid>-....part.json is what a killed write left behind.
    paths = sorted(directory.glob("[0-9]*.json"))
    return {path.stem: load_notebook_quality(path) for path in paths}


# --- One scale for every autoencoder: the figures notebooks 2-8 record, beside their PCA ------

RECONSTRUCTION_FIGURES = {"rounded_accuracy": "rounded accuracy", "mse": "MSE",
                          "cross_entropy": "cross-entropy"}
# The Fashion-MNIST autoencoders (notebook 1's are on 3D toy data, another scale).
AUTOENCODER_NOTEBOOKS = ("02", "03", "04", "05", "06", "07", "08")


def _split_figure(name: str):
    """'tied_pca_mse' -> ('tied', True, 'mse'); names that are no reconstruction score -> None."""
    for figure in sorted(RECONSTRUCTION_FIGURES, key=len, reverse=True):
        if name == figure or name.endswith("_" + figure):
            prefix = name[: -len(figure)].rstrip("_")
            is_pca = prefix == "pca" or prefix.endswith("_pca")
            if is_pca:
                prefix = prefix[: -len("pca")].rstrip("_")
            return prefix, is_pca, figure
    return None


def tabulate_reconstructions(quality: dict, notebooks=AUTOENCODER_NOTEBOOKS):
    """One row per recorded autoencoder: its scores beside PCA's, missing ones marked. NB 15.

    `quality` is report.load_quality(run.mode). A figure named [model_][pca_]rounded_accuracy,
    mse or cross_entropy is a reconstruction score (pca_ marks the PCA baseline with as many
    components as codings); a notebook with no file, or with no such figure, gets one row saying
    so instead of an error.
    """
    import pandas as pd

    if not isinstance(quality, dict):
        raise TypeError(f"quality must be the dict report.load_quality(run.mode) returns, got "
                        f"{type(quality).__name__}.")
    notebooks = [_check_notebook(notebook) for notebook in notebooks]
    columns = [f"{prefix}{label}" for label in RECONSTRUCTION_FIGURES.values()
               for prefix in ("", "PCA ")]
    rows = []
    for notebook in notebooks:
        figures = quality.get(notebook)
        if not isinstance(figures, dict) and figures is not None:
            raise TypeError(f"quality[{notebook!r}] must be a dict of figures, got "
                            f"{type(figures).__name__}; pass report.load_quality(run.mode).")
        models: dict[str, dict] = {}
        for name, value in (figures or {}).items():
            split = _split_figure(name)
            if split is None:
                continue
            model, is_pca, figure = split
            label = ("PCA " if is_pca else "") + RECONSTRUCTION_FIGURES[figure]
            models.setdefault(model, {})[label] = float(value)
        if not models:
            status = ("missing: run this notebook first" if figures is None
                      else "recorded no reconstruction scores")
            rows.append({"notebook": notebook, "model": "", "status": status})
        for model, scores in sorted(models.items()):
            own = any(not label.startswith("PCA ") for label in scores)
            name = model.replace("_", " ") or ("main" if own else "PCA baseline")
            rows.append({"notebook": notebook, "model": name, "status": "recorded", **scores})
    table = pd.DataFrame(rows, columns=["notebook", "model", "status", *columns])
    return table.set_index(["notebook", "model"])


# --- Claims: what the prose says, checked on the run's own values ----------------------------

def _check_notebook(notebook) -> str:
    if not (isinstance(notebook, str) and len(notebook) == 2 and notebook.isdigit()):
        raise ValueError(f'notebook must be its two-digit number, e.g. "12"; got {notebook!r}.')
    return notebook


def claims_path(notebook: str, run) -> Path:
    """Where one notebook's checked claims for a run mode are kept. Notebooks 0-15."""
    return quality_dir() / run.mode / "claims" / f"{_check_notebook(notebook)}.json"


def _format_values(values: dict[str, float]) -> str:
    return ", ".join(f"{name.replace('_', ' ')} {value:.4g}" for name, value in values.items())


def check_claim(notebook: str, run, claim: str, holds, **values) -> bool:
    """Say whether a sentence of the notebook held in this run, with its values; record it.

    `claim` is the sentence as the prose states it, `holds` its comparison evaluated on the run's
    values (e.g. `ae_mse < pca_mse`), `values` the numbers it compares. Notebooks 0-15.
    """
    notebook = _check_notebook(notebook)
    if not isinstance(claim, str) or not claim.strip():
        raise ValueError("check_claim needs the claim as a sentence, e.g. "
                         '"the autoencoder beats PCA on cross-entropy".')
    if isinstance(holds, (bool, np.bool_)):
        held = bool(holds)
    else:
        raise TypeError(
            f"holds must be one True or False (a comparison such as ae_mse < pca_mse), got "
            f"{type(holds).__name__} {holds!r}; for arrays use np.all(...) or np.any(...).")
    values = _check_figures(values) if values else {}
    path = claims_path(notebook, run)
    recorded = load_notebook_claims(path)
    recorded[claim.strip()] = {"held": held, "values": values, "seed": run.seed}
    files.write_atomically(path, lambda tmp: tmp.write_text(
        json.dumps(recorded, indent=1, sort_keys=True), encoding="utf-8"))
    shown = f" ({_format_values(values)})" if values else ""
    if held:
        print(f"Checked in this run: {claim.strip()}{shown}.")
    else:
        print(f"In this run, this did not hold: {claim.strip()}{shown}.")
    return held


def load_notebook_claims(path: Path) -> dict[str, dict]:
    """The claims in one notebook's claims file ({} if there is none). tools/claims.py."""
    loaded = _read_record(path, "claims")
    if not all(isinstance(entry, dict) and isinstance(entry.get("held"), bool)
               for entry in loaded.values()):
        raise ValueError(f"{path} should map each claim to its result; delete it and re-run.")
    return loaded


def load_claims(mode: str) -> dict[str, dict[str, dict]]:
    """Every notebook's checked claims for one run mode, keyed by notebook number."""
    directory = quality_dir() / mode / "claims"
    return {path.stem: load_notebook_claims(path)
            for path in sorted(directory.glob("[0-9][0-9].json"))}
