"""Metrics against their formulas: rounded accuracy, principal angles, reconstruction MSE."""

import keras
import numpy as np
import pytest

from course_utils import metrics


def test_rounded_accuracy_matches_the_formula():
    rng = np.random.default_rng(0)
    y_true = rng.random((4, 28, 28)).astype("float32")
    y_pred = rng.random((4, 28, 28)).astype("float32")
    expected = np.mean(np.round(y_true) == np.round(y_pred), axis=-1)
    result = np.asarray(metrics.rounded_accuracy(y_true, y_pred))
    assert result.shape == (4, 28)
    np.testing.assert_allclose(result, expected, rtol=0, atol=1e-7)


def test_rounded_accuracy_extremes():
    images = np.array([[0.1, 0.9, 0.7, 0.2]], dtype="float32")
    assert float(metrics.rounded_accuracy(images, images)[0]) == 1.0
    assert float(metrics.rounded_accuracy(images, 1 - images)[0]) == 0.0
    nearly = np.array([[0.4, 0.6, 0.6, 0.4]], dtype="float32")
    assert float(metrics.rounded_accuracy(images, nearly)[0]) == 1.0


def test_rounded_accuracy_as_a_keras_metric_averages_every_pixel():
    rng = np.random.default_rng(1)
    x = rng.random((32, 6)).astype("float32")
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(6, activation="sigmoid")])
    model.compile(loss="mse", metrics=[metrics.rounded_accuracy])
    _, score = model.evaluate(x, x, verbose=0, batch_size=8)
    expected = np.mean(np.round(model.predict(x, verbose=0)) == np.round(x))
    assert score == pytest.approx(expected, abs=1e-6)


def test_rounded_accuracy_is_registered_for_reloading():
    found = keras.saving.get_registered_object("course_utils>rounded_accuracy")
    assert found is metrics.rounded_accuracy


def _rotation_about_x(theta):
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def test_identical_subspaces_have_zero_angles_whatever_the_basis():
    basis = np.array([[1.0, 0], [0, 1], [1, 1]])
    mixed = basis @ np.array([[2.0, 1], [-1, 3]])  # another basis of the same plane
    np.testing.assert_allclose(metrics.principal_angles(basis, mixed), [0, 0], atol=1e-6)


@pytest.mark.parametrize("degrees", [0.5, 10, 45, 89])
def test_tilted_plane_angles_are_zero_and_the_tilt(degrees):
    plane = np.eye(3)[:, :2]  # the x-y plane
    tilted = _rotation_about_x(np.radians(degrees)) @ plane  # keeps x, tilts y
    angles = metrics.principal_angles(plane, tilted)
    np.testing.assert_allclose(angles, [0, degrees], atol=1e-7)
    np.testing.assert_allclose(
        metrics.principal_angles(plane, tilted, degrees=False), np.radians([0, degrees]),
        atol=1e-9,
    )


def test_angles_match_the_svd_formula_on_random_subspaces():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    qa, _ = np.linalg.qr(a)
    qb, _ = np.linalg.qr(b)
    cosines = np.linalg.svd(qa.T @ qb, compute_uv=False)
    expected = np.sort(np.degrees(np.arccos(np.clip(cosines, -1, 1))))
    np.testing.assert_allclose(metrics.principal_angles(a, b), expected, atol=1e-6)


def test_orthogonal_lines_are_at_ninety_degrees():
    assert metrics.principal_angles([[1.0], [0], [0]], [[0.0], [0], [2]])[0] == pytest.approx(90)


@pytest.mark.parametrize(("a", "b", "message"), [
    (np.ones((3, 2)), np.ones((4, 2)), "different dimension"),
    (np.ones(3), np.ones((3, 1)), "2-D matrix"),
    (np.zeros((3, 2)), np.ones((3, 1)), "spans no subspace"),
    (np.full((3, 1), np.nan), np.ones((3, 1)), "NaN"),
])
def test_principal_angles_reject_bad_input_clearly(a, b, message):
    with pytest.raises(ValueError, match=message):
        metrics.principal_angles(a, b)


def test_reconstruction_mse_matches_the_formula():
    x = np.array([[0.0, 1.0], [2.0, 3.0]])
    x_hat = np.array([[1.0, 1.0], [2.0, 1.0]])
    assert metrics.reconstruction_mse(x, x_hat) == pytest.approx((1 + 0 + 0 + 4) / 4)
    assert metrics.reconstruction_mse(x, x) == 0.0


def test_reconstruction_mse_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.reconstruction_mse(np.ones((2, 3)), np.ones((3, 2)))


