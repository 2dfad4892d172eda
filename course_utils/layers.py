"""Custom layers: tied decoder, sparsity, VAE sampling, GAN layers, VQ-VAE, PixelCNN, diffusion."""

from __future__ import annotations

import functools
import numbers

import keras
import numpy as np
from keras import ops

from course_utils.checks import check_count, check_finite, check_number

# Mean activations are clipped this far from 0 and 1 before taking logarithms (see below).
KL_EPSILON = 1e-7

_SAVE_WHOLE_MESSAGE = (
    "A DenseTranspose layer is tied to another layer's kernel, so a model containing it cannot "
    "be saved whole (model.save / get_config): a reloaded copy would get its own, untied kernel. "
    'Save the weights instead with model.save_weights("name.weights.h5"), rebuild the model '
    "with the same code, then call model.load_weights(\"name.weights.h5\")."
)


def _activation(identifier):
    try:
        return keras.activations.get(identifier)
    except (ValueError, TypeError):
        raise ValueError(f"Unknown activation {identifier!r}; pass a Keras activation name such "
                         'as "relu", "sigmoid" or "tanh", a function, or None.') from None


def _check_seed(seed):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"seed must be an integer or None, got {seed!r}; pass e.g. seed=42.")
    return None if seed is None else int(seed)


@keras.saving.register_keras_serializable(package="course_utils")
class DenseTranspose(keras.layers.Layer):
    """Decoder layer: activation(x @ dense.kernel.T + bias), kernel tied to `dense`. Notebook 3."""

    def __init__(self, dense, activation=None, **kwargs):
        if not isinstance(dense, keras.layers.Dense):
            raise TypeError(
                "DenseTranspose must be tied to a keras.layers.Dense layer (the encoder layer "
                f"whose kernel it reuses), got {type(dense).__name__}: {dense!r}."
            )
        super().__init__(**kwargs)
        # Plain assignment would make Keras track the Dense layer as a sublayer, so its kernel
        # and bias would also count as this layer's weights; the tied layer owns only its bias.
        object.__setattr__(self, "_dense", dense)
        self.activation = _activation(activation)

    @property
    def dense(self):
        """The encoder Dense layer whose kernel this layer reuses. Notebook 3."""
        return self._dense

    def build(self, input_shape):
        """Check the input size against the tied layer and create the bias. Notebook 3."""
        dense = self._dense
        if not dense.built:
            raise RuntimeError(
                f"The Dense layer '{dense.name}' tied to DenseTranspose '{self.name}' is not "
                "built yet, so its kernel does not exist: build or call the encoder first "
                "(e.g. give it a keras.Input), then the decoder."
            )
        input_size = input_shape[-1]
        if input_size != dense.units:
            raise ValueError(
                f"DenseTranspose '{self.name}' expects inputs whose last dimension is "
                f"{dense.units} (the units of its tied Dense layer '{dense.name}'), "
                f"got last dimension {input_size} (input shape {tuple(input_shape)})."
            )
        # The output size is the tied layer's input size: the kernel's first dimension.
        self.bias = self.add_weight(
            name="bias", shape=(dense.kernel.shape[0],), initializer="zeros"
        )
        self.input_spec = keras.InputSpec(min_ndim=2, axes={-1: dense.units})

    def call(self, inputs):
        """Apply the transposed tied kernel, the bias and the activation. Notebook 3."""
        # Reading dense.kernel at every call (not a copy kept at build) is what ties the two:
        # gradients from both uses add up on the one variable.
        outputs = ops.matmul(inputs, ops.transpose(self._dense.kernel)) + self.bias
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        """Same leading dimensions, last one the tied layer's input size. Notebook 3."""
        return (*input_shape[:-1], self._dense.kernel.shape[0])

    def get_config(self):
        """Refuse: a reloaded copy would silently lose the tie. Notebook 3."""
        raise NotImplementedError(_SAVE_WHOLE_MESSAGE)


def _contains_tied_layer(model) -> bool:
    flatten = getattr(model, "_flatten_layers", None)
    found = flatten(include_self=True, recursive=True) if flatten else [model]
    return any(isinstance(layer, DenseTranspose) for layer in found)


def _refusing_tied_models(save):
    # Keras opens (and truncates) the target file before it asks the layers for their configs,
    # so the refusal in get_config alone would leave a 0-byte .keras file behind, or destroy an
    # older one. Checking first leaves the file system untouched.
    @functools.wraps(save)
    def save_unless_tied(model, *args, **kwargs):
        if _contains_tied_layer(model):
            raise NotImplementedError(_SAVE_WHOLE_MESSAGE)
        return save(model, *args, **kwargs)

    save_unless_tied.refuses_tied_models = True
    return save_unless_tied


