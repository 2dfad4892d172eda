"""Discrete-code layers (notebook 13): VQ-VAE's quantiser, PixelCNN's masked convolution, sampler.

Tested in tests/test_discrete_codes.py.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from course_utils.checks import check_activation, check_count, check_feature_maps


@keras.saving.register_keras_serializable(package="course_utils")
class VectorQuantizer(keras.layers.Layer):
    """Snap each vector to its nearest codebook entry, straight-through gradient. Notebook 13.

    Called on encoder outputs shaped (..., code_dim) it returns the nearest codebook vectors in
    the forward pass, while the gradient passes to the inputs unchanged (the straight-through
    estimator: the rounding step is treated as the identity). `codes` gives the entries'
    indices and `lookup` turns indices back into vectors; the codebook and commitment losses are
    computed by the model that trains it.
    """

    def __init__(self, n_codes, code_dim, **kwargs):
        super().__init__(**kwargs)
        self.n_codes = check_count(n_codes, "n_codes", 2)
        self.code_dim = check_count(code_dim, "code_dim", 1)

    def build(self, input_shape):
        """Check the vectors' size and create the (n_codes, code_dim) codebook. Notebook 13."""
        if len(input_shape) < 2 or input_shape[-1] != self.code_dim:
            raise ValueError(
                f"VectorQuantizer '{self.name}' holds {self.code_dim}-dimensional codebook "
                f"vectors, so its inputs must end with a dimension of {self.code_dim}; got shape "
                f"{tuple(input_shape)}. Make the encoder's last layer output {self.code_dim} "
                "channels (or build the quantizer with code_dim matching it)."
            )
        # Small entries near the origin, where a freshly initialised encoder's outputs lie too.
        self.codebook = self.add_weight(
            name="codebook", shape=(self.n_codes, self.code_dim),
            initializer=keras.initializers.RandomUniform(-0.05, 0.05),
        )

    def codes(self, vectors):
        """Index of the nearest codebook entry (squared distance) for each vector. Notebook 13."""
        flat = ops.reshape(vectors, (-1, self.code_dim))
        # |z - e|^2 = |z|^2 - 2 z.e + |e|^2, for all pairs at once.
        distances = (ops.sum(flat**2, axis=1, keepdims=True)
                     - 2 * ops.matmul(flat, ops.transpose(self.codebook))
                     + ops.sum(self.codebook**2, axis=1)[None, :])
        indices = ops.argmin(distances, axis=1)
        return ops.reshape(ops.cast(indices, "int32"), ops.shape(vectors)[:-1])

    def lookup(self, indices):
        """The codebook vectors for an array of entry indices, shape (..., code_dim). NB 13."""
        return ops.take(self.codebook, ops.cast(indices, "int32"), axis=0)

    def call(self, vectors):
        """Forward: nearest entries. Backward: identity to the inputs. Notebook 13."""
        quantized = self.lookup(self.codes(vectors))
        return vectors + ops.stop_gradient(quantized - vectors)

    def compute_output_shape(self, input_shape):
        """The inputs' shape: each vector is replaced by one of the same size. Notebook 13."""
        return tuple(input_shape)

    def get_config(self):
        """The number of entries and their size. Notebook 13."""
        return {**super().get_config(), "n_codes": self.n_codes, "code_dim": self.code_dim}


def causal_mask(kernel_size, mask_type):
    """(k, k) mask of a PixelCNN kernel: 1 above, and left of the centre (B: and on it). NB 13."""
    kernel_size = check_count(kernel_size, "kernel_size", 1)
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd so that the kernel has a centre pixel, got "
                         f"{kernel_size}; use e.g. 3, 5 or 7.")
    if mask_type not in ("A", "B"):
        raise ValueError(f'mask_type must be "A" (first layer: the centre is hidden) or "B" '
                         f'(later layers: the centre is seen), got {mask_type!r}.')
    centre = kernel_size // 2
    mask = np.zeros((kernel_size, kernel_size), dtype="float32")
    mask[:centre, :] = 1.0  # every row above the centre
    mask[centre, :centre] = 1.0  # the centre row, left of the centre
    if mask_type == "B":
        mask[centre, centre] = 1.0
    return mask


