"""Notebook 11's growing StyleGAN: the networks at every stage, the fade-in's starting point, the
R1 penalty against its formula, one real training step on a faded-in stage, and the training
that runs stage by stage through checkpoints.once(...).fit and reloads the same way."""

import ast
from pathlib import Path

import keras
import nbformat
import numpy as np
import pytest
from keras import ops

from course_utils import checkpoints, config, data, gan_layers, training
from course_utils.solutions import run_tagged_cells
from course_utils.training import copy_weights, weights_moved

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / (
    "11_progressive_growing_and_stylegan.ipynb"
)
CODINGS_SIZE = 8
GENERATOR_FILTERS = {4: 8, 8: 8, 16: 4, 32: 4}
DISCRIMINATOR_FILTERS = {32: 4, 16: 4, 8: 8, 4: 8}


@pytest.fixture(scope="module")
def notebook():
    constants = {"gan_layers": gan_layers, "training": training, "CODINGS_SIZE": CODINGS_SIZE,
                 "W_DIM": CODINGS_SIZE}
    return run_tagged_cells(NOTEBOOK, ["stylegan-networks", "stylegan-loss"], constants)


@pytest.fixture()
def networks(notebook):
    keras.utils.set_random_seed(0)
    return notebook["GrowingStyleGAN"](GENERATOR_FILTERS, DISCRIMINATOR_FILTERS, seed=0)


def _codings(n=3, seed=1):
    return np.random.default_rng(seed).normal(size=(n, CODINGS_SIZE)).astype("float32")


def test_every_stage_has_the_right_shapes_and_reuses_the_earlier_layers(networks):
    previous = None
    for resolution in (4, 8, 16, 32):
        generator, generator_fade = networks.generator(resolution)
        discriminator, discriminator_fade = networks.discriminator(resolution)
        images = np.asarray(generator(_codings()))
        assert images.shape == (3, resolution, resolution, 1)
        assert np.asarray(discriminator(images)).shape == (3, 1)
        assert (generator_fade is None) == (discriminator_fade is None) == (resolution == 4)
        weights = {id(w) for w in generator.trainable_weights + discriminator.trainable_weights}
        if previous is not None:
            # Growing adds weights and keeps every earlier one, except the 1x1 "to image" and
            # "from image" layers of two stages back, which no path uses any more.
            dropped = {id(w) for r in (resolution // 4,) if r in networks.to_image
                       for w in networks.to_image[r].weights + networks.from_image[r].weights}
            assert previous - dropped < weights
            assert len(previous & dropped) == (0 if resolution == 8 else 4)
        previous = weights


def test_a_new_stage_starts_exactly_where_the_previous_one_ended(networks):
    # Noise scales start at 0, so the networks are deterministic here.
    small_generator, _ = networks.generator(4)
    grown_generator, fade = networks.generator(8)
    small = np.asarray(small_generator(_codings()))
    np.testing.assert_allclose(grown_generator(_codings()), small.repeat(2, 1).repeat(2, 2),
                               rtol=1e-5, atol=1e-6)
    fade.set_alpha(1.0)
    assert not np.allclose(grown_generator(_codings()), small.repeat(2, 1).repeat(2, 2))

    small_discriminator, _ = networks.discriminator(4)
    grown_discriminator, _ = networks.discriminator(8)
    images = np.random.default_rng(2).normal(size=(4, 8, 8, 1)).astype("float32")
    shrunk = images.reshape(4, 4, 2, 4, 2, 1).mean(axis=(2, 4))
    np.testing.assert_allclose(grown_discriminator(images), small_discriminator(shrunk),
                               rtol=1e-4, atol=1e-5)


def test_the_discriminator_loss_adds_the_r1_penalty_of_the_formula(notebook):
    real_images = np.random.default_rng(3).uniform(-1, 1, (5, 4, 4, 1)).astype("float32")
    # A generator that always draws the same image, and a linear discriminator D(x) = a.x + b,
    # whose input gradient is a for every image: R1 = |a|^2.
    generator = keras.Sequential([keras.Input((CODINGS_SIZE,)),
                                  keras.layers.Dense(16, kernel_initializer="zeros",
                                                     bias_initializer="ones"),
                                  keras.layers.Reshape((4, 4, 1))])
    discriminator = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                                      keras.layers.Dense(1)])
    slope = np.asarray(discriminator.layers[-1].kernel).ravel()
    bias = float(np.asarray(discriminator.layers[-1].bias)[0])
    for r1_weight in (0.0, 3.0):
        gan = notebook["StyleGAN"](generator, discriminator, CODINGS_SIZE, r1_weight=r1_weight)
        gan.compile(d_optimizer=keras.optimizers.SGD(0.0), g_optimizer=keras.optimizers.SGD(0.0))

        def bce_on_logits(label, logits):
            return np.mean(np.logaddexp(0, logits) - label * logits)

        on_reals = real_images.reshape(5, -1) @ slope + bias
        on_fakes = np.full(5, slope.sum() + bias)
        expected = (bce_on_logits(0, on_fakes) + bce_on_logits(1, on_reals)) / 2
        expected += r1_weight / 2 * np.sum(slope**2)
        loss = float(gan.train_discriminator(ops.convert_to_tensor(real_images)))
        assert loss == pytest.approx(expected, rel=1e-4)


