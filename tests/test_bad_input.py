"""Bad input across course_utils: a clear error at the package's boundary, or the right result.

Every error case checks the exception type, that its message says what is wrong and how to fix
it, and that the innermost traceback frame lies inside course_utils (the error was raised by the
package, not deep inside TensorFlow, NumPy or matplotlib). Exceptions to the last rule are listed
in OUTSIDE_COURSE_UTILS, each with the reason.
"""

import gzip
import os
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import course_utils  # noqa: E402
from course_utils import (  # noqa: E402
    autoencoder_layers,
    checks,
    config,
    data,
    diffusion_layers,
    evaluation,
    gan_layers,
    metrics,
    plots,
    training,
)

PACKAGE_DIR = Path(course_utils.__file__).resolve().parent
RNG = np.random.default_rng(0)
IMAGES = RNG.random((4, 28, 28)).astype("float32")
TANH_IMAGES = IMAGES * 2 - 1
NAN_IMAGES = IMAGES.copy()
NAN_IMAGES[0, 3, 3] = np.nan
INF_IMAGES = IMAGES.copy()
INF_IMAGES[1, 0, 0] = np.inf
PLANE = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])

# Error cases whose innermost frame cannot lie in course_utils, and why (at most 5).
OUTSIDE_COURSE_UTILS = {
    # The values are only known while the compiled step runs: the tf.debugging.Assert placed by
    # course_utils fails inside TensorFlow's runtime, with course_utils' message.
    "kl-compiled-relu-coding-layer",
    "replay-compiled-sample-before-add",
}


def assert_raised_in_course_utils(excinfo):
    """The innermost frame of the traceback is a file of the course_utils package."""
    frame = traceback.extract_tb(excinfo.tb)[-1]
    assert Path(frame.filename).resolve().is_relative_to(PACKAGE_DIR), (
        f"raised at {frame.filename}:{frame.lineno} ({frame.name}), outside course_utils"
    )


def assert_clear_error(call, error, match):
    with pytest.raises(error, match=match) as excinfo:
        call()
    assert_raised_in_course_utils(excinfo)
    return excinfo


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# The judge keeps its answers under the model folder: never in build/models from a test.
pytestmark = pytest.mark.usefixtures("model_dir")


def _dense(units=3, input_size=5):
    dense = keras.layers.Dense(units)
    dense.build((None, input_size))
    return dense


def _tied_model():
    dense = keras.layers.Dense(2)
    encoder = keras.Sequential([keras.Input((4,)), dense])
    decoder = keras.Sequential([keras.Input((2,)), autoencoder_layers.DenseTranspose(dense)])
    return keras.Sequential([encoder, decoder])


def _judge():
    return evaluation.build_fashion_classifier()


def _no_features_model():
    return keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(),
                             keras.layers.Dense(10)])


def _tiny_denoiser():
    images, times, labels = keras.Input((2, 2, 1)), keras.Input(()), keras.Input((), dtype="int32")
    return keras.Model([images, times, labels], keras.layers.Conv2D(1, 1)(images))


def _frechet_inputs():
    return RNG.normal(size=(20, 3)), RNG.normal(size=(20, 3))


