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


def _symmetric_sqrt(matrix: np.ndarray) -> np.ndarray:
    # eigh of a symmetric matrix is real and stable; round-off can leave tiny negative
    # eigenvalues, which are clipped to 0 (a covariance is positive semi-definite).
    eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T


def frechet_distance_from_statistics(mean_a, cov_a, mean_b, cov_b) -> float:
    """||m_a - m_b||² + tr(C_a + C_b - 2 (C_a^½ C_b C_a^½)^½), stably (real). Notebook 12.

    The trace of (C_a C_b)^½ equals that of (C_a^½ C_b C_a^½)^½, a symmetric positive
    semi-definite matrix, so only symmetric eigendecompositions are needed: no complex parts.
    """
    mean_a, mean_b = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
    cov_a, cov_b = np.asarray(cov_a, np.float64), np.asarray(cov_b, np.float64)
    size = mean_a.shape[0] if mean_a.ndim == 1 else -1
    if (mean_a.ndim != 1 or mean_b.shape != mean_a.shape
            or cov_a.shape != (size, size) or cov_b.shape != (size, size)):
        raise ValueError(
            "Expected two means shaped (d,) and two covariances shaped (d, d); got "
            f"{mean_a.shape}, {cov_a.shape}, {mean_b.shape}, {cov_b.shape}."
        )
    root_a = _symmetric_sqrt(cov_a)
    cross = _symmetric_sqrt(root_a @ cov_b @ root_a)
    distance = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b)
    return float(max(distance - 2 * np.trace(cross), 0.0))


def frechet_distance(features_a, features_b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (rows = samples). NB 12."""
    stats = []
    for name, features in (("features_a", features_a), ("features_b", features_b)):
        features = np.asarray(features, np.float64)
        if features.ndim != 2 or features.shape[0] < 2:
            raise ValueError(
                f"{name} must be shaped (samples, features) with at least 2 samples, got "
                f"{features.shape}."
            )
        if not np.all(np.isfinite(features)):
            raise ValueError(f"{name} contains NaN or infinite values.")
        stats += [features.mean(axis=0), np.cov(features, rowvar=False)]
    if stats[0].shape != stats[2].shape:
        raise ValueError(
            f"Both feature sets need the same number of features, got {stats[0].shape[0]} "
            f"and {stats[2].shape[0]}."
        )
    return frechet_distance_from_statistics(*stats)


def anomaly_auc(normal_scores, anomalous_scores) -> float:
    """ROC AUC of an anomaly score: the chance an anomaly scores above a normal case. NB 12."""
    from sklearn.metrics import roc_auc_score

    normal = np.asarray(normal_scores, np.float64).ravel()
    anomalous = np.asarray(anomalous_scores, np.float64).ravel()
    if normal.size == 0 or anomalous.size == 0:
        raise ValueError("anomaly_auc needs at least one normal and one anomalous score.")
    if not (np.all(np.isfinite(normal)) and np.all(np.isfinite(anomalous))):
        raise ValueError("Scores must be finite numbers.")
    labels = np.r_[np.zeros(normal.size), np.ones(anomalous.size)]
    return float(roc_auc_score(labels, np.r_[normal, anomalous]))
