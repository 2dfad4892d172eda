"""Run modes, seeding and notebook defaults: the first cells of every notebook call `setup`."""

from __future__ import annotations

import logging
import os
import random
import sys
import tempfile
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from course_utils.checks import MAX_SEED, check_seed  # noqa: F401 - re-exported

MODE_ENV_VAR = "COURSE_MODE"
DEFAULT_MODE = "default"
MODE_DESCRIPTIONS = {
    "smoke": "CI check: tiny data, about one epoch, seconds per notebook",
    "default": "a laptop CPU: good results within minutes",
    "book": "book scale: full data and epochs, meant for a GPU",
}
MODES = tuple(MODE_DESCRIPTIONS)
RETRAIN_ENV_VAR = "COURSE_RETRAIN"
SEED_ENV_VAR = "COURSE_SEED"  # another seed for a whole session (tools/claims.py uses it)
DEFAULT_SEED = 42
PLOTLY_RENDERER = "plotly_mimetype+notebook"  # see set_plot_defaults


class _SameAsDefault:
    """The marker for `pick(book=...)` left out: book mode then uses the default value."""

    def __repr__(self) -> str:
        return "<same as default>"


SAME_AS_DEFAULT = _SameAsDefault()


@dataclass(frozen=True)
class RunSettings:
    """The resolved run mode and seed; `pick` chooses a size per mode. Used by every notebook."""

    mode: str
    seed: int
    retrain: bool = False  # True: train again instead of reloading saved models (checkpoints)

    def __post_init__(self):
        if self.mode not in MODE_DESCRIPTIONS:
            choices = ", ".join(f'"{name}"' for name in MODES)
            raise ValueError(f"Unknown run mode {self.mode!r}; RunSettings takes one of "
                             f"{choices} (lower case). Use config.setup(mode) or "
                             "config.resolve_mode(mode), which also accept other spellings.")
        object.__setattr__(self, "seed", check_seed(self.seed))
        if not isinstance(self.retrain, bool):
            raise TypeError(f"retrain must be True or False, got {self.retrain!r}.")

    @property
    def is_smoke(self) -> bool:
        """True in the CI smoke mode (some cells skip slow extras then)."""
        return self.mode == "smoke"

    def pick(self, *, smoke: Any, default: Any, book: Any = SAME_AS_DEFAULT) -> Any:
        """Return the value for the current mode; `book` left out means `default`, None is None."""
        if book is SAME_AS_DEFAULT:
            book = default
        return {"smoke": smoke, "default": default, "book": book}[self.mode]

    def __str__(self) -> str:
        return f"Run mode: {self.mode} ({MODE_DESCRIPTIONS[self.mode]}), seed {self.seed}"


def resolve_mode(mode: str | None = None) -> str:
    """Return the run mode: the argument, else $COURSE_MODE, else "default"."""
    source = "the COURSE_MODE argument"
    if mode is None:
        mode = os.environ.get(MODE_ENV_VAR) or DEFAULT_MODE
        source = f"the {MODE_ENV_VAR} environment variable"
    normalised = str(mode).strip().lower()
    if normalised not in MODE_DESCRIPTIONS:
        choices = ", ".join(f'"{name}"' for name in MODES)
        raise ValueError(
            f"Unknown run mode {mode!r} (from {source}). Choose one of {choices}: set "
            f'COURSE_MODE = "default" in the notebook\'s parameters cell, or export '
            f"{MODE_ENV_VAR}=default before starting Jupyter."
        )
    return normalised


def resolve_retrain(retrain: bool | None = None) -> bool:
    """Return the retrain switch: the argument, else $COURSE_RETRAIN (1/true/yes), else False."""
    if retrain is not None:
        if not isinstance(retrain, bool):
            raise TypeError(f"RETRAIN must be True, False or None; got {retrain!r}.")
        return retrain
    value = os.environ.get(RETRAIN_ENV_VAR, "").strip().lower()
    if value in {"", "0", "false", "no"}:
        return False
    if value in {"1", "true", "yes"}:
        return True
    raise ValueError(
        f"{RETRAIN_ENV_VAR}={value!r} is not understood: use 1 (train again) or 0 (reload "
        "saved models), or set RETRAIN = True in the notebook's first cell."
    )


