"""Notebook 12's shared pieces: the WGAN-GP gradient penalty against its formula, the label
checks of conditional networks, conditional sampling and the class-conditional accuracy."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from course_utils import checks, evaluation, training


def _linear_critic(weights):
    """A critic D(x) = w . flatten(x): its gradient is w everywhere, so the penalty is known."""
    critic = keras.Sequential([keras.Input((2, 2, 1)), keras.layers.Flatten(),
                               keras.layers.Dense(1, use_bias=False)])
    critic.layers[-1].kernel.assign(np.asarray(weights, dtype="float32").reshape(4, 1))
    return critic


@pytest.mark.parametrize("norm", [1.0, 3.0, 0.5])
def test_gradient_penalty_of_a_linear_critic_is_its_norm_minus_one_squared(norm):
    direction = np.array([1.0, -2.0, 2.0, 4.0]) / 5.0  # a unit vector
    critic = _linear_critic(norm * direction)
    rng = np.random.default_rng(0)
    real, fake = (rng.normal(size=(8, 2, 2, 1)).astype("float32") for _ in range(2))
    penalty = float(training.gradient_penalty(critic, real, fake,
                                              seed=keras.random.SeedGenerator(1)))
    assert penalty == pytest.approx((norm - 1.0) ** 2, abs=1e-5)  # 0 for gradients of norm 1


def test_gradient_penalty_is_measured_at_the_interpolates():
    # D(x) = ||x||^2 / 2 has gradient x: with real == fake every interpolate is that image, so
    # the penalty is the mean of (||x|| - 1)^2 over the batch, whatever eps was drawn.
    class HalfSquaredNorm(keras.Model):
        def call(self, images, training=False):
            return 0.5 * keras.ops.sum(images**2, axis=(1, 2, 3))[:, None]

    images = np.zeros((3, 2, 2, 1), dtype="float32")
    images[0, 0, 0, 0], images[1, 0, 0, 0], images[2] = 1.0, 3.0, 0.5  # norms 1, 3 and 1
    penalty = float(training.gradient_penalty(HalfSquaredNorm(), images, images))
    assert penalty == pytest.approx((0.0 + 4.0 + 0.0) / 3, abs=1e-5)
    # Between 0 and x (real = x, fake = 0) the interpolate is eps * x: the penalty then lies
    # between the values at eps = 0 and eps = 1, and differs from both for a random eps.
    big = np.zeros((64, 2, 2, 1), dtype="float32")
    big[:, 0, 0, 0] = 4.0
    penalty = float(training.gradient_penalty(HalfSquaredNorm(), big, np.zeros_like(big),
                                              seed=keras.random.SeedGenerator(3)))
    # E[(4 eps - 1)^2] for eps ~ U(0, 1) is 16/3 - 4 + 1 = 7/3.
    assert 1.0 < penalty < 9.0 and penalty == pytest.approx(7 / 3, rel=0.35)


def test_gradient_penalty_trains_a_critic_towards_unit_gradients_in_a_compiled_step():
    critic = _linear_critic([3.0, 0.0, 0.0, 0.0])
    optimizer = keras.optimizers.SGD(learning_rate=0.05)
    seed = keras.random.SeedGenerator(0)
    real = np.ones((4, 2, 2, 1), dtype="float32")

    @tf.function(jit_compile=False)
    def step():
        with tf.GradientTape() as tape:
            penalty = training.gradient_penalty(critic, real, -real, seed=seed)
        weights = critic.trainable_weights
        optimizer.apply(tape.gradient(penalty, weights), weights)
        return penalty

    first = float(step())
    for _ in range(60):
        last = float(step())
    assert first == pytest.approx(4.0, abs=1e-4) and last < 1e-3
    assert np.linalg.norm(critic.layers[-1].kernel.numpy()) == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("call, error, message", [
    (lambda c: training.gradient_penalty(c, np.zeros((4, 2, 2, 1)), np.zeros((3, 2, 2, 1))),
     ValueError, r"same shape.*\(4, 2, 2, 1\) and \(3, 2, 2, 1\)"),
    (lambda c: training.gradient_penalty(c, np.zeros((4, 2, 2, 1)), np.zeros((4, 2, 2, 1)),
                                         seed=7), TypeError, r"SeedGenerator.*same eps"),
    (lambda c: training.gradient_penalty("critic", np.zeros((4, 2, 2, 1)),
                                         np.zeros((4, 2, 2, 1))), TypeError, "callable"),
])
def test_gradient_penalty_refuses_bad_input_clearly(call, error, message):
    with pytest.raises(error, match=message):
        call(_linear_critic([1.0, 0.0, 0.0, 0.0]))


def test_gradient_penalty_refuses_a_critic_with_more_than_one_score():
    critic = keras.Sequential([keras.Input((2, 2, 1)), keras.layers.Flatten(),
                               keras.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"one score per image.*\(4, 2\)"):
        training.gradient_penalty(critic, np.zeros((4, 2, 2, 1)), np.ones((4, 2, 2, 1)))


def test_class_labels_are_checked_for_shape_range_and_count():
    np.testing.assert_array_equal(checks.check_class_labels([0, 9, 3.0], 10), [0, 9, 3])
    assert checks.check_class_labels(np.array([1, 2]), 10).dtype == np.int32
    cases = [
        (np.eye(10)[:3], ValueError, r"one-hot.*argmax\(axis=1\)"),
        (np.zeros((2, 2, 2)), ValueError, "vector of class indices"),
        ([0.5, 1.0], TypeError, "whole class indices"),
        ([0, 10], ValueError, r"\[0, 9\].*from 0 to 10"),
        ([-1, 3], ValueError, r"\[0, 9\]"),
        ([0, np.nan], ValueError, "NaN"),
        (["shirt"], TypeError, "real numbers"),
    ]
    for labels, error, message in cases:
        with pytest.raises(error, match=message):
            checks.check_class_labels(labels, 10)
    with pytest.raises(ValueError, match="3 entries but there are 4 examples"):
        checks.check_class_labels([0, 1, 2], 10, count=4)


def _conditional_generator():
    codings = keras.Input((3,))
    labels = keras.Input((), dtype="int32")
    embedded = keras.layers.Embedding(10, 2)(labels)
    hidden = keras.layers.Concatenate()([codings, embedded])
    images = keras.layers.Reshape((2, 2, 1))(keras.layers.Dense(4)(hidden))
    return keras.Model([codings, labels], images, name="tiny_conditional")


def test_generate_images_passes_labels_to_a_conditional_generator_only():
    generator = _conditional_generator()
    codings = np.zeros((5, 3), dtype="float32")
    by_class = evaluation.generate_images(generator, codings, labels=np.arange(5))
    assert by_class.shape == (5, 2, 2, 1)
    # Same codings, different classes: the label changes the image (through its embedding).
    assert not np.allclose(by_class[0], by_class[1])
    np.testing.assert_allclose(by_class, np.asarray(generator([codings, np.arange(5)])),
                               atol=1e-6)
    with pytest.raises(ValueError, match="conditional: pass labels="):
        evaluation.generate_images(generator, codings)
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        evaluation.generate_images(generator, codings, labels=[0, 1, 2, 3, 12])
    with pytest.raises(ValueError, match="one label per coding"):
        evaluation.generate_images(generator, codings, labels=[0, 1])
    with pytest.raises(ValueError, match=r"codings shaped \(n, 3\)"):
        evaluation.generate_images(generator, np.zeros((5, 4)), labels=np.arange(5))
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)], name="plain")
    assert evaluation.generate_images(plain, codings).shape == (5, 4)
    with pytest.raises(ValueError, match="takes no labels"):
        evaluation.generate_images(plain, codings, labels=np.arange(5))


def test_gan_progress_feeds_fixed_labels_to_a_conditional_generator():
    generator = _conditional_generator()
    progress = training.GanProgress(np.ones((4, 3)), labels=[0, 1, 2, 3])
    progress.set_model(type("Holder", (), {"generator": generator})())
    progress.on_epoch_end(0)
    expected = np.asarray(generator([np.ones((4, 3), dtype="float32"), np.arange(4)]))
    np.testing.assert_allclose(progress.snapshots[0][1], expected, atol=1e-6)
    with pytest.raises(ValueError, match="3 entries but there are 4 examples"):
        training.GanProgress(np.ones((4, 3)), labels=[0, 1, 2])


def test_class_conditional_accuracy_counts_hits_per_requested_class():
    judge = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax", name="out")])
    # Weights that read the class from pixel [0, 0] (value k / 10 + 0.05 -> class k).
    images = np.zeros((6, 28, 28), dtype="float32")
    judged = np.array([1, 1, 2, 2, 5, 5])
    images[np.arange(6), 0, 0] = judged / 10 + 0.05
    kernel = np.zeros((784, 10), dtype="float32")
    kernel[0] = np.arange(10) * 200.0
    bias = -np.cumsum(np.r_[0.0, np.full(9, 200.0) * (np.arange(1, 10) / 10)])
    judge.layers[-1].set_weights([kernel, bias.astype("float32")])
    np.testing.assert_array_equal(evaluation.classify_images(judge, images), judged)
    requested = np.array([1, 1, 2, 3, 5, 4])
    result = evaluation.class_conditional_accuracy(judge, images, requested)
    assert result["accuracy"] == pytest.approx(4 / 6)
    np.testing.assert_allclose(result["per_class"][[1, 2, 3, 4, 5]], [1, 1, 0, 0, 1])
    assert np.isnan(result["per_class"][[0, 6, 7, 8, 9]]).all()
    assert result["confident_accuracy"] == pytest.approx(4 / 6)  # the weights make it certain
    with pytest.raises(ValueError, match="one label per coding"):
        evaluation.class_conditional_accuracy(judge, images, requested[:4])


def test_gan_progress_can_snapshot_every_few_training_steps_and_restore_them():
    generator = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    progress = training.GanProgress(np.ones((2, 3)), every_steps=3)
    progress.set_model(type("Holder", (), {"generator": generator})())
    progress.set_params({"steps": 5})
    for epoch in range(2):  # 2 epochs of 5 steps: snapshots after steps 3, 6 and 9
        progress.on_epoch_begin(epoch)
        for batch in range(5):
            progress.on_train_batch_end(batch)
        progress.on_epoch_end(epoch)
    assert [count for count, _ in progress.snapshots] == [3, 6, 9]
    saved = progress.saved_arrays()
    assert sorted(saved) == ["images", "steps"]
    again = training.GanProgress(np.ones((2, 3)), every_steps=3)
    again.restore_arrays(saved)
    assert [count for count, _ in again.snapshots] == [3, 6, 9]
    with pytest.raises(ValueError, match="'epochs' and 'images'"):
        training.GanProgress(np.ones((2, 3))).restore_arrays(saved)  # an epoch-wise callback
    with pytest.raises(ValueError, match="every_steps must be at least 1"):
        training.GanProgress(np.ones((2, 3)), every_steps=0)
