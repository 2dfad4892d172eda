"""Diffusion layers (notebook 14): the time embedding, the U-Net's block, the DDIM/flow sampler.

Tested in tests/test_diffusion.py.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from course_utils.checks import (
    check_count,
    check_feature_maps,
    check_finite,
    check_number,
    check_optional_seed,
)


@keras.saving.register_keras_serializable(package="course_utils")
class SinusoidalTimeEmbedding(keras.layers.Layer):
    """Times t in [0, 1] -> sines and cosines of scale * t at geometric frequencies. Notebook 14.

    With half = dim / 2 and f_k = max_period ** (-k / half) for k = 0 .. half - 1, the output
    is [sin(scale * t * f_0), ..., sin(scale * t * f_{half-1}), cos(scale * t * f_0), ...]: the
    Transformer's position encoding, with the noise level's time step as the position.
    """

    def __init__(self, dim, scale=1000.0, max_period=10000.0, **kwargs):
        super().__init__(**kwargs)
        self.dim = check_count(dim, "dim", 2)
        if self.dim % 2:
            raise ValueError(f"dim must be even (half sines, half cosines), got {dim}; "
                             f"pass e.g. {self.dim + 1}.")
        self.scale = check_number(scale, "scale", positive=True)
        self.max_period = check_number(max_period, "max_period", minimum=1.0)
        half = self.dim // 2
        self.frequencies = np.exp(-np.log(self.max_period) * np.arange(half) / half).astype(
            "float32")

    def build(self, input_shape):
        """Check that there is one time per example. Notebook 14."""
        if not (len(input_shape) == 1 or (len(input_shape) == 2 and input_shape[-1] == 1)):
            raise ValueError(f"SinusoidalTimeEmbedding takes one time per example, shaped "
                             f"(batch,) or (batch, 1); got {tuple(input_shape)}.")

    def call(self, times):
        """(batch,) times -> (batch, dim) embedding. Notebook 14."""
        times = ops.reshape(ops.cast(times, self.compute_dtype), (-1, 1))
        angles = self.scale * times * ops.convert_to_tensor(self.frequencies)[None, :]
        return ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)

    def compute_output_shape(self, input_shape):
        """(batch, dim). Notebook 14."""
        return (input_shape[0], self.dim)

    def get_config(self):
        """dim, scale and max_period. Notebook 14."""
        return {**super().get_config(), "dim": self.dim, "scale": self.scale,
                "max_period": self.max_period}


@keras.saving.register_keras_serializable(package="course_utils")
class ResidualBlock(keras.layers.Layer):
    """A U-Net block: (group norm, swish, 3x3 conv) twice, steered by the time. Notebook 14.

    Called on [feature_maps, embedding]: the embedding (batch, d) becomes one scale and one
    shift per output channel, applied to the second group norm's output (h * (1 + scale) +
    shift), so every block knows the noise level (and the label, if the embedding carries it).
    The input is added to the output unchanged, or through a 1x1 convolution when the channels
    change.
    """

    def __init__(self, filters, groups=8, **kwargs):
        super().__init__(**kwargs)
        self.filters = check_count(filters, "filters", 1)
        self.groups = check_count(groups, "groups", 1)
        if self.filters % self.groups:
            raise ValueError(f"filters ({self.filters}) must be a multiple of groups "
                             f"({self.groups}): group norm splits the channels into equal groups.")
        self.norm_in = keras.layers.GroupNormalization(self.groups, name="norm_in")
        self.conv_in = keras.layers.Conv2D(self.filters, 3, padding="same", name="conv_in")
        self.time_scale_shift = keras.layers.Dense(2 * self.filters, name="time_scale_shift")
        self.norm_out = keras.layers.GroupNormalization(self.groups, name="norm_out")
        self.conv_out = keras.layers.Conv2D(self.filters, 3, padding="same", name="conv_out")
        self.skip = None

    def build(self, input_shape):
        """Build the sublayers; a 1x1 skip convolution only when the channels change. NB 14."""
        if not (isinstance(input_shape, (list, tuple)) and len(input_shape) == 2
                and isinstance(input_shape[0], (list, tuple))):
            raise ValueError("ResidualBlock is called on [feature_maps, embedding], e.g. "
                             "block([x, time_embedding]); got one input.")
        maps_shape, embedding_shape = (tuple(shape) for shape in input_shape)
        check_feature_maps("ResidualBlock", maps_shape)
        if len(embedding_shape) != 2:
            raise ValueError(f"ResidualBlock's embedding must be shaped (batch, features); got "
                             f"{embedding_shape}.")
        channels = maps_shape[-1]
        if channels % self.groups:
            raise ValueError(f"ResidualBlock's input has {channels} channels, not a multiple of "
                             f"groups={self.groups}; start the network with a convolution to a "
                             "multiple of it.")
        out_shape = (*maps_shape[:-1], self.filters)
        self.norm_in.build(maps_shape)
        self.conv_in.build(maps_shape)
        self.time_scale_shift.build(embedding_shape)
        self.norm_out.build(out_shape)
        self.conv_out.build(out_shape)
        if channels != self.filters:
            self.skip = keras.layers.Conv2D(self.filters, 1, name="skip")
            self.skip.build(maps_shape)

    def call(self, inputs):
        """[maps (b, h, w, c), embedding (b, d)] -> maps (b, h, w, filters). Notebook 14."""
        maps, embedding = inputs
        hidden = self.conv_in(ops.silu(self.norm_in(maps)))
        scale, shift = ops.split(self.time_scale_shift(embedding)[:, None, None, :], 2, axis=-1)
        hidden = self.conv_out(ops.silu(self.norm_out(hidden) * (1 + scale) + shift))
        shortcut = maps if self.skip is None else self.skip(maps)
        return hidden + shortcut

    def compute_output_shape(self, input_shape):
        """(batch, height, width, filters). Notebook 14."""
        return (*tuple(input_shape[0])[:-1], self.filters)

    def get_config(self):
        """filters and groups. Notebook 14."""
        return {**super().get_config(), "filters": self.filters, "groups": self.groups}


PREDICTIONS = ("noise", "velocity")


@keras.saving.register_keras_serializable(package="course_utils")
class DiffusionSampler(keras.layers.Layer):
    """Standard normal codings -> images, by a trained denoiser's steps. Notebook 14.

    The denoiser maps [noisy images, times in [0, 1], labels] to the noise in the images
    (prediction="noise", diffusion) or to the velocity from noise to data
    (prediction="velocity", flow matching); the label n_classes means "no label". The codings
    are the starting noise, one number per pixel.

    Diffusion (alpha_bars[t] = share of signal variance left at step t, t = 0 .. T - 1) takes
    `steps` evenly spaced steps from T - 1 down to 0. Each estimates the clean image x0 from the
    predicted noise, clips it to [-1, 1] and moves to the previous kept step: eta=0 is DDIM
    (deterministic), eta=1 with steps=T is DDPM's ancestral sampler (fresh noise at each step).
    clip=None skips the clipping, for data that is not scaled to [-1, 1] (latent codings).
    Flow matching takes `steps` Euler steps of size 1/steps from t = 0 (noise) to t = 1 (data).
    With labels and guidance != 1, each step combines the predictions with and without the
    label, unconditional + guidance * (conditional - unconditional): classifier-free guidance.
    """

    def __init__(self, denoiser, steps=50, alpha_bars=None, eta=0.0, guidance=1.0,
                 prediction="noise", n_classes=10, seed=None, clip=1.0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(denoiser, keras.Model):
            raise TypeError(f"DiffusionSampler needs the denoiser as a keras.Model, got "
                            f"{type(denoiser).__name__}.")
        if len(denoiser.inputs) != 3:
            raise ValueError("The denoiser must take [noisy images, times, labels] (three "
                             f"inputs); {denoiser.name} takes {len(denoiser.inputs)}.")
        self.image_shape = tuple(denoiser.inputs[0].shape[1:])
        if None in self.image_shape:
            raise ValueError(f"The denoiser's images need a fixed shape; it takes "
                             f"{self.image_shape}.")
        self.denoiser = denoiser
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}: "
                             '"noise" for a diffusion model, "velocity" for flow matching.')
        self.prediction = prediction
        self.steps = check_count(steps, "steps", 1)
        self.eta = check_number(eta, "eta", minimum=0.0)
        self.guidance = check_number(guidance, "guidance")
        self.n_classes = check_count(n_classes, "n_classes", 1)
        self.seed = check_optional_seed(seed)
        self.clip = None if clip is None else check_number(clip, "clip", positive=True)
        if prediction == "noise":
            if alpha_bars is None:
                raise ValueError("A diffusion sampler needs the schedule: pass alpha_bars=, "
                                 "the share of signal variance left at each training step.")
            alpha_bars = check_finite(alpha_bars, "alpha_bars").astype("float64")
            if (alpha_bars.ndim != 1 or np.any(alpha_bars <= 0) or np.any(alpha_bars >= 1)
                    or np.any(np.diff(alpha_bars) >= 0)):
                raise ValueError("alpha_bars must be a 1-D schedule strictly decreasing inside "
                                 "(0, 1), one value per training step.")
            if self.steps > len(alpha_bars):
                raise ValueError(f"steps={self.steps} is more than the {len(alpha_bars)} steps "
                                 "the model was trained with; pass at most that many.")
            self.alpha_bars = alpha_bars
            indices = np.round(np.linspace(len(alpha_bars) - 1, 0, self.steps)).astype(int)
            previous = np.append(alpha_bars[indices[1:]], 1.0)  # after the last step: clean
            self._times = (indices / len(alpha_bars)).astype("float32")
            self._alpha_bar = alpha_bars[indices].astype("float32")
            self._alpha_bar_previous = previous.astype("float32")
        else:
            if alpha_bars is not None:
                raise ValueError("Flow matching (prediction='velocity') has no noise schedule: "
                                 "drop alpha_bars=.")
            if self.eta:
                raise ValueError("Flow matching's Euler steps add no noise: leave eta at 0.")
            self.alpha_bars = None
            self._times = (np.arange(self.steps) / self.steps).astype("float32")
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def build(self, input_shape):
        """Check the codings: one per pixel (and one label each, if given). Notebook 14."""
        conditional = isinstance(input_shape, (list, tuple)) and isinstance(
            input_shape[0], (list, tuple))
        codings_shape = tuple(input_shape[0] if conditional else input_shape)
        n_pixels = int(np.prod(self.image_shape))
        if len(codings_shape) != 2 or codings_shape[-1] != n_pixels:
            raise ValueError(f"DiffusionSampler takes one standard normal coding per pixel, "
                             f"shaped (n, {n_pixels}); got {codings_shape}.")

    def _predict(self, images, times, labels):
        """The denoiser's prediction, guided when labels are given. Notebook 14."""
        batch = ops.shape(images)[0]
        times = ops.full((batch,), times)
        null = ops.full((batch,), self.n_classes)
        if labels is None or self.guidance == 0.0:  # w = 0 weighs the label's prediction by 0
            return self.denoiser([images, times, null])
        if self.guidance == 1.0:
            return self.denoiser([images, times, labels])
        both = self.denoiser([ops.concatenate([images, images]), ops.concatenate([times, times]),
                              ops.concatenate([labels, null])])
        conditional, unconditional = both[:batch], both[batch:]
        return unconditional + self.guidance * (conditional - unconditional)

    def call(self, inputs):
        """(n, pixels) codings [and (n,) labels] -> (n, *image_shape) images. Notebook 14."""
        codings, labels = (inputs[0], inputs[1]) if isinstance(inputs, (list, tuple)) else (
            inputs, None)
        if labels is not None:
            labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
        images = ops.reshape(ops.cast(codings, "float32"), (-1, *self.image_shape))
        times = ops.convert_to_tensor(self._times)
        if self.prediction == "velocity":
            def euler_step(i, x):
                return x + self._predict(x, times[i], labels) / self.steps

            return ops.fori_loop(0, self.steps, euler_step, images)
        alpha_bar = ops.convert_to_tensor(self._alpha_bar)
        alpha_bar_previous = ops.convert_to_tensor(self._alpha_bar_previous)

        def denoising_step(i, x):
            a, a_prev = alpha_bar[i], alpha_bar_previous[i]
            noise = self._predict(x, times[i], labels)
            clean = (x - ops.sqrt(1 - a) * noise) / ops.sqrt(a)
            if self.clip is not None:
                clean = ops.clip(clean, -self.clip, self.clip)
                noise = (x - ops.sqrt(a) * clean) / ops.sqrt(1 - a)  # the noise that fits
            sigma = self.eta * ops.sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev))
            x = ops.sqrt(a_prev) * clean + ops.sqrt(ops.maximum(1 - a_prev - sigma**2, 0)) * noise
            if self.eta:
                x = x + sigma * keras.random.normal(ops.shape(x), seed=self.seed_generator)
            return x

        return ops.fori_loop(0, self.steps, denoising_step, images)

    def compute_output_shape(self, input_shape):
        """(n, *image_shape). Notebook 14."""
        conditional = isinstance(input_shape, (list, tuple)) and isinstance(
            input_shape[0], (list, tuple))
        return (tuple(input_shape[0] if conditional else input_shape)[0], *self.image_shape)

    def get_config(self):
        """The denoiser, serialised whole, and the sampling settings. Notebook 14."""
        return {**super().get_config(),
                "denoiser": keras.saving.serialize_keras_object(self.denoiser),
                "steps": self.steps, "eta": self.eta, "guidance": self.guidance,
                "prediction": self.prediction, "n_classes": self.n_classes, "seed": self.seed,
                "clip": self.clip,
                "alpha_bars": None if self.alpha_bars is None else self.alpha_bars.tolist()}

    @classmethod
    def from_config(cls, config):
        """Rebuild the denoiser, then the sampler around it. Notebook 14."""
        config = dict(config)
        denoiser = keras.saving.deserialize_keras_object(config.pop("denoiser"))
        return cls(denoiser, **config)
