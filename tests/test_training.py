"""Experience-replay buffer, the GAN progress callback, the fade-in schedule, weights that moved."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from course_utils import training
from course_utils.training import GanProgress, ReplayBuffer


def _stored(buffer):
    return sorted(np.asarray(buffer.items)[: len(buffer)].ravel().tolist())


def test_replay_buffer_keeps_only_the_newest_capacity_items():
    buffer = ReplayBuffer(capacity=5, example_shape=(1,), seed=0)
    buffer.add(np.arange(3, dtype="float32").reshape(3, 1))
    assert len(buffer) == 3 and _stored(buffer) == [0, 1, 2]
    buffer.add(np.arange(3, 9, dtype="float32").reshape(6, 1))  # more than the capacity
    assert len(buffer) == 5 and _stored(buffer) == [4, 5, 6, 7, 8]
    buffer.add(np.array([[9.0], [10.0]], dtype="float32"))  # overwrites the two oldest
    assert _stored(buffer) == [6, 7, 8, 9, 10]


def test_replay_buffer_samples_only_stored_items_reproducibly():
    first = ReplayBuffer(10, (1, 1), seed=3)
    second = ReplayBuffer(10, (1, 1), seed=3)
    for buffer in (first, second):
        buffer.add(np.arange(4, dtype="float32").reshape(4, 1, 1))
    a, b = np.asarray(first.sample(200)), np.asarray(second.sample(200))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (200, 1, 1)
    assert set(a.ravel().tolist()) == {0, 1, 2, 3}  # all stored, none of the empty slots


def test_replay_buffer_works_inside_a_compiled_function():
    buffer = ReplayBuffer(8, (2,), seed=1)

    @tf.function(jit_compile=False)
    def step(batch):
        buffer.add(batch)
        return buffer.sample(4)

    for start in range(0, 12, 4):
        sampled = np.asarray(step(np.full((4, 2), start, dtype="float32")))
    assert len(buffer) == 8 and int(buffer.count.numpy()) == 12
    assert set(sampled[:, 0].tolist()) <= {4.0, 8.0}  # the oldest batch (0s) was overwritten


def test_replay_buffer_errors_and_config():
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(0, (28, 28))
    buffer = ReplayBuffer(3, (28, 28), seed=5)
    with pytest.raises(ValueError, match="empty"):
        buffer.sample(1)
    with pytest.raises(ValueError, match="shape"):
        buffer.add(np.zeros((2, 14, 14), dtype="float32"))
    config = buffer.get_config()
    assert (config["capacity"], config["example_shape"], config["seed"]) == (3, (28, 28), 5)


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


def test_fade_in_schedule_raises_alpha_linearly_across_compiled_steps():
    from course_utils.gan_layers import FadeIn
    from course_utils.training import FadeInSchedule

    old_in, new_in = keras.Input((1,)), keras.Input((1,))
    fade = FadeIn(name="fade")
    blended = keras.layers.Dense(1)(fade([old_in, new_in]))
    model = keras.Model([old_in, new_in], blended)
    model.compile(optimizer="sgd", loss="mse", steps_per_execution=4)
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(float(fade.alpha.numpy()))

    ones = np.ones((32, 1), "float32")
    schedule = FadeInSchedule([fade, None], fade_steps=16)
    model.fit([ones, ones], ones, batch_size=1, epochs=2, verbose=0, callbacks=[schedule, Record()])
    # 32 steps per epoch, reported every 4 steps: alpha 4/16, 8/16, ... then stays at 1.
    assert seen[:5] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert len(seen) == 16 and seen[-1] == 1.0
    FadeInSchedule([fade], fade_steps=0).on_train_begin()
    assert float(fade.alpha.numpy()) == 1.0
    with pytest.raises(ValueError, match="0 or more"):
        FadeInSchedule([fade], fade_steps=-1)


def test_weights_moved_tells_each_changed_weight_from_its_copy():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    before = training.copy_weights(model.weights)
    assert training.weights_moved(before, model.weights) == [False] * 4
    kernel = model.layers[1].kernel
    kernel.assign(kernel + 1.0)  # the copies must not follow the variable
    assert training.weights_moved(before, model.weights) == [False, False, True, False]
    with pytest.raises(ValueError):  # a copy of another model's weights is not compared
        training.weights_moved(before[:2], model.weights)