def test_class_coverage_of_one_class_two_classes_and_all_ten():
    single = metrics.class_coverage(np.full(50, 3))
    assert single["classes_seen"] == 1
    assert single["effective_classes"] == pytest.approx(1.0)
    np.testing.assert_array_equal(single["counts"], [0, 0, 0, 50, 0, 0, 0, 0, 0, 0])

    halves = metrics.class_coverage(np.array([0, 9] * 20))
    assert halves["classes_seen"] == 2
    assert halves["effective_classes"] == pytest.approx(2.0)
    np.testing.assert_allclose(halves["shares"][[0, 9]], [0.5, 0.5])

    uniform = metrics.class_coverage(np.repeat(np.arange(10), 7))
    assert uniform["classes_seen"] == 10
    assert uniform["effective_classes"] == pytest.approx(10.0)


def test_class_coverage_effective_classes_is_exp_entropy():
    labels = np.array([0] * 6 + [1] * 3 + [2] * 1)
    shares = np.array([0.6, 0.3, 0.1])
    expected = np.exp(-np.sum(shares * np.log(shares)))
    assert metrics.class_coverage(labels, n_classes=3)["effective_classes"] == pytest.approx(
        expected
    )


def test_class_coverage_counts_a_class_from_one_percent():
    exactly_one_percent = np.array([0] * 99 + [1])
    below = np.array([0] * 199 + [1])
    assert metrics.class_coverage(exactly_one_percent)["classes_seen"] == 2
    assert metrics.class_coverage(below)["classes_seen"] == 1


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.array([], dtype=int), "non-empty 1-D"),
        (np.zeros((2, 2), dtype=int), "non-empty 1-D"),
        (np.array([0.0, 1.0]), "integers"),
        (np.array([0, 10]), r"\[0, 9\]"),
        (np.array([-1, 2]), r"\[0, 9\]"),
    ],
)
def test_class_coverage_rejects_bad_labels(labels, message):
    with pytest.raises(ValueError, match=message):
        metrics.class_coverage(labels)


def _random_covariance(rng, size):
    factor = rng.normal(size=(size, size))
    return factor @ factor.T + 0.1 * np.eye(size)


def test_frechet_distance_of_a_distribution_with_itself_is_zero():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6))
    assert metrics.frechet_distance(features, features) == pytest.approx(0.0, abs=1e-8)
    cov = _random_covariance(rng, 5)
    assert metrics.frechet_distance_from_statistics(np.ones(5), cov, np.ones(5), cov) == (
        pytest.approx(0.0, abs=1e-8))


def test_frechet_distance_matches_the_closed_form_for_gaussians():
    # Diagonal covariances commute: the distance is |m_a - m_b|² + sum (s_a - s_b)².
    mean_a, mean_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    std_a, std_b = np.array([1.0, 2.0, 0.5]), np.array([3.0, 2.0, 1.5])
    expected = 1 + 0 + 4 + (2**2 + 0 + 1**2)
    assert metrics.frechet_distance_from_statistics(
        mean_a, np.diag(std_a**2), mean_b, np.diag(std_b**2)) == pytest.approx(expected)
    # General covariances: against the textbook formula with scipy's matrix square root.
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(1)
    cov_a, cov_b = _random_covariance(rng, 4), _random_covariance(rng, 4)
    mean_a, mean_b = rng.normal(size=4), rng.normal(size=4)
    textbook = (np.sum((mean_a - mean_b) ** 2)
                + np.trace(cov_a + cov_b - 2 * np.real(sqrtm(cov_a @ cov_b))))
    assert metrics.frechet_distance_from_statistics(mean_a, cov_a, mean_b, cov_b) == (
        pytest.approx(textbook, rel=1e-6))


def test_frechet_distance_of_samples_approaches_the_population_value():
    rng = np.random.default_rng(2)
    a = rng.normal(0.0, 1.0, size=(20_000, 2))
    b = rng.normal([2.0, 0.0], [1.0, 3.0], size=(20_000, 2))
    assert metrics.frechet_distance(a, b) == pytest.approx(4 + 0 + 4, rel=0.03)


def test_frechet_distance_survives_a_singular_covariance_and_explains_bad_input():
    rng = np.random.default_rng(3)
    flat = np.c_[rng.normal(size=(100, 1)), np.zeros((100, 1))]  # one feature never varies
    value = metrics.frechet_distance(flat, flat + [0.0, 1.0])
    assert np.isfinite(value) and value == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="same number of features"):
        metrics.frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        metrics.frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="NaN"):
        metrics.frechet_distance(np.full((5, 3), np.nan), np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"\(d, d\)"):
        metrics.frechet_distance_from_statistics(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))


