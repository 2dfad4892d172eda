"""Training helpers for the GAN notebooks: an experience-replay buffer and a progress callback."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops


class ReplayBuffer(keras.layers.Layer):
    """Fixed-size store of past fake images, usable inside a compiled train_step. Notebook 9."""

    def __init__(self, capacity, example_shape, seed=None, **kwargs):
        super().__init__(**kwargs)
        if int(capacity) < 1:
            raise ValueError(f"A replay buffer needs a capacity of at least 1, got {capacity}.")
        self.capacity = int(capacity)
        self.example_shape = tuple(int(size) for size in example_shape)
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
        batch = ops.convert_to_tensor(batch, dtype=self.items.dtype)
        if tuple(batch.shape[1:]) != self.example_shape:
            raise ValueError(
                f"Every example in the buffer has shape {self.example_shape}, "
                f"got a batch of {tuple(batch.shape[1:])}."
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
        """Return n stored examples drawn uniformly at random (with replacement). Notebook 9."""
        stored = ops.minimum(self.count, self.capacity)
        if tf.executing_eagerly() and int(stored) == 0:
            raise ValueError("The replay buffer is empty: add() a batch before sampling.")
        indices = keras.random.randint(
            (n,), 0, ops.maximum(stored, 1), seed=self.seed_generator, dtype="int32"
        )
        return ops.take(self.items, indices, axis=0)

    def get_config(self):
        """Capacity, example shape and seed. Notebook 9."""
        return {**super().get_config(), "capacity": self.capacity,
                "example_shape": self.example_shape, "seed": self.seed}


class GanProgress(keras.callbacks.Callback):
    """Keeps the generator's images for fixed noise after each epoch, for grids. Notebooks 9-11."""

    def __init__(self, noise, every=1, show=None):
        super().__init__()
        self.noise = np.asarray(noise, dtype="float32")
        self.every = max(1, int(every))
        self.show = show  # optional callable(images, epoch), e.g. to redraw a live grid
        self.snapshots = []  # (epoch, images) pairs

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        generator = getattr(self.model, "generator", None)
        if generator is None:
            raise AttributeError(
                "GanProgress needs the model being trained to have a `generator` attribute "
                "(the network that turns noise into images)."
            )
        images = np.asarray(generator(self.noise, training=False))
        self.snapshots.append((epoch + 1, images))
        if self.show is not None:
            self.show(images, epoch + 1)