def _install_save_guard():
    """Make model.save / keras.saving.save_model refuse tied models before writing. NB 3."""
    try:  # Keras internals: if they move, get_config still refuses (after Keras opened the file)
        from keras.src.legacy.saving import legacy_h5_format
        from keras.src.saving import saving_lib
    except ImportError:
        return

    for module, name in ((saving_lib, "save_model"), (legacy_h5_format, "save_model_to_hdf5")):
        save = getattr(module, name, None)
        if save is not None and not getattr(save, "refuses_tied_models", False):
            setattr(module, name, _refusing_tied_models(save))


_install_save_guard()


def _check_target(target):
    if isinstance(target, bool) or not isinstance(target, numbers.Real):
        raise TypeError(f"The sparsity target must be a number between 0 and 1, got {target!r}; "
                        "pass e.g. target=0.1.")
    if not 0 < target < 1:
        raise ValueError(
            f"The sparsity target is a mean activation, so it must lie strictly between 0 and 1; "
            f"got {target!r}. Pass e.g. target=0.1."
        )


_OUTSIDE_UNIT_INTERVAL = (
    "The KL sparsity penalty compares mean activations with a target in (0, 1), so the coding "
    "layer's activations must lie in [0, 1]; {found}. Give the coding layer "
    'activation="sigmoid" (ReLU, tanh or linear outputs leave [0, 1], where the penalty has no '
    "meaning and its gradient vanishes), or use an L1 activity regularizer instead."
)


def _check_unit_interval(values, name):
    """Raise (eagerly) or assert (compiled) that values lie in [0, 1]. Notebook 7."""
    import tensorflow as tf

    if isinstance(values, keras.KerasTensor):
        return values
    if not tf.is_tensor(values) or tf.executing_eagerly():
        array = check_finite(ops.convert_to_numpy(values), name)
        if array.size and (array.min() < 0 or array.max() > 1):
            found = f"{name} range from {array.min():.4g} to {array.max():.4g}"
            raise ValueError(_OUTSIDE_UNIT_INTERVAL.format(found=found))
        return ops.convert_to_tensor(values)
    # Inside a compiled step the values are not known yet: an assertion fails the step with the
    # same message (NaN fails it too). XLA (jit_compile=True) drops assertions.
    found = f"{name} left [0, 1] (or became NaN) during training"
    inside = tf.logical_and(tf.reduce_all(values >= 0), tf.reduce_all(values <= 1))
    check = tf.debugging.Assert(inside, [_OUTSIDE_UNIT_INTERVAL.format(found=found)])
    with tf.control_dependencies([check]):
        return tf.identity(values)


def _kl(p, mean_activation):
    # A saturated sigmoid unit can average exactly 0 or 1 in float32; log(0) would turn the
    # loss into inf and its gradients into NaN, so keep q inside the open interval.
    q = ops.clip(mean_activation, KL_EPSILON, 1 - KL_EPSILON)
    return p * ops.log(p / q) + (1 - p) * ops.log((1 - p) / (1 - q))


def kl_divergence_penalty(target, mean_activation):
    """Elementwise KL(target || mean_activation) between Bernoulli means in [0, 1]. Notebook 7.

    Means outside [0, 1] raise a ValueError (eagerly) or fail the compiled step: the divergence
    is not defined there, and clipping would give a finite loss with zero gradient.
    """
    _check_target(target)
    return _kl(target, _check_unit_interval(mean_activation, "the mean activations"))


@keras.saving.register_keras_serializable(package="course_utils")
class KLDivergenceRegularizer(keras.regularizers.Regularizer):
    """Sparsity loss: weight * sum over units of KL(target || mean activation). Notebook 7."""

    def __init__(self, weight, target):
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
            raise TypeError(f"The sparsity weight must be a number, got {weight!r}; pass e.g. "
                            "weight=0.05.")
        if not weight >= 0 or weight == float("inf"):
            raise ValueError(f"The sparsity weight must be 0 or more (and finite), got "
                             f"{weight!r}; pass e.g. weight=0.05.")
        _check_target(target)
        self.weight = float(weight)
        self.target = float(target)

    def __call__(self, inputs):
        """Penalty for activations shaped (batch, units) in [0, 1]; others raise. Notebook 7."""
        # Every activation is checked, not just the means: tanh outputs can average inside
        # (0, 1) while the penalty they get is meaningless.
        inputs = _check_unit_interval(inputs, "the coding layer's activations")
        # Keras divides an activity regularizer's value by the batch size before adding it to
        # the model's losses, exactly as tf.keras 2 did, so the book's weights keep their effect.
        mean_activation = ops.mean(inputs, axis=0)
        return self.weight * ops.sum(_kl(self.target, mean_activation))

    def get_config(self):
        """Weight and target, so a saved model rebuilds the same regularizer. Notebook 7."""
        return {"weight": self.weight, "target": self.target}


