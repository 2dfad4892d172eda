"""GAN layers: minibatch discrimination (notebook 9), ProGAN's and StyleGAN's layers (11).

Equalised learning rates, pixel normalisation, minibatch standard deviation, noise injection,
AdaIN, the fade-in, the mapping network and the synthesis block. Tested (formulas, shapes,
errors, safe-mode reloads) in tests/test_gan_layers.py.
"""

from __future__ import annotations

import numbers

import keras
import numpy as np
from keras import ops

from course_utils.checks import (
    check_activation,
    check_count,
    check_feature_maps,
    check_number,
    check_optional_seed,
)


@keras.saving.register_keras_serializable(package="course_utils")
class MinibatchDiscrimination(keras.layers.Layer):
    """Appends, per example, how close it is to the others in its batch. Notebook 9."""

    def __init__(self, num_kernels=5, kernel_dim=3, **kwargs):
        super().__init__(**kwargs)
        self.num_kernels = check_count(num_kernels, "num_kernels", 1)
        self.kernel_dim = check_count(kernel_dim, "kernel_dim", 1)

    def build(self, input_shape):
        """Create the projection tensor T of shape (features, kernels * kernel_dim). Notebook 9."""
        if len(input_shape) != 2:
            raise ValueError(
                "MinibatchDiscrimination works on flat feature vectors shaped (batch, features); "
                f"got {tuple(input_shape)}. Put a Flatten or Dense layer before it."
            )
        self.kernel = self.add_weight(
            name="kernel", shape=(input_shape[-1], self.num_kernels * self.kernel_dim),
            initializer="glorot_uniform",
        )

    def call(self, inputs):
        """Features, then per kernel the sum over other examples of exp(-L1 distance). NB 9."""
        rows = ops.reshape(ops.matmul(inputs, self.kernel), (-1, self.num_kernels, self.kernel_dim))
        # Pairwise L1 distances between every two examples, per kernel: (batch, batch, kernels).
        distances = ops.sum(ops.abs(rows[:, None, :, :] - rows[None, :, :, :]), axis=-1)
        # Each example is at distance 0 from itself; subtracting that 1 leaves only the others.
        closeness = ops.sum(ops.exp(-distances), axis=1) - 1.0
        return ops.concatenate([inputs, closeness], axis=-1)

    def compute_output_shape(self, input_shape):
        """The features plus one column per kernel. Notebook 9."""
        return (input_shape[0], input_shape[-1] + self.num_kernels)

    def get_config(self):
        """Kernel count and size, so the layer reloads in safe mode. Notebook 9."""
        return {
            **super().get_config(),
            "num_kernels": self.num_kernels,
            "kernel_dim": self.kernel_dim,
        }