ERROR_CASES = [
    # ---- metrics.principal_angles ----
    ("angles-rank-deficient-basis", lambda: metrics.principal_angles(
        [[1, 2], [0, 0], [0, 0]], PLANE), ValueError, r"span only 1 dimension.*independent"),
    ("angles-sklearn-row-layout", lambda: metrics.principal_angles(
        PLANE.T, PLANE.T), ValueError, r"2-D space.*pca\.components_\.T"),
    ("angles-one-row-layout-one-column", lambda: metrics.principal_angles(
        PLANE, PLANE.T), ValueError, r"different dimension.*components_\.T"),
    ("angles-1d-vector", lambda: metrics.principal_angles(
        np.ones(3), PLANE), ValueError, r"2-D matrix.*one column per basis vector"),
    ("angles-nan", lambda: metrics.principal_angles(
        np.full((3, 2), np.nan), PLANE), ValueError, r"NaN.*retrain"),
    ("angles-inf", lambda: metrics.principal_angles(
        PLANE, [[np.inf, 0], [0, 1], [0, 0]]), ValueError, r"infinite"),
    ("angles-zero-basis", lambda: metrics.principal_angles(
        np.zeros((3, 2)), PLANE), ValueError, r"spans no subspace.*pass"),
    ("angles-no-columns", lambda: metrics.principal_angles(
        np.zeros((3, 0)), PLANE), ValueError, r"spans no subspace"),
    ("angles-strings", lambda: metrics.principal_angles(
        [["a", "b"]] * 3, PLANE), TypeError, r"real numbers.*dtype='float32'"),
    ("angles-complex", lambda: metrics.principal_angles(
        PLANE * 1j, PLANE), TypeError, r"complex.*np\.real"),
    ("angles-ragged", lambda: metrics.principal_angles(
        [[1, 0], [0]], PLANE), ValueError, r"rectangular.*np\.stack"),
    # ---- metrics.rounded_accuracy ----
    ("accuracy-flat-vs-square", lambda: metrics.rounded_accuracy(
        np.zeros((2, 784)), np.zeros((2, 28, 28))), ValueError, r"same shape.*Reshape"),
    ("accuracy-batch-mismatch", lambda: metrics.rounded_accuracy(
        np.zeros((2, 28, 28)), np.zeros((3, 28, 28))), ValueError, r"same shape"),
    ("accuracy-broadcastable-columns", lambda: metrics.rounded_accuracy(
        np.zeros((2, 5)), np.zeros((2, 1))), ValueError, r"same shape"),
    ("accuracy-0-255-targets", lambda: metrics.rounded_accuracy(
        IMAGES * 255, IMAGES), ValueError, r"\[0, 1\].*divide 0-255 images by 255"),
    ("accuracy-nan-predictions", lambda: metrics.rounded_accuracy(
        IMAGES, NAN_IMAGES), ValueError, r"y_pred contains NaN"),
    ("accuracy-scalars", lambda: metrics.rounded_accuracy(
        0.3, 0.7), ValueError, r"last axis.*\(n, \.\.\.pixels\)"),
    ("accuracy-eager-tensor-mismatch", lambda: metrics.rounded_accuracy(
        tf.zeros((2, 4)), tf.zeros((2, 3))), ValueError, r"same shape"),
    # ---- metrics.reconstruction_mse ----
    ("mse-shapes", lambda: metrics.reconstruction_mse(
        IMAGES, IMAGES.reshape(4, 784)), ValueError, r"differ in shape.*reshaped"),
    ("mse-empty", lambda: metrics.reconstruction_mse(
        np.zeros((0, 28, 28)), np.zeros((0, 28, 28))), ValueError, r"empty.*at least one"),
    ("mse-nan", lambda: metrics.reconstruction_mse(
        IMAGES, NAN_IMAGES), ValueError, r"reconstructions contains NaN"),
    ("mse-strings", lambda: metrics.reconstruction_mse(
        ["a"], ["b"]), TypeError, r"real numbers"),
    # ---- metrics.class_coverage ----
    ("coverage-zero-classes", lambda: metrics.class_coverage(
        [0, 1], n_classes=0), ValueError, r"n_classes must be at least 1"),
    ("coverage-fractional-classes", lambda: metrics.class_coverage(
        [0, 1], n_classes=2.5), TypeError, r"n_classes must be an integer.*whole number"),
    ("coverage-float-labels", lambda: metrics.class_coverage(
        np.array([0.0, 1.0])), ValueError, r"integers.*np\.argmax"),
    ("coverage-column-labels", lambda: metrics.class_coverage(
        np.zeros((5, 1), int)), ValueError, r"1-D.*np\.ravel"),
    ("coverage-label-too-large", lambda: metrics.class_coverage(
        [0, 12]), ValueError, r"\[0, 9\].*larger n_classes"),
    ("coverage-empty", lambda: metrics.class_coverage(
        np.array([], int)), ValueError, r"non-empty"),
    # ---- metrics.frechet_distance(_from_statistics) ----
    ("fid-1d-features", lambda: metrics.frechet_distance(
        np.ones(5), np.ones(5)), ValueError, r"reshape\(-1, 1\)"),
    ("fid-no-feature-columns", lambda: metrics.frechet_distance(
        np.zeros((5, 0)), np.zeros((5, 0))), ValueError, r"\(samples, features\)"),
    ("fid-one-sample", lambda: metrics.frechet_distance(
        np.zeros((1, 3)), np.zeros((5, 3))), ValueError, r"at least 2 samples"),
    ("fid-inf-features", lambda: metrics.frechet_distance(
        np.full((5, 3), np.inf), np.zeros((5, 3))), ValueError, r"features_a contains"),
    ("fid-feature-count", lambda: metrics.frechet_distance(
        np.zeros((5, 3)), np.zeros((5, 4))), ValueError, r"same number of features.*same"),
    ("fid-stats-asymmetric-cov", lambda: metrics.frechet_distance_from_statistics(
        np.zeros(2), [[1, 0.5], [0, 1]], np.zeros(2), np.eye(2)), ValueError,
     r"not symmetric.*np\.cov"),
    ("fid-stats-negative-cov", lambda: metrics.frechet_distance_from_statistics(
        np.zeros(2), -np.eye(2), np.zeros(2), np.eye(2)), ValueError, r"negative eigenvalues"),
    ("fid-stats-nan-mean", lambda: metrics.frechet_distance_from_statistics(
        [np.nan, 0], np.eye(2), np.zeros(2), np.eye(2)), ValueError, r"mean_a contains NaN"),
    ("fid-stats-0d-cov", lambda: metrics.frechet_distance_from_statistics(
        np.zeros(1), np.float64(1), np.zeros(1), np.eye(1)), ValueError,
     r"\(d, d\).*atleast_2d"),
    # ---- metrics.anomaly_auc ----
    ("auc-nan", lambda: metrics.anomaly_auc([0.1, np.nan], [0.5]), ValueError, r"finite"),
    ("auc-empty", lambda: metrics.anomaly_auc([], [0.5]), ValueError, r"at least one.*both"),
    ("auc-strings", lambda: metrics.anomaly_auc(["x"], [0.5]), TypeError, r"real numbers"),
    # ---- plots.plot_image_grid ----
    ("grid-zero-columns", lambda: plots.plot_image_grid(
        IMAGES, n_cols=0), ValueError, r"n_cols must be at least 1.*larger"),
    ("grid-negative-columns", lambda: plots.plot_image_grid(
        IMAGES, n_cols=-2), ValueError, r"n_cols must be at least 1"),
    ("grid-fractional-columns", lambda: plots.plot_image_grid(
        IMAGES, n_cols=2.5), TypeError, r"n_cols must be an integer"),
    ("grid-string-columns", lambda: plots.plot_image_grid(
        IMAGES, n_cols="3"), TypeError, r"n_cols must be an integer"),
    ("grid-empty-batch", lambda: plots.plot_image_grid(
        np.zeros((0, 28, 28))), ValueError, r"empty batch.*at least one image"),
    ("grid-fewer-titles", lambda: plots.plot_image_grid(
        IMAGES, titles=["a", "b"]), ValueError, r"2 titles for 4 images.*one title per image"),
    ("grid-more-titles", lambda: plots.plot_image_grid(
        IMAGES, titles=list("abcdef")), ValueError, r"6 titles for 4 images"),
    ("grid-title-string", lambda: plots.plot_image_grid(
        IMAGES, titles="abcd"), TypeError, r"one title per image.*title="),
    ("grid-tanh-images", lambda: plots.plot_image_grid(
        TANH_IMAGES * 0 - 0.9), ValueError, r"tanh.*\(images \+ 1\) / 2.*value_range=\(-1, 1\)"),
    ("grid-0-255-floats", lambda: plots.plot_image_grid(
        IMAGES * 255), ValueError, r"0-255.*divide by 255"),
    ("grid-uint8", lambda: plots.plot_image_grid(
        (IMAGES * 255).astype(np.uint8)), ValueError, r"divide by 255"),
    ("grid-nan", lambda: plots.plot_image_grid(NAN_IMAGES), ValueError, r"NaN"),
    ("grid-inf", lambda: plots.plot_image_grid(INF_IMAGES), ValueError, r"infinite"),
    ("grid-reversed-range", lambda: plots.plot_image_grid(
        IMAGES, value_range=(1, 0)), ValueError, r"low <= high.*\(0, 1\)"),
    ("grid-range-number", lambda: plots.plot_image_grid(
        IMAGES, value_range=1), TypeError, r"pair \(low, high\)"),
    ("grid-range-nan", lambda: plots.plot_image_grid(
        IMAGES, value_range=(0, np.nan)), ValueError, r"finite low <= high"),
    ("grid-size-zero", lambda: plots.plot_image_grid(
        IMAGES, size=0), ValueError, r"size must be positive"),
    ("grid-size-negative", lambda: plots.plot_image_grid(
        IMAGES, size=-1.2), ValueError, r"size must be positive"),
    ("grid-colour", lambda: plots.plot_image_grid(
        np.zeros((2, 28, 28, 3))), ValueError, r"grey images.*images\[\.\.\., :1\]"),
    ("grid-flat", lambda: plots.plot_image_grid(
        np.zeros((2, 784))), ValueError, r"grey images.*images\[None\]"),
    ("grid-single-image", lambda: plots.plot_image_grid(
        IMAGES[0]), ValueError, r"images\[None\]"),
    ("grid-zero-pixels", lambda: plots.plot_image_grid(
        np.zeros((2, 0, 0))), ValueError, r"at least one pixel"),
    ("grid-strings", lambda: plots.plot_image_grid(
        np.array([[["a"]]])), TypeError, r"real numbers"),
    ("grid-5d", lambda: plots.plot_image_grid(
        np.zeros((1, 2, 28, 28, 1))), ValueError, r"reshape them"),
    # ---- plots.plot_reconstructions ----
    ("recon-zero-images", lambda: plots.plot_reconstructions(
        IMAGES, IMAGES, n_images=0), ValueError, r"n_images must be at least 1"),
    ("recon-shapes", lambda: plots.plot_reconstructions(
        IMAGES, IMAGES[:, :14]), ValueError, r"differ in shape.*model\.predict"),
    ("recon-tanh", lambda: plots.plot_reconstructions(
        IMAGES, np.full_like(IMAGES, -1.0)), ValueError, r"reconstructions.*\(reconstructions"),
    ("recon-empty", lambda: plots.plot_reconstructions(
        IMAGES[:0], IMAGES[:0]), ValueError, r"originals is an empty batch"),
    ("recon-nan", lambda: plots.plot_reconstructions(
        IMAGES, NAN_IMAGES), ValueError, r"reconstructions contains NaN"),
    ("recon-fractional-count", lambda: plots.plot_reconstructions(
        IMAGES, IMAGES, n_images=2.0), TypeError, r"n_images must be an integer"),
    # ---- plots.plot_3d_scatter ----
    ("scatter3d-2-columns", lambda: plots.plot_3d_scatter(
        np.zeros((5, 2))), ValueError, r"\(n, 3\).*three coordinates"),
    ("scatter3d-empty", lambda: plots.plot_3d_scatter(
        np.zeros((0, 3))), ValueError, r"at least one point"),
    ("scatter3d-nan", lambda: plots.plot_3d_scatter(
        np.full((5, 3), np.nan)), ValueError, r"points contains NaN"),
    ("scatter3d-colours", lambda: plots.plot_3d_scatter(
        np.zeros((5, 3)), color=[1, 2]), ValueError, r"one value per point.*length 5"),
    ("scatter3d-plane-rows", lambda: plots.plot_3d_scatter(
        np.ones((5, 3)), plane=(np.zeros(3), PLANE.T)), ValueError, r"\(3, 2\).*basis\.T"),
    ("scatter3d-plane-parallel", lambda: plots.plot_3d_scatter(
        np.ones((5, 3)), plane=(np.zeros(3), np.ones((3, 2)))), ValueError,
     r"parallel.*independent"),
    ("scatter3d-plane-not-pair", lambda: plots.plot_3d_scatter(
        np.ones((5, 3)), plane=PLANE), ValueError, r"pair \(origin, basis\)"),
    ("scatter3d-plane-origin", lambda: plots.plot_3d_scatter(
        np.ones((5, 3)), plane=(np.zeros(2), PLANE)), ValueError, r"one 3D point"),
    ("scatter3d-axis-titles", lambda: plots.plot_3d_scatter(
        np.zeros((5, 3)), axis_titles=("x", "y")), ValueError, r"three names"),
    # ---- plots.plot_embedding_2d ----
    ("embedding-3-columns", lambda: plots.plot_embedding_2d(
        np.zeros((5, 3))), ValueError, r"\(n, 2\).*first two"),
    ("embedding-empty", lambda: plots.plot_embedding_2d(
        np.zeros((0, 2))), ValueError, r"at least one"),
    ("embedding-labels-length", lambda: plots.plot_embedding_2d(
        np.zeros((5, 2)), labels=[0, 1]), ValueError, r"one label per point"),
    ("embedding-unnamed-class", lambda: plots.plot_embedding_2d(
        np.zeros((3, 2)), labels=[0, 1, 12], class_names=data.CLASS_NAMES), ValueError,
     r"Label 12 has no name.*CLASS_NAMES"),
    ("embedding-name-labels", lambda: plots.plot_embedding_2d(
        np.zeros((2, 2)), labels=["Bag", "Coat"], class_names=data.CLASS_NAMES), ValueError,
     r"class indices.*pass y"),
    ("embedding-nan", lambda: plots.plot_embedding_2d(
        np.full((3, 2), np.nan)), ValueError, r"NaN"),
    ("embedding-size-zero", lambda: plots.plot_embedding_2d(
        np.zeros((3, 2)), size=0), ValueError, r"size must be positive"),
    # ---- plots.plot_autoencoder_diagram ----
    ("diagram-two-sizes", lambda: plots.plot_autoencoder_diagram(
        (784, 784)), ValueError, r"at least input, codings and output.*\(784, 30, 784\)"),
    ("diagram-zero-size", lambda: plots.plot_autoencoder_diagram(
        (784, 0, 784)), ValueError, r"each layer size must be at least 1"),
    ("diagram-fractional-size", lambda: plots.plot_autoencoder_diagram(
        (784, 3.7, 784)), TypeError, r"must be an integer"),
    ("diagram-text-size", lambda: plots.plot_autoencoder_diagram(
        (784, "abc", 784)), TypeError, r"must be an integer"),
    ("diagram-coding-index-past-end", lambda: plots.plot_autoencoder_diagram(
        coding_index=9), ValueError, r"past the last layer.*index of the codings"),
    ("diagram-coding-index-negative", lambda: plots.plot_autoencoder_diagram(
        coding_index=-1), ValueError, r"coding_index must be at least 0"),
    ("diagram-one-label", lambda: plots.plot_autoencoder_diagram(labels="input"), TypeError,
     r"three strings"),
    ("diagram-two-labels", lambda: plots.plot_autoencoder_diagram(labels=("a", "b")), TypeError,
     r"three strings"),
    # ---- plots.plot_learning_curves ----
    ("curves-list", lambda: plots.plot_learning_curves(
        [1.0, 2.0]), TypeError, r"History.*model\.fit"),
    ("curves-empty-dict", lambda: plots.plot_learning_curves({}), TypeError, r"History"),
    ("curves-missing-metric", lambda: plots.plot_learning_curves(
        {"loss": [1.0]}, metrics=("accuracy",)), KeyError, r"it has \['loss'\].*from that list"),
    ("curves-no-metrics", lambda: plots.plot_learning_curves(
        {"loss": [1.0]}, metrics=()), ValueError, r"at least one.*\(\"loss\",\)"),
    ("curves-nan-loss", lambda: plots.plot_learning_curves(
        {"loss": [1.0, np.nan]}), ValueError, r"history\['loss'\] contains NaN.*lower learning"),
    ("curves-no-epochs", lambda: plots.plot_learning_curves(
        {"loss": []}), ValueError, r"non-empty.*at least one epoch"),
    ("curves-reference-list", lambda: plots.plot_learning_curves(
        {"loss": [1.0]}, reference=[0.1]), TypeError, r"map labels to levels"),
    ("curves-reference-text", lambda: plots.plot_learning_curves(
        {"loss": [1.0]}, reference={"PCA": "low"}), TypeError, r"reference\['PCA'\].*number"),
    # ---- plots.live_image_grid ----
    ("live-zero-images", lambda: plots.live_image_grid(n_images=0), ValueError,
     r"n_images must be at least 1"),
    ("live-zero-columns", lambda: plots.live_image_grid(n_cols=0), ValueError,
     r"n_cols must be at least 1"),
    ("live-bad-placeholder", lambda: plots.live_image_grid(title="Step {step}"), ValueError,
     r"\{epoch\} placeholder.*Epoch \{epoch\}"),
    ("live-bad-range", lambda: plots.live_image_grid(value_range=(1, -1)), ValueError,
     r"low <= high"),
    # ---- plots.plot_class_shares ----
    ("shares-shape", lambda: plots.plot_class_shares(
        np.zeros((2, 3)), ["a"], data.CLASS_NAMES), ValueError, r"\(rows, classes\).*per row"),
    ("shares-nan", lambda: plots.plot_class_shares(
        np.full((1, 10), np.nan), ["a"], data.CLASS_NAMES), ValueError, r"shares contains NaN"),
    ("shares-percentages", lambda: plots.plot_class_shares(
        np.full((1, 10), 10.0), ["a"], data.CLASS_NAMES), ValueError,
     r"fractions in \[0, 1\].*class_coverage"),
    ("shares-negative", lambda: plots.plot_class_shares(
        np.full((1, 10), -0.1), ["a"], data.CLASS_NAMES), ValueError, r"fractions"),
    ("shares-no-rows", lambda: plots.plot_class_shares(
        np.zeros((0, 10)), [], data.CLASS_NAMES), ValueError, r"one row of class shares"),
    # ---- plots.plot_image_rows ----
    ("rows-empty", lambda: plots.plot_image_rows({}), ValueError, r"at least one label"),
    ("rows-list", lambda: plots.plot_image_rows([IMAGES]), ValueError, r"map at least one"),
    ("rows-empty-batch", lambda: plots.plot_image_rows(
        {"4x4": IMAGES[:0]}), ValueError, r"rows\['4x4'\] is an empty batch"),
    ("rows-tanh-default-range", lambda: plots.plot_image_rows(
        {"4x4": np.full((2, 4, 4), -1.0)}), ValueError, r"tanh.*value_range=\(-1, 1\)"),
    # ---- plots.plot_style_mixing ----
    ("mixing-shape", lambda: plots.plot_style_mixing(
        TANH_IMAGES[:2], TANH_IMAGES[:3], np.zeros((2, 2, 28, 28))), ValueError,
     r"\(2, 3, 28, 28\).*one mixed image per"),
    ("mixing-empty-rows", lambda: plots.plot_style_mixing(
        TANH_IMAGES[:0], TANH_IMAGES[:3], np.zeros((0, 3, 28, 28))), ValueError,
     r"row_sources is an empty batch"),
    ("mixing-nan", lambda: plots.plot_style_mixing(
        TANH_IMAGES[:1], TANH_IMAGES[:1], np.full((1, 1, 28, 28), np.nan)), ValueError,
     r"mixed contains NaN"),
    ("mixing-0-255-sources", lambda: plots.plot_style_mixing(
        IMAGES[:1] * 255, IMAGES[:1], np.zeros((1, 1, 28, 28))), ValueError,
     r"127\.5 - 1"),
    # ---- autoencoder_layers.DenseTranspose ----
    ("tied-not-dense", lambda: autoencoder_layers.DenseTranspose(keras.layers.Flatten()), TypeError,
     r"keras\.layers\.Dense"),
    ("tied-bad-activation",
     lambda: autoencoder_layers.DenseTranspose(_dense(), activation="sigmoidd"),
     ValueError, r"Unknown activation 'sigmoidd'.*\"sigmoid\""),
    ("tied-unbuilt-encoder", lambda: autoencoder_layers.DenseTranspose(keras.layers.Dense(3))(
        np.ones((2, 3), "float32")), RuntimeError, r"not built yet.*build or call the encoder"),
    ("tied-wrong-input-size", lambda: autoencoder_layers.DenseTranspose(_dense(3, 5))(
        np.ones((2, 4), "float32")), ValueError, r"last dimension is 3"),
    ("tied-get-config", lambda: autoencoder_layers.DenseTranspose(_dense()).get_config(),
     NotImplementedError, r"cannot be saved whole.*save_weights"),
    # ---- layers: KL sparsity ----
    ("kl-relu-activations", lambda: autoencoder_layers.KLDivergenceRegularizer(0.05, 0.1)(
        np.full((4, 3), 2.0, "float32")), ValueError, r"\[0, 1\].*activation=\"sigmoid\""),
    ("kl-tanh-activations", lambda: autoencoder_layers.KLDivergenceRegularizer(0.05, 0.1)(
        np.array([[-0.5, 0.9], [0.9, -0.5]], "float32")), ValueError,
     r"from -0\.5 to 0\.9.*sigmoid"),
    ("kl-nan-activations", lambda: autoencoder_layers.KLDivergenceRegularizer(0.05, 0.1)(
        np.full((2, 2), np.nan, "float32")), ValueError, r"NaN"),
    ("kl-penalty-mean-above-1", lambda: autoencoder_layers.kl_divergence_penalty(
        0.1, np.array([1.5], "float32")), ValueError, r"mean activations range from 1\.5"),
    ("kl-penalty-mean-below-0", lambda: autoencoder_layers.kl_divergence_penalty(
        0.1, tf.constant([-0.1])), ValueError, r"\[0, 1\].*L1 activity regularizer"),
    ("kl-target-text", lambda: autoencoder_layers.KLDivergenceRegularizer(0.05, "0.1"), TypeError,
     r"target must be a number.*target=0\.1"),
    ("kl-target-bool", lambda: autoencoder_layers.KLDivergenceRegularizer(0.05, True), TypeError,
     r"target must be a number"),
    ("kl-target-one", lambda: autoencoder_layers.kl_divergence_penalty(1.0, [0.5]), ValueError,
     r"strictly between 0 and 1.*target=0\.1"),
    ("kl-weight-text", lambda: autoencoder_layers.KLDivergenceRegularizer("0.05", 0.1), TypeError,
     r"weight must be a number.*weight=0\.05"),
    ("kl-weight-inf", lambda: autoencoder_layers.KLDivergenceRegularizer(np.inf, 0.1), ValueError,
     r"0 or more \(and finite\)"),
    # ---- layers: VAE ----
    ("latent-loss-shapes", lambda: autoencoder_layers.latent_loss(
        np.zeros((4, 10), "float32"), np.zeros((4, 1), "float32")), ValueError,
     r"same shape.*same number of units"),
    ("sampling-seed-text", lambda: autoencoder_layers.Sampling(seed="42"), TypeError,
     r"seed must be an integer or None.*seed=42"),
    ("sampling-one-input", lambda: autoencoder_layers.Sampling()(np.zeros((2, 3), "float32")),
     ValueError,
     r"two inputs"),
    ("sampling-shapes", lambda: autoencoder_layers.Sampling()(
        [np.zeros((2, 3), "float32"), np.zeros((2, 4), "float32")]), ValueError,
     r"same shape"),
    # ---- layers: GAN ----
    ("minibatch-zero-kernels", lambda: gan_layers.MinibatchDiscrimination(num_kernels=0),
     ValueError, r"num_kernels must be at least 1"),
    ("minibatch-fractional-dim", lambda: gan_layers.MinibatchDiscrimination(kernel_dim=2.5),
     TypeError, r"kernel_dim must be an integer"),
    ("minibatch-images", lambda: gan_layers.MinibatchDiscrimination()(
        np.zeros((2, 3, 3), "float32")), ValueError, r"flat feature vectors.*Flatten"),
    ("stddev-epsilon-zero", lambda: gan_layers.MinibatchStdDev(epsilon=0), ValueError,
     r"epsilon must be positive.*above 0"),
    ("stddev-epsilon-text", lambda: gan_layers.MinibatchStdDev(epsilon="1e-8"), TypeError,
     r"epsilon must be a number"),
    ("stddev-flat-input", lambda: gan_layers.MinibatchStdDev()(np.zeros((2, 3), "float32")),
     ValueError, r"height, width, channels"),
    ("pixelnorm-epsilon-negative", lambda: gan_layers.PixelNormalization(epsilon=-1), ValueError,
     r"epsilon must be positive"),
    ("equalized-dense-units", lambda: gan_layers.EqualizedDense(0), ValueError,
     r"units must be at least 1"),
    ("equalized-dense-lr", lambda: gan_layers.EqualizedDense(3, lr_multiplier=0), ValueError,
     r"lr_multiplier must be positive"),
    ("equalized-dense-activation", lambda: gan_layers.EqualizedDense(3, activation="leaky"),
     ValueError, r"Unknown activation 'leaky'"),
    ("equalized-conv-filters", lambda: gan_layers.EqualizedConv2D(0), ValueError,
     r"filters must be at least 1"),
    ("equalized-conv-kernel", lambda: gan_layers.EqualizedConv2D(3, kernel_size=0), ValueError,
     r"kernel_size must be at least 1"),
    ("equalized-conv-padding", lambda: gan_layers.EqualizedConv2D(3, padding="full"), ValueError,
     r"padding must be \"same\" or \"valid\""),
    ("equalized-conv-flat", lambda: gan_layers.EqualizedConv2D(3)(np.zeros((2, 5, 5), "float32")),
     ValueError, r"height, width, channels"),
    ("noise-seed-fraction", lambda: gan_layers.NoiseInjection(seed=2.5), TypeError,
     r"seed must be an integer"),
    ("adain-one-input", lambda: gan_layers.AdaptiveInstanceNormalization()(
        np.zeros((2, 4, 4, 3), "float32")), ValueError, r"\[feature_maps, w\]"),
    ("fadein-alpha-above-1", lambda: gan_layers.FadeIn(alpha=1.5), ValueError,
     r"\[0, 1\].*0 \(old path only\)"),
    ("fadein-alpha-text", lambda: gan_layers.FadeIn(alpha="half"), TypeError,
     r"alpha must be a number"),
    ("fadein-set-alpha-negative", lambda: gan_layers.FadeIn().set_alpha(-0.1), ValueError,
     r"\[0, 1\]"),
    ("fadein-shapes", lambda: gan_layers.FadeIn()(
        [np.zeros((1, 4, 4, 1), "float32"), np.zeros((1, 8, 8, 1), "float32")]), ValueError,
     r"same shape.*upsample"),
    ("mapping-zero-layers", lambda: gan_layers.build_mapping_network(n_layers=0), ValueError,
     r"n_layers must be at least 1"),
    ("mapping-zero-codings", lambda: gan_layers.build_mapping_network(codings_size=0), ValueError,
     r"codings_size must be at least 1"),
    ("synthesis-filters", lambda: gan_layers.SynthesisBlock(0), ValueError,
     r"filters must be at least 1"),
    ("synthesis-seed-text", lambda: gan_layers.SynthesisBlock(4, seed="1"), TypeError,
     r"seed must be an integer"),
    ("synthesis-one-input", lambda: gan_layers.SynthesisBlock(2)(
        np.zeros((2, 4, 4, 3), "float32")), ValueError, r"\[feature_maps, w\]"),
    # ---- training.ReplayBuffer ----
    ("replay-zero-capacity", lambda: training.ReplayBuffer(0, (28, 28)), ValueError,
     r"capacity must be at least 1"),
    ("replay-fractional-capacity", lambda: training.ReplayBuffer(2.5, (28, 28)), TypeError,
     r"capacity must be an integer"),
    ("replay-int-shape", lambda: training.ReplayBuffer(4, 28), TypeError,
     r"tuple such as \(28, 28\).*\(28,\)"),
    ("replay-zero-size-shape", lambda: training.ReplayBuffer(4, (28, 0)), ValueError,
     r"example_shape must be at least 1"),
    ("replay-seed-text", lambda: training.ReplayBuffer(4, (2,), seed="x"), TypeError,
     r"seed must be an integer"),
    ("replay-add-wrong-shape", lambda: training.ReplayBuffer(4, (28, 28)).add(
        np.zeros((2, 14, 14), "float32")), ValueError, r"shape \(28, 28\).*\(n, 28, 28\)"),
    ("replay-add-nan", lambda: training.ReplayBuffer(4, (2,)).add(
        np.full((2, 2), np.nan, "float32")), ValueError, r"batch added.*NaN"),
    ("replay-add-scalar", lambda: training.ReplayBuffer(4, (2,)).add(1.0), ValueError,
     r"add a batch shaped \(n, 2\)"),
    ("replay-sample-empty", lambda: training.ReplayBuffer(4, (2,)).sample(2), ValueError,
     r"empty: add\(\) a batch before sampling"),
    ("replay-sample-negative", lambda: training.ReplayBuffer(4, (2,)).sample(-1), ValueError,
     r"number of examples to sample must be at least 0"),
    ("replay-sample-fraction", lambda: training.ReplayBuffer(4, (2,)).sample(2.5), TypeError,
     r"must be an integer"),
    # ---- training.FadeInSchedule / GanProgress ----
    ("fade-schedule-negative", lambda: training.FadeInSchedule([], -1), ValueError,
     r"0 or more.*pass 0"),
    ("fade-schedule-text", lambda: training.FadeInSchedule([], "10"), TypeError,
     r"whole number of steps"),
    ("fade-schedule-dense", lambda: training.FadeInSchedule([keras.layers.Dense(2)], 10),
     TypeError, r"FadeIn layers.*got Dense"),
    ("fade-schedule-single-layer", lambda: training.FadeInSchedule(gan_layers.FadeIn(), 10),
     TypeError, r"\[fade_layer\]"),
    ("progress-every-zero", lambda: training.GanProgress(np.zeros((2, 3)), every=0),
     ValueError, r"every must be at least 1"),
    ("progress-nan-noise", lambda: training.GanProgress(np.full((2, 3), np.nan)), ValueError,
     r"noise contains NaN"),
    ("progress-1d-noise", lambda: training.GanProgress(np.zeros(3)), ValueError,
     r"\(n, codings_size\).*keras\.random\.normal"),
    ("progress-show-not-callable", lambda: training.GanProgress(np.zeros((2, 3)), show="grid"),
     TypeError, r"show\(images, epoch\).*live_image_grid"),
    ("progress-restore-mismatch", lambda: training.GanProgress(np.zeros((2, 3))).restore_arrays(
        {"epochs": np.arange(2), "images": np.zeros((3, 2, 2))}), ValueError,
     r"matching 'epochs' and 'images'.*RETRAIN"),
    # ---- config ----
    ("settings-capitalised-mode", lambda: config.RunSettings(mode="Smoke", seed=1), ValueError,
     r"'Smoke'.*\"smoke\".*resolve_mode"),
    ("settings-unknown-mode", lambda: config.RunSettings(mode="fast", seed=1), ValueError,
     r"Unknown run mode 'fast'"),
    ("settings-negative-seed", lambda: config.RunSettings(mode="smoke", seed=-1), ValueError,
     r"\[0, 4294967295\].*seed=42"),
    ("settings-huge-seed", lambda: config.RunSettings(mode="smoke", seed=2**32), ValueError,
     r"seed must lie in"),
    ("settings-fractional-seed", lambda: config.RunSettings(mode="smoke", seed=4.2), TypeError,
     r"whole number"),
    ("settings-bool-seed", lambda: config.RunSettings(mode="smoke", seed=True), TypeError,
     r"whole number"),
    ("settings-retrain-text", lambda: config.RunSettings(mode="smoke", seed=1, retrain="yes"),
     TypeError, r"retrain must be True or False"),
    ("seed-everything-negative", lambda: config.seed_everything(-5), ValueError,
     r"seed must lie in"),
    ("setup-negative-seed", lambda: config.setup("smoke", seed=-5, plots=False), ValueError,
     r"seed must lie in"),
    ("resolve-unknown-mode", lambda: config.resolve_mode("fastest"), ValueError,
     r"Choose one of.*COURSE_MODE"),
    ("resolve-retrain-text", lambda: config.resolve_retrain("yes"), TypeError,
     r"RETRAIN must be True, False or None"),
    # ---- data (no files needed) ----
    ("dataset-empty", lambda: data.to_dataset(np.zeros((0, 28, 28))), ValueError,
     r"no examples.*at least one row"),
    ("dataset-empty-with-targets", lambda: data.to_dataset(
        np.zeros((0, 2)), np.zeros((0, 2))), ValueError, r"no examples"),
    ("dataset-scalar", lambda: data.to_dataset(3.0), ValueError, r"no examples"),
    ("dataset-nan", lambda: data.to_dataset(NAN_IMAGES), ValueError, r"inputs contains NaN"),
    ("dataset-nan-targets", lambda: data.to_dataset(IMAGES, NAN_IMAGES), ValueError,
     r"targets contains NaN"),
    ("dataset-lengths", lambda: data.to_dataset(IMAGES, IMAGES[:3]), ValueError,
     r"one row each.*matching"),
    ("dataset-batch-zero", lambda: data.to_dataset(IMAGES, batch_size=0), ValueError,
     r"batch_size must be at least 1"),
    ("dataset-batch-fraction", lambda: data.to_dataset(IMAGES, batch_size=2.5), TypeError,
     r"batch_size must be an integer"),
    ("dataset-negative-seed", lambda: data.to_dataset(IMAGES, seed=-1), ValueError,
     r"seed must lie in"),
    ("dataset-no-full-batch", lambda: data.to_dataset(
        IMAGES, batch_size=8, drop_remainder=True), ValueError, r"no batch at all.*smaller"),
    ("dataset-strings", lambda: data.to_dataset(np.array(["a", "b"])), TypeError,
     r"real numbers"),
    ("load-limit-zero", lambda: data.load_fashion_mnist(limit=0), ValueError,
     r"limit must be at least 1"),
    ("load-limit-fraction", lambda: data.load_fashion_mnist(limit=0.5), TypeError,
     r"limit must be an integer"),
    ("load-negative-validation", lambda: data.load_fashion_mnist(validation_size=-1),
     ValueError, r"validation_size must be at least 0"),
    ("load-bool-validation", lambda: data.load_fashion_mnist(validation_size=True), TypeError,
     r"validation_size must be an integer"),
    ("pad-odd-margin", lambda: data.pad_images(IMAGES, size=31), ValueError, r"evenly"),
    ("pad-smaller", lambda: data.pad_images(IMAGES, size=20), ValueError, r"at least as large"),
    ("pad-not-square", lambda: data.pad_images(np.zeros((2, 28, 20))), ValueError,
     r"square.*images\[None\]"),
    ("pad-size-text", lambda: data.pad_images(IMAGES, size="32"), TypeError,
     r"size must be an integer"),
    ("pad-nan", lambda: data.pad_images(NAN_IMAGES), ValueError, r"NaN"),
    ("pad-value-text", lambda: data.pad_images(IMAGES, value="black"), TypeError,
     r"value must be a number"),
    ("toy-too-few-points", lambda: data.make_3d_data(m=2), ValueError, r"m must be at least 3"),
    ("toy-negative-noise", lambda: data.make_3d_data(noise=-0.1), ValueError,
     r"noise must be >= 0"),
    ("toy-nan-noise", lambda: data.make_3d_data(noise=np.nan), ValueError,
     r"noise must be a finite number"),
    ("toy-negative-seed", lambda: data.make_3d_data(seed=-1), ValueError, r"seed must lie in"),
    ("toy-weight-text", lambda: data.make_3d_data(w1="a"), TypeError, r"w1 must be a number"),
    ("scale-floats-again", lambda: data.scale_images(IMAGES), TypeError,
     r"uint8.*already floats"),
    # ---- evaluation (an untrained judge: only its shapes matter here) ----
    ("judge-nan-images", lambda: evaluation.classify_images(_judge(), NAN_IMAGES), ValueError,
     r"NaN"),
    ("judge-inf-images", lambda: evaluation.classify_images(_judge(), INF_IMAGES), ValueError,
     r"infinite"),
    ("judge-tanh-images", lambda: evaluation.classify_images(_judge(), TANH_IMAGES), ValueError,
     r"rescale tanh.*\(images \+ 1\) / 2"),
    ("judge-0-255-images", lambda: evaluation.classify_images(_judge(), IMAGES * 255),
     ValueError, r"\[0, 1\].*divide by 255"),
    ("judge-32x32", lambda: evaluation.classify_images(_judge(), np.zeros((2, 32, 32))),
     ValueError, r"28x28.*2:30"),
    ("judge-empty", lambda: evaluation.classify_images(_judge(), np.zeros((0, 28, 28))),
     ValueError, r"empty batch"),
    ("judge-batch-zero", lambda: evaluation.classify_images(_judge(), IMAGES, batch_size=0),
     ValueError, r"batch_size must be at least 1"),
    ("judge-not-a-model", lambda: evaluation.classify_images(None, IMAGES), TypeError,
     r"Keras model.*load_fashion_classifier"),
    ("features-nan-images", lambda: evaluation.judge_features(_judge(), NAN_IMAGES),
     ValueError, r"NaN"),
    ("features-no-features-layer", lambda: evaluation.judge_features(
        _no_features_model(), IMAGES), ValueError, r"no layer named 'features'"),
    ("fid-nan-generated", lambda: evaluation.domain_fid(_judge(), IMAGES, NAN_IMAGES),
     ValueError, r"NaN"),
    ("fid-tanh-real", lambda: evaluation.domain_fid_against(_judge(), TANH_IMAGES), ValueError,
     r"rescale tanh"),
    ("fid-one-generated", lambda: evaluation.domain_fid(_judge(), IMAGES, IMAGES[:1]),
     ValueError, r"at least 2 samples"),
    # ---- notebook 14's layers and notebook 15's precision and recall ----
    ("time-embedding-odd", lambda: diffusion_layers.SinusoidalTimeEmbedding(5), ValueError,
     r"even.*pass e.g. 6"),
    ("time-embedding-two-columns", lambda: diffusion_layers.SinusoidalTimeEmbedding(4)(
        np.zeros((3, 2), "float32")), ValueError, r"one time per example"),
    ("residual-block-groups", lambda: diffusion_layers.ResidualBlock(12, groups=8), ValueError,
     r"multiple of groups"),
    ("residual-block-input-channels", lambda: diffusion_layers.ResidualBlock(8)(
        [np.zeros((1, 4, 4, 3), "float32"), np.zeros((1, 2), "float32")]), ValueError,
     r"3 channels.*start the network with a convolution"),
    ("sampler-rising-schedule", lambda: diffusion_layers.DiffusionSampler(
        _tiny_denoiser(), alpha_bars=[0.2, 0.9]), ValueError, r"strictly decreasing"),
    ("sampler-too-many-steps", lambda: diffusion_layers.DiffusionSampler(
        _tiny_denoiser(), alpha_bars=[0.9, 0.2], steps=3), ValueError, r"at most"),
    ("sampler-codings-shape", lambda: diffusion_layers.DiffusionSampler(
        _tiny_denoiser(), alpha_bars=[0.9, 0.2], steps=2)(np.zeros((2, 5), "float32")),
     ValueError, r"one standard normal coding per pixel.*\(n, 4\)"),
    ("precision-recall-few-samples", lambda: metrics.precision_recall(
        np.zeros((3, 2)), np.zeros((10, 2))), ValueError, r"more than k=3"),
    ("precision-recall-features", lambda: metrics.precision_recall(
        np.zeros((10, 2)), np.zeros((10, 3))), ValueError, r"same feature extractor"),
]


