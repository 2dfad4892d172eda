"""Notebook 14's pieces: the sinusoidal time embedding, the U-Net's residual block and the
diffusion / flow-matching sampler (DDIM, DDPM, Euler steps, classifier-free guidance), against
their formulas, with their errors and safe-mode reloads."""

import keras
import numpy as np
import pytest
from keras import ops

from course_utils import diffusion_layers

T = 20  # a short schedule keeps the tests fast
ALPHA_BARS = np.linspace(0.99, 0.02, T)
TARGET = np.linspace(-0.8, 0.8, 16).reshape(4, 4, 1).astype("float32")  # the one "data" image


@keras.saving.register_keras_serializable(package="course_tests")
class OracleDenoiser(keras.layers.Layer):
    """The exact prediction for a data set of one image: the noise, or the velocity, that leads
    from x at time t to TARGET. A sampler that follows it must end exactly on TARGET."""

    def __init__(self, prediction="noise", **kwargs):
        super().__init__(**kwargs)
        self.prediction = prediction

    def call(self, inputs):
        images, times, _ = inputs
        target = ops.convert_to_tensor(TARGET)[None]
        if self.prediction == "velocity":
            return (target - images) / (1.0 - times[:, None, None, None])
        index = ops.cast(ops.round(times * T), "int32")
        alpha_bar = ops.take(ops.convert_to_tensor(ALPHA_BARS, "float32"), index)
        alpha_bar = alpha_bar[:, None, None, None]
        return (images - ops.sqrt(alpha_bar) * target) / ops.sqrt(1.0 - alpha_bar)

    def get_config(self):
        return {**super().get_config(), "prediction": self.prediction}


@keras.saving.register_keras_serializable(package="course_tests")
class LabelDenoiser(keras.layers.Layer):
    """Predicts the label number itself at every pixel, whatever the image: guidance's test."""

    def call(self, inputs):
        images, _, labels = inputs
        return ops.zeros_like(images) + ops.cast(labels, images.dtype)[:, None, None, None]


@keras.saving.register_keras_serializable(package="course_tests")
class ScaledDenoiser(keras.layers.Layer):
    """Predicts a fixed multiple of its input: a denoiser whose steps are easy to write out."""

    def __init__(self, factor=0.5, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs):
        return self.factor * inputs[0]

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def _denoiser(layer, image_shape=(4, 4, 1)):
    images = keras.Input(image_shape)
    times = keras.Input(())
    labels = keras.Input((), dtype="int32")
    return keras.Model([images, times, labels], layer([images, times, labels]))


def _codings(n=6, size=16, seed=0):
    return np.random.default_rng(seed).standard_normal((n, size)).astype("float32")


def _small_unet():
    """A real (tiny) denoiser from the course's layers, for shapes and reloads."""
    images = keras.Input((4, 4, 1))
    times = keras.Input(())
    labels = keras.Input((), dtype="int32")
    embedding = keras.layers.Concatenate()([
        diffusion_layers.SinusoidalTimeEmbedding(8)(times), keras.layers.Embedding(11, 4)(labels)])
    maps = keras.layers.Conv2D(8, 3, padding="same")(images)
    maps = diffusion_layers.ResidualBlock(8, groups=4)([maps, embedding])
    maps = diffusion_layers.ResidualBlock(16, groups=4)([maps, embedding])
    return keras.Model([images, times, labels], keras.layers.Conv2D(1, 1)(maps))


# --- SinusoidalTimeEmbedding ---------------------------------------------------------------