@keras.saving.register_keras_serializable(package="course_utils")
class MaskedConv2D(keras.layers.Layer):
    """A 'same' convolution that sees only pixels before its own (raster order). Notebook 13.

    Type "A" hides the centre pixel too (the first layer: an output must not see the value it
    predicts); type "B" shows it (later layers: the centre now holds features of earlier pixels
    only). A stack A, B, B, ... is causal: output (r, c) depends on inputs before (r, c) only.
    """

    def __init__(self, filters, kernel_size, mask_type="B", activation=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = check_count(filters, "filters", 1)
        self.mask = causal_mask(kernel_size, mask_type)
        self.kernel_size = int(kernel_size)
        self.mask_type = mask_type
        self.activation = check_activation(activation)

    def build(self, input_shape):
        """Kernel (k, k, channels, filters) and bias. Notebook 13."""
        check_feature_maps("MaskedConv2D", input_shape)
        shape = (self.kernel_size, self.kernel_size, int(input_shape[-1]), self.filters)
        self.kernel = self.add_weight(name="kernel", shape=shape,
                                      initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")

    def call(self, inputs):
        """Convolution with the masked kernel, plus bias, then the activation. Notebook 13."""
        kernel = self.kernel * self.mask[:, :, None, None]
        return self.activation(ops.conv(inputs, kernel, strides=1, padding="same") + self.bias)

    def compute_output_shape(self, input_shape):
        """Same height and width, `filters` channels. Notebook 13."""
        return (*tuple(input_shape)[:-1], self.filters)

    def get_config(self):
        """Filters, kernel size, mask type and activation. Notebook 13."""
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "mask_type": self.mask_type,
                "activation": keras.activations.serialize(self.activation)}


@keras.saving.register_keras_serializable(package="course_utils")
class PixelCNNSampler(keras.layers.Layer):
    """Draw code grids from an autoregressive prior, one position at a time. Notebook 13.

    The prior maps integer grids (batch, height, width) to logits (batch, height, width,
    n_codes) in which position (r, c) depends only on positions before it. The inputs are
    standard normal codings, one per position: each becomes a uniform number u = Phi(z), and
    the code at (r, c) is the first index whose cumulative probability exceeds u (inverse-CDF
    sampling), so equal codings give equal grids and a generator built on this layer takes
    codings like every other generator of the course.
    """

    def __init__(self, prior, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(prior, keras.Model):
            raise TypeError(f"PixelCNNSampler needs the prior as a keras.Model, got "
                            f"{type(prior).__name__}.")
        grid_shape = tuple(prior.inputs[0].shape[1:])
        if len(grid_shape) != 2 or None in grid_shape:
            raise ValueError(f"The prior must take integer grids shaped (batch, height, width) "
                             f"with a fixed height and width; it takes {grid_shape}.")
        self.prior = prior
        self.grid_shape = grid_shape

    def build(self, input_shape):
        """Check that there is one coding per grid position. Notebook 13."""
        n_positions = self.grid_shape[0] * self.grid_shape[1]
        if len(input_shape) != 2 or input_shape[-1] != n_positions:
            raise ValueError(
                f"PixelCNNSampler takes one standard normal coding per position of the "
                f"{self.grid_shape[0]}x{self.grid_shape[1]} grid, shaped (n, {n_positions}); "
                f"got {tuple(input_shape)}."
            )

    def call(self, codings):
        """(n, height * width) codings -> (n, height, width) sampled code indices. NB 13."""
        height, width = self.grid_shape
        uniforms = 0.5 * (1.0 + ops.erf(codings / np.sqrt(2.0)))
        uniforms = ops.reshape(uniforms, (-1, height, width))
        grid = ops.zeros_like(uniforms, dtype="int32")
        for position in range(height * width):  # raster order: row by row, left to right
            row, col = divmod(position, width)
            probabilities = ops.softmax(self.prior(grid)[:, row, col, :], axis=-1)
            below = ops.cumsum(probabilities, axis=-1) < uniforms[:, row, col, None]
            code = ops.minimum(ops.sum(ops.cast(below, "int32"), axis=-1),
                               probabilities.shape[-1] - 1)  # guards u above the rounded sum
            here = np.zeros((1, height, width), dtype="bool")
            here[0, row, col] = True
            grid = ops.where(here, code[:, None, None], grid)
        return grid

    def compute_output_shape(self, input_shape):
        """(n, height, width). Notebook 13."""
        return (input_shape[0], *self.grid_shape)

    def compute_output_spec(self, codings):
        """Integer grids, shape (n, height, width). Notebook 13."""
        return keras.KerasTensor((codings.shape[0], *self.grid_shape), dtype="int32")

    def get_config(self):
        """The prior, serialised whole (its weights are saved with this layer's). NB 13."""
        return {**super().get_config(), "prior": keras.saving.serialize_keras_object(self.prior)}

    @classmethod
    def from_config(cls, config):
        """Rebuild the prior, then the sampler around it. Notebook 13."""
        config = dict(config)
        prior = keras.saving.deserialize_keras_object(config.pop("prior"))
        return cls(prior, **config)


