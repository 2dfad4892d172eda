"""Notebook 1's promise, checked in the default mode a student runs: the AE finds PCA's plane.

The notebook trains against an empty model folder (the model_dir fixture), so this checks a
training, never a model reloaded from an earlier run."""

import re
from pathlib import Path

from course_utils import checkpoints
from tools.run_notebooks import execute_notebook

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "01_pca_linear_autoencoder.ipynb"


def test_linear_autoencoder_matches_pca_in_default_mode(model_dir):
    run = execute_notebook(NOTEBOOK, "default", timeout=300)
    assert run.ok, run.error
    assert checkpoints.saved_entries(model_dir), "the notebook should have trained and saved"
    text = "".join(
        output.get("text", "") for cell in run.executed.cells for output in cell.get("outputs", [])
    )
    angles = re.search(r"principal angles to PCA's plane: ([\d.]+) deg and ([\d.]+) deg", text)
    ratio = re.search(r"reconstruction MSE, autoencoder / PCA: ([\d.]+)", text)
    assert angles and ratio, text[-2000:]
    assert max(float(angles[1]), float(angles[2])) < 2.0
    assert 0.99 < float(ratio[1]) <= 1.02
