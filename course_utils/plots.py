"""Plotting helpers shared by the notebooks; each returns its figure so a notebook can reuse it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras
import matplotlib.pyplot as plt
import numpy as np
import plotly.graph_objects as go
from matplotlib.ticker import MaxNLocator

from course_utils.checks import (
    check_count,
    check_finite,
    check_images,
    check_number,
    check_range_pair,
)


def _history_dict(history) -> Mapping[str, Sequence[float]]:
    values = getattr(history, "history", history)
    if not isinstance(values, Mapping) or not values:
        raise TypeError(
            "plot_learning_curves expects the History returned by model.fit (or its .history "
            f"dict of per-epoch lists), got {type(history).__name__}; pass history = "
            "model.fit(...) after at least one epoch."
        )
    return values


def plot_learning_curves(history, metrics=("loss",), reference=None, title=None, log_y=False):
    """Training and validation curves per epoch, one panel per metric. Notebooks 1-5 and 8."""
    values = _history_dict(history)
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    if not metrics:
        raise ValueError('metrics is empty; name at least one, e.g. metrics=("loss",).')
    missing = [name for name in metrics if name not in values]
    if missing:
        raise KeyError(f"No {missing} in the history; it has {sorted(values)}. Pass metrics "
                       "from that list.")
    for name in metrics:
        curve = check_finite(values[name], f"history[{name!r}]")
        if curve.ndim != 1 or curve.size == 0:
            raise ValueError(f"history[{name!r}] must be a non-empty list of per-epoch numbers, "
                             f"got shape {curve.shape}; train for at least one epoch.")
    if reference is not None and not isinstance(reference, Mapping):
        raise TypeError(f"reference must map labels to levels, e.g. {{'PCA': 0.02}}; got "
                        f"{type(reference).__name__}.")
    for label, level in (reference or {}).items():
        check_number(level, f"reference[{label!r}]")
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 3.8), squeeze=False)
    for ax, name in zip(axes[0], metrics, strict=True):
        epochs = np.arange(1, len(values[name]) + 1)
        ax.plot(epochs, values[name], "o-", ms=3, label=f"training {name}")
        if f"val_{name}" in values:
            ax.plot(epochs, values[f"val_{name}"], "s--", ms=3, label=f"validation {name}")
        for label, level in (reference or {}).items():
            ax.axhline(level, color="0.3", linestyle=":", label=label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name)
        if log_y:
            ax.set_yscale("log")
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _as_image_batch(images, value_range=(0.0, 1.0), name="images") -> np.ndarray:
    # Display clipping of a few noisy pixels is intended; images on another scale are refused.
    return check_images(images, name, value_range, strict=False)


def _check_titles(titles, count):
    if titles is None:
        return None
    if isinstance(titles, str):
        raise TypeError(f"titles must be a list with one title per image, got the string "
                        f"{titles!r}; use title= for one title above the grid.")
    titles = list(titles)
    if len(titles) != count:
        raise ValueError(f"Got {len(titles)} titles for {count} images; pass one title per "
                         "image (use \"\" for an untitled one).")
    return titles


def plot_image_grid(images, n_cols=10, titles=None, value_range=(0.0, 1.0), size=1.2, title=None):
    """Images in a grid, no axes; value_range=(-1, 1) for tanh outputs. NB 0, 2, 4, 6-11."""
    n_cols = check_count(n_cols, "n_cols", 1)
    size = check_number(size, "size", positive=True)
    value_range = check_range_pair(value_range)
    batch = _as_image_batch(images, value_range)
    titles = _check_titles(titles, len(batch))
    n_rows = max(1, int(np.ceil(len(batch) / n_cols)))
    n_cols = min(n_cols, len(batch)) or 1
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(size * n_cols, size * n_rows + (0.4 if title else 0)),
        squeeze=False,
    )
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index < len(batch):
            ax.imshow(batch[index], cmap="binary", vmin=value_range[0], vmax=value_range[1])
            if titles is not None:
                ax.set_title(str(titles[index]), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_reconstructions(originals, reconstructions, n_images=8, value_range=(0.0, 1.0)):
    """Originals on the top row, their reconstructions underneath. Notebooks 2-5 and 8."""
    n_images = check_count(n_images, "n_images", 1)
    value_range = check_range_pair(value_range)
    top = _as_image_batch(originals, value_range, "originals")[:n_images]
    bottom = _as_image_batch(reconstructions, value_range, "reconstructions")[:n_images]
    if top.shape != bottom.shape:
        raise ValueError(
            f"originals {top.shape} and reconstructions {bottom.shape} differ in shape; pass "
            "the model's output for exactly these originals, e.g. model.predict(originals)."
        )
    fig, axes = plt.subplots(2, len(top), figsize=(1.3 * len(top), 2.9), squeeze=False)
    for row, (label, batch) in enumerate((("original", top), ("reconstruction", bottom))):
        for col, image in enumerate(batch):
            ax = axes[row, col]
            ax.imshow(image, cmap="binary", vmin=value_range[0], vmax=value_range[1])
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
        axes[row, 0].set_ylabel(label)
    fig.tight_layout()
    return fig


def plot_3d_scatter(points, color=None, title=None, axis_titles=("x1", "x2", "x3"), plane=None):
    """Interactive plotly 3D scatter, optionally with the plane of two vectors. Notebook 1."""
    cloud = check_finite(points, "points").astype(float)
    if cloud.ndim != 2 or cloud.shape[1] != 3 or len(cloud) == 0:
        raise ValueError(f"Expected at least one point shaped (n, 3), got {cloud.shape}; pass "
                         "one row of three coordinates per point.")
    if color is not None and not isinstance(color, str) and np.size(color) != len(cloud):
        raise ValueError(f"color needs one value per point: {len(cloud)} points, "
                         f"{np.size(color)} colours; pass an array of length {len(cloud)}.")
    if len(axis_titles) != 3:
        raise ValueError(f"axis_titles needs three names, got {axis_titles!r}.")
    if plane is not None and (isinstance(plane, str) or len(plane) != 2):
        raise ValueError("plane must be a pair (origin, basis): a point and a (3, 2) matrix "
                         "whose columns span the plane.")
    fig = go.Figure(
        go.Scatter3d(
            x=cloud[:, 0], y=cloud[:, 1], z=cloud[:, 2], mode="markers", name="data",
            marker={"size": 3, "color": color, "colorscale": "Viridis", "opacity": 0.85},
        )
    )
    if plane is not None:
        fig.add_trace(_plane_surface(cloud, *plane))
    fig.update_layout(
        title=title, height=500, margin={"l": 0, "r": 0, "t": 40 if title else 0, "b": 0},
        scene={"xaxis_title": axis_titles[0], "yaxis_title": axis_titles[1],
               "zaxis_title": axis_titles[2], "aspectmode": "data"},
        legend={"x": 0.02, "y": 0.98},
    )
    return fig


def _plane_surface(cloud, origin, basis, name="plane"):
    origin = check_finite(origin, "plane origin").astype(float)
    basis = check_finite(basis, "plane basis").astype(float)
    if origin.size != 3:
        raise ValueError(f"The plane's origin must be one 3D point, got shape {origin.shape}.")
    origin = origin.reshape(3)
    if basis.shape != (3, 2):
        hint = " (transpose it: basis.T)" if basis.shape == (2, 3) else ""
        raise ValueError(f"A plane in 3D needs a (3, 2) basis, got {basis.shape}{hint}.")
    if np.linalg.matrix_rank(basis) < 2:
        raise ValueError("The plane's two basis vectors are parallel (or zero), so they span no "
                         "plane; pass two independent columns.")
    # Project the data onto the plane's own coordinates so the drawn patch just covers it.
    coords, *_ = np.linalg.lstsq(basis, (cloud - origin).T, rcond=None)
    u = np.linspace(coords[0].min(), coords[0].max(), 12)
    v = np.linspace(coords[1].min(), coords[1].max(), 12)
    grid_u, grid_v = np.meshgrid(u, v)
    surface = origin[:, None, None] + basis[:, :1, None] * grid_u + basis[:, 1:, None] * grid_v
    return go.Surface(
        x=surface[0], y=surface[1], z=surface[2], name=name, showscale=False, opacity=0.35,
        colorscale=[[0, "steelblue"], [1, "steelblue"]], showlegend=True,
    )


def plot_embedding_2d(points, labels=None, class_names=None, title=None, ax=None, size=4):
    """2D points coloured by class, with a legend of class names. Notebooks 1 and 2."""
    xy = check_finite(points, "points").astype(float)
    if xy.ndim != 2 or xy.shape[1] != 2 or len(xy) == 0:
        raise ValueError(f"Expected at least one 2-D point shaped (n, 2), got {xy.shape}; pass "
                         "e.g. the first two PCA components.")
    size = check_number(size, "size", positive=True)
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 6) if labels is not None else (5, 4))
    else:
        fig = ax.figure
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=size * 4, alpha=0.8)
    else:
        labels = np.asarray(labels)
        if labels.shape != (len(xy),):
            raise ValueError(f"Need one label per point: {len(xy)} points, labels {labels.shape}; "
                             "pass labels for exactly these points.")
        classes = np.unique(labels)
        if class_names is not None:
            if not np.issubdtype(labels.dtype, np.integer) or classes.min() < 0:
                raise ValueError("With class_names, labels must be class indices (integers from "
                                 f"0), got {labels.dtype} {classes[:5]}; pass y, not names.")
            if classes.max() >= len(class_names):
                raise ValueError(f"Label {classes.max()} has no name: only {len(class_names)} "
                                 "class_names; pass one name per class (data.CLASS_NAMES).")
        palette = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
        for index, cls in enumerate(classes):
            chosen = labels == cls
            name = class_names[int(cls)] if class_names is not None else str(cls)
            ax.scatter(xy[chosen, 0], xy[chosen, 1], s=size, color=palette(index % palette.N),
                       label=name, alpha=0.7)
        ax.legend(markerscale=12 / max(size, 1) + 1, fontsize=8, loc="best", framealpha=0.85)
    ax.set_aspect("equal", adjustable="datalim")
    if title:
        ax.set_title(title)
    return fig


def plot_autoencoder_diagram(layer_sizes=(784, 100, 30, 100, 784), coding_index=None, *,
                             labels=("input x", "codings s = E(x)", "reconstruction x̂")):
    """Layers as bars, height growing with log2(width + 1): encoder, codings, decoder. NB 0, 2, 3.

    `labels` names the input, the codings and the output (notebook 3's second phase autoencodes
    codings, not images).
    """
    sizes = [check_count(size, "each layer size", 1) for size in layer_sizes]
    if (isinstance(labels, str) or len(labels) != 3
            or not all(isinstance(label, str) for label in labels)):
        raise TypeError(f"labels must be three strings (input, codings, output), got {labels!r}; "
                        'e.g. labels=("codings h", "codings s = E(h)", "reconstruction ĥ").')
    if len(sizes) < 3:
        raise ValueError(f"Need at least input, codings and output sizes (all >= 1), got {sizes}; "
                         "pass e.g. (784, 30, 784).")
    coding_index = len(sizes) // 2 if coding_index is None else check_count(
        coding_index, "coding_index", 0)
    if coding_index >= len(sizes):
        raise ValueError(f"coding_index {coding_index} is past the last layer (index "
                         f"{len(sizes) - 1}); pass the index of the codings layer.")
    heights = np.log2(np.asarray(sizes) + 1)
    heights = heights / heights.max() * 0.8
    fig, ax = plt.subplots(figsize=(1.6 * len(sizes) + 1, 3.2))
    for index, (size, height) in enumerate(zip(sizes, heights, strict=True)):
        colour = "tab:orange" if index == coding_index else (
            "tab:blue" if index < coding_index else "tab:green"
        )
        ax.add_patch(plt.Rectangle((index - 0.15, 0.5 - height / 2), 0.3, height,
                                   color=colour, alpha=0.8))
        ax.text(index, 0.5 - height / 2 - 0.06, f"{size}", ha="center", va="top", fontsize=10)
        if index:
            ax.annotate("", xy=(index - 0.17, 0.5), xytext=(index - 0.83, 0.5),
                        arrowprops={"arrowstyle": "->", "color": "0.4"})
    input_label, coding_label, output_label = labels
    ax.text(0, 0.97, input_label, ha="center", fontsize=10)
    ax.text(len(sizes) - 1, 0.97, output_label, ha="center", fontsize=10)
    ax.text(coding_index, 0.97, coding_label, ha="center", fontsize=10, color="tab:orange")
    # Widths span 30 to 784: linear heights would flatten the codings to a sliver.
    ax.text(len(sizes) - 0.45, -0.2, "bar height: log scale of the layer size", ha="right",
            va="top", fontsize=8, color="0.45")
    ax.text(coding_index / 2, -0.1, "encoder E", ha="center", color="tab:blue", fontsize=11)
    ax.text((coding_index + len(sizes) - 1) / 2, -0.1, "decoder D", ha="center",
            color="tab:green", fontsize=11)
    ax.set_xlim(-0.6, len(sizes) - 0.4)
    ax.set_ylim(-0.28, 1.05)
    ax.axis("off")
    return fig


def live_image_grid(
    n_images=30, n_cols=10, value_range=(0.0, 1.0), size=0.9, title="Epoch {epoch}"
):
    """A show(images, epoch) function that redraws one grid in place, for GanProgress. NB 9-10."""
    from IPython.display import display

    n_images = check_count(n_images, "n_images", 1)
    check_count(n_cols, "n_cols", 1)
    check_range_pair(value_range)
    check_number(size, "size", positive=True)
    try:
        if title is not None:
            title.format(epoch=0)
    except (KeyError, IndexError, AttributeError, ValueError) as error:
        raise ValueError(f"title {title!r} must be a text with at most an {{epoch}} placeholder "
                         f"({type(error).__name__}: {error}); pass e.g. 'Epoch {{epoch}}'."
                         ) from None
    handle = None

    def show(images, epoch):
        nonlocal handle
        fig = plot_image_grid(images[:n_images], n_cols=n_cols, value_range=value_range,
                              size=size,
                              title=None if title is None else title.format(epoch=epoch))
        if handle is None:
            handle = display(fig, display_id=True)
        else:
            handle.update(fig)
        plt.close(fig)  # the display keeps a rendered copy; closing stops a second one at cell end

    return show


def plot_class_shares(shares, row_labels, class_names, title=None, ax=None):
    """Heatmap of class shares, one row per epoch or model (mode collapse at a glance). NB 9-15."""
    shares = check_finite(shares, "shares").astype(float)
    if shares.ndim != 2 or shares.shape != (len(row_labels), len(class_names)) or not shares.size:
        raise ValueError(
            f"Expected shares shaped (rows, classes) = ({len(row_labels)}, {len(class_names)}), "
            f"got {shares.shape}; pass one row of class shares per row label."
        )
    if shares.min() < 0 or shares.max() > 1 + 1e-6:
        raise ValueError(f"shares are fractions in [0, 1], got values from {shares.min():.3g} to "
                         f"{shares.max():.3g}; pass metrics.class_coverage(...)['shares'], not "
                         "counts or percentages.")
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.35 * len(row_labels) + 1.6))
    image = ax.imshow(shares, cmap="viridis", vmin=0, vmax=max(0.3, float(shares.max())),
                      aspect="auto")
    ax.grid(False)  # grid lines from the plot style would cut through the cells
    ax.set_xticks(range(len(class_names)), class_names, rotation=40, ha="right")
    ax.set_yticks(range(len(row_labels)), [str(label) for label in row_labels])
    for (row, col), share in np.ndenumerate(shares):
        ax.text(col, row, f"{share:.0%}", ha="center", va="center", fontsize=7,
                color="black" if share > 0.6 * max(0.3, shares.max()) else "white")
    ax.figure.colorbar(image, ax=ax, label="share of samples")
    if title:
        ax.set_title(title)
    ax.figure.tight_layout()
    return ax.figure


def plot_image_rows(rows, value_range=(0.0, 1.0), size=1.0, title=None):
    """Labelled rows of images, e.g. the same codings at each growth stage. Notebook 11."""
    if not isinstance(rows, Mapping) or not rows:
        raise ValueError("rows must map at least one label to a batch of images, e.g. "
                         "{'4x4': images_4, '8x8': images_8}.")
    value_range = check_range_pair(value_range)
    size = check_number(size, "size", positive=True)
    batches = {label: _as_image_batch(images, value_range, f"rows[{label!r}]")
               for label, images in rows.items()}
    n_cols = max(len(batch) for batch in batches.values())
    fig, axes = plt.subplots(len(batches), n_cols, figsize=(size * n_cols + 1.0,
                             size * len(batches) + (0.4 if title else 0)), squeeze=False)
    for row_axes, (label, batch) in zip(axes, batches.items(), strict=True):
        for index, ax in enumerate(row_axes):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            for spine in ax.spines.values():
                spine.set_visible(False)
            if index < len(batch):
                ax.imshow(batch[index], cmap="binary", vmin=value_range[0], vmax=value_range[1])
        row_axes[0].set_ylabel(str(label), rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_style_mixing(row_sources, column_sources, mixed, value_range=(-1.0, 1.0), size=1.0,
                      row_title="coarse styles from", column_title="fine styles from"):
    """Style-mixing table: mixed[i, j] takes coarse styles from row i, fine from column j. NB 11."""
    value_range = check_range_pair(value_range)
    size = check_number(size, "size", positive=True)
    rows = _as_image_batch(row_sources, value_range, "row_sources")
    columns = _as_image_batch(column_sources, value_range, "column_sources")
    mixed = check_finite(mixed, "mixed")
    if mixed.ndim == 5 and mixed.shape[-1] == 1:
        mixed = mixed[..., 0]
    if mixed.shape != (len(rows), len(columns), *rows.shape[1:]):
        raise ValueError(
            f"mixed must be shaped (rows, columns, height, width) = ({len(rows)}, "
            f"{len(columns)}, {rows.shape[1]}, {rows.shape[2]}), got {mixed.shape}; pass one "
            "mixed image per (row source, column source) pair."
        )
    mixed = np.stack([_as_image_batch(row, value_range, "mixed") for row in mixed])
    fig, axes = plt.subplots(len(rows) + 1, len(columns) + 1,
                             figsize=(size * (len(columns) + 1), size * (len(rows) + 1) + 0.5))
    for ax in axes.flat:
        ax.axis("off")
    cells = [((0, j + 1), image) for j, image in enumerate(columns)]
    cells += [((i + 1, 0), image) for i, image in enumerate(rows)]
    cells += [((i + 1, j + 1), mixed[i, j])
              for i in range(len(rows)) for j in range(len(columns))]
    for (i, j), image in cells:
        axes[i, j].imshow(image, cmap="binary", vmin=value_range[0], vmax=value_range[1])
    # The source images get a coloured frame, so they stand apart from the mixtures.
    for ax in [*axes[0, 1:], *axes[1:, 0]]:
        ax.axis("on")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_edgecolor("tab:orange")
            spine.set_linewidth(2)
    axes[0, 0].text(0.5, 0.5, f"rows: {row_title}\ncolumns: {column_title}", ha="center",
                    va="center", fontsize=7, transform=axes[0, 0].transAxes, wrap=True)
    fig.tight_layout()
    return fig


class StepLosses(keras.callbacks.Callback):
    """Keeps a GAN's losses for every call of its train step, for plot_gan_losses. NB 9-10.

    fit reports a running mean per epoch; each call's mean is recovered from two successive
    running means. With steps_per_execution=k a call runs k steps, so each point is their mean.
    """

    def __init__(self, names=("d_loss", "g_loss")):
        super().__init__()
        if isinstance(names, str) or not names or not all(isinstance(n, str) for n in names):
            raise TypeError(f"names must be a list of the loss names that train_step reports, "
                            f"e.g. ('d_loss', 'g_loss'); got {names!r}.")
        self.names = tuple(names)
        self.steps, self.losses, self.epoch_ends = [], {name: [] for name in self.names}, []

    def on_train_begin(self, logs=None):
        self.steps, self.losses, self.epoch_ends = [], {name: [] for name in self.names}, []
        self._epoch_start, self._done = 0, 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self.steps[-1] if self.steps else 0
        self._done, self._totals = 0, dict.fromkeys(self.names, 0.0)

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        missing = [name for name in self.names if name not in logs]
        if missing:
            raise KeyError(f"train_step reports {sorted(logs)}, not {missing}; pass "
                           "StepLosses(names=...) with names from that list.")
        # With steps_per_execution=k, Keras calls this every k steps with batch = k*calls - 1,
        # even when the epoch's last call runs fewer steps: cap at the epoch's length.
        done = min(batch + 1, (self.params or {}).get("steps") or batch + 1)
        if done <= self._done:
            return
        for name in self.names:
            total = float(np.asarray(logs[name])) * done  # running mean -> running total
            self.losses[name].append((total - self._totals[name]) / (done - self._done))
            self._totals[name] = total
        self._done = done
        self.steps.append(self._epoch_start + done)

    def on_epoch_end(self, epoch, logs=None):
        if self.steps:
            self.epoch_ends.append(self.steps[-1])

    def saved_arrays(self):
        """The recorded losses as arrays, for checkpoints.once to save with the model."""
        if not self.steps:
            return {}
        return {"steps": np.asarray(self.steps, dtype="int64"),
                "epoch_ends": np.asarray(self.epoch_ends, dtype="int64"),
                **{f"loss/{name}": np.asarray(values, dtype="float64")
                   for name, values in self.losses.items()}}

    def restore_arrays(self, arrays):
        """Put back saved losses when a trained GAN is reloaded."""
        if not arrays:
            self.steps, self.losses, self.epoch_ends = [], {n: [] for n in self.names}, []
            return
        missing = [name for name in ("steps", "epoch_ends", *(f"loss/{n}" for n in self.names))
                   if name not in arrays]
        if missing:
            raise ValueError(f"The saved losses lack {missing}; pass what saved_arrays() "
                             "returned, or retrain (RETRAIN = True).")
        self.steps = [int(step) for step in arrays["steps"]]
        self.epoch_ends = [int(step) for step in arrays["epoch_ends"]]
        self.losses = {name: [float(v) for v in arrays[f"loss/{name}"]] for name in self.names}


def plot_gan_losses(losses, reference=None, title=None, window=None):
    """A GAN's losses step by step, a running mean over `window` points, reference levels and the
    ends of epochs. NB 9-10.

    `losses` is a StepLosses callback after fit, or a mapping {"steps": [...], "<loss name>":
    [...], "epoch_ends": [...] (optional)}; `reference` maps labels to levels, e.g.
    {"ln 2": 0.693}.
    """
    if isinstance(losses, StepLosses):
        curves = dict(losses.losses)
        steps, epoch_ends = losses.steps, losses.epoch_ends
    elif isinstance(losses, Mapping) and "steps" in losses:
        curves = {name: values for name, values in losses.items()
                  if name not in ("steps", "epoch_ends")}
        steps, epoch_ends = losses["steps"], losses.get("epoch_ends", [])
    else:
        raise TypeError(f"plot_gan_losses expects a StepLosses callback passed to fit, or a dict "
                        f"with 'steps' and one list per loss; got {type(losses).__name__}.")
    steps = check_finite(steps, "steps").astype(float)
    if steps.ndim != 1 or steps.size == 0:
        raise ValueError(f"steps must be a non-empty list of step numbers, got shape "
                         f"{steps.shape}; train for at least one step with the callback.")
    if not curves:
        raise ValueError("No losses to draw: pass at least one list of losses next to 'steps'.")
    for name, values in curves.items():
        curve = check_finite(values, f"losses[{name!r}]")
        if curve.shape != steps.shape:
            raise ValueError(f"losses[{name!r}] has {curve.size} values for {steps.size} steps; "
                             "pass one loss per recorded step.")
    if reference is not None and not isinstance(reference, Mapping):
        raise TypeError(f"reference must map labels to levels, e.g. {{'ln 2': 0.693}}; got "
                        f"{type(reference).__name__}.")
    for label, level in (reference or {}).items():
        check_number(level, f"reference[{label!r}]")
    window = max(1, steps.size // 50) if window is None else check_count(window, "window", 1)
    fig, ax = plt.subplots(figsize=(10, 3.8))
    for index, (name, values) in enumerate(curves.items()):
        colour = f"C{index}"
        values = np.asarray(values, dtype=float)
        ax.plot(steps, values, color=colour, linewidth=0.6, alpha=0.45,
                label=f"{name}, each step" if steps.size < 2 or steps[1] - steps[0] == 1
                else f"{name}, each call")
        if window > 1 and values.size >= window:
            smooth = np.convolve(values, np.ones(window) / window, mode="valid")
            ax.plot(steps[window - 1:], smooth, color=colour, linewidth=2,
                    label=f"{name}, mean of the last {window}")
    for end in epoch_ends[:-1]:
        ax.axvline(end, color="0.8", linewidth=0.8, zorder=0)
    for label, level in (reference or {}).items():
        ax.axhline(level, color="0.2", linestyle="--", linewidth=1.2, label=label)
    # The first steps of a GAN can spike far above the rest: scale the axis to 99.5% of the
    # points (and the references), and say what is off the scale.
    everything = np.concatenate([np.asarray(values, dtype=float) for values in curves.values()])
    top = 1.15 * max(float(np.percentile(everything, 99.5)), *(reference or {0: 0}).values())
    if everything.max() > top:
        ax.set_ylim(min(0.0, float(everything.min())), top)
        ax.text(0.01, 0.97, f"off the scale: a few points up to {everything.max():.2f}",
                transform=ax.transAxes, fontsize=8, va="top", color="0.35")
    ax.set_xlabel("training step" + (" (grey lines: ends of epochs)" if len(epoch_ends) > 1
                                     else ""))
    ax.set_ylabel("loss")
    # Below the axes: inside, it would hide the very swings the plot is for.
    ax.legend(fontsize=8, ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.16),
              frameon=False)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