def resolve_seed(seed: int | None = None) -> int:
    """Return the seed: the argument, else $COURSE_SEED, else 42."""
    if seed is not None:
        return check_seed(seed)
    value = os.environ.get(SEED_ENV_VAR, "").strip()
    if not value:
        return DEFAULT_SEED
    try:
        return check_seed(int(value))
    except ValueError:
        raise ValueError(
            f"{SEED_ENV_VAR}={value!r} is not a seed: use a whole number from 0 to {MAX_SEED} "
            f"(e.g. {SEED_ENV_VAR}=0), or unset it for the course's seed {DEFAULT_SEED}."
        ) from None


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and Keras/TensorFlow so CPU runs repeat exactly. Every notebook."""
    import keras  # imported here so that importing course_utils.config stays cheap

    seed = check_seed(seed)
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - students' own cells may use the legacy global API
    # tf.random.set_seed no longer seeds Keras initialisers; this call seeds all three generators.
    keras.utils.set_random_seed(seed)


def quiet_tensorflow() -> None:
    """Import TensorFlow without its start-up chatter and silence its logs. Every notebook."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" not in sys.modules:
        _import_tensorflow_muting_c_stderr()
    import tensorflow as tf

    tf.get_logger().setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    # fit() warns that its shuffle argument is ignored for a tf.data pipeline; ours
    # (data.to_dataset) shuffles itself, so the warning only confuses students.
    warnings.filterwarnings("ignore", message="`shuffle=True` was passed, but will be ignored")


def _import_tensorflow_muting_c_stderr() -> None:
    # TensorFlow's C++ side writes CUDA-probe lines straight to file descriptor 2 before its log
    # level applies, and Jupyter shows that descriptor in the cell. Park it in a temporary file
    # for the import only, and replay it if the import fails so no error text is lost.
    sys.stderr.flush()
    saved_fd = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as parked:
        os.dup2(parked.fileno(), 2)
        try:
            import tensorflow

            # The CUDA probe ("failed call to cuInit") runs when devices are first listed, not
            # at import: list them here too, while the C-level stderr is still parked.
            tensorflow.config.list_physical_devices()
        except BaseException:
            os.dup2(saved_fd, 2)
            parked.seek(0)
            sys.stderr.write(parked.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved_fd, 2)
            os.close(saved_fd)


def set_plot_defaults() -> None:
    """Readable matplotlib defaults and an offline-capable plotly renderer. Every notebook."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid")
    plt.rcParams.update(
        {
            "figure.figsize": (7, 4),
            "figure.dpi": 100,
            "savefig.dpi": 150,
            "savefig.bbox": "tight",
            "image.cmap": "binary",
            "axes.titlesize": "medium",
        }
    )
    # JupyterLab draws the plotly mimetype; exported HTML falls back to the "notebook" bundle,
    # which embeds plotly.js once per notebook and so needs no CDN. Importing plotly's renderers
    # takes ~2 s (it compiles a URI grammar), so only the notebook that draws a plotly figure
    # pays it: plotly reads PLOTLY_RENDERER when that figure first needs a renderer.
    os.environ["PLOTLY_RENDERER"] = PLOTLY_RENDERER
    renderers = sys.modules.get("plotly.io._renderers")
    if renderers is not None:
        renderers.renderers.default = PLOTLY_RENDERER


def gpu_count() -> int:
    """Number of GPUs TensorFlow can see (0 on a laptop or in CI)."""
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def setup(
    mode: str | None = None, seed: int | None = None, *, retrain: bool | None = None,
    plots: bool = True,
) -> RunSettings:
    """Resolve mode, seed and retrain switch, silence logs, set plot defaults. Every notebook."""
    settings = RunSettings(mode=resolve_mode(mode), seed=resolve_seed(seed),
                           retrain=resolve_retrain(retrain))
    quiet_tensorflow()
    seed_everything(settings.seed)
    if plots:
        set_plot_defaults()
    if settings.mode == "book" and gpu_count() == 0:
        print(
            'Note: "book" mode trains at book scale; without a GPU this can take hours. '
            'Set COURSE_MODE = "default" for a laptop-sized run.'
        )
    return settings