@keras.saving.register_keras_serializable(package="course_utils")
class MinibatchStdDev(keras.layers.Layer):
    """Appends one feature map: the batch's mean standard deviation (ProGAN). Notebook 11.

    For every position and channel, the standard deviation over the batch; averaged to one
    number; broadcast as an extra channel. `sqrt(var + eps) - sqrt(eps)` keeps the gradient finite
    and makes the feature exactly 0 for a batch of identical images.
    """

    def __init__(self, epsilon=1e-8, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = check_number(epsilon, "epsilon", positive=True)

    def build(self, input_shape):
        """Check that the input is a batch of feature maps. Notebook 11."""
        check_feature_maps("MinibatchStdDev", input_shape)

    def call(self, inputs):
        """The features, plus the batch-spread map as one more channel. Notebook 11."""
        # Variance of the batch shifted by its first example: the same value, but exactly 0
        # when all examples are equal (a plain mean can round, leaving ~1e-15).
        shifted = inputs - inputs[:1]
        variance = ops.maximum(
            ops.mean(ops.square(shifted), axis=0) - ops.square(ops.mean(shifted, axis=0)), 0.0
        )  # (height, width, channels)
        std = ops.sqrt(variance + self.epsilon) - ops.sqrt(self.epsilon)
        spread = ops.mean(std)
        extra = ops.ones_like(inputs[..., :1]) * ops.cast(spread, inputs.dtype)
        return ops.concatenate([inputs, extra], axis=-1)

    def compute_output_shape(self, input_shape):
        """One channel more than the input. Notebook 11."""
        return (*input_shape[:-1], input_shape[-1] + 1)

    def get_config(self):
        """Epsilon, so the layer reloads in safe mode. Notebook 11."""
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="course_utils")
class PixelNormalization(keras.layers.Layer):
    """Divides each pixel's feature vector by its RMS over channels (ProGAN). Notebook 11."""

    def __init__(self, epsilon=1e-8, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = check_number(epsilon, "epsilon", positive=True)

    def call(self, inputs):
        """x / sqrt(mean over channels of x² + eps). Notebook 11."""
        mean_square = ops.mean(ops.square(inputs), axis=-1, keepdims=True)
        return inputs * ops.rsqrt(mean_square + self.epsilon)

    def compute_output_shape(self, input_shape):
        """Same shape as the input. Notebook 11."""
        return input_shape

    def get_config(self):
        """Epsilon, so the layer reloads in safe mode. Notebook 11."""
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="course_utils")
class EqualizedDense(keras.layers.Layer):
    """Dense layer with an equalised learning rate (ProGAN, StyleGAN mapping). Notebook 11.

    Weights start as N(0, 1) / lr_multiplier and are scaled at run time by
    sqrt(2 / fan_in) * lr_multiplier, so every layer learns at the same pace.
    """

    def __init__(self, units, lr_multiplier=1.0, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.units = check_count(units, "units", 1)
        self.lr_multiplier = check_number(lr_multiplier, "lr_multiplier", positive=True)
        self.activation = check_activation(activation)

    def build(self, input_shape):
        """Kernel ~ N(0, 1/lr_multiplier²), bias 0; fixes the He constant. Notebook 11."""
        fan_in = int(input_shape[-1])
        self.scale = (2.0 / fan_in) ** 0.5 * self.lr_multiplier
        self.kernel = self.add_weight(
            name="kernel", shape=(fan_in, self.units),
            initializer=keras.initializers.RandomNormal(stddev=1.0 / self.lr_multiplier),
        )
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    def call(self, inputs):
        """activation(x @ (kernel * scale) + bias * lr_multiplier). Notebook 11."""
        outputs = ops.matmul(inputs, self.kernel * self.scale) + self.bias * self.lr_multiplier
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        """The input shape with the last axis replaced by `units`. Notebook 11."""
        return (*input_shape[:-1], self.units)

    def get_config(self):
        """Units, learning-rate multiplier and activation. Notebook 11."""
        return {**super().get_config(), "units": self.units, "lr_multiplier": self.lr_multiplier,
                "activation": keras.activations.serialize(self.activation)}


@keras.saving.register_keras_serializable(package="course_utils")
class EqualizedConv2D(keras.layers.Layer):
    """2-D convolution with an equalised learning rate (ProGAN). Notebook 11."""

    def __init__(self, filters, kernel_size=3, strides=1, padding="same", activation=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.filters = check_count(filters, "filters", 1)
        self.kernel_size = check_count(kernel_size, "kernel_size", 1)
        self.strides = check_count(strides, "strides", 1)
        if padding not in ("same", "valid"):
            raise ValueError(f'padding must be "same" or "valid", got {padding!r}.')
        self.padding = padding
        self.activation = check_activation(activation)

    def build(self, input_shape):
        """Kernel ~ N(0, 1), bias 0; He constant from k * k * input channels. Notebook 11."""
        check_feature_maps("EqualizedConv2D", input_shape)
        channels = int(input_shape[-1])
        self.scale = (2.0 / (self.kernel_size * self.kernel_size * channels)) ** 0.5
        self.kernel = self.add_weight(
            name="kernel", shape=(self.kernel_size, self.kernel_size, channels, self.filters),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
        )
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")

    def call(self, inputs):
        """activation(conv(x, kernel * scale) + bias). Notebook 11."""
        outputs = ops.conv(inputs, self.kernel * self.scale, strides=self.strides,
                           padding=self.padding)
        return self.activation(outputs + self.bias)

    def compute_output_shape(self, input_shape):
        """Spatial size after the stride (and padding), `filters` channels. Notebook 11."""
        def size(length):
            if length is None:
                return None
            if self.padding == "valid":
                length = length - self.kernel_size + 1
            return -(-length // self.strides)

        return (input_shape[0], size(input_shape[1]), size(input_shape[2]), self.filters)

    def get_config(self):
        """Filters, kernel size, strides, padding and activation. Notebook 11."""
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "strides": self.strides,
                "padding": self.padding,
                "activation": keras.activations.serialize(self.activation)}


@keras.saving.register_keras_serializable(package="course_utils")
class NoiseInjection(keras.layers.Layer):
    """Adds per-pixel Gaussian noise, scaled by a learned per-channel factor (StyleGAN). NB 11.

    One noise value per pixel, shared by all channels and drawn fresh at every call, independent
    of the codings; the scales start at 0, so the network opts in to noise as it learns.
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = check_optional_seed(seed)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        """One learned scale per channel, starting at 0. Notebook 11."""
        check_feature_maps("NoiseInjection", input_shape)
        self.noise_scale = self.add_weight(
            name="noise_scale", shape=(int(input_shape[-1]),), initializer="zeros"
        )

    def call(self, inputs):
        """x + noise_scale[c] * n[b, h, w], n ~ N(0, 1). Notebook 11."""
        shape = ops.shape(inputs)
        noise = keras.random.normal(
            (shape[0], shape[1], shape[2], 1), seed=self.seed_generator, dtype=inputs.dtype
        )
        return inputs + noise * self.noise_scale

    def compute_output_shape(self, input_shape):
        """Same shape as the input. Notebook 11."""
        return input_shape

    def get_config(self):
        """The seed. Notebook 11."""
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="course_utils")
class AdaptiveInstanceNormalization(keras.layers.Layer):
    """AdaIN: standardise each feature map, then scale and shift it by a style (StyleGAN). NB 11.

    Called on [feature_maps, w]: a learned affine map turns w into a scale y_s (starting at 1)
    and a bias y_b (starting at 0) per channel; out = y_s * (x - mean) / std + y_b, with mean
    and std taken over each map's pixels, per image and channel.
    """

    def __init__(self, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = check_number(epsilon, "epsilon", positive=True)

    def build(self, input_shape):
        """The affine style map: w -> (y_s, y_b), one pair per channel. Notebook 11."""
        if not (isinstance(input_shape, list | tuple) and len(input_shape) == 2
                and len(input_shape[0]) == 4 and len(input_shape[1]) == 2):
            raise ValueError(
                "AdaptiveInstanceNormalization is called on [feature_maps, w]: maps shaped "
                f"(batch, height, width, channels) and w shaped (batch, w_dim); got {input_shape}."
            )
        channels, w_dim = int(input_shape[0][-1]), int(input_shape[1][-1])
        self.style_kernel = self.add_weight(
            name="style_kernel", shape=(w_dim, 2 * channels), initializer="glorot_uniform"
        )
        self.style_bias = self.add_weight(
            name="style_bias", shape=(2 * channels,),
            initializer=keras.initializers.Constant([1.0] * channels + [0.0] * channels),
        )

    def call(self, inputs):
        """y_s * instance-normalised x + y_b. Notebook 11."""
        maps, w = inputs
        mean = ops.mean(maps, axis=(1, 2), keepdims=True)
        variance = ops.var(maps, axis=(1, 2), keepdims=True)
        normalized = (maps - mean) * ops.rsqrt(variance + self.epsilon)
        style = ops.matmul(w, self.style_kernel) + self.style_bias
        scale, bias = ops.split(style[:, None, None, :], 2, axis=-1)
        return scale * normalized + bias

    def compute_output_shape(self, input_shape):
        """The feature maps' shape. Notebook 11."""
        return input_shape[0]

    def get_config(self):
        """Epsilon, so the layer reloads in safe mode. Notebook 11."""
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="course_utils")
class FadeIn(keras.layers.Layer):
    """Blends the old, upsampled output into the new block's: (1 - alpha) old + alpha new. NB 11.

    `alpha` is a non-trainable variable, so a callback can raise it from 0 to 1 during training
    (`set_alpha`) without retracing the compiled step.
    """

    def __init__(self, alpha=0.0, **kwargs):
        super().__init__(**kwargs)
        self._check_alpha(alpha)
        self.alpha = self.add_weight(
            name="alpha", shape=(), initializer=keras.initializers.Constant(float(alpha)),
            trainable=False,
        )

    @staticmethod
    def _check_alpha(alpha):
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real | np.ndarray):
            raise TypeError(f"alpha must be a number in [0, 1], got {alpha!r}.")
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha blends two outputs and must lie in [0, 1], got {alpha}; "
                             "pass 0 (old path only) up to 1 (new block only).")

    def set_alpha(self, alpha):
        """Set the blend: 0 keeps the old path only, 1 the new block only. Notebook 11."""
        self._check_alpha(alpha)
        self.alpha.assign(float(alpha))

    def build(self, input_shape):
        """Check that the two paths have the same shape. Notebook 11."""
        if not (isinstance(input_shape, list | tuple) and len(input_shape) == 2
                and tuple(input_shape[0][1:]) == tuple(input_shape[1][1:])):
            raise ValueError(
                "FadeIn is called on [old_path, new_path] of the same shape (upsample the old "
                f"output first); got {input_shape}."
            )

    def call(self, inputs):
        """(1 - alpha) * old + alpha * new. Notebook 11."""
        old, new = inputs
        return (1.0 - self.alpha) * old + self.alpha * new

    def compute_output_shape(self, input_shape):
        """The shape of either path. Notebook 11."""
        return input_shape[1]

    def get_config(self):
        """The current alpha. Notebook 11."""
        return {**super().get_config(), "alpha": float(self.alpha.numpy())}


