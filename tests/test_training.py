"""Experience-replay buffer and the GAN progress callback."""

import keras
import numpy as np
import pytest

from course_utils.training import GanProgress, ReplayBuffer


def test_replay_buffer_keeps_only_the_newest_capacity_items():
    buffer = ReplayBuffer(capacity=5, seed=0)
    buffer.add(np.arange(3).reshape(3, 1))
    assert len(buffer) == 3
    buffer.add(np.arange(3, 9).reshape(6, 1))
    assert len(buffer) == 5
    stored = sorted(buffer.sample(5).ravel())
    assert stored == [4, 5, 6, 7, 8]


def test_replay_buffer_samples_stored_items_reproducibly():
    first, second = ReplayBuffer(10, seed=3), ReplayBuffer(10, seed=3)
    for buffer in (first, second):
        buffer.add(np.arange(10, dtype="float32").reshape(10, 1, 1))
    a, b = first.sample(4), second.sample(4)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (4, 1, 1) and len(set(a.ravel())) == 4  # without replacement
    assert set(first.sample(25).ravel()) <= set(range(10))  # more than stored: with replacement


def test_replay_buffer_errors():
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(0)
    buffer = ReplayBuffer(3)
    with pytest.raises(ValueError, match="empty"):
        buffer.sample(1)
    buffer.add(np.zeros((2, 28, 28)))
    with pytest.raises(ValueError, match="shape"):
        buffer.add(np.zeros((2, 14, 14)))


class _TinyGan(keras.Model):
    def __init__(self):
        super().__init__()
        self.generator = keras.Sequential([keras.Input((2,)), keras.layers.Dense(4)])

    def call(self, inputs):
        return self.generator(inputs)


def test_gan_progress_snapshots_the_generator_on_fixed_noise():
    noise = np.ones((3, 2), dtype="float32")
    shown = []
    progress = GanProgress(noise, every=2, show=lambda images, epoch: shown.append(epoch))
    model = _TinyGan()
    progress.set_model(model)
    for epoch in range(4):
        progress.on_epoch_end(epoch)
    assert [epoch for epoch, _ in progress.snapshots] == [2, 4] == shown
    np.testing.assert_allclose(progress.snapshots[0][1], model.generator(noise), atol=1e-6)


def test_gan_progress_needs_a_generator():
    progress = GanProgress(np.ones((1, 2)))
    progress.set_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    with pytest.raises(AttributeError, match="generator"):
        progress.on_epoch_end(0)
