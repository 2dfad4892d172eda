"""GAN training helpers: the two-phase GAN, replay buffer, progress snapshots, gradient penalty.

Also which weights a training step moved (copy_weights, weights_moved), for the tests and the
GAN speed benchmark.

`GAN` is written out in notebook 9, where it is the lesson; this copy lets notebooks 10-12 reuse it
(as d2l saves book code into its package). tests/test_gan_notebook.py checks the two are identical.
"""

from __future__ import annotations

import numbers

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from course_utils.checks import check_class_labels, check_count, check_finite


class ReplayBuffer(keras.layers.Layer):
    """Fixed-size store of past fake images, usable inside a compiled train_step. Notebook 9."""

    def __init__(self, capacity, example_shape, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.capacity = check_count(capacity, "The replay buffer's capacity", 1)
        if isinstance(example_shape, numbers.Integral | str):
            raise TypeError(f"example_shape must be a tuple such as (28, 28), got "
                            f"{example_shape!r}; for flat examples pass ({example_shape},).")
        self.example_shape = tuple(check_count(size, "each size in example_shape", 1)
                                   for size in example_shape)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise TypeError(f"seed must be an integer or None, got {seed!r}; pass e.g. seed=42.")
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        # Variables, not a Python list, so that add() and sample() compile into the train step.
        self.items = self.add_weight(
            name="items", shape=(self.capacity, *self.example_shape), initializer="zeros",
            trainable=False,
        )
        self.count = self.add_weight(
            name="count", shape=(), initializer="zeros", dtype="int32", trainable=False
        )

    def __len__(self):
        return int(min(int(self.count.numpy()), self.capacity))

    def add(self, batch):
        """Store a batch, overwriting the oldest examples once full. Notebook 9."""
        if not tf.is_tensor(batch) or tf.executing_eagerly():
            # Outside a compiled step the values are known: no NaN fakes enter the buffer.
            check_finite(ops.convert_to_numpy(batch) if tf.is_tensor(batch) else batch,
                         "The batch added to the replay buffer")
        batch = ops.convert_to_tensor(batch, dtype=self.items.dtype)
        if len(batch.shape) == 0 or tuple(batch.shape[1:]) != self.example_shape:
            raise ValueError(
                f"Every example in the buffer has shape {self.example_shape}, "
                f"got a batch of {tuple(batch.shape[1:])} (batch shape {tuple(batch.shape)}); "
                f"add a batch shaped (n, {', '.join(map(str, self.example_shape))})."
            )
        size = ops.shape(batch)[0]
        # A batch larger than the buffer keeps only its last `capacity` examples, like a queue.
        kept = batch[-self.capacity:]
        kept_size = ops.shape(kept)[0]
        first_slot = self.count + (size - kept_size)
        slots = ops.mod(first_slot + ops.arange(kept_size, dtype="int32"), self.capacity)
        self.items.assign(ops.scatter_update(self.items, ops.expand_dims(slots, -1), kept))
        self.count.assign(self.count + size)

    def sample(self, n):
        """Return n stored examples drawn uniformly at random (with replacement). Notebook 9.

        Sampling an empty buffer raises a ValueError eagerly and fails a compiled step; where
        XLA drops that assertion the samples are NaN, never silently zeros.
        """
        if not tf.is_tensor(n):
            n = check_count(n, "The number of examples to sample", 0)
        stored = ops.minimum(self.count, self.capacity)
        if tf.executing_eagerly() and int(stored) == 0:
            raise ValueError("The replay buffer is empty: add() a batch before sampling.")
        indices = keras.random.randint(
            (n,), 0, ops.maximum(stored, 1), seed=self.seed_generator, dtype="int32"
        )
        samples = ops.take(self.items, indices, axis=0)
        if tf.executing_eagerly():
            return samples
        check = tf.debugging.Assert(stored > 0, [
            "The replay buffer is empty: add() a batch before sampling (in train_step, add the "
            "fresh fakes first, then sample)."])
        with tf.control_dependencies([check]):
            return ops.where(stored > 0, samples, ops.full_like(samples, float("nan")))

    def get_config(self):
        """Capacity, example shape and seed. Notebook 9."""
        return {**super().get_config(), "capacity": self.capacity,
                "example_shape": self.example_shape, "seed": self.seed}


class FadeInSchedule(keras.callbacks.Callback):
    """Raises FadeIn layers' alpha linearly from 0 to 1 over `fade_steps` steps. Notebook 11."""

    # What it changes (the layers' alpha) is a variable of the model, so checkpoints.once's
    # reload puts it back: nothing of this callback is lost when a training is reloaded.
    reload_safe = True

    def __init__(self, fade_layers, fade_steps):
        super().__init__()
        if isinstance(fade_steps, bool) or not isinstance(fade_steps, numbers.Integral):
            raise TypeError(f"fade_steps must be a whole number of steps, got {fade_steps!r}.")
        if fade_steps < 0:
            raise ValueError(f"fade_steps must be 0 or more, got {fade_steps}; pass 0 to start "
                             "at alpha = 1.")
        if isinstance(fade_layers, keras.layers.Layer):
            raise TypeError("fade_layers must be a list of FadeIn layers; wrap a single one as "
                            "[fade_layer].")
        self.fade_layers = [layer for layer in fade_layers if layer is not None]
        for layer in self.fade_layers:
            if not callable(getattr(layer, "set_alpha", None)):
                raise TypeError(f"fade_layers must hold FadeIn layers (with set_alpha), got "
                                f"{type(layer).__name__}; pass the model's FadeIn layers.")
        self.fade_steps = int(fade_steps)
        self.steps_done, self._epoch = 0, 0

    def _set_alpha(self):
        alpha = 1.0 if self.fade_steps == 0 else min(1.0, self.steps_done / self.fade_steps)
        for layer in self.fade_layers:
            layer.set_alpha(alpha)

    def on_train_begin(self, logs=None):
        self.steps_done, self._epoch = 0, 0
        self._set_alpha()

    def on_train_batch_end(self, batch, logs=None):
        # With steps_per_execution=k, Keras calls this every k steps with `batch` = last step.
        steps_per_epoch = self.params.get("steps") or 0
        self.steps_done = max(self.steps_done, self._epoch * steps_per_epoch + batch + 1)
        self._set_alpha()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch


class GanProgress(keras.callbacks.Callback):
    """Keeps the generator's images for fixed noise after each epoch, for grids. Notebooks 9-12.

    With every_steps=n it keeps them after every n training steps instead (notebook 12 scores
    them along training); each snapshot is then (steps done, images).
    """

    def __init__(self, noise, every=1, show=None, labels=None, n_classes=10, every_steps=None):
        super().__init__()
        self.noise = check_finite(noise, "noise").astype("float32")
        if self.noise.ndim < 2 or len(self.noise) == 0:
            raise ValueError(f"noise must be a batch of codings shaped (n, codings_size), got "
                             f"shape {self.noise.shape}; e.g. keras.random.normal((30, 30)).")
        # A conditional generator (notebook 12) takes [codings, labels]: one class per coding.
        self.labels = None if labels is None else check_class_labels(
            labels, n_classes, "labels", count=len(self.noise))
        self.every = check_count(every, "every", 1)
        self.every_steps = None if every_steps is None else check_count(
            every_steps, "every_steps", 1)
        self.unit = "epochs" if self.every_steps is None else "steps"
        if show is not None and not callable(show):
            raise TypeError(f"show must be a function show(images, epoch) or None, got "
                            f"{type(show).__name__}; e.g. plots.live_image_grid().")
        self.show = show  # optional callable(images, epoch), e.g. to redraw a live grid
        self.snapshots = []  # (epoch, images) pairs, or (step, images) with every_steps
        self._epoch = 0

    def _snapshot(self, count):
        generator = getattr(self.model, "generator", None)
        if generator is None:
            raise AttributeError(
                "GanProgress needs the model being trained to have a `generator` attribute "
                "(the network that turns noise into images)."
            )
        inputs = self.noise if self.labels is None else [self.noise, self.labels]
        images = np.asarray(generator(inputs, training=False))
        self.snapshots.append((count, images))
        if self.show is not None:
            self.show(images, count)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.every_steps is None:
            return
        steps_per_epoch = (self.params or {}).get("steps") or 0
        done = self._epoch * steps_per_epoch + batch + 1
        if done % self.every_steps == 0:
            self._snapshot(done)

    def on_epoch_end(self, epoch, logs=None):
        if self.every_steps is None and (epoch + 1) % self.every == 0:
            self._snapshot(epoch + 1)

    def saved_arrays(self):
        """The snapshots as arrays, for checkpoints.train_once to save with the model."""
        if not self.snapshots:
            return {}
        counts, images = zip(*self.snapshots, strict=True)
        return {self.unit: np.asarray(counts, dtype="int64"), "images": np.stack(images)}

    def restore_arrays(self, arrays):
        """Put back saved snapshots (and show the last one) when a trained GAN is reloaded."""
        if not arrays:
            self.snapshots = []
            return
        if self.unit not in arrays or "images" not in arrays or (
                len(arrays[self.unit]) != len(arrays["images"])):
            raise ValueError(f"The saved snapshots need matching '{self.unit}' and 'images' "
                             "arrays; pass what saved_arrays() returned, or retrain "
                             "(RETRAIN = True).")
        self.snapshots = [(int(count), images)
                          for count, images in zip(arrays[self.unit], arrays["images"],
                                                   strict=True)]
        if self.show is not None:
            count, images = self.snapshots[-1]
            self.show(images, count)


def copy_weights(weights) -> list[np.ndarray]:
    """Copies of weights (model.weights, .trainable_weights) now. Tests and tools/gan_speed.py."""
    return [np.array(weight) for weight in weights]


def weights_moved(before, weights) -> list[bool]:
    """For each weight, whether it differs from its copy_weights copy. Tests, tools/gan_speed.py."""
    pairs = zip(before, weights, strict=True)
    return [not np.array_equal(old, np.array(new)) for old, new in pairs]


def gradient_penalty(critic, real_images, fake_images, seed=None):
    """Mean of (||grad critic(x_hat)|| - 1)^2 at random interpolates x_hat. Notebook 12.

    x_hat = eps * real + (1 - eps) * fake, one eps ~ U(0, 1) per example (Gulrajani et al.,
    2017). Call it inside the critic's GradientTape: the penalty's gradient then trains the
    critic towards gradients of norm 1 between the real and the generated images.
    """
    if not callable(critic):
        raise TypeError(f"critic must be a network (a callable keras.Model), got "
                        f"{type(critic).__name__}.")
    real_images = ops.convert_to_tensor(real_images, dtype="float32")
    fake_images = ops.convert_to_tensor(fake_images, dtype="float32")
    if tuple(real_images.shape) != tuple(fake_images.shape) or len(real_images.shape) < 2:
        raise ValueError(f"real_images and fake_images must be batches of the same shape, got "
                         f"{tuple(real_images.shape)} and {tuple(fake_images.shape)}; generate "
                         "as many fakes as there are real images in the batch.")
    if seed is not None and not isinstance(seed, keras.random.SeedGenerator):
        raise TypeError(f"seed must be a keras.random.SeedGenerator (created once, in __init__) "
                        f"or None, got {seed!r}; a fixed integer would draw the same eps at "
                        "every step.")
    batch_size = ops.shape(real_images)[0]
    eps_shape = (batch_size,) + (1,) * (len(real_images.shape) - 1)
    eps = keras.random.uniform(eps_shape, seed=seed)
    interpolates = eps * real_images + (1.0 - eps) * fake_images
    with tf.GradientTape() as tape:
        tape.watch(interpolates)
        scores = critic(interpolates, training=True)
    if len(scores.shape) > 2 or (len(scores.shape) == 2 and scores.shape[-1] != 1):
        raise ValueError(f"The critic must give one score per image, shape (batch, 1), got "
                         f"{tuple(scores.shape)}; end it with Dense(1) and no activation.")
    gradients = tape.gradient(scores, interpolates)
    axes = tuple(range(1, len(real_images.shape)))
    # The small constant keeps the square root differentiable where a gradient is exactly 0.
    norms = ops.sqrt(ops.sum(ops.square(gradients), axis=axes) + 1e-12)
    return ops.mean(ops.square(norms - 1.0))


# --- Copied from notebook 9 (cell tagged "gan-model"); a test keeps the two identical. ---
class GAN(keras.Model):
    """A generator and a discriminator trained in turns: two phases per batch."""

    def __init__(self, generator, discriminator, codings_size, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.codings_size = codings_size
        self.noise_seed = keras.random.SeedGenerator(seed)
        self.loss_fn = keras.losses.BinaryCrossentropy()
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")

    def compile(self, d_optimizer, g_optimizer, **kwargs):
        super().compile(**kwargs)
        self.d_optimizer = d_optimizer  # each network gets its own optimizer
        self.g_optimizer = g_optimizer

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker]

    def sample_codings(self, batch_size):
        return keras.random.normal((batch_size, self.codings_size), seed=self.noise_seed)

    def fake_images_for_discriminator(self, batch_size):
        return self.generator(self.sample_codings(batch_size), training=True)

    def train_discriminator(self, real_images):
        """Phase 1: fakes labelled 0, reals labelled 1; only the discriminator learns."""
        fake_images = self.fake_images_for_discriminator(ops.shape(real_images)[0])
        with tf.GradientTape() as tape:
            # Separate batches, so batch statistics (batch norm, minibatch discrimination)
            # each see one kind of image.
            on_fakes = self.discriminator(fake_images, training=True)
            on_reals = self.discriminator(real_images, training=True)
            loss = (self.loss_fn(ops.zeros_like(on_fakes), on_fakes)
                    + self.loss_fn(ops.ones_like(on_reals), on_reals)) / 2
        weights = self.discriminator.trainable_weights
        self.d_optimizer.apply(tape.gradient(loss, weights), weights)
        return loss

    def train_generator(self, batch_size):
        """Phase 2: fresh fakes all labelled 1; only the generator learns."""
        codings = self.sample_codings(batch_size)
        with tf.GradientTape() as tape:
            fake_images = self.generator(codings, training=True)
            predictions = self.discriminator(fake_images, training=True)
            loss = self.loss_fn(ops.ones((batch_size, 1)), predictions)
        weights = self.generator.trainable_weights
        self.g_optimizer.apply(tape.gradient(loss, weights), weights)
        return loss

    def train_step(self, real_images):
        d_loss = self.train_discriminator(real_images)
        g_loss = self.train_generator(ops.shape(real_images)[0])
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {metric.name: metric.result() for metric in self.metrics}

    def call(self, codings, training=False):
        return self.generator(codings, training=training)
# --- End of the copy from notebook 9. ---