def build_mapping_network(codings_size=64, w_dim=64, n_layers=8, lr_multiplier=0.01):
    """StyleGAN's mapping network z -> w: pixel norm, then equalised leaky-ReLU layers. NB 11."""
    codings_size = check_count(codings_size, "codings_size", 1)
    w_dim = check_count(w_dim, "w_dim", 1)
    n_layers = check_count(n_layers, "n_layers", 1)
    return keras.Sequential(
        [keras.Input((codings_size,)), PixelNormalization()]
        + [EqualizedDense(w_dim, lr_multiplier=lr_multiplier, activation="leaky_relu")
           for _ in range(n_layers)],
        name="mapping_network",
    )


@keras.saving.register_keras_serializable(package="course_utils")
class SynthesisBlock(keras.layers.Layer):
    """One resolution of StyleGAN's synthesis network: conv, noise, AdaIN, twice. Notebook 11.

    The first block (`start_from_constant=True`) owns a learned 4x4 constant and is called on
    w alone: constant -> noise -> AdaIN -> conv -> noise -> AdaIN. Every later block is called on
    [feature_maps, w] and doubles the resolution: upsample -> conv -> noise -> AdaIN -> conv ->
    noise -> AdaIN. Leaky ReLU follows each noise injection; the style w drives both AdaINs.
    """

    def __init__(self, filters, start_from_constant=False, constant_size=4, seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.filters = check_count(filters, "filters", 1)
        self.constant_size = check_count(constant_size, "constant_size", 1)
        self.start_from_constant = bool(start_from_constant)
        self.seed = check_optional_seed(seed)
        seeds = [None, None] if seed is None else [seed, seed + 1]
        self.upsample = None if self.start_from_constant else keras.layers.UpSampling2D(2)
        self.first_conv = None if self.start_from_constant else EqualizedConv2D(self.filters, 3)
        self.second_conv = EqualizedConv2D(self.filters, 3)
        self.noises = [NoiseInjection(seed=s) for s in seeds]
        self.adains = [AdaptiveInstanceNormalization() for _ in seeds]

    def _split_inputs(self, inputs):
        if self.start_from_constant:
            return None, inputs
        if not (isinstance(inputs, list | tuple) and len(inputs) == 2):
            raise ValueError(
                "A SynthesisBlock that does not start from the constant is called on "
                "[feature_maps, w]."
            )
        return inputs

    def build(self, input_shape):
        """The constant or the convolutions, then noise and AdaIN at this resolution. NB 11."""
        maps_shape, w_shape = self._split_inputs(input_shape)
        if len(w_shape) != 2:
            raise ValueError(f"w must be shaped (batch, w_dim); got {tuple(w_shape)}.")
        if self.start_from_constant:
            size = self.constant_size
            # StyleGAN starts from ones: every image begins identical; only styles and noise
            # make them differ.
            self.constant = self.add_weight(
                name="constant", shape=(size, size, self.filters), initializer="ones"
            )
        else:
            check_feature_maps("SynthesisBlock", maps_shape)
            size = 2 * int(maps_shape[1])
            self.first_conv.build((None, size, size, int(maps_shape[-1])))
        maps_shape = (None, size, size, self.filters)
        self.second_conv.build(maps_shape)
        for noise, adain in zip(self.noises, self.adains, strict=True):
            noise.build(maps_shape)
            adain.build([maps_shape, tuple(w_shape)])

    def _noise_and_style(self, index, maps, w):
        maps = keras.activations.leaky_relu(self.noises[index](maps), negative_slope=0.2)
        return self.adains[index]([maps, w])

    def call(self, inputs):
        """Feature maps at this block's resolution, styled by w. Notebook 11."""
        maps, w = self._split_inputs(inputs)
        if self.start_from_constant:
            maps = ops.broadcast_to(self.constant, (ops.shape(w)[0], *self.constant.shape))
        else:
            maps = self.first_conv(self.upsample(maps))
        maps = self._noise_and_style(0, maps, w)
        return self._noise_and_style(1, self.second_conv(maps), w)

    def compute_output_shape(self, input_shape):
        """(batch, size, size, filters): the constant's size, or twice the input's. NB 11."""
        maps_shape, w_shape = self._split_inputs(input_shape)
        if self.start_from_constant:
            return (w_shape[0], self.constant_size, self.constant_size, self.filters)
        height, width = maps_shape[1], maps_shape[2]
        return (maps_shape[0], height and 2 * height, width and 2 * width, self.filters)

    def get_config(self):
        """Filters, whether it starts from the constant, its size, and the seed. Notebook 11."""
        return {**super().get_config(), "filters": self.filters,
                "start_from_constant": self.start_from_constant,
                "constant_size": self.constant_size, "seed": self.seed}