@pytest.mark.parametrize(("call", "error", "match"),
                         [pytest.param(*case[1:], id=case[0]) for case in ERROR_CASES])
def test_bad_input_gets_a_clear_error_from_course_utils(call, error, match):
    assert_clear_error(call, error, match)


# ---- Cases that need files, the environment or a compiled step -------------------------------


def _write_gz(path, payload):
    with gzip.open(path, "wb") as stream:
        stream.write(payload)
    return path


def _idx_header(*shape, dtype=0x08):
    return bytes([0, 0, dtype, len(shape)]) + b"".join(n.to_bytes(4, "big") for n in shape)


IDX_CASES = [
    ("idx-missing", lambda folder: folder / "absent.gz", FileNotFoundError, r"make data"),
    ("idx-folder", lambda folder: folder, FileNotFoundError, r"not a file.*make data"),
    ("idx-not-gzip", lambda folder: (folder / "page.gz").write_bytes(b"<html>") and
     folder / "page.gz", ValueError, r"not a valid gzip file.*make data"),
    ("idx-truncated-gzip", lambda folder: (folder / "cut.gz").write_bytes(
        gzip.compress(_idx_header(2, 2) + bytes(4))[:-6]) and folder / "cut.gz", ValueError,
     r"not a valid gzip"),
    ("idx-bad-magic", lambda folder: _write_gz(folder / "magic.gz", b"\x01\x02\x08\x01"),
     ValueError, r"bad magic number"),
    ("idx-float-dtype", lambda folder: _write_gz(folder / "float.gz", _idx_header(2, dtype=0x0D)
                                                 + bytes(8)), ValueError, r"only 0x08"),
    ("idx-truncated-header", lambda folder: _write_gz(folder / "header.gz", b"\x00\x00\x08\x03"
                                                      + bytes(4)), ValueError, r"header truncated"),
    ("idx-truncated-payload", lambda folder: _write_gz(folder / "short.gz",
                                                       _idx_header(3, 4) + bytes(5)),
     ValueError, r"\(12 bytes\) but 5 bytes follow"),
]


