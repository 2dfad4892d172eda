"""Metrics: reconstruction scores, principal angles, FID, AUC, hashing retrieval, codebook use."""

from __future__ import annotations

import numbers

import keras
import numpy as np
from keras import ops
from scipy.linalg import subspace_angles

from course_utils.checks import check_count, check_finite


def _concrete(values, name):
    # NumPy arrays, lists and eager tensors are checked by value; symbolic tensors (inside a
    # compiled train step) only by their static shape.
    if isinstance(values, keras.KerasTensor):
        return None
    if isinstance(values, np.ndarray | list | tuple | numbers.Number):
        return check_finite(values, name)
    import tensorflow as tf

    if tf.is_tensor(values) and tf.executing_eagerly():
        return check_finite(values.numpy(), name)
    return None


@keras.saving.register_keras_serializable(package="course_utils")
def rounded_accuracy(y_true, y_pred):
    """Share of pixels on the same side of 0.5 in both images (rounding). Notebooks 2-7."""
    true_values, pred_values = _concrete(y_true, "y_true"), _concrete(y_pred, "y_pred")
    y_true = y_true if true_values is None else true_values
    y_pred = y_pred if pred_values is None else pred_values
    true_shape, pred_shape = tuple(y_true.shape), tuple(y_pred.shape)
    if len(true_shape) != len(pred_shape) or any(
        a is not None and b is not None and a != b
        for a, b in zip(true_shape, pred_shape, strict=False)
    ):
        raise ValueError(
            f"rounded_accuracy needs y_true and y_pred of the same shape, got {true_shape} and "
            f"{pred_shape}; make the model's output match its targets (e.g. end the decoder "
            "with keras.layers.Reshape to the images' shape)."
        )
    if len(true_shape) == 0 or true_shape[-1] == 0:
        raise ValueError(f"rounded_accuracy needs values along a last axis, got shape "
                         f"{true_shape}; pass batches shaped (n, ...pixels).")
    if true_values is not None and true_values.size and (
            true_values.min() < -1e-3 or true_values.max() > 1 + 1e-3):
        raise ValueError(
            f"y_true should be pixels in [0, 1], got values from {true_values.min():.4g} to "
            f"{true_values.max():.4g}; divide 0-255 images by 255 (or rescale tanh images with "
            "(images + 1) / 2) first."
        )
    # For values in [0, 1] "x > 0.5" is exactly round(x) (0.5 rounds to even, 0); it also keeps a
    # linear output of 1.2 on the bright side, where round() would give 1 != 2.
    matches = ops.equal(ops.greater(y_true, 0.5), ops.greater(y_pred, 0.5))
    # Averaging over the last axis gives per-sample values, as Keras' built-in metrics do;
    # the metric wrapper then averages those over the batch.
    return ops.mean(ops.cast(matches, "float32"), axis=-1)


def _as_matrix(name: str, values) -> np.ndarray:
    matrix = check_finite(values, name).astype(np.float64)
    if matrix.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D matrix whose columns span a subspace, got shape "
            f"{matrix.shape}; pass one column per basis vector (e.g. pca.components_.T)."
        )
    if matrix.shape[1] == 0 or matrix.shape[0] == 0 or np.linalg.matrix_rank(matrix) == 0:
        raise ValueError(f"{name} spans no subspace: it has no non-zero column; pass the "
                         "basis vectors (e.g. a trained decoder's directions).")
    return matrix


def _check_independent(name: str, matrix: np.ndarray) -> None:
    rank = np.linalg.matrix_rank(matrix)
    if matrix.shape[1] > matrix.shape[0]:
        raise ValueError(
            f"{name} has {matrix.shape[1]} columns in a {matrix.shape[0]}-D space, so its "
            "columns cannot be independent basis vectors. Columns are the vectors here: for "
            "scikit-learn's pca.components_ (one component per row) pass pca.components_.T."
        )
    if rank < matrix.shape[1]:
        raise ValueError(
            f"{name} has {matrix.shape[1]} columns but they span only {rank} dimension(s): "
            "some columns are (nearly) linearly dependent, so the angles would describe a "
            "smaller subspace. Pass linearly independent columns (e.g. a model whose codings "
            "did not collapse)."
        )