def test_time_embedding_matches_its_formula():
    times = np.array([0.0, 0.013, 0.5, 1.0], dtype="float32")
    embed = diffusion_layers.SinusoidalTimeEmbedding(6, scale=1000.0, max_period=100.0)
    embedding = np.asarray(embed(times))
    frequencies = 100.0 ** (-np.arange(3) / 3)
    angles = 1000.0 * times[:, None] * frequencies[None, :]
    np.testing.assert_allclose(embedding, np.concatenate([np.sin(angles), np.cos(angles)], 1),
                               rtol=1e-4, atol=1e-4)
    assert embedding.shape == (4, 6)
    # (batch, 1) times give the same embedding as (batch,) times.
    np.testing.assert_allclose(
        np.asarray(diffusion_layers.SinusoidalTimeEmbedding(6, max_period=100.0)(times[:, None])),
        embedding, rtol=1e-6)


def test_time_embedding_tells_nearby_steps_apart():
    embedding = diffusion_layers.SinusoidalTimeEmbedding(32)
    steps = np.arange(1000, dtype="float32") / 1000
    vectors = np.asarray(embedding(steps))
    gaps = np.linalg.norm(np.diff(vectors, axis=0), axis=1)
    assert gaps.min() > 0.1  # every step of a 1,000-step schedule gets its own vector


def test_time_embedding_errors_and_reload(tmp_path):
    with pytest.raises(ValueError, match="even"):
        diffusion_layers.SinusoidalTimeEmbedding(7)
    with pytest.raises(ValueError, match="positive"):
        diffusion_layers.SinusoidalTimeEmbedding(8, scale=0)
    with pytest.raises(ValueError, match="max_period"):
        diffusion_layers.SinusoidalTimeEmbedding(8, max_period=0.5)
    with pytest.raises(ValueError, match="one time per example"):
        diffusion_layers.SinusoidalTimeEmbedding(8)(np.zeros((3, 2), "float32"))
    times = keras.Input(())
    model = keras.Model(times, diffusion_layers.SinusoidalTimeEmbedding(8, scale=50.0)(times))
    model.save(tmp_path / "embedding.keras")
    reloaded = keras.saving.load_model(tmp_path / "embedding.keras", safe_mode=True)
    probe = np.array([0.1, 0.7], "float32")
    np.testing.assert_allclose(np.asarray(reloaded(probe)), np.asarray(model(probe)), rtol=1e-6)


# --- ResidualBlock -------------------------------------------------------------------------

def test_residual_block_is_its_formula():
    rng = np.random.default_rng(1)
    maps = rng.normal(size=(2, 5, 5, 8)).astype("float32")
    embedding = rng.normal(size=(2, 3)).astype("float32")
    block = diffusion_layers.ResidualBlock(8, groups=4)
    output = np.asarray(block([maps, embedding]))
    assert block.skip is None  # same channels: the input is added unchanged
    hidden = np.asarray(block.conv_in(ops.silu(block.norm_in(maps))))
    # Group norm by hand: each example's channels in 4 groups of 2, over all positions.
    groups = hidden.reshape(2, 5, 5, 4, 2)
    mean = groups.mean(axis=(1, 2, 4), keepdims=True)
    variance = groups.var(axis=(1, 2, 4), keepdims=True)
    normalised = (groups - mean) / np.sqrt(variance + block.norm_out.epsilon)
    normalised = normalised.reshape(hidden.shape)
    scale_shift = embedding @ block.time_scale_shift.kernel.numpy() + block.time_scale_shift.bias
    scale, shift = scale_shift[:, None, None, :8], scale_shift[:, None, None, 8:]
    steered = normalised * (1 + scale) + shift
    expected = np.asarray(block.conv_out(steered * (1 / (1 + np.exp(-steered))))) + maps
    np.testing.assert_allclose(output, expected, rtol=1e-4, atol=1e-4)


def test_residual_block_passes_its_input_when_the_branch_is_silent():
    maps = np.random.default_rng(2).normal(size=(3, 4, 4, 8)).astype("float32")
    block = diffusion_layers.ResidualBlock(8, groups=2)
    block([maps, np.ones((3, 5), "float32")])
    block.conv_out.kernel.assign(np.zeros(block.conv_out.kernel.shape))
    np.testing.assert_allclose(np.asarray(block([maps, np.ones((3, 5), "float32")])), maps,
                               rtol=1e-6)


