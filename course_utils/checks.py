"""Input checks shared by course_utils: each error says what is wrong and how to fix it."""

from __future__ import annotations

import numbers

import numpy as np

MAX_SEED = 2**32 - 1  # NumPy's legacy global generator takes seeds in [0, 2**32 - 1]


def check_count(value: object, name: str, minimum: int = 0) -> int:
    """Return value as an int if it is an integer >= minimum, else raise. Every module."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}; pass a whole number such as "
                        f"{max(minimum, 1)}.")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}; pass a larger number.")
    return int(value)


def check_number(value: object, name: str, *, minimum: float | None = None,
                 positive: bool = False) -> float:
    """Return value as a finite float (>= minimum, or > 0 if positive), else raise. Every module."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number, got {value!r}; pass e.g. 1.0.")
    number = float(value)
    if not np.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}; pass e.g. 1.0.")
    if positive and not number > 0:
        raise ValueError(f"{name} must be positive, got {value!r}; pass a number above 0.")
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}; pass a larger number.")
    return number


def check_numeric(values, name: str) -> np.ndarray:
    """Return values as a real-valued NumPy array, or raise naming the dtype. Every module."""
    try:
        array = np.asarray(values)
    except ValueError as error:  # ragged nested lists
        raise ValueError(f"{name} must be a rectangular array of numbers ({error}); pass arrays "
                         "of equal length, e.g. np.stack(list_of_arrays).") from None
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number)
                                     or array.dtype == bool):
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}; convert it "
                        "with np.asarray(values, dtype='float32').")
    if np.iscomplexobj(array):
        raise TypeError(f"{name} must hold real numbers, got complex values; pass np.real(...) "
                        "or np.abs(...) of them.")
    return array


def check_finite(values, name: str) -> np.ndarray:
    """Return values as a real array with no NaN or inf, or raise saying where. Every module."""
    array = check_numeric(values, name)
    if array.size and not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(
            f"{name} contains NaN or infinite values ({bad} of {array.size}); a diverged model "
            "produces them: retrain (e.g. with a lower learning rate) or drop those rows first."
        )
    return array


def check_value_range(array: np.ndarray, value_range, name: str, *, strict: bool = True,
                      tolerance: float = 1e-3) -> None:
    """Raise if array's values leave value_range, suggesting the rescaling. NB 2-15 (plots)."""
    low, high = check_range_pair(value_range, "value_range")
    if array.size == 0 or high == low:
        return
    width = high - low
    smallest, largest, middle = float(array.min()), float(array.max()), float(np.median(array))
    if strict:
        outside = smallest < low - tolerance * width or largest > high + tolerance * width
    else:
        # Display only: a few noisy pixels beyond the range are clipped on purpose (notebook 6
        # shows noisy inputs); values far off the scale, or a typical pixel outside, are not.
        outside = (largest > high + 10 * width or smallest < low - 10 * width
                   or not low - width / 4 <= middle <= high + width / 4)
    if not outside:
        return
    if largest > high + 10 * width and largest <= 255.5 and smallest >= -0.5:
        fix = f"they look like 0-255 pixel values: divide by 255 ({name} / 255)"
        if (low, high) == (-1.0, 1.0):
            fix = f"they look like 0-255 pixel values: rescale with {name} / 127.5 - 1"
    elif (low, high) == (0.0, 1.0) and smallest >= -1 - tolerance and largest <= 1 + tolerance:
        fix = f"they look like tanh outputs in [-1, 1]: rescale tanh outputs with ({name} + 1) / 2"
        if not strict:
            fix += ", or pass value_range=(-1, 1)"
    else:
        fix = f"rescale them into [{low:g}, {high:g}]"
        if not strict:
            fix += " or pass a value_range that covers them"
    raise ValueError(
        f"{name} should lie in [{low:g}, {high:g}] but range from {smallest:.4g} to "
        f"{largest:.4g}; {fix}."
    )


def check_range_pair(value_range, name: str = "value_range") -> tuple[float, float]:
    """Return (low, high) as floats with low <= high, or raise. Plots and evaluation."""
    try:
        low, high = (float(bound) for bound in value_range)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a pair (low, high) of numbers, got {value_range!r}; "
                        "pass e.g. (0, 1) or (-1, 1).") from None
    if not (np.isfinite(low) and np.isfinite(high)) or low > high:
        raise ValueError(f"{name} must be (low, high) with finite low <= high, got "
                         f"{value_range!r}; pass e.g. (0, 1) or (-1, 1).")
    return low, high


