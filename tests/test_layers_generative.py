"""Sampling (VAE) and minibatch discrimination (GAN) layers: math, shapes, errors, saving."""

import keras
import numpy as np
import pytest

from course_utils import layers


def test_sampling_draws_from_the_requested_normal():
    n, dims = 20_000, 3
    mean = np.tile([[0.0, 2.0, -1.0]], (n, 1)).astype("float32")
    log_var = np.tile(np.log([[1.0, 0.25, 4.0]]), (n, 1)).astype("float32")
    codings = np.asarray(layers.Sampling(seed=0)([mean, log_var]))
    assert codings.shape == (n, dims)
    np.testing.assert_allclose(codings.mean(axis=0), [0, 2, -1], atol=0.05)
    np.testing.assert_allclose(codings.std(axis=0), [1, 0.5, 2], rtol=0.03)


def test_sampling_with_zero_variance_returns_the_mean():
    mean = np.array([[1.0, -2.0]], dtype="float32")
    log_var = np.full((1, 2), -80.0, dtype="float32")  # sigma = exp(-40), effectively 0
    np.testing.assert_allclose(layers.Sampling(seed=1)([mean, log_var]), mean, atol=1e-6)


def test_sampling_gives_new_noise_each_call_and_repeats_for_a_seed():
    zeros = np.zeros((4, 2), dtype="float32")
    first = layers.Sampling(seed=7)
    a, b = np.asarray(first([zeros, zeros])), np.asarray(first([zeros, zeros]))
    assert not np.allclose(a, b)
    again = layers.Sampling(seed=7)
    np.testing.assert_array_equal(np.asarray(again([zeros, zeros])), a)


def test_sampling_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="same shape"):
        layers.Sampling()([np.zeros((2, 3), "float32"), np.zeros((2, 4), "float32")])
    with pytest.raises(ValueError, match="two inputs"):
        layers.Sampling().build((None, 3))


def test_sampling_model_reloads_in_safe_mode(tmp_path):
    inputs = keras.Input((4,))
    mean, log_var = keras.layers.Dense(2)(inputs), keras.layers.Dense(2)(inputs)
    model = keras.Model(inputs, [mean, log_var, layers.Sampling(seed=3)([mean, log_var])])
    model.save(tmp_path / "vae_encoder.keras")
    reloaded = keras.models.load_model(tmp_path / "vae_encoder.keras", safe_mode=True)
    x = np.random.default_rng(0).random((5, 4)).astype("float32")
    for original, copy in zip(model(x)[:2], reloaded(x)[:2], strict=True):
        np.testing.assert_allclose(original, copy, atol=1e-6)
    sampling = [layer for layer in reloaded.layers if isinstance(layer, layers.Sampling)][0]
    assert sampling.get_config()["seed"] == 3


def _minibatch_features_by_hand(features, kernel, num_kernels, kernel_dim):
    rows = (features @ kernel).reshape(len(features), num_kernels, kernel_dim)
    closeness = np.zeros((len(features), num_kernels))
    for i in range(len(features)):
        for j in range(len(features)):
            if i != j:
                closeness[i] += np.exp(-np.abs(rows[i] - rows[j]).sum(axis=-1))
    return np.concatenate([features, closeness], axis=1)


def test_minibatch_discrimination_matches_the_formula():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(6, 4)).astype("float32")
    layer = layers.MinibatchDiscrimination(num_kernels=3, kernel_dim=2)
    output = np.asarray(layer(features))
    expected = _minibatch_features_by_hand(features, np.asarray(layer.kernel), 3, 2)
    assert output.shape == (6, 7)
    np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-6)


def test_minibatch_discrimination_sees_a_collapsed_batch():
    layer = layers.MinibatchDiscrimination(num_kernels=2, kernel_dim=2)
    identical = np.ones((5, 3), dtype="float32")
    varied = np.random.default_rng(2).normal(size=(5, 3)).astype("float32") * 5
    # Identical examples are at distance 0 from the 4 others: closeness exactly 4 per kernel.
    np.testing.assert_allclose(np.asarray(layer(identical))[:, 3:], 4.0, atol=1e-6)
    assert np.asarray(layer(varied))[:, 3:].mean() < 4.0


def test_minibatch_discrimination_errors_and_reload(tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        layers.MinibatchDiscrimination(num_kernels=0)
    with pytest.raises(ValueError, match="flat feature vectors"):
        layers.MinibatchDiscrimination()(np.zeros((2, 3, 3), "float32"))
    model = keras.Sequential([keras.Input((4,)), layers.MinibatchDiscrimination(5, 3),
                              keras.layers.Dense(1)])
    assert model.layers[0].kernel.shape == (4, 15)
    model.save(tmp_path / "discriminator.keras")
    reloaded = keras.models.load_model(tmp_path / "discriminator.keras", safe_mode=True)
    x = np.random.default_rng(3).random((8, 4)).astype("float32")
    np.testing.assert_allclose(model(x), reloaded(x), atol=1e-6)
    assert reloaded.layers[0].get_config()["num_kernels"] == 5


def test_latent_loss_matches_the_gaussian_kl_closed_form():
    mean = np.array([[0.0, 0.0], [1.0, -2.0], [0.5, 0.0]], dtype="float32")
    log_var = np.array([[0.0, 0.0], [0.0, np.log(4.0)], [np.log(0.25), 1.0]], dtype="float32")
    variance = np.exp(log_var)
    # KL(N(mu, s2) || N(0, 1)) = (s2 + mu^2 - 1 - ln s2) / 2 per dimension.
    expected = 0.5 * np.sum(variance + mean**2 - 1 - log_var, axis=-1)
    result = np.asarray(layers.latent_loss(mean, log_var))
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
    closed = float(layers.latent_loss(np.array([[mu]], "float32"),
                                      np.array([[2 * np.log(sigma)]], "float32"))[0])
    assert closed == pytest.approx(estimate, abs=0.01)