def test_anomaly_auc_on_known_rankings():
    assert metrics.anomaly_auc([0.1, 0.2, 0.3], [0.4, 0.5]) == 1.0
    assert metrics.anomaly_auc([0.4, 0.5], [0.1, 0.2, 0.3]) == 0.0
    # Anomaly 0.25 beats 2 of 3 normals, anomaly 0.35 beats 3: (2 + 3) / (3 * 2) pairs.
    assert metrics.anomaly_auc([0.1, 0.2, 0.3], [0.25, 0.35]) == pytest.approx(5 / 6)
    assert metrics.anomaly_auc([0.5, 0.5], [0.5]) == 0.5  # ties count half
    with pytest.raises(ValueError, match="at least one"):
        metrics.anomaly_auc([], [0.5])
    with pytest.raises(ValueError, match="finite"):
        metrics.anomaly_auc([np.inf], [0.5])


def test_reconstruction_scores_follow_their_formulas():
    images = np.array([[0.0, 1.0, 0.2, 0.9]])
    reconstructions = np.array([[0.1, 0.4, 0.6, 1.0]])
    scores = metrics.reconstruction_scores(images, reconstructions)
    assert scores["rounded_accuracy"] == pytest.approx(0.5)  # pixels 0 and 3 agree
    assert scores["mse"] == pytest.approx((0.01 + 0.36 + 0.16 + 0.01) / 4)
    eps = metrics.CROSS_ENTROPY_EPSILON
    clipped = np.clip(reconstructions, eps, 1 - eps)
    expected = -np.mean(images * np.log(clipped) + (1 - images) * np.log(1 - clipped))
    assert scores["cross_entropy"] == pytest.approx(expected)
    keras_value = keras.losses.binary_crossentropy(images, reconstructions).numpy().mean()
    assert scores["cross_entropy"] == pytest.approx(float(keras_value), rel=1e-5)


def test_a_perfect_reconstruction_of_grey_pixels_still_costs_their_entropy():
    grey = np.full((2, 3), 0.3)
    entropy = -(0.3 * np.log(0.3) + 0.7 * np.log(0.7))
    scores = metrics.reconstruction_scores(grey, grey)
    assert scores["cross_entropy"] == pytest.approx(entropy)
    assert scores["mse"] == 0 and scores["rounded_accuracy"] == 1
    binary = np.array([[0.0, 1.0]])
    assert metrics.reconstruction_scores(binary, binary)["cross_entropy"] < 1e-6


@pytest.mark.parametrize(("images", "reconstructions", "message"), [
    (np.zeros((2, 4)), np.zeros((2, 5)), "differ in shape"),
    (np.zeros((2, 4)), np.full((2, 4), 1.5), r"reconstructions should be pixels in \[0, 1\].*clip"),
    (np.full((2, 4), 255.0), np.zeros((2, 4)), r"images should be pixels in \[0, 1\].*255"),
    (np.zeros((2, 4)), np.full((2, 4), np.nan), "NaN"),
    (np.zeros((0, 4)), np.zeros((0, 4)), "empty"),
])
def test_reconstruction_scores_explain_bad_input(images, reconstructions, message):
    with pytest.raises(ValueError, match=message):
        metrics.reconstruction_scores(images, reconstructions)


def test_pca_reconstructions_match_scikit_learn_and_keep_the_shape():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    train, images = rng.uniform(size=(200, 4, 4)), rng.uniform(size=(7, 4, 4))
    reconstructions = metrics.pca_reconstructions(train, images, 3, seed=0)
    pca = PCA(n_components=3).fit(train.reshape(200, -1))
    expected = np.clip(pca.inverse_transform(pca.transform(images.reshape(7, -1))), 0, 1)
    assert reconstructions.shape == images.shape
    np.testing.assert_allclose(reconstructions.reshape(7, -1), expected, atol=1e-5)
    # all 16 components reproduce the images (up to the clip, which they already satisfy)
    np.testing.assert_allclose(metrics.pca_reconstructions(train, images, 16), images, atol=1e-5)


@pytest.mark.parametrize(("train", "images", "n_components", "error", "message"), [
    (np.zeros((10, 4)), np.zeros((3, 5)), 2, ValueError, "same-shaped"),
    (np.zeros((10, 4)), np.zeros((3, 4)), 5, ValueError, "at most min"),
    (np.zeros((10, 4)), np.zeros((3, 4)), 0, ValueError, "at least 1"),
    (np.zeros((10, 4)), np.zeros((3, 4)), 2.5, TypeError, "integer"),
    (np.full((10, 4), np.nan), np.zeros((3, 4)), 2, ValueError, "NaN"),
])
def test_pca_reconstructions_explain_bad_input(train, images, n_components, error, message):
    with pytest.raises(error, match=message):
        metrics.pca_reconstructions(train, images, n_components)


