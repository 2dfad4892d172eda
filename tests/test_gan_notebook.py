"""Notebook 9's GAN class: it is the same code as course_utils.training.GAN, and each of its two
training phases updates its own network and nothing else; the old freezing pattern does not.
Notebooks 9 and 10 train every GAN once (checkpoints.train_once) and reload it afterwards."""

import inspect
import warnings
from pathlib import Path

import keras
import nbformat
import numpy as np
import pytest
import tensorflow as tf
from gan_speed import load_tagged_cells
from keras import ops

from course_utils import checkpoints, config, evaluation, training

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / (
    "09_generative_adversarial_networks.ipynb"
)
NOTEBOOK_10 = NOTEBOOK.parent / "10_deep_convolutional_gan.ipynb"
BOOK_LOOP_DEMO = "nb09-13"  # trains 20 batches on purpose, every run: it is the demonstration
CODINGS_SIZE = 4


def _gan_cell_source():
    cells = nbformat.read(NOTEBOOK, as_version=4).cells
    tagged = [cell for cell in cells if "gan-model" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, "notebook 9 needs exactly one cell tagged gan-model"
    return tagged[0].source


@pytest.fixture(scope="module")
def notebook_gan_class():
    return load_tagged_cells(NOTEBOOK, ["gan-model"])["GAN"]


def test_the_package_copy_is_identical_to_the_notebook_cell():
    module_source = inspect.getsource(training)
    start = module_source.index("# --- Copied from notebook 9")
    end = module_source.index("# --- End of the copy from notebook 9.")
    copy = module_source[module_source.index("\n", start) + 1 : end]
    assert copy.strip() == _gan_cell_source().strip()


def _networks():
    generator = keras.Sequential(
        [keras.Input((CODINGS_SIZE,)), keras.layers.Dense(8, activation="selu"),
         keras.layers.Dense(16, activation="sigmoid"), keras.layers.Reshape((4, 4))]
    )
    discriminator = keras.Sequential(
        [keras.Input((4, 4)), keras.layers.Flatten(), keras.layers.Dense(8, activation="selu"),
         keras.layers.Dense(1, activation="sigmoid")]
    )
    return generator, discriminator


def _real_batches(n_batches=4, batch_size=8):
    images = np.random.default_rng(0).random((n_batches * batch_size, 4, 4)).astype("float32")
    return tf.data.Dataset.from_tensor_slices(images).batch(batch_size, drop_remainder=True)


def _snapshot(weights):
    return [np.array(weight) for weight in weights]


def _moved(before, weights):
    pairs = zip(before, weights, strict=True)
    return [not np.array_equal(old, np.array(new)) for old, new in pairs]


def _compiled_gan(gan_class, **compile_options):
    keras.utils.set_random_seed(1)
    gan = gan_class(*_networks(), CODINGS_SIZE, seed=3)
    gan.compile(d_optimizer=keras.optimizers.RMSprop(), g_optimizer=keras.optimizers.RMSprop(),
                **compile_options)
    return gan


def test_phase_one_updates_only_the_discriminator(notebook_gan_class):
    gan = _compiled_gan(notebook_gan_class)
    generator_before = _snapshot(gan.generator.weights)
    discriminator_before = _snapshot(gan.discriminator.weights)
    loss = gan.train_discriminator(next(iter(_real_batches())))
    assert np.isfinite(float(loss))
    assert all(_moved(discriminator_before, gan.discriminator.weights))
    assert not any(_moved(generator_before, gan.generator.weights))


def test_phase_two_updates_only_the_generator(notebook_gan_class):
    gan = _compiled_gan(notebook_gan_class)
    generator_before = _snapshot(gan.generator.weights)
    discriminator_before = _snapshot(gan.discriminator.weights)
    loss = gan.train_generator(8)
    assert np.isfinite(float(loss))
    assert all(_moved(generator_before, gan.generator.weights))
    assert not any(_moved(discriminator_before, gan.discriminator.weights))


def test_phase_two_gradients_follow_the_generator_loss(notebook_gan_class):
    # With a fixed discriminator, one generator step must raise D(G(z)) on the same codings.
    gan = _compiled_gan(notebook_gan_class)
    gan.g_optimizer = keras.optimizers.SGD(learning_rate=0.5)
    codings = np.random.default_rng(2).standard_normal((64, CODINGS_SIZE)).astype("float32")
    before = float(ops.mean(gan.discriminator(gan.generator(codings))))
    for _ in range(3):
        gan.train_generator(64)
    after = float(ops.mean(gan.discriminator(gan.generator(codings))))
    assert after > before


@pytest.mark.parametrize(
    "compile_options", [{}, {"jit_compile": True, "steps_per_execution": 2}],
    ids=["graph", "xla-steps-per-execution"],
)
def test_fit_trains_both_networks_and_logs_both_losses(notebook_gan_class, compile_options):
    gan = _compiled_gan(notebook_gan_class, **compile_options)
    generator_before = _snapshot(gan.generator.trainable_weights)
    discriminator_before = _snapshot(gan.discriminator.trainable_weights)
    history = gan.fit(_real_batches(), epochs=2, verbose=0, shuffle=False)
    assert set(history.history) == {"d_loss", "g_loss"}
    assert all(np.isfinite(history.history["d_loss"] + history.history["g_loss"]))
    assert all(_moved(generator_before, gan.generator.trainable_weights))
    assert all(_moved(discriminator_before, gan.discriminator.trainable_weights))


def test_the_package_gan_trains_both_networks_too():
    gan = _compiled_gan(training.GAN)
    generator_before = _snapshot(gan.generator.weights)
    discriminator_before = _snapshot(gan.discriminator.weights)
    gan.fit(_real_batches(), epochs=1, verbose=0, shuffle=False)
    assert all(_moved(generator_before, gan.generator.weights))
    assert all(_moved(discriminator_before, gan.discriminator.weights))


def test_freezing_before_compiling_the_combined_model_leaves_the_discriminator_untrained():
    # The pattern of older GAN code. If a Keras release changes this, notebook 9's
    # "Why not the book's training loop?" section must change with it.
    keras.utils.set_random_seed(1)
    generator, discriminator = _networks()
    discriminator.compile(loss="binary_crossentropy", optimizer="rmsprop")
    discriminator.trainable = False
    combined = keras.Sequential([generator, discriminator])
    combined.compile(loss="binary_crossentropy", optimizer="rmsprop")
    generator_before = _snapshot(generator.weights)
    discriminator_before = _snapshot(discriminator.weights)
    labels = np.array([[0.0]] * 8 + [[1.0]] * 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for real_batch in _real_batches():
            codings = np.random.default_rng(0).standard_normal((8, CODINGS_SIZE))
            fakes = generator(codings)
            discriminator.train_on_batch(tf.concat([fakes, real_batch], 0), labels)
            combined.train_on_batch(codings, np.ones((8, 1)))
    assert all(_moved(generator_before, generator.weights))
    assert not any(_moved(discriminator_before, discriminator.weights))
    assert any("does not have any trainable weights" in str(w.message) for w in caught)


@pytest.mark.parametrize("path", [NOTEBOOK, NOTEBOOK_10], ids=lambda path: path.name[:2])
def test_every_gan_training_goes_through_train_once_from_a_seeded_start(path):
    cells = [cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]
    fitting = [cell for cell in cells if ".fit(" in cell.source and cell.id != BOOK_LOOP_DEMO]
    assert fitting, f"{path.name} has no training cell"
    for cell in fitting:
        assert "checkpoints.train_once(" in cell.source, f"{cell.id} calls fit outside train_once"
        assert "keep=[progress]" in cell.source, f"{cell.id} does not keep its snapshots"
    # The key holds the networks' starting weights: each training cell seeds before building.
    training_cells = [cell for cell in cells if "train_once(" in cell.source
                      or "train_gan(" in cell.source.replace("def train_gan(", "")]
    for cell in training_cells:
        assert "keras.utils.set_random_seed(run.seed)" in cell.source, cell.id


def test_a_gan_trained_once_reloads_its_networks_history_and_snapshots(tmp_path, monkeypatch,
                                                                        capsys):
    # The pattern of notebooks 9 and 10: two networks, the GAN as trainer, GanProgress kept.
    monkeypatch.setenv(evaluation.MODEL_DIR_ENV_VAR, str(tmp_path))
    run = config.RunSettings(mode="smoke", seed=1)
    noise = np.random.default_rng(5).standard_normal((6, CODINGS_SIZE)).astype("float32")
    fits = []

    def train_through_train_once():
        gan = _compiled_gan(training.GAN)
        progress = training.GanProgress(noise)

        def train():
            fits.append(1)
            return gan.fit(_real_batches(), epochs=2, verbose=0, shuffle=False,
                           callbacks=[progress])

        history = checkpoints.train_once(
            run, "09", "tiny_gan", {"generator": gan.generator, "discriminator": gan.discriminator},
            train, settings={"epochs": 2}, trainer=gan, keep=[progress])
        return gan, history, progress

    trained, history, progress = train_through_train_once()
    reloaded, reloaded_history, reloaded_progress = train_through_train_once()
    assert len(fits) == 1
    assert "Reloaded the trained tiny_gan" in capsys.readouterr().out
    for network in ("generator", "discriminator"):
        for weight, again in zip(getattr(trained, network).get_weights(),
                                 getattr(reloaded, network).get_weights(), strict=True):
            np.testing.assert_array_equal(weight, again)
    assert reloaded_history.history == history.history
    assert [epoch for epoch, _ in reloaded_progress.snapshots] == [1, 2]
    for (_, images), (_, again) in zip(progress.snapshots, reloaded_progress.snapshots,
                                       strict=True):
        np.testing.assert_array_equal(images, again)