def latent_loss(codings_mean, codings_log_var):
    """KL divergence from N(mean, exp(log_var)) to N(0, I), one value per example. Notebook 8."""
    mean_shape = tuple(getattr(codings_mean, "shape", np.shape(codings_mean)))
    log_var_shape = tuple(getattr(codings_log_var, "shape", np.shape(codings_log_var)))
    if len(mean_shape) != len(log_var_shape) or any(
            a is not None and b is not None and a != b
            for a, b in zip(mean_shape, log_var_shape, strict=False)):
        raise ValueError(
            f"latent_loss needs codings_mean and codings_log_var of the same shape, got "
            f"{mean_shape} and {log_var_shape}; give both Dense layers the same number of units."
        )
    # The closed form for Gaussians, summed over the coding dimensions: the VAE's latent loss.
    return -0.5 * ops.sum(
        1 + codings_log_var - ops.exp(codings_log_var) - ops.square(codings_mean), axis=-1
    )


@keras.saving.register_keras_serializable(package="course_utils")
class Sampling(keras.layers.Layer):
    """Reparameterisation trick: z = mean + exp(log_var / 2) * eps, eps ~ N(0, I). Notebook 8."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = _check_seed(seed)
        # A SeedGenerator advances its state on every call; a plain integer seed would give the
        # same eps at every step and the codings would stop being random.
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        """Draw one coding per row from N(mean, exp(log_var)). Notebook 8."""
        mean, log_var = inputs
        epsilon = keras.random.normal(ops.shape(log_var), seed=self.seed_generator)
        return mean + ops.exp(log_var / 2) * epsilon

    def build(self, input_shape):
        """Check that the mean and log-variance inputs have the same shape. Notebook 8."""
        is_pair_of_shapes = (
            isinstance(input_shape, (list, tuple)) and len(input_shape) == 2
            and all(isinstance(shape, (list, tuple)) for shape in input_shape)
        )
        if not is_pair_of_shapes:
            raise ValueError(
                "Sampling expects two inputs, [codings_mean, codings_log_var], got "
                f"{input_shape!r}."
            )
        mean_shape, log_var_shape = (tuple(shape) for shape in input_shape)
        if mean_shape[1:] != log_var_shape[1:]:
            raise ValueError(
                f"Sampling needs codings_mean and codings_log_var of the same shape, got "
                f"{mean_shape} and {log_var_shape}."
            )

    def compute_output_shape(self, input_shape):
        """The shape of the mean input. Notebook 8."""
        return tuple(input_shape[0])

    def get_config(self):
        """The seed, so a reloaded layer draws from the same generator. Notebook 8."""
        return {**super().get_config(), "seed": self.seed}


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


def _check_positive(name, value):
    return check_number(value, name, positive=True)


def _check_feature_maps(layer_name, input_shape):
    if len(input_shape) != 4:
        raise ValueError(
            f"{layer_name} works on feature maps shaped (batch, height, width, channels); "
            f"got {tuple(input_shape)}."
        )


@keras.saving.register_keras_serializable(package="course_utils")
class MinibatchStdDev(keras.layers.Layer):
    """Appends one feature map: the batch's mean standard deviation (ProGAN). Notebook 11.

    For every position and channel, the standard deviation over the batch; averaged to one
    number; broadcast as an extra channel. `sqrt(var + eps) - sqrt(eps)` keeps the gradient finite
    and makes the feature exactly 0 for a batch of identical images.
    """

    def __init__(self, epsilon=1e-8, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = _check_positive("epsilon", epsilon)

    def build(self, input_shape):
        """Check that the input is a batch of feature maps. Notebook 11."""
        _check_feature_maps("MinibatchStdDev", input_shape)

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
        self.epsilon = _check_positive("epsilon", epsilon)

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
        self.lr_multiplier = _check_positive("lr_multiplier", lr_multiplier)
        self.activation = _activation(activation)

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
        self.activation = _activation(activation)

    def build(self, input_shape):
        """Kernel ~ N(0, 1), bias 0; He constant from k * k * input channels. Notebook 11."""
        _check_feature_maps("EqualizedConv2D", input_shape)
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
        self.seed = _check_seed(seed)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        """One learned scale per channel, starting at 0. Notebook 11."""
        _check_feature_maps("NoiseInjection", input_shape)
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
        self.epsilon = _check_positive("epsilon", epsilon)

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
        self.seed = _check_seed(seed)
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
            _check_feature_maps("SynthesisBlock", maps_shape)
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
        self.activation = _activation(activation)

    def build(self, input_shape):
        """Kernel (k, k, channels, filters) and bias. Notebook 13."""
        _check_feature_maps("MaskedConv2D", input_shape)
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


# --- Diffusion models and flow matching (notebook 14) ---------------------------------------


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
        self.scale = _check_positive("scale", scale)
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
        _check_feature_maps("ResidualBlock", maps_shape)
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
        self.seed = _check_seed(seed)
        self.clip = None if clip is None else _check_positive("clip", clip)
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