@pytest.mark.parametrize(("make", "error", "match"),
                         [pytest.param(*case[1:], id=case[0]) for case in IDX_CASES])
def test_damaged_idx_files_get_a_clear_error(tmp_path, make, error, match):
    path = make(tmp_path)
    assert_clear_error(lambda: data.read_idx(path), error, match)


@pytest.mark.parametrize(("value", "offline"), [
    ("off", False), ("OFF ", False), ("no", False), ("on", True), ("True", True), ("1", True),
])
def test_offline_switch_reads_common_spellings(monkeypatch, value, offline):
    monkeypatch.setenv("FASHION_MNIST_OFFLINE", value)
    assert data.is_offline() is offline


@pytest.mark.parametrize("value", ["maybe", "2", "offline"])
def test_offline_switch_refuses_unclear_values(monkeypatch, value):
    monkeypatch.setenv("FASHION_MNIST_OFFLINE", value)
    assert_clear_error(data.is_offline, ValueError, r"not understood.*1 \(never download\)")


def _no_data_anywhere(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "REPO_CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "debian")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FASHION_MNIST_OFFLINE", "1")


def test_offline_without_data_explains_both_fixes(monkeypatch, tmp_path):
    _no_data_anywhere(monkeypatch, tmp_path)
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    excinfo = assert_clear_error(data.load_fashion_mnist, data.DataUnavailableError,
                                 r"skipped because offline")
    assert "apt-get install dataset-fashion-mnist" in str(excinfo.value)


