"""The autoencoder chapters' layers: tied DenseTranspose and KL sparsity (formulas, tie,
gradients, saving), and the VAE's sampling layer and latent loss (math, shapes, errors, reload)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from course_utils import autoencoder_layers  # noqa: E402
from course_utils.autoencoder_layers import DenseTranspose, KLDivergenceRegularizer  # noqa: E402


def _built_dense(units, input_size, activation=None):
    dense = keras.layers.Dense(units, activation=activation)
    dense.build((None, input_size))
    return dense


def _set_random_weights(model, seed):
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        variable.assign(rng.normal(scale=0.1, size=variable.shape).astype("float32"))


def _build_tied_autoencoder():
    dense_1 = keras.layers.Dense(100, activation="selu")
    dense_2 = keras.layers.Dense(30, activation="selu")
    encoder = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), dense_1, dense_2])
    decoder = keras.Sequential([
        keras.Input((30,)),
        DenseTranspose(dense_2, activation="selu"),
        DenseTranspose(dense_1, activation="sigmoid"),
        keras.layers.Reshape((28, 28)),
    ])
    return keras.Sequential([encoder, decoder]), dense_1, dense_2, decoder


def _build_untied_autoencoder():
    return keras.Sequential([
        keras.Input((28, 28)),
        keras.layers.Flatten(),
        keras.layers.Dense(100, activation="selu"),
        keras.layers.Dense(30, activation="selu"),
        keras.layers.Dense(100, activation="selu"),
        keras.layers.Dense(28 * 28, activation="sigmoid"),
        keras.layers.Reshape((28, 28)),
    ])


def _predict(model, x):
    # A direct call skips predict()'s batching loop, which is slower on tiny inputs.
    return keras.ops.convert_to_numpy(model(x, training=False))


def _images(n=4, seed=0):
    return np.random.default_rng(seed).random((n, 28, 28)).astype("float32")


# ---- DenseTranspose ---------------------------------------------------------------------------


def test_dense_transpose_matches_the_formula():
    rng = np.random.default_rng(0)
    dense = _built_dense(3, 5)
    kernel = rng.normal(size=(5, 3)).astype("float32")
    dense.kernel.assign(kernel)
    tied = DenseTranspose(dense, activation="tanh")
    x = rng.normal(size=(4, 3)).astype("float32")
    tied.build(x.shape)
    bias = rng.normal(size=5).astype("float32")
    tied.bias.assign(bias)
    result = np.asarray(tied(x))
    assert result.shape == (4, 5)
    np.testing.assert_allclose(result, np.tanh(x @ kernel.T + bias), rtol=1e-5, atol=1e-6)


def test_dense_transpose_keeps_leading_dimensions():
    dense = _built_dense(3, 7)
    tied = DenseTranspose(dense)
    x = np.ones((2, 6, 3), dtype="float32")
    assert tuple(tied(x).shape) == (2, 6, 7)
    assert tied.compute_output_shape((None, 6, 3)) == (None, 6, 7)


def test_dense_transpose_owns_only_its_bias():
    dense = _built_dense(3, 5)
    tied = DenseTranspose(dense)
    model = keras.Sequential([keras.Input((5,)), dense, tied])
    assert len(tied.weights) == 1
    assert len(tied.trainable_weights) == 1
    assert tied.weights[0] is tied.bias
    assert tuple(tied.bias.shape) == (5,)
    assert tied.dense is dense
    assert sum(v is dense.kernel for v in model.trainable_variables) == 1
    assert len(model.trainable_variables) == 3  # kernel, Dense bias, DenseTranspose bias
    assert model.count_params() == 5 * 3 + 3 + 5


def test_tied_classic_autoencoder_has_82414_trainable_parameters():
    tied, *_ = _build_tied_autoencoder()
    untied = _build_untied_autoencoder()
    count = sum(int(np.prod(v.shape)) for v in tied.trainable_variables)
    assert count == 82_414
    assert tied.count_params() == 82_414
    assert untied.count_params() == 163_814
    assert tuple(tied(_images(2)).shape) == (2, 28, 28)


def _mse(y_true, y_pred):
    return keras.ops.mean(keras.ops.square(y_true - y_pred))


def test_gradient_on_tied_kernel_sums_both_uses_and_one_sgd_step_applies_it_once():
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 4)).astype("float32")
    dense = keras.layers.Dense(3, activation="tanh")
    tied = keras.Sequential([keras.Input((4,)), dense, DenseTranspose(dense, activation="tanh")])
    _set_random_weights(tied, seed=2)
    decoder_bias = tied.layers[1].bias.numpy()

    # Untied copy: the same numbers in two separate variables, one per use of the kernel.
    kernel = dense.kernel.numpy()
    encoder_kernel = tf.Variable(kernel)
    decoder_kernel = tf.Variable(kernel.T.copy())
    with tf.GradientTape() as tape:
        codes = tf.tanh(x @ encoder_kernel + dense.bias.numpy())
        loss = _mse(x, tf.tanh(codes @ decoder_kernel + decoder_bias))
    grad_encoder, grad_decoder = tape.gradient(loss, [encoder_kernel, decoder_kernel])
    expected_grad = grad_encoder.numpy() + grad_decoder.numpy().T

    with tf.GradientTape() as tape:
        tied_loss = _mse(x, tied(x))
    tied_grad = tape.gradient(tied_loss, dense.kernel)
    np.testing.assert_allclose(tied_grad.numpy(), expected_grad, rtol=1e-5, atol=1e-7)
    # Each use alone is not enough: the decoder's share is genuinely there.
    assert not np.allclose(tied_grad.numpy(), grad_encoder.numpy(), atol=1e-6)

    learning_rate = 0.5
    tied.compile(optimizer=keras.optimizers.SGD(learning_rate=learning_rate), loss="mse")
    tied.train_on_batch(x, x)
    np.testing.assert_allclose(
        dense.kernel.numpy(), kernel - learning_rate * expected_grad, rtol=1e-5, atol=1e-6
    )
    assert tied.layers[1].dense.kernel is dense.kernel


def test_dense_transpose_rejects_wrong_input_size_clearly():
    dense = _built_dense(30, 100)
    with pytest.raises(ValueError, match=r"last dimension is 30.*got last dimension 20"):
        keras.Sequential([keras.Input((20,)), DenseTranspose(dense)])
    tied = DenseTranspose(dense)
    with pytest.raises(ValueError, match="30"):
        tied(np.ones((2, 20), dtype="float32"))


@pytest.mark.parametrize("not_dense", [keras.layers.Flatten(), "dense", np.ones((3, 2))])
def test_dense_transpose_needs_a_dense_layer(not_dense):
    with pytest.raises(TypeError, match="keras.layers.Dense"):
        DenseTranspose(not_dense)


def test_dense_transpose_asks_to_build_the_encoder_first():
    unbuilt = keras.layers.Dense(3)
    with pytest.raises(RuntimeError, match="build or call the encoder first"):
        DenseTranspose(unbuilt)(np.ones((2, 3), dtype="float32"))


def test_weights_round_trip_keeps_outputs_and_the_tie(tmp_path):
    keras.utils.set_random_seed(3)
    original, *_ = _build_tied_autoencoder()
    _set_random_weights(original, seed=4)
    images = _images()
    expected = _predict(original, images)
    path = tmp_path / "tied.weights.h5"
    original.save_weights(path)

    rebuilt, dense_1, _, decoder = _build_tied_autoencoder()
    assert not np.allclose(_predict(rebuilt, images), expected, atol=1e-3)
    rebuilt.load_weights(path)
    np.testing.assert_allclose(_predict(rebuilt, images), expected, rtol=0, atol=1e-6)

    outer = decoder.layers[1]
    assert outer.dense is dense_1 and outer.dense.kernel is dense_1.kernel
    assert sum(v is dense_1.kernel for v in rebuilt.trainable_variables) == 1
    codes = np.random.default_rng(5).normal(size=(2, 100)).astype("float32")
    new_kernel = dense_1.kernel.numpy() * 2
    dense_1.kernel.assign(new_kernel)
    expected_after = 1 / (1 + np.exp(-(codes @ new_kernel.T + outer.bias.numpy())))
    np.testing.assert_allclose(np.asarray(outer(codes)), expected_after, rtol=1e-5, atol=1e-6)


def test_whole_model_save_refuses_with_the_weights_recipe(tmp_path):
    model, _, _, decoder = _build_tied_autoencoder()
    with pytest.raises(NotImplementedError, match=r"cannot be saved whole.*save_weights"):
        model.save(tmp_path / "tied.keras")
    assert list(tmp_path.iterdir()) == []  # refused before Keras opens the file: no 0-byte file
    with pytest.raises(NotImplementedError, match="load_weights"):
        decoder.layers[0].get_config()


def test_custom_objects_are_registered():
    assert keras.saving.get_registered_object("course_utils>DenseTranspose") is DenseTranspose
    found = keras.saving.get_registered_object("course_utils>KLDivergenceRegularizer")
    assert found is KLDivergenceRegularizer


# ---- KL divergence sparsity ---------------------------------------------------------------------


def _numpy_kl(p, q):
    return p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))


def _activations(seed=0, shape=(8, 5)):
    return np.random.default_rng(seed).uniform(0.01, 0.99, size=shape).astype("float32")


def test_kl_penalty_matches_the_formula_elementwise():
    q = np.array([0.01, 0.1, 0.3, 0.5, 0.9], dtype="float32")
    result = np.asarray(autoencoder_layers.kl_divergence_penalty(0.1, q))
    np.testing.assert_allclose(result, _numpy_kl(0.1, q.astype(np.float64)), rtol=1e-5, atol=1e-7)
    assert result[1] == pytest.approx(0, abs=1e-6)
    assert np.all(np.delete(result, 1) > 0)


def test_kl_penalty_stays_finite_for_saturated_units():
    saturated = np.array([0.0, 1.0], dtype="float32")
    result = np.asarray(autoencoder_layers.kl_divergence_penalty(0.1, saturated))
    assert np.all(np.isfinite(result))
    assert np.all(result > 1)


def test_kl_regularizer_matches_the_formula():
    activations = _activations()
    regularizer = KLDivergenceRegularizer(weight=0.05, target=0.1)
    expected = 0.05 * np.sum(_numpy_kl(0.1, activations.astype(np.float64).mean(axis=0)))
    assert float(regularizer(activations)) == pytest.approx(expected, rel=1e-5)


def test_kl_regularizer_is_zero_only_at_the_target():
    regularizer = KLDivergenceRegularizer(weight=1.0, target=0.2)
    on_target = np.array([[0.1, 0.3, 0.2], [0.3, 0.1, 0.2]], dtype="float32")  # means 0.2
    assert float(regularizer(on_target)) == pytest.approx(0, abs=1e-6)
    assert float(regularizer(on_target + 0.1)) > 1e-3
    assert float(KLDivergenceRegularizer(weight=0.0, target=0.2)(on_target + 0.1)) == 0


def test_kl_regularizer_config_round_trips():
    regularizer = KLDivergenceRegularizer(weight=0.05, target=0.1)
    config = regularizer.get_config()
    assert config == {"weight": 0.05, "target": 0.1}
    copy = KLDivergenceRegularizer.from_config(config)
    assert copy.get_config() == config
    activations = _activations(1)
    assert float(copy(activations)) == pytest.approx(float(regularizer(activations)), rel=1e-7)
    restored = keras.regularizers.deserialize(keras.regularizers.serialize(regularizer))
    assert isinstance(restored, KLDivergenceRegularizer)
    assert restored.get_config() == config


@pytest.mark.parametrize(("weight", "target", "message"), [
    (0.05, 0.0, "between 0 and 1"),
    (0.05, 1.0, "between 0 and 1"),
    (0.05, -0.1, "between 0 and 1"),
    (0.05, float("nan"), "between 0 and 1"),
    (-0.01, 0.1, "0 or more"),
    (float("nan"), 0.1, "0 or more"),
])
def test_kl_regularizer_rejects_bad_arguments(weight, target, message):
    with pytest.raises(ValueError, match=message):
        KLDivergenceRegularizer(weight=weight, target=target)


def _sparse_model():
    regularizer = KLDivergenceRegularizer(weight=0.05, target=0.1)
    coding = keras.layers.Dense(6, activation="sigmoid", activity_regularizer=regularizer)
    model = keras.Sequential([keras.Input((4,)), coding, keras.layers.Dense(4)])
    return model, coding, regularizer


def test_kl_activity_loss_reaches_the_model_losses_and_training_loss():
    keras.utils.set_random_seed(6)
    model, coding, regularizer = _sparse_model()
    x = np.random.default_rng(6).normal(size=(8, 4)).astype("float32")
    model(x)
    assert len(model.losses) == 1
    codes = np.asarray(coding(x))
    # Keras divides an activity regularizer's value by the batch size.
    expected_penalty = float(regularizer(codes)) / len(x)
    assert float(model.losses[0]) == pytest.approx(expected_penalty, rel=1e-5)
    assert expected_penalty > 0

    model.compile(loss="mse")
    loss = model.evaluate(x, x, batch_size=len(x), verbose=0)
    mse = np.mean((_predict(model, x) - x) ** 2)
    assert loss == pytest.approx(mse + expected_penalty, rel=1e-5)


def test_model_with_kl_regularizer_reloads_in_safe_mode(tmp_path):
    keras.utils.set_random_seed(7)
    model, _, _ = _sparse_model()
    x = np.random.default_rng(7).normal(size=(5, 4)).astype("float32")
    path = tmp_path / "sparse.keras"
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(_predict(reloaded, x), _predict(model, x))
    restored = reloaded.layers[0].activity_regularizer
    assert isinstance(restored, KLDivergenceRegularizer)
    assert restored.get_config() == {"weight": 0.05, "target": 0.1}
    reloaded(x)
    model(x)
    assert float(reloaded.losses[0]) == pytest.approx(float(model.losses[0]), rel=1e-6)


# --- The VAE's sampling layer and latent loss (notebook 8) ---


def test_sampling_draws_from_the_requested_normal():
    n, dims = 20_000, 3
    mean = np.tile([[0.0, 2.0, -1.0]], (n, 1)).astype("float32")
    log_var = np.tile(np.log([[1.0, 0.25, 4.0]]), (n, 1)).astype("float32")
    codings = np.asarray(autoencoder_layers.Sampling(seed=0)([mean, log_var]))
    assert codings.shape == (n, dims)
    np.testing.assert_allclose(codings.mean(axis=0), [0, 2, -1], atol=0.05)
    np.testing.assert_allclose(codings.std(axis=0), [1, 0.5, 2], rtol=0.03)


def test_sampling_with_zero_variance_returns_the_mean():
    mean = np.array([[1.0, -2.0]], dtype="float32")
    log_var = np.full((1, 2), -80.0, dtype="float32")  # sigma = exp(-40), effectively 0
    codings = autoencoder_layers.Sampling(seed=1)([mean, log_var])
    np.testing.assert_allclose(codings, mean, atol=1e-6)


def test_sampling_gives_new_noise_each_call_and_repeats_for_a_seed():
    zeros = np.zeros((4, 2), dtype="float32")
    first = autoencoder_layers.Sampling(seed=7)
    a, b = np.asarray(first([zeros, zeros])), np.asarray(first([zeros, zeros]))
    assert not np.allclose(a, b)
    again = autoencoder_layers.Sampling(seed=7)
    np.testing.assert_array_equal(np.asarray(again([zeros, zeros])), a)


def test_sampling_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="same shape"):
        autoencoder_layers.Sampling()([np.zeros((2, 3), "float32"), np.zeros((2, 4), "float32")])
    with pytest.raises(ValueError, match="two inputs"):
        autoencoder_layers.Sampling().build((None, 3))


def test_sampling_model_reloads_in_safe_mode(tmp_path):
    inputs = keras.Input((4,))
    mean, log_var = keras.layers.Dense(2)(inputs), keras.layers.Dense(2)(inputs)
    codings = autoencoder_layers.Sampling(seed=3)([mean, log_var])
    model = keras.Model(inputs, [mean, log_var, codings])
    model.save(tmp_path / "vae_encoder.keras")
    reloaded = keras.models.load_model(tmp_path / "vae_encoder.keras", safe_mode=True)
    x = np.random.default_rng(0).random((5, 4)).astype("float32")
    for original, copy in zip(model(x)[:2], reloaded(x)[:2], strict=True):
        np.testing.assert_allclose(original, copy, atol=1e-6)
    [sampling] = [layer for layer in reloaded.layers
                  if isinstance(layer, autoencoder_layers.Sampling)]
    assert sampling.get_config()["seed"] == 3


def test_latent_loss_matches_the_gaussian_kl_closed_form():
    mean = np.array([[0.0, 0.0], [1.0, -2.0], [0.5, 0.0]], dtype="float32")
    log_var = np.array([[0.0, 0.0], [0.0, np.log(4.0)], [np.log(0.25), 1.0]], dtype="float32")
    variance = np.exp(log_var)
    # KL(N(mu, s2) || N(0, 1)) = (s2 + mu^2 - 1 - ln s2) / 2 per dimension.
    expected = 0.5 * np.sum(variance + mean**2 - 1 - log_var, axis=-1)
    result = np.asarray(autoencoder_layers.latent_loss(mean, log_var))
    assert result.shape == (3,)
    np.testing.assert_allclose(result, expected, rtol=1e-6)
    assert result[0] == 0.0  # the prior itself costs nothing


def test_latent_loss_agrees_with_a_monte_carlo_estimate():
    rng = np.random.default_rng(5)
    mu, sigma = 0.7, 0.6
    z = rng.normal(mu, sigma, size=400_000)
    log_q = -0.5 * ((z - mu) / sigma) ** 2 - np.log(sigma)
    log_p = -0.5 * z**2
    estimate = np.mean(log_q - log_p)  # E_q[log q - log p]; the 2*pi terms cancel
    closed = float(autoencoder_layers.latent_loss(np.array([[mu]], "float32"),
                                                  np.array([[2 * np.log(sigma)]], "float32"))[0])
    assert closed == pytest.approx(estimate, abs=0.01)

