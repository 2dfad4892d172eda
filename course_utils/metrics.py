"""Metrics: rounded accuracy for reconstructions, principal angles between subspaces, MSE."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops
from scipy.linalg import subspace_angles


@keras.saving.register_keras_serializable(package="course_utils")
def rounded_accuracy(y_true, y_pred):
    """Share of pixels on the right side of 0.5 after rounding both images. Notebooks 2-7."""
    matches = ops.equal(ops.round(y_true), ops.round(y_pred))
    # Averaging over the last axis gives per-sample values, as Keras' built-in metrics do;
    # the metric wrapper then averages those over the batch.
    return ops.mean(ops.cast(matches, "float32"), axis=-1)


def _as_matrix(name: str, values) -> np.ndarray:
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D matrix whose columns span a subspace, got shape {matrix.shape}."
        )
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    if matrix.shape[1] == 0 or np.linalg.matrix_rank(matrix) == 0:
        raise ValueError(f"{name} spans no subspace: it has no non-zero column.")
    return matrix


def principal_angles(basis_a, basis_b, *, degrees: bool = True) -> np.ndarray:
    """Principal angles between the column spaces of two matrices, smallest first. Notebook 1."""
    a = _as_matrix("basis_a", basis_a)
    b = _as_matrix("basis_b", basis_b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"The two bases live in spaces of different dimension: {a.shape[0]} rows vs "
            f"{b.shape[0]} rows. Pass matrices whose columns are vectors of the same space."
        )
    # SciPy's routine switches to sines for small angles, where arccos of cosines near 1 is
    # inaccurate; the angles under 2 degrees that notebook 1 reports are exactly that case.
    angles = np.sort(subspace_angles(a, b))
    return np.degrees(angles) if degrees else angles


def reconstruction_mse(originals, reconstructions) -> float:
    """Mean squared error over every value of two same-shaped arrays. Notebooks 1, 6 and 12."""
    x = np.asarray(originals, dtype=np.float64)
    x_hat = np.asarray(reconstructions, dtype=np.float64)
    if x.shape != x_hat.shape:
        raise ValueError(
            f"originals and reconstructions differ in shape: {x.shape} vs {x_hat.shape}."
        )
    return float(np.mean((x - x_hat) ** 2))


def class_coverage(labels, n_classes=10) -> dict:
    """How many classes a set of (predicted) labels covers, and how evenly. Notebooks 9-12.

    Returns the count per class, the share per class, `classes_seen` (classes holding at least
    1% of the labels, so one stray sample does not count as coverage) and `effective_classes`,
    exp(entropy of the shares): 1 when every label is the same class, n_classes when all are equal.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(
            f"Expected a non-empty 1-D array of class labels, got shape {labels.shape}."
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"Class labels must be integers, got dtype {labels.dtype}.")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(
            f"Class labels must lie in [0, {n_classes - 1}], got values from {labels.min()} "
            f"to {labels.max()}."
        )
    counts = np.bincount(labels, minlength=n_classes)
    shares = counts / counts.sum()
    present = shares[shares > 0]
    entropy = float(-np.sum(present * np.log(present)))
    return {
        "counts": counts,
        "shares": shares,
        "classes_seen": int(np.sum(shares >= 0.01)),
        "effective_classes": float(np.exp(entropy)),
    }