def test_one_compiled_step_on_a_fading_stage_trains_both_networks(notebook, networks):
    generator, generator_fade = networks.generator(8)
    discriminator, discriminator_fade = networks.discriminator(8)
    gan = notebook["StyleGAN"](generator, discriminator, CODINGS_SIZE, seed=0, r1_weight=1.0)
    gan.compile(d_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.0, beta_2=0.99),
                g_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.0, beta_2=0.99),
                steps_per_execution=2)
    generator_before = copy_weights(generator.trainable_weights)
    discriminator_before = copy_weights(discriminator.trainable_weights)
    images = np.random.default_rng(4).uniform(-1, 1, (8, 8, 8, 1)).astype("float32")
    schedule = training.FadeInSchedule([generator_fade, discriminator_fade], fade_steps=4)
    history = gan.fit(images, batch_size=4, epochs=1, verbose=0, callbacks=[schedule])
    assert np.isfinite(history.history["d_loss"][-1]) and np.isfinite(history.history["g_loss"][-1])
    assert float(generator_fade.alpha.numpy()) == float(discriminator_fade.alpha.numpy()) == 0.5
    assert any(weights_moved(generator_before, generator.trainable_weights))
    assert any(weights_moved(discriminator_before, discriminator.trainable_weights))


def test_every_stage_trains_through_once_from_fresh_networks_and_keeps_its_images():
    cells = [cell for cell in nbformat.read(NOTEBOOK, as_version=4).cells
             if cell.cell_type == "code"]
    [training_cell] = [cell for cell in cells if ".fit(" in cell.source]
    source = training_cell.source
    tree = ast.parse(source)
    [fit] = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Attribute) and node.func.attr == "fit"]
    once = fit.func.value
    assert isinstance(once, ast.Call) and ast.unparse(once.func) == "checkpoints.once"
    assert [ast.unparse(argument) for argument in once.args] == [
        "run", "'11'", "f'stylegan_{resolution}x{resolution}'", "stylegan"]
    assert "# Plumbing: once(...) reloads this training" in source
    keywords = {keyword.arg: ast.unparse(keyword.value) for keyword in fit.keywords}
    # GanProgress's snapshots are saved with the stage; FadeInSchedule's settings are keyed.
    assert keywords["callbacks"] == "[fade_in, progress]"
    # once fingerprints the data by reading it through: a stage's pipeline must end.
    [pipeline] = [node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                  and ast.unparse(node.targets[0]) == ast.unparse(fit.args[0])]
    assert ast.unparse(pipeline).endswith(".repeat().take(steps)")
    # The chain starts from fresh networks: seed, then build every stage's layers, then grow.
    seed = source.index("keras.utils.set_random_seed(run.seed)")
    assert seed < source.index("networks = GrowingStyleGAN(") < source.index(
        "grow_and_train(resolution)  #")


def _grow_through_once(notebook, run):
    """The training cell's pattern at the tests' size: each stage continues from the last."""
    keras.backend.clear_session()  # a fresh kernel: Keras numbers its layer names from scratch
    keras.utils.set_random_seed(0)
    networks = notebook["GrowingStyleGAN"](GENERATOR_FILTERS, DISCRIMINATOR_FILTERS, seed=0)
    fixed_codings = _codings(n=2, seed=7)
    histories, snapshots = {}, {}
    for resolution in (4, 8, 16):
        generator, generator_fade = networks.generator(resolution)
        discriminator, discriminator_fade = networks.discriminator(resolution)
        images = np.random.default_rng(resolution).uniform(
            -1, 1, (8, resolution, resolution, 1)).astype("float32")
        real_images = data.to_dataset(images, batch_size=4, seed=0, drop_remainder=True)
        stylegan = notebook["StyleGAN"](generator, discriminator, CODINGS_SIZE, seed=resolution)
        stylegan.compile(d_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.0, beta_2=0.99),
                         g_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.0, beta_2=0.99),
                         run_eagerly=True)  # no tracing: the test stays quick
        fade_in = training.FadeInSchedule([generator_fade, discriminator_fade], 1)
        progress = training.GanProgress(fixed_codings)
        history = checkpoints.once(run, "11", f"stylegan_{resolution}x{resolution}",
                                   stylegan).fit(real_images, epochs=1, steps_per_epoch=2,
                                                 callbacks=[fade_in, progress], verbose=0,
                                                 shuffle=False)
        histories[resolution] = history.history
        snapshots[resolution] = progress.snapshots[-1][1]
        for fade in (generator_fade, discriminator_fade):
            if fade is not None:  # faded in over the stage, and reloaded that way
                assert float(fade.alpha.numpy()) == 1.0
    return generator, discriminator, histories, snapshots


def test_each_stage_reloads_and_the_next_stage_starts_from_the_reloaded_weights(
    notebook, model_dir, capsys
):
    run = config.RunSettings(mode="smoke", seed=0)
    generator, discriminator, histories, snapshots = _grow_through_once(notebook, run)
    assert capsys.readouterr().out.count(checkpoints.TRAINED_LINE) == 3
    # A stage's key holds its starting weights, the earlier stages' trained layers among them:
    # it matches only because the earlier stages reloaded exactly the weights they had saved.
    again, again_discriminator, again_histories, again_snapshots = _grow_through_once(notebook,
                                                                                     run)
    out = capsys.readouterr().out
    assert checkpoints.TRAINED_LINE not in out
    assert out.count(checkpoints.RELOADED_LINE) == 3
    for model, reloaded in [(generator, again), (discriminator, again_discriminator)]:
        for weight, restored in zip(model.get_weights(), reloaded.get_weights(), strict=True):
            np.testing.assert_array_equal(weight, restored)
    assert again_histories == histories
    for resolution, images in snapshots.items():
        np.testing.assert_array_equal(again_snapshots[resolution], images)
    assert sorted(path.name.split("-")[0] for path in (model_dir / "trained" / "11").iterdir()) == [
        "stylegan_16x16", "stylegan_4x4", "stylegan_8x8"]
