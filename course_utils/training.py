"""Training helpers for the GAN notebooks: an experience-replay buffer and a progress callback."""

from __future__ import annotations

import keras
import numpy as np


class ReplayBuffer:
    """A fixed-size store of past generated images to show the discriminator again. Notebook 9."""

    def __init__(self, capacity, seed=42):
        if int(capacity) < 1:
            raise ValueError(f"A replay buffer needs a capacity of at least 1, got {capacity}.")
        self.capacity = int(capacity)
        self._items = None
        self._size = 0
        self._next = 0  # where the next item goes once the buffer is full: the oldest one
        self._rng = np.random.default_rng(seed)

    def __len__(self):
        return self._size

    def add(self, batch):
        """Store a batch of examples, overwriting the oldest once full. Notebook 9."""
        batch = np.asarray(batch)
        if self._items is None:
            self._items = np.empty((self.capacity, *batch.shape[1:]), dtype=batch.dtype)
        elif batch.shape[1:] != self._items.shape[1:]:
            raise ValueError(
                f"Every example in the buffer has shape {self._items.shape[1:]}, "
                f"got a batch of {batch.shape[1:]}."
            )
        for example in batch[-self.capacity:]:
            self._items[self._next] = example
            self._next = (self._next + 1) % self.capacity
            self._size = min(self._size + 1, self.capacity)

    def sample(self, n):
        """Return n stored examples drawn uniformly, without replacement if possible. NB 9."""
        if self._size == 0:
            raise ValueError("The replay buffer is empty: add() a batch before sampling.")
        indices = self._rng.choice(self._size, size=int(n), replace=int(n) > self._size)
        return self._items[indices].copy()


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