def test_data_dir_pointing_at_a_file_is_reported(monkeypatch, tmp_path):
    _no_data_anywhere(monkeypatch, tmp_path)
    stray = tmp_path / "train-images-idx3-ubyte.gz"
    stray.write_bytes(b"x")
    monkeypatch.setenv("FASHION_MNIST_DIR", str(stray))
    assert_clear_error(data.load_fashion_mnist, data.DataUnavailableError,
                       r"FASHION_MNIST_DIR.*no such folder")


def test_corrupted_files_are_skipped_with_a_warning(monkeypatch, tmp_path):
    _no_data_anywhere(monkeypatch, tmp_path)
    folder = tmp_path / "mine"
    folder.mkdir()
    for name in data.FASHION_MNIST_SHA256:
        _write_gz(folder / name, _idx_header(1, 1) + b"\x00")  # valid idx, wrong content
    monkeypatch.setenv("FASHION_MNIST_DIR", str(folder))
    with pytest.warns(UserWarning, match="checksum"):
        assert_clear_error(data.load_fashion_mnist, data.DataUnavailableError,
                           r"(?s)checksum mismatch.*make data")


def test_unknown_mode_in_the_environment_names_the_variable(monkeypatch):
    monkeypatch.setenv("COURSE_MODE", "Fast")
    assert_clear_error(config.resolve_mode, ValueError, r"COURSE_MODE environment variable")


