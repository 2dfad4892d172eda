"""Shared test set-up: a headless matplotlib backend, and fixtures more than one test file uses."""

import matplotlib
import pytest

# In-process only: an MPLBACKEND variable would be inherited by the notebook kernels that nbval
# and the runner start, and they must keep Jupyter's inline backend to produce figures.
matplotlib.use("Agg")


@pytest.fixture
def model_dir(tmp_path, monkeypatch):
    """An empty folder for saved models ($COURSE_MODEL_DIR), so tests never touch build/models."""
    from course_utils import checkpoints

    monkeypatch.setenv(checkpoints.MODEL_DIR_ENV_VAR, str(tmp_path))
    return tmp_path


@pytest.fixture
def smoke_run():
    """The run settings of a notebook in smoke mode with the course's seed."""
    from course_utils import config

    return config.RunSettings(mode="smoke", seed=42)