def test_class_coverage_counts_only_confident_verdicts_and_reports_the_rest():
    labels = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    confidences = np.array([0.99, 0.95, 0.9, 0.3, 0.85, 0.5, 0.2, 0.1])
    coverage = metrics.class_coverage(labels, n_classes=4, confidences=confidences,
                                      min_confidence=0.8)
    np.testing.assert_array_equal(coverage["counts"], [2, 1, 1, 0])
    np.testing.assert_allclose(coverage["shares"], [0.5, 0.25, 0.25, 0.0])
    assert coverage["counted"] == 4
    assert coverage["low_confidence_share"] == pytest.approx(0.5)
    assert coverage["classes_seen"] == 3
    expected = np.exp(-(0.5 * np.log(0.5) + 2 * 0.25 * np.log(0.25)))
    assert coverage["effective_classes"] == pytest.approx(expected)
    # The threshold is inclusive, and 0 counts every verdict, as without confidences.
    assert metrics.class_coverage(labels, 4, confidences=confidences,
                                  min_confidence=0.9)["counted"] == 3
    everything = metrics.class_coverage(labels, 4, confidences=confidences)
    without = metrics.class_coverage(labels, 4)
    np.testing.assert_array_equal(everything["counts"], without["counts"])
    assert everything["low_confidence_share"] == without["low_confidence_share"] == 0.0
    assert without["counted"] == 8


def test_class_coverage_with_no_confident_verdict_covers_nothing():
    coverage = metrics.class_coverage(np.array([1, 2]), confidences=np.array([0.2, 0.3]),
                                      min_confidence=0.8)
    assert coverage["counted"] == 0
    assert coverage["low_confidence_share"] == 1.0
    assert coverage["classes_seen"] == 0
    assert coverage["effective_classes"] == 0.0
    np.testing.assert_array_equal(coverage["shares"], np.zeros(10))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"confidences": np.array([0.9])}, "one number per label"),
        ({"confidences": np.array([0.9, 1.5])}, r"probabilities in \[0, 1\]"),
        ({"confidences": np.array([0.9, -0.1])}, r"probabilities in \[0, 1\]"),
        ({"confidences": np.array([0.9, np.nan])}, "NaN"),
        ({"confidences": np.array([0.9, 0.8]), "min_confidence": 1.5}, "min_confidence"),
        ({"confidences": np.array([0.9, 0.8]), "min_confidence": "high"}, "min_confidence"),
        ({"min_confidence": 0.8}, "needs the confidences"),
    ],
)
def test_class_coverage_rejects_bad_confidences(arguments, message):
    with pytest.raises(ValueError, match=message):
        metrics.class_coverage(np.array([0, 1]), **arguments)


# --- precision and recall in a feature space (notebook 15) ----------------------------------

def _precision_recall_by_loops(real, generated, k):
    def radius(point, features):
        return sorted(np.linalg.norm(features - point, axis=1))[k]

    def inside(point, features):
        return any(np.linalg.norm(point - other) <= radius(other, features) for other in features)

    return (np.mean([inside(g, real) for g in generated]),
            np.mean([inside(r, generated) for r in real]))


def test_precision_recall_match_their_definition():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(40, 3))
    generated = rng.normal(loc=0.7, scale=0.6, size=(30, 3))
    for k in (1, 3, 5):
        scores = metrics.precision_recall(real, generated, k=k)
        precision, recall = _precision_recall_by_loops(real, generated, k)
        assert scores["precision"] == pytest.approx(precision)
        assert scores["recall"] == pytest.approx(recall)
    nearest = metrics.precision_recall(real, generated, k=1)
    assert 0 < nearest["precision"] < 1 and 0 < nearest["recall"] < 1  # a case that tests both


def test_precision_recall_separate_fidelity_from_diversity():
    rng = np.random.default_rng(1)
    real = np.concatenate([rng.normal(-5, 1, (200, 2)), rng.normal(5, 1, (200, 2))])
    identical = metrics.precision_recall(real, real)
    assert identical == {"precision": 1.0, "recall": 1.0}
    one_mode = metrics.precision_recall(real, rng.normal(5, 1, (200, 2)))
    assert one_mode["precision"] > 0.9 and 0.35 < one_mode["recall"] < 0.65  # collapsed
    far = metrics.precision_recall(real, rng.normal(50, 1, (200, 2)))
    assert far == {"precision": 0.0, "recall": 0.0}


def test_precision_recall_errors():
    real = np.zeros((10, 4))
    with pytest.raises(ValueError, match="more than k=3"):
        metrics.precision_recall(real[:3], real)
    with pytest.raises(ValueError, match="same number of features"):
        metrics.precision_recall(real, np.zeros((10, 5)))
    with pytest.raises(ValueError, match=r"\(samples, features\)"):
        metrics.precision_recall(np.zeros(10), real)
    with pytest.raises(ValueError, match="at least 1"):
        metrics.precision_recall(real, real, k=0)
    with pytest.raises(ValueError):
        metrics.precision_recall(np.full((10, 4), np.nan), real)