def test_unclear_retrain_variable(monkeypatch):
    monkeypatch.setenv("COURSE_RETRAIN", "sometimes")
    assert_clear_error(config.resolve_retrain, ValueError, r"COURSE_RETRAIN.*use 1")


@pytest.mark.parametrize("save", [
    pytest.param(lambda model, folder: model.save(folder / "tied.keras"), id="model-save"),
    pytest.param(lambda model, folder: keras.saving.save_model(model, folder / "tied.keras"),
                 id="keras-saving-save-model"),
    pytest.param(lambda model, folder: model.save(folder / "tied_dir", zipped=False),
                 id="unzipped-folder"),
    pytest.param(lambda model, folder: model.save(folder / "tied.h5"), id="legacy-h5"),
])
def test_saving_a_tied_model_whole_leaves_nothing_behind(tmp_path, save):
    assert_clear_error(lambda: save(_tied_model(), tmp_path), NotImplementedError,
                       r"cannot be saved whole.*save_weights")
    assert list(tmp_path.iterdir()) == []


def test_a_refused_save_keeps_an_older_file(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"an earlier, good save")
    assert_clear_error(lambda: _tied_model().save(path), NotImplementedError, r"save_weights")
    assert path.read_bytes() == b"an earlier, good save"


def test_kl_in_a_compiled_step_fails_with_the_same_message():
    # Case "kl-compiled-relu-coding-layer" of OUTSIDE_COURSE_UTILS.
    keras.utils.set_random_seed(0)
    sparsity = autoencoder_layers.KLDivergenceRegularizer(0.05, 0.1)
    coding = keras.layers.Dense(3, activation="relu", kernel_initializer="ones",
                                activity_regularizer=sparsity)
    model = keras.Sequential([keras.Input((2,)), coding, keras.layers.Dense(2)])
    model.compile(loss="mse", optimizer="sgd")
    x = np.full((4, 2), 3.0, "float32")
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"must lie in \[0, 1\].*sigmoid"):
        model.fit(x, x, epochs=1, verbose=0)