def check_images(images, name: str = "images", value_range=(0.0, 1.0), *, strict: bool = True,
                 allow_empty: bool = False) -> np.ndarray:
    """Return the batch (n, height, width) of grey images in value_range, or raise. NB 2-15."""
    batch = check_finite(images, name)
    if batch.ndim == 4 and batch.shape[-1] == 1:
        batch = batch[..., 0]
    if batch.ndim != 3:
        hint = ("add a batch axis with images[None]" if batch.ndim == 2 else
                "keep one channel, e.g. images[..., :1]" if batch.ndim == 4 else
                "reshape them, e.g. images.reshape(-1, 28, 28)")
        raise ValueError(
            f"{name}: expected a batch of grey images shaped (n, height, width) or (n, height, "
            f"width, 1), got shape {batch.shape}; {hint}."
        )
    if batch.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} is an empty batch (shape {batch.shape}); pass at least one "
                         "image.")
    if 0 in batch.shape[1:]:
        raise ValueError(f"{name} has images of size {batch.shape[1:]}; each image needs at "
                         "least one pixel.")
    if batch.dtype == bool:
        batch = batch.astype(np.float32)
    check_value_range(batch, value_range, name, strict=strict)
    return batch


def check_seed(seed: object) -> int:
    """Return seed as an int in [0, 2**32 - 1], or raise saying how to fix it. config and data."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"The seed must be a whole number, got {seed!r}; pass e.g. seed=42.")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"The seed must lie in [0, {MAX_SEED}] (NumPy's range), got {seed}; "
                         "pass e.g. seed=42.")
    return int(seed)


def check_optional_seed(seed: object) -> int | None:
    """Return a layer's seed as an int, or None (draw afresh), else raise. The layer modules."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"seed must be an integer or None, got {seed!r}; pass e.g. seed=42.")
    return None if seed is None else int(seed)


def check_activation(identifier):
    """Return the Keras activation a name or function stands for, else raise. The layer modules."""
    import keras  # here, not at the top: config imports checks before TensorFlow is quietened

    try:
        return keras.activations.get(identifier)
    except (ValueError, TypeError):
        raise ValueError(f"Unknown activation {identifier!r}; pass a Keras activation name such "
                         'as "relu", "sigmoid" or "tanh", a function, or None.') from None


def check_feature_maps(layer_name: str, input_shape) -> None:
    """Raise unless a layer's input is shaped (batch, height, width, channels). Layer modules."""
    if len(input_shape) != 4:
        raise ValueError(
            f"{layer_name} works on feature maps shaped (batch, height, width, channels); "
            f"got {tuple(input_shape)}."
        )


def check_class_labels(labels, n_classes: int, name: str = "labels",
                       count: int | None = None) -> np.ndarray:
    """Return class indices as an int32 vector in [0, n_classes), else raise. Notebooks 12 and 15.

    A conditional network takes one class index per example; `count` (if given) is the number
    of examples the labels must match.
    """
    n_classes = check_count(n_classes, "n_classes", 1)
    array = check_finite(labels, name)
    if array.ndim == 2 and array.shape[1] == n_classes and array.shape[1] > 1:
        raise ValueError(f"{name} look one-hot encoded (shape {array.shape}); pass one class "
                         f"index per example instead, e.g. {name}.argmax(axis=1).")
    if array.ndim != 1:
        raise ValueError(f"{name} must be a vector of class indices, one per example, got shape "
                         f"{array.shape}; pass e.g. np.arange(n) % {n_classes}.")
    if array.dtype == bool or not np.all(array == np.round(array)):
        raise TypeError(f"{name} must be whole class indices such as 0, 1, ..., {n_classes - 1}, "
                        f"got {array[:5]}...; pass integers.")
    if array.size and (array.min() < 0 or array.max() >= n_classes):
        raise ValueError(f"{name} must lie in [0, {n_classes - 1}], got values from "
                         f"{array.min():g} to {array.max():g}; there are {n_classes} classes.")
    if count is not None and len(array) != count:
        raise ValueError(f"{name} has {len(array)} entries but there are {count} examples; pass "
                         "one label per coding.")
    return array.astype("int32")