def principal_angles(basis_a, basis_b, *, degrees: bool = True) -> np.ndarray:
    """Principal angles between the column spaces of two matrices, smallest first. Notebook 1."""
    a = _as_matrix("basis_a", basis_a)
    b = _as_matrix("basis_b", basis_b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"The two bases live in spaces of different dimension: {a.shape[0]} rows vs "
            f"{b.shape[0]} rows. Pass matrices whose columns are vectors of the same space "
            "(transpose a basis given one vector per row, e.g. pca.components_.T)."
        )
    _check_independent("basis_a", a)
    _check_independent("basis_b", b)
    # SciPy's routine switches to sines for small angles, where arccos of cosines near 1 is
    # inaccurate; the angles under 2 degrees that notebook 1 reports are exactly that case.
    angles = np.sort(subspace_angles(a, b))
    return np.degrees(angles) if degrees else angles


def reconstruction_mse(originals, reconstructions) -> float:
    """Mean squared error over every value of two same-shaped arrays. Notebooks 1, 6, 13."""
    x = check_finite(originals, "originals").astype(np.float64)
    x_hat = check_finite(reconstructions, "reconstructions").astype(np.float64)
    if x.shape != x_hat.shape:
        raise ValueError(
            f"originals and reconstructions differ in shape: {x.shape} vs {x_hat.shape}; pass "
            "model.predict(originals) reshaped like the originals."
        )
    if x.size == 0:
        raise ValueError("originals and reconstructions are empty; pass at least one value.")
    return float(np.mean((x - x_hat) ** 2))


CROSS_ENTROPY_EPSILON = 1e-7  # Keras clips predictions to [eps, 1 - eps] the same way


def reconstruction_scores(images, reconstructions) -> dict[str, float]:
    """Rounded accuracy, MSE and binary cross-entropy of reconstructions in [0, 1]. NB 2-8.

    The three numbers every autoencoder and its baselines (PCA, the mean image) are compared on,
    each averaged over every pixel of every image.
    """
    mse = reconstruction_mse(images, reconstructions)  # same shapes, finite, not empty
    x = np.asarray(images, dtype=np.float64)
    x_hat = np.asarray(reconstructions, dtype=np.float64)
    for name, values in (("images", x), ("reconstructions", x_hat)):
        if values.min() < -1e-3 or values.max() > 1 + 1e-3:
            raise ValueError(
                f"{name} should be pixels in [0, 1], got values from {values.min():.4g} to "
                f"{values.max():.4g}; clip a linear model's output with np.clip(x, 0, 1), "
                "divide 0-255 images by 255, or rescale tanh images with (x + 1) / 2."
            )
    x, clipped = np.clip(x, 0, 1), np.clip(x_hat, CROSS_ENTROPY_EPSILON, 1 - CROSS_ENTROPY_EPSILON)
    cross_entropy = -np.mean(x * np.log(clipped) + (1 - x) * np.log(1 - clipped))
    return {"rounded_accuracy": float(np.mean((x > 0.5) == (x_hat > 0.5))), "mse": mse,
            "cross_entropy": float(cross_entropy)}


def pca_reconstructions(train_images, images, n_components: int, seed: int | None = None):
    """PCA fitted on train_images, then images projected back, clipped to [0, 1]. NB 2-8, 13.

    The baseline beside every autoencoder: the best linear code with as many numbers as its codings.
    """
    from sklearn.decomposition import PCA

    train = check_finite(train_images, "train_images")
    x = check_finite(images, "images")
    if train.ndim < 2 or x.ndim < 2 or train.shape[1:] != x.shape[1:]:
        raise ValueError(
            f"train_images and images must be batches of same-shaped images, got {train.shape} and "
            f"{x.shape}; pass e.g. fashion.X_train and fashion.X_valid.")
    n_pixels = int(np.prod(x.shape[1:]))
    n_components = check_count(n_components, "n_components", minimum=1)
    if n_components > min(len(train), n_pixels):
        raise ValueError(
            f"n_components={n_components} is more than PCA can fit: at most min(images, pixels) = "
            f"{min(len(train), n_pixels)}; use the autoencoder's number of codings or fewer.")
    pca = PCA(n_components=n_components, random_state=seed).fit(train.reshape(len(train), -1))
    flat = pca.inverse_transform(pca.transform(x.reshape(len(x), -1)))
    return np.clip(flat, 0, 1).reshape(x.shape).astype(np.float32)


def _effective_number(counts) -> float:
    """exp(entropy) of the shares that counts give: how many equally used kinds would match."""
    shares = counts[counts > 0] / counts.sum()
    return float(np.exp(-np.sum(shares * np.log(shares))))


