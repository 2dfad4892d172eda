"""Autoencoder layers: tied decoder (notebook 3), KL sparsity (7), VAE sampling and loss (8).

Each is the layer its chapter explains. Tested (formulas, shapes, errors, saving) in
tests/test_autoencoder_layers.py.
"""

from __future__ import annotations

import functools
import numbers

import keras
import numpy as np
from keras import ops

from course_utils.checks import check_activation, check_finite, check_optional_seed

# Mean activations are clipped this far from 0 and 1 before taking logarithms (see below).
KL_EPSILON = 1e-7

_SAVE_WHOLE_MESSAGE = (
    "A DenseTranspose layer is tied to another layer's kernel, so a model containing it cannot "
    "be saved whole (model.save / get_config): a reloaded copy would get its own, untied kernel. "
    'Save the weights instead with model.save_weights("name.weights.h5"), rebuild the model '
    "with the same code, then call model.load_weights(\"name.weights.h5\")."
)


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
        self.activation = check_activation(activation)

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
        self.seed = check_optional_seed(seed)
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