def test_residual_block_changes_channels_through_a_1x1_convolution():
    maps = np.random.default_rng(3).normal(size=(2, 4, 4, 4)).astype("float32")
    block = diffusion_layers.ResidualBlock(8, groups=4)
    output = block([maps, np.zeros((2, 3), "float32")])
    assert output.shape == (2, 4, 4, 8) and block.skip is not None
    block.conv_out.kernel.assign(np.zeros(block.conv_out.kernel.shape))
    block.conv_out.bias.assign(np.zeros(8))
    np.testing.assert_allclose(np.asarray(block([maps, np.zeros((2, 3), "float32")])),
                               np.asarray(block.skip(maps)), rtol=1e-5, atol=1e-6)


def test_the_embedding_steers_every_block_and_a_silent_branch_ignores_it():
    maps = np.random.default_rng(5).normal(size=(1, 3, 3, 4)).astype("float32")
    block = diffusion_layers.ResidualBlock(4, groups=2)
    a = np.asarray(block([maps, np.array([[1.0, 0.0]], "float32")]))
    b = np.asarray(block([maps, np.array([[0.0, 5.0]], "float32")]))
    assert not np.allclose(a, b)  # the time changes the output
    assert block.time_scale_shift.kernel.shape == (2, 8)  # one scale and one shift per channel
    block.conv_out.kernel.assign(np.zeros(block.conv_out.kernel.shape))
    a = np.asarray(block([maps, np.array([[1.0, 0.0]], "float32")]))
    b = np.asarray(block([maps, np.array([[0.0, 5.0]], "float32")]))
    np.testing.assert_allclose(a, b)  # it acts before the last convolution


def test_residual_block_errors_and_reload(tmp_path):
    with pytest.raises(ValueError, match="multiple of groups"):
        diffusion_layers.ResidualBlock(10, groups=4)
    with pytest.raises(ValueError, match=r"\[feature_maps, embedding\]"):
        diffusion_layers.ResidualBlock(8)(np.zeros((1, 4, 4, 8), "float32"))
    with pytest.raises(ValueError, match="not a multiple"):
        diffusion_layers.ResidualBlock(8, groups=4)([np.zeros((1, 4, 4, 6), "float32"),
                                                     np.zeros((1, 3), "float32")])
    with pytest.raises(ValueError, match="feature maps"):
        diffusion_layers.ResidualBlock(8)([np.zeros((1, 4, 8), "float32"),
                                           np.zeros((1, 3), "float32")])
    with pytest.raises(ValueError, match="embedding must be"):
        diffusion_layers.ResidualBlock(8)([np.zeros((1, 4, 4, 8), "float32"),
                                           np.zeros((1, 2, 3), "float32")])
    model = _small_unet()
    model.save(tmp_path / "unet.keras")
    reloaded = keras.saving.load_model(tmp_path / "unet.keras", safe_mode=True)
    inputs = [np.random.default_rng(4).normal(size=(3, 4, 4, 1)).astype("float32"),
              np.array([0.0, 0.5, 0.9], "float32"), np.array([1, 10, 3], "int32")]
    np.testing.assert_allclose(np.asarray(reloaded(inputs)), np.asarray(model(inputs)),
                               rtol=1e-5, atol=1e-6)


# --- DiffusionSampler ----------------------------------------------------------------------

@pytest.mark.parametrize("steps", [1, 3, T])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_and_ddpm_following_the_exact_noise_end_on_the_data(steps, eta):
    sampler = diffusion_layers.DiffusionSampler(_denoiser(OracleDenoiser()), steps=steps,
                                                alpha_bars=ALPHA_BARS, eta=eta, seed=1)
    images = np.asarray(sampler(_codings()))
    assert images.shape == (6, 4, 4, 1)
    np.testing.assert_allclose(images, np.broadcast_to(TARGET, images.shape), atol=1e-4)