def class_coverage(labels, n_classes=10, *, confidences=None, min_confidence=0.0) -> dict:
    """How many classes a set of (predicted) labels covers, and how evenly. Notebooks 9-15.

    Returns the count per class, the share per class, `classes_seen` (classes holding at least
    1% of the counted labels, so one stray sample does not count as coverage) and
    `effective_classes`, exp(entropy of the shares): 1 when every label is the same class,
    n_classes when all are equal. With `confidences` (the judge's top probability per label, e.g.
    from evaluation.classify_with_confidence) only labels whose confidence is at least
    `min_confidence` are counted; `low_confidence_share` is the share left out and `counted` the
    number kept (all of them without confidences). If none is kept, every count, share and
    figure is 0: nothing was recognised.
    """
    n_classes = check_count(n_classes, "n_classes", 1)
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(
            f"Expected a non-empty 1-D array of class labels, got shape {labels.shape}; pass "
            "one label per sample, e.g. evaluation.classify_images(...) or np.ravel(labels)."
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"Class labels must be integers, got dtype {labels.dtype}; pass class "
                         "indices, e.g. np.argmax(probabilities, axis=-1).")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(
            f"Class labels must lie in [0, {n_classes - 1}], got values from {labels.min()} "
            f"to {labels.max()}; pass class indices, or a larger n_classes."
        )
    if isinstance(min_confidence, bool) or not isinstance(
            min_confidence, numbers.Real) or not 0.0 <= min_confidence <= 1.0:
        raise ValueError(f"min_confidence must be a probability in [0, 1], got "
                         f"{min_confidence!r}; pass e.g. evaluation.JUDGE_MIN_CONFIDENCE.")
    if confidences is None:
        if min_confidence > 0:
            raise ValueError("min_confidence needs the confidences it applies to: pass "
                             "confidences=... (the judge's top probability per label, from "
                             "evaluation.classify_with_confidence).")
        confident = np.ones(labels.shape, dtype=bool)
    else:
        confidences = check_finite(confidences, "confidences").astype("float64")
        if confidences.shape != labels.shape:
            raise ValueError(f"confidences must hold one number per label: got shape "
                             f"{confidences.shape} for {labels.shape} labels; pass the top "
                             "probability of each, e.g. probabilities.max(axis=-1).")
        if confidences.min() < 0 or confidences.max() > 1:
            raise ValueError(f"confidences must be probabilities in [0, 1], got values from "
                             f"{confidences.min():.3g} to {confidences.max():.3g}; pass the "
                             "judge's softmax output, not its logits.")
        confident = confidences >= min_confidence
    counts = np.bincount(labels[confident], minlength=n_classes)
    counted = int(counts.sum())
    shares = counts / counted if counted else np.zeros(n_classes)
    return {
        "counts": counts,
        "shares": shares,
        "classes_seen": int(np.sum(shares >= 0.01)),
        "effective_classes": _effective_number(counts) if counted else 0.0,
        "counted": counted,
        "low_confidence_share": 1.0 - counted / labels.size,
    }


def _symmetric_sqrt(matrix: np.ndarray) -> np.ndarray:
    # eigh of a symmetric matrix is real and stable; round-off can leave tiny negative
    # eigenvalues, which are clipped to 0 (a covariance is positive semi-definite).
    eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T


def frechet_distance_from_statistics(mean_a, cov_a, mean_b, cov_b) -> float:
    """||m_a - m_b||² + tr(C_a + C_b - 2 (C_a^½ C_b C_a^½)^½), stably (real). NB 12, 15.

    The trace of (C_a C_b)^½ equals that of (C_a^½ C_b C_a^½)^½, a symmetric positive
    semi-definite matrix, so only symmetric eigendecompositions are needed: no complex parts.
    """
    mean_a, mean_b = (check_finite(v, n).astype(np.float64)
                      for v, n in ((mean_a, "mean_a"), (mean_b, "mean_b")))
    cov_a, cov_b = (check_finite(v, n).astype(np.float64)
                    for v, n in ((cov_a, "cov_a"), (cov_b, "cov_b")))
    size = mean_a.shape[0] if mean_a.ndim == 1 else -1
    if (mean_a.ndim != 1 or size < 1 or mean_b.shape != mean_a.shape
            or cov_a.shape != (size, size) or cov_b.shape != (size, size)):
        raise ValueError(
            "Expected two means shaped (d,) and two covariances shaped (d, d); got "
            f"{mean_a.shape}, {cov_a.shape}, {mean_b.shape}, {cov_b.shape}. Compute them with "
            "features.mean(axis=0) and np.atleast_2d(np.cov(features, rowvar=False))."
        )
    for name, cov in (("cov_a", cov_a), ("cov_b", cov_b)):
        scale = max(1.0, float(np.abs(cov).max()))
        if not np.allclose(cov, cov.T, rtol=0, atol=1e-8 * scale):
            raise ValueError(f"{name} is not symmetric, so it is no covariance matrix; pass "
                             "np.cov(features, rowvar=False) (features: one row per sample).")
        if np.linalg.eigvalsh((cov + cov.T) / 2).min() < -1e-6 * scale:
            raise ValueError(f"{name} has negative eigenvalues, so it is no covariance matrix; "
                             "pass np.cov(features, rowvar=False).")
    root_a = _symmetric_sqrt(cov_a)
    cross = _symmetric_sqrt(root_a @ cov_b @ root_a)
    distance = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b)
    return float(max(distance - 2 * np.trace(cross), 0.0))


