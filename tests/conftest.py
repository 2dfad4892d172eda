"""Shared test set-up: a headless matplotlib backend and the tools/ scripts on the import path."""

import sys
from pathlib import Path

import matplotlib

# In-process only: an MPLBACKEND variable would be inherited by the notebook kernels that nbval
# and the runner start, and they must keep Jupyter's inline backend to produce figures.
matplotlib.use("Agg")
REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tools"))