@pytest.mark.parametrize("steps", [1, 4, 25])
def test_euler_steps_along_the_exact_velocity_end_on_the_data(steps):
    sampler = diffusion_layers.DiffusionSampler(_denoiser(OracleDenoiser("velocity")), steps=steps,
                                                prediction="velocity")
    images = np.asarray(sampler(_codings()))
    np.testing.assert_allclose(images, np.broadcast_to(TARGET, images.shape), atol=1e-4)


def test_two_ddim_steps_written_out():
    factor = 0.5
    sampler = diffusion_layers.DiffusionSampler(_denoiser(ScaledDenoiser(factor)), steps=2,
                                                alpha_bars=ALPHA_BARS)
    codings = _codings()
    x = codings.reshape(-1, 4, 4, 1).astype("float64")
    for a, a_previous in ((ALPHA_BARS[-1], ALPHA_BARS[0]), (ALPHA_BARS[0], 1.0)):
        clean = np.clip((x - np.sqrt(1 - a) * factor * x) / np.sqrt(a), -1, 1)
        noise = (x - np.sqrt(a) * clean) / np.sqrt(1 - a)
        x = np.sqrt(a_previous) * clean + np.sqrt(1 - a_previous) * noise
    np.testing.assert_allclose(np.asarray(sampler(codings)), x, rtol=1e-4, atol=1e-5)


def test_clip_none_keeps_an_estimate_outside_minus_one_to_one():
    denoiser = _denoiser(ScaledDenoiser(0.0))  # predicts no noise: x0 = x / sqrt(alpha_bar)
    codings = np.full((2, 16), 3.0, "float32")
    clipped = diffusion_layers.DiffusionSampler(denoiser, steps=1, alpha_bars=ALPHA_BARS)
    free = diffusion_layers.DiffusionSampler(denoiser, steps=1, alpha_bars=ALPHA_BARS, clip=None)
    np.testing.assert_allclose(np.asarray(clipped(codings)), 1.0)
    np.testing.assert_allclose(np.asarray(free(codings)), 3.0 / np.sqrt(ALPHA_BARS[-1]),
                               rtol=1e-5)
    with pytest.raises(ValueError, match="clip"):
        diffusion_layers.DiffusionSampler(denoiser, steps=1, alpha_bars=ALPHA_BARS, clip=0)


def test_ddim_is_deterministic_and_ddpm_adds_the_posterior_noise():
    denoiser = _denoiser(ScaledDenoiser(0.0))  # predicts no noise: x0 = x / sqrt(alpha_bar)
    codings = np.zeros((400, 16), "float32")
    ddim = diffusion_layers.DiffusionSampler(denoiser, steps=2, alpha_bars=[0.9, 0.5])
    assert not np.any(np.asarray(ddim(codings)))
    ddpm = diffusion_layers.DiffusionSampler(denoiser, steps=2, alpha_bars=[0.9, 0.5], eta=1.0,
                                             seed=3)
    first, second = np.asarray(ddpm(codings)), np.asarray(ddpm(codings))
    assert not np.allclose(first, second)  # fresh noise on every call
    # From x = 0 the first step lands on sigma * z, sigma^2 = (1 - 0.9) / (1 - 0.5) *
    # (1 - 0.5 / 0.9); the last step divides by sqrt(0.9).
    sigma = np.sqrt(0.1 / 0.5 * (1 - 0.5 / 0.9))
    assert np.std(first) == pytest.approx(sigma / np.sqrt(0.9), rel=0.03)
    assert abs(np.mean(first)) < 0.01