def test_replay_sample_before_add_fails_a_compiled_step():
    # Case "replay-compiled-sample-before-add" of OUTSIDE_COURSE_UTILS.
    buffer = training.ReplayBuffer(4, (2,), seed=0)

    @tf.function(jit_compile=False)
    def step():
        return buffer.sample(3)

    with pytest.raises(tf.errors.InvalidArgumentError, match=r"empty: add\(\) a batch"):
        step()


def test_replay_sample_before_add_under_xla_gives_nan_not_zeros():
    buffer = training.ReplayBuffer(4, (2,), seed=0)

    @tf.function(jit_compile=True)
    def step():
        return buffer.sample(3)

    try:
        sampled = np.asarray(step())
    except tf.errors.InvalidArgumentError as error:  # XLA kept the assertion: fine too
        assert "empty" in str(error)
    else:
        assert np.all(np.isnan(sampled))


# ---- Correct handling: the right result, not an error -----------------------------------------


def test_pick_book_none_means_none_and_leaving_it_out_means_default():
    book = config.RunSettings("book", 0)
    assert book.pick(smoke=2000, default=6400, book=None) is None
    assert book.pick(smoke=2000, default=6400) == 6400
    assert config.RunSettings("default", 0).pick(smoke=1, default=2, book=None) == 2
    assert config.RunSettings("smoke", 0).pick(smoke=None, default=2) is None