def frechet_distance(features_a, features_b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (rows = samples). NB 12, 15."""
    stats = []
    for name, features in (("features_a", features_a), ("features_b", features_b)):
        features = check_finite(features, name).astype(np.float64)
        if features.ndim != 2 or features.shape[0] < 2 or features.shape[1] < 1:
            hint = (" (one feature per sample? use features.reshape(-1, 1))"
                    if features.ndim == 1 else "")
            raise ValueError(
                f"{name} must be shaped (samples, features) with at least 2 samples, got "
                f"{features.shape}{hint}; pass one row of features per sample."
            )
        # np.cov of a single feature column is 0-d: atleast_2d makes it the (1, 1) matrix.
        stats += [features.mean(axis=0), np.atleast_2d(np.cov(features, rowvar=False))]
    if stats[0].shape != stats[2].shape:
        raise ValueError(
            f"Both feature sets need the same number of features, got {stats[0].shape[0]} "
            f"and {stats[2].shape[0]}; compute both with the same feature extractor."
        )
    return frechet_distance_from_statistics(*stats)


def anomaly_auc(normal_scores, anomalous_scores) -> float:
    """ROC AUC of an anomaly score: the chance an anomaly scores above a normal case. NB 15."""
    from sklearn.metrics import roc_auc_score

    normal = check_finite(normal_scores, "normal_scores (must be finite)").astype(np.float64)
    anomalous = check_finite(anomalous_scores,
                             "anomalous_scores (must be finite)").astype(np.float64)
    normal, anomalous = normal.ravel(), anomalous.ravel()
    if normal.size == 0 or anomalous.size == 0:
        raise ValueError("anomaly_auc needs at least one normal and one anomalous score; pass "
                         "the scores of both groups.")
    labels = np.r_[np.zeros(normal.size), np.ones(anomalous.size)]
    return float(roc_auc_score(labels, np.r_[normal, anomalous]))


def pack_bits(bits) -> np.ndarray:
    """Rows of 0/1 values (at most 64 per row) -> one unsigned integer per row. Notebook 13."""
    array = check_finite(bits, "bits")
    if array.ndim != 2 or not 1 <= array.shape[1] <= 64:
        raise ValueError(f"pack_bits takes an (n, n_bits) array with 1 to 64 bits per row, got "
                         f"shape {array.shape}; threshold codings first, e.g. codings > 0.5.")
    if not np.isin(array, (0, 1)).all():
        raise ValueError("pack_bits takes bits: every value must be 0 or 1 (or False/True); "
                         "threshold the codings first, e.g. (codings > 0.5).")
    weights = np.left_shift(np.uint64(1), np.arange(array.shape[1], dtype=np.uint64))
    return (array.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)


def hamming_distances(query_codes, database_codes) -> np.ndarray:
    """(n_queries, n_database) numbers of differing bits between packed codes. Notebook 13."""
    queries, database = (np.asarray(codes) for codes in (query_codes, database_codes))
    for name, codes in (("query_codes", queries), ("database_codes", database)):
        if codes.ndim != 1 or codes.dtype != np.uint64:
            raise ValueError(f"{name} must be a 1-D array of packed codes (uint64), got dtype "
                             f"{codes.dtype} and shape {codes.shape}; pack 0/1 rows with "
                             "metrics.pack_bits first.")
    # XOR leaves a 1 wherever two codes differ; counting those bits is the Hamming distance.
    return np.bitwise_count(queries[:, None] ^ database[None, :])


def precision_at_k(distances, query_labels, database_labels, k: int = 10) -> float:
    """Mean share of same-class items among each query's k nearest (ties shared). Notebook 13.

    With few distinct distances (a 16-bit code has 17) many items tie at the k-th distance;
    each tied item then counts with the probability that a random tie-break would keep it, so
    the result is the expectation over tie-breaks, not a property of the sort order.
    """
    distances = check_finite(distances, "distances")
    query_labels, database_labels = np.asarray(query_labels), np.asarray(database_labels)
    if distances.ndim != 2 or distances.shape != (len(query_labels), len(database_labels)):
        raise ValueError(f"distances must be shaped (n_queries, n_database) = "
                         f"({len(query_labels)}, {len(database_labels)}) to match the labels, "
                         f"got {distances.shape}.")
    k = check_count(k, "k", 1)
    if k > distances.shape[1]:
        raise ValueError(f"k = {k} is more than the {distances.shape[1]} items searched; pass "
                         "a smaller k.")
    kth = np.partition(distances, k - 1, axis=1)[:, k - 1:k]
    same = query_labels[:, None] == database_labels[None, :]
    closer, tied = distances < kth, distances == kth
    n_closer, n_tied = closer.sum(axis=1), tied.sum(axis=1)
    same_closer, same_tied = (same & closer).sum(axis=1), (same & tied).sum(axis=1)
    kept_from_ties = (k - n_closer) / n_tied
    return float(np.mean((same_closer + kept_from_ties * same_tied) / k))


def codebook_usage(indices, n_codes: int) -> dict:
    """Perplexity (effective entries used), dead-entry share and counts of codes. Notebook 13.

    Perplexity is exp(entropy) of the entries' usage: n_codes if all are used equally often, 1
    if a single entry takes everything.
    """
    n_codes = check_count(n_codes, "n_codes", 1)
    flat = np.asarray(indices).ravel()
    if flat.size == 0 or not np.issubdtype(flat.dtype, np.integer):
        raise ValueError(f"indices must be a non-empty array of integer codebook indices, got "
                         f"dtype {flat.dtype} and {flat.size} values; pass quantizer.codes(...).")
    if flat.min() < 0 or flat.max() >= n_codes:
        raise ValueError(f"indices must lie in [0, {n_codes - 1}] for a codebook of {n_codes} "
                         f"entries, got values from {flat.min()} to {flat.max()}.")
    counts = np.bincount(flat, minlength=n_codes)
    return {"perplexity": _effective_number(counts),
            "dead_share": float(np.mean(counts == 0)), "counts": counts}


def _feature_matrix(values, name: str, k: int) -> np.ndarray:
    features = check_finite(values, name).astype(np.float64)
    if features.ndim != 2 or features.shape[0] <= k:
        raise ValueError(f"{name} must be shaped (samples, features) with more than k={k} "
                         f"samples, got {features.shape}; pass one row of features per sample.")
    return features


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    squared = (a**2).sum(axis=1)[:, None] - 2 * a @ b.T + (b**2).sum(axis=1)[None, :]
    return np.sqrt(np.maximum(squared, 0))


def precision_recall(real_features, generated_features, k: int = 3) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al., 2019) in a feature space. NB 15.

    Each set's manifold is the union of balls around its samples, each ball reaching the
    sample's k-th nearest neighbour in the same set. Precision: the share of generated samples
    inside the real manifold (fidelity). Recall: the share of real samples inside the generated
    manifold (diversity).
    """
    k = check_count(k, "k", 1)
    real = _feature_matrix(real_features, "real_features", k)
    generated = _feature_matrix(generated_features, "generated_features", k)
    if real.shape[1] != generated.shape[1]:
        raise ValueError(f"Both feature sets need the same number of features, got "
                         f"{real.shape[1]} and {generated.shape[1]}; compute both with the same "
                         "feature extractor.")

    def radii(features):  # the k+1-th smallest in each row: the first is the sample itself
        return np.partition(_distances(features, features), k, axis=1)[:, k]

    across = _distances(generated, real)  # (generated, real)
    inside_real = across <= radii(real)[None, :]  # generated i within real j's ball
    inside_generated = across.transpose() <= radii(generated)[None, :]  # real j, generated i
    precision = np.mean(np.any(inside_real, axis=1))
    recall = np.mean(np.any(inside_generated, axis=1))
    return {"precision": float(precision), "recall": float(recall)}