def test_guidance_extrapolates_from_the_unconditional_prediction():
    denoiser = _denoiser(LabelDenoiser())
    codings = np.zeros((4, 16), "float32")
    labels = np.array([3, 3, 0, 9], "int32")
    # One Euler step of size 1 adds the prediction: null + s * (label - null), null = 10.
    for guidance in (0.0, 1.0, 2.5):
        sampler = diffusion_layers.DiffusionSampler(denoiser, steps=1, prediction="velocity",
                                                    guidance=guidance)
        images = np.asarray(sampler([codings, labels]))
        expected = 10 + guidance * (labels - 10.0)
        np.testing.assert_allclose(images[:, 0, 0, 0], expected, rtol=1e-6)
    unconditional = diffusion_layers.DiffusionSampler(denoiser, steps=1, prediction="velocity",
                                                      guidance=3.0)
    np.testing.assert_allclose(np.asarray(unconditional(codings)), 10.0)  # no labels: null


def test_sampler_as_a_generator_reloads_in_safe_mode(tmp_path):
    sampler = diffusion_layers.DiffusionSampler(_small_unet(), steps=3, alpha_bars=ALPHA_BARS,
                                                guidance=2.0)
    codings, labels = keras.Input((16,)), keras.Input((), dtype="int32")
    generator = keras.Model([codings, labels], sampler([codings, labels]))
    assert generator.output.shape == (None, 4, 4, 1)
    inputs = [_codings(5), np.arange(5, dtype="int32")]
    expected = generator.predict(inputs, verbose=0)
    generator.save(tmp_path / "generator.keras")
    reloaded = keras.saving.load_model(tmp_path / "generator.keras", safe_mode=True)
    np.testing.assert_allclose(reloaded.predict(inputs, verbose=0), expected, rtol=1e-5,
                               atol=1e-6)
    settings = reloaded.layers[-1]
    assert (settings.steps, settings.guidance, settings.prediction) == (3, 2.0, "noise")
    np.testing.assert_allclose(settings.alpha_bars, ALPHA_BARS)


def test_sampler_errors():
    denoiser = _denoiser(OracleDenoiser())
    with pytest.raises(TypeError, match="keras.Model"):
        diffusion_layers.DiffusionSampler(OracleDenoiser(), alpha_bars=ALPHA_BARS)
    images = keras.Input((4, 4, 1))
    with pytest.raises(ValueError, match="three"):
        diffusion_layers.DiffusionSampler(keras.Model(images, keras.layers.Conv2D(1, 1)(images)),
                                          alpha_bars=ALPHA_BARS)
    with pytest.raises(ValueError, match="prediction"):
        diffusion_layers.DiffusionSampler(denoiser, alpha_bars=ALPHA_BARS, prediction="score")
    with pytest.raises(ValueError, match="alpha_bars="):
        diffusion_layers.DiffusionSampler(denoiser)
    with pytest.raises(ValueError, match="strictly decreasing"):
        diffusion_layers.DiffusionSampler(denoiser, alpha_bars=[0.5, 0.9])
    with pytest.raises(ValueError, match="strictly decreasing"):
        diffusion_layers.DiffusionSampler(denoiser, alpha_bars=[1.0, 0.5])
    with pytest.raises(ValueError, match="at most"):
        diffusion_layers.DiffusionSampler(denoiser, alpha_bars=ALPHA_BARS, steps=T + 1)
    with pytest.raises(ValueError, match="drop alpha_bars"):
        diffusion_layers.DiffusionSampler(denoiser, alpha_bars=ALPHA_BARS, prediction="velocity")
    with pytest.raises(ValueError, match="eta at 0"):
        diffusion_layers.DiffusionSampler(denoiser, prediction="velocity", eta=1.0)
    with pytest.raises(ValueError, match="eta"):
        diffusion_layers.DiffusionSampler(denoiser, alpha_bars=ALPHA_BARS, eta=-1)
    with pytest.raises(TypeError, match="steps"):
        diffusion_layers.DiffusionSampler(denoiser, alpha_bars=ALPHA_BARS, steps=2.5)
    with pytest.raises(ValueError, match=r"\(n, 16\)"):
        diffusion_layers.DiffusionSampler(denoiser, alpha_bars=ALPHA_BARS, steps=3)(
            np.zeros((2, 15), "float32"))