def test_principal_angles_of_a_basis_spanning_the_whole_space_are_zero():
    np.testing.assert_allclose(metrics.principal_angles(np.eye(3), RNG.normal(size=(3, 3))),
                               0, atol=1e-6)


def test_frechet_distance_of_one_feature_column_matches_the_closed_form():
    a = RNG.normal(1.0, 2.0, size=(400, 1))
    b = RNG.normal(-1.0, 0.5, size=(400, 1))
    sa, sb = np.std(a, ddof=1), np.std(b, ddof=1)
    expected = (a.mean() - b.mean()) ** 2 + (sa - sb) ** 2
    assert metrics.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


def test_rounded_accuracy_keeps_linear_outputs_on_the_right_side_of_half():
    targets = np.array([[1.0, 0.0, 1.0]], "float32")
    outputs = np.array([[1.6, -0.3, 0.7]], "float32")
    assert float(metrics.rounded_accuracy(targets, outputs)[0]) == 1.0


def test_kl_penalty_of_saturated_sigmoid_units_stays_finite():
    saturated = np.array([0.0, 1.0], "float32")
    penalty = np.asarray(autoencoder_layers.kl_divergence_penalty(0.1, saturated))
    assert np.all(np.isfinite(penalty))


def test_slightly_noisy_images_are_still_drawn_clipped():
    noisy = IMAGES + RNG.normal(0, 0.2, IMAGES.shape)  # notebook 6 shows such inputs
    fig = plots.plot_image_grid(noisy, n_cols=2)
    assert fig.axes[0].get_images()[0].get_clim() == (0.0, 1.0)


def test_boolean_masks_are_drawn_as_images():
    fig = plots.plot_image_grid(IMAGES > 0.5)
    assert len([ax for ax in fig.axes if ax.get_images()]) == 4


def test_one_metric_name_as_a_string_draws_one_panel():
    fig = plots.plot_learning_curves({"loss": [1.0, 0.5]}, metrics="loss")
    assert len(fig.axes) == 1


def test_live_grid_without_a_title(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display",
                        lambda fig, display_id=None: shown.append(fig) or _Handle())
    plots.live_image_grid(n_images=2, n_cols=2, title=None)(IMAGES, epoch=1)
    assert len(shown) == 1


class _Handle:
    def update(self, fig):
        pass


def test_adding_an_empty_batch_to_the_replay_buffer_changes_nothing():
    buffer = training.ReplayBuffer(4, (2,), seed=0)
    buffer.add(np.zeros((0, 2), "float32"))
    assert len(buffer) == 0


def test_checks_accept_good_input_unchanged():
    images = (IMAGES * 255).astype(np.uint8)
    assert checks.check_images(images, value_range=(0, 255)) is images
    assert checks.check_count(np.int64(3), "n") == 3
    assert checks.check_number(2, "x", positive=True) == 2.0
