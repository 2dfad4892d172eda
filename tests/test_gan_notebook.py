"""Notebook 9's GAN class: it is the same code as course_utils.training.GAN, and each of its two
training phases updates its own network and nothing else; the old freezing pattern does not.
Notebooks 9 and 10 train every GAN through checkpoints.once(...).fit from fresh networks, and a
GAN trained that way reloads whole (networks, optimizers, history, snapshots) afterwards."""

import ast
import inspect
import warnings
from pathlib import Path

import keras
import nbformat
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from course_utils import checkpoints, training
from course_utils.solutions import run_tagged_cells, tagged_cell_source
from course_utils.training import copy_weights, weights_moved

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / (
    "09_generative_adversarial_networks.ipynb"
)
NOTEBOOK_10 = NOTEBOOK.parent / "10_deep_convolutional_gan.ipynb"
BOOK_LOOP_DEMO = "nb09-13"  # trains 20 batches on purpose, every run: it is the demonstration
CODINGS_SIZE = 4


@pytest.fixture(scope="module")
def notebook_gan_class():
    return run_tagged_cells(NOTEBOOK, ["gan-model"])["GAN"]


def test_the_package_copy_is_identical_to_the_notebook_cell():
    module_source = inspect.getsource(training)
    start = module_source.index("# --- Copied from notebook 9")
    end = module_source.index("# --- End of the copy from notebook 9.")
    copy = module_source[module_source.index("\n", start) + 1 : end]
    assert copy.strip() == tagged_cell_source(NOTEBOOK, "gan-model").strip()


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


def _compiled_gan(gan_class, **compile_options):
    keras.utils.set_random_seed(1)
    gan = gan_class(*_networks(), CODINGS_SIZE, seed=3)
    gan.compile(d_optimizer=keras.optimizers.RMSprop(), g_optimizer=keras.optimizers.RMSprop(),
                **compile_options)
    return gan


def test_phase_one_updates_only_the_discriminator(notebook_gan_class):
    gan = _compiled_gan(notebook_gan_class)
    generator_before = copy_weights(gan.generator.weights)
    discriminator_before = copy_weights(gan.discriminator.weights)
    loss = gan.train_discriminator(next(iter(_real_batches())))
    assert np.isfinite(float(loss))
    assert all(weights_moved(discriminator_before, gan.discriminator.weights))
    assert not any(weights_moved(generator_before, gan.generator.weights))


def test_phase_two_updates_only_the_generator(notebook_gan_class):
    gan = _compiled_gan(notebook_gan_class)
    generator_before = copy_weights(gan.generator.weights)
    discriminator_before = copy_weights(gan.discriminator.weights)
    loss = gan.train_generator(8)
    assert np.isfinite(float(loss))
    assert all(weights_moved(generator_before, gan.generator.weights))
    assert not any(weights_moved(discriminator_before, gan.discriminator.weights))


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
    generator_before = copy_weights(gan.generator.trainable_weights)
    discriminator_before = copy_weights(gan.discriminator.trainable_weights)
    history = gan.fit(_real_batches(), epochs=2, verbose=0, shuffle=False)
    assert set(history.history) == {"d_loss", "g_loss"}
    assert all(np.isfinite(history.history["d_loss"] + history.history["g_loss"]))
    assert all(weights_moved(generator_before, gan.generator.trainable_weights))
    assert all(weights_moved(discriminator_before, gan.discriminator.trainable_weights))


def test_the_package_gan_trains_both_networks_too():
    gan = _compiled_gan(training.GAN)
    generator_before = copy_weights(gan.generator.weights)
    discriminator_before = copy_weights(gan.discriminator.weights)
    gan.fit(_real_batches(), epochs=1, verbose=0, shuffle=False)
    assert all(weights_moved(generator_before, gan.generator.weights))
    assert all(weights_moved(discriminator_before, gan.discriminator.weights))


def test_freezing_before_compiling_the_combined_model_leaves_the_discriminator_untrained():
    # The pattern of older GAN code. If a Keras release changes this, notebook 9's
    # "Why not the book's training loop?" section must change with it.
    keras.utils.set_random_seed(1)
    generator, discriminator = _networks()
    discriminator.compile(loss="binary_crossentropy", optimizer="rmsprop")
    discriminator.trainable = False
    combined = keras.Sequential([generator, discriminator])
    combined.compile(loss="binary_crossentropy", optimizer="rmsprop")
    generator_before = copy_weights(generator.weights)
    discriminator_before = copy_weights(discriminator.weights)
    labels = np.array([[0.0]] * 8 + [[1.0]] * 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for real_batch in _real_batches():
            codings = np.random.default_rng(0).standard_normal((8, CODINGS_SIZE))
            fakes = generator(codings)
            discriminator.train_on_batch(tf.concat([fakes, real_batch], 0), labels)
            combined.train_on_batch(codings, np.ones((8, 1)))
    assert all(weights_moved(generator_before, generator.weights))
    assert not any(weights_moved(discriminator_before, discriminator.weights))
    assert any("does not have any trainable weights" in str(w.message) for w in caught)


def _code_cells(path):
    return [cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]


def _fit_calls(tree):
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute) and node.func.attr == "fit"]


def _is_once(node, notebook):
    """checkpoints.once(run, "NN", name, model): what every training's fit is called on."""
    return (isinstance(node, ast.Call) and ast.unparse(node.func) == "checkpoints.once"
            and len(node.args) == 4 and ast.unparse(node.args[0]) == "run"
            and isinstance(node.args[1], ast.Constant) and node.args[1].value == notebook)


def _calls(node):
    return {ast.unparse(call.func) for call in ast.walk(node) if isinstance(call, ast.Call)}


def _builds_networks(statement):
    # A call of a build_...() function: the networks this cell trains, made afresh.
    return any(name.split(".")[-1].startswith("build_") for name in _calls(statement))


@pytest.mark.parametrize("path", [NOTEBOOK, NOTEBOOK_10], ids=lambda path: path.name[:2])
def test_every_gan_fit_goes_through_once_with_its_snapshots_and_fresh_data(path):
    fitting = [cell for cell in _code_cells(path)
               if ".fit(" in cell.source and cell.id != BOOK_LOOP_DEMO]
    assert fitting, f"{path.name} has no training cell"
    for cell in fitting:
        tree = ast.parse(cell.source)
        assert "# Plumbing: once(...) reloads this training" in cell.source, cell.id
        assigned = {target.id for node in ast.walk(tree) if isinstance(node, ast.Assign)
                    for target in node.targets if isinstance(target, ast.Name)}
        for call in _fit_calls(tree):
            assert _is_once(call.func.value, path.name[:2]), (
                f"{cell.id} calls fit outside checkpoints.once(run, {path.name[:2]!r}, ...)")
            callbacks = {keyword.arg: keyword.value for keyword in call.keywords}.get("callbacks")
            # GanProgress has saved_arrays/restore_arrays: once saves and restores its snapshots.
            assert callbacks is not None and "progress" in ast.unparse(callbacks), cell.id
            # A reshuffling pipeline read by an earlier training would start from another order:
            # each training builds the dataset it reads.
            data_argument = call.args[0]
            assert isinstance(data_argument, ast.Name) and data_argument.id in assigned, (
                f"{cell.id} trains on {ast.unparse(data_argument)}, not on a dataset it builds")


@pytest.mark.parametrize("path", [NOTEBOOK, NOTEBOOK_10], ids=lambda path: path.name[:2])
def test_every_training_cell_seeds_then_builds_fresh_networks(path):
    # "Change a number, see its effect": re-running a training cell starts from fresh weights.
    cells = _code_cells(path)
    trainers = {node.name for cell in cells for node in ast.parse(cell.source).body
                if isinstance(node, ast.FunctionDef) and any(
                    _is_once(call.func.value, path.name[:2]) for call in _fit_calls(node))}
    training_cells = 0
    for cell in cells:
        # Loops (notebook 9's runs over seeds) are read statement by statement, in order.
        statements = _flatten([node for node in ast.parse(cell.source).body
                               if not isinstance(node, (ast.FunctionDef, ast.ClassDef))])
        trains = [index for index, node in enumerate(statements)
                  if _calls(node) & trainers or any(
                      _is_once(call.func.value, path.name[:2]) for call in _fit_calls(node))]
        if not trains:
            continue
        training_cells += 1
        seeds = [index for index, node in enumerate(statements)
                 if "keras.utils.set_random_seed" in _calls(node)
                 and ("run.seed" in ast.unparse(node) or _seeded_from_loop(node))]
        builds = [index for index, node in enumerate(statements) if _builds_networks(node)]
        assert seeds, f"{cell.id} trains without keras.utils.set_random_seed(run.seed)"
        assert builds and seeds[0] < builds[0] < trains[0], (
            f"{cell.id} must seed, then build its networks, then train")
    assert training_cells == (4 if path == NOTEBOOK else 1)


def _flatten(statements):
    flat = []
    for node in statements:
        if isinstance(node, (ast.For, ast.If)):
            flat.extend(_flatten(node.body + node.orelse))
        else:
            flat.append(node)
    return flat


def _seeded_from_loop(node):
    # keras.utils.set_random_seed(seed) inside `for seed in SPREAD_SEEDS` (run.seed + offset).
    return any(isinstance(call, ast.Call) and [ast.unparse(arg) for arg in call.args] == ["seed"]
               for call in ast.walk(node))


def _markdown(path):
    return "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells
                     if cell.cell_type == "markdown")


def test_notebook_9_teaches_the_optimal_discriminator_and_the_equilibrium():
    prose = _markdown(NOTEBOOK)
    assert r"D^*(x) = \frac{p_{\text{data}}(x)}{p_{\text{data}}(x) + p_g(x)}" in prose
    assert "Nash equilibrium" in prose and r"\ln 2" in prose
    code = "\n".join(cell.source for cell in _code_cells(NOTEBOOK))
    assert "d_loss_at_half" in code and "np.log(2)" in code


@pytest.mark.parametrize("path", [NOTEBOOK, NOTEBOOK_10], ids=lambda path: path.name[:2])
def test_the_loss_plot_shows_every_step_against_ln_2(path):
    cells = _code_cells(path)
    main_fit = [cell for cell in cells if "plots.StepLosses()" in cell.source]
    assert len(main_fit) == 1, f"{path.name}: one training keeps its step losses"
    plotted = [cell for cell in cells if "plots.plot_gan_losses(step_losses" in cell.source]
    assert len(plotted) == 1 and "np.log(2)" in plotted[0].source
    assert not any("plot_learning_curves" in cell.source for cell in cells)


def _tiny_gan(learning_rate=1e-3):
    keras.utils.set_random_seed(1)
    gan = training.GAN(*_networks(), CODINGS_SIZE, seed=3)
    gan.compile(d_optimizer=keras.optimizers.RMSprop(learning_rate),
                g_optimizer=keras.optimizers.RMSprop(learning_rate))
    return gan


def _train_through_once(run, learning_rate=1e-3):
    # The pattern of notebooks 9 and 10: a fresh trainer, its GanProgress, once(...).fit.
    gan = _tiny_gan(learning_rate)
    noise = np.random.default_rng(5).standard_normal((6, CODINGS_SIZE)).astype("float32")
    progress = training.GanProgress(noise)
    history = checkpoints.once(run, "09", "tiny_gan", gan).fit(
        _real_batches(), epochs=2, callbacks=[progress], verbose=0, shuffle=False)
    return gan, history, progress


def _arrays(variables):
    return [np.array(variable.numpy()) for variable in variables]


def test_a_gan_trained_once_reloads_networks_optimizers_history_and_snapshots(
    smoke_run, model_dir, capsys
):
    run = smoke_run
    trained, history, progress = _train_through_once(run)
    assert checkpoints.TRAINED_LINE in capsys.readouterr().out
    reloaded, reloaded_history, reloaded_progress = _train_through_once(run)
    assert f"{checkpoints.RELOADED_LINE} tiny_gan" in capsys.readouterr().out
    assert reloaded is not trained
    # Every variable: both networks' weights and the noise generator's state.
    for weight, again in zip(_arrays(trained.variables), _arrays(reloaded.variables),
                             strict=True):
        np.testing.assert_array_equal(weight, again)
    for optimizer in ("d_optimizer", "g_optimizer"):
        state = _arrays(getattr(trained, optimizer).variables)
        restored = _arrays(getattr(reloaded, optimizer).variables)
        assert int(getattr(reloaded, optimizer).iterations.numpy()) == 8  # 2 epochs of 4 steps
        for value, again in zip(state, restored, strict=True):
            np.testing.assert_array_equal(value, again)
    assert reloaded_history.history == history.history
    assert set(reloaded_history.history) == {"d_loss", "g_loss"}
    assert [epoch for epoch, _ in reloaded_progress.snapshots] == [1, 2]
    for (_, images), (_, again) in zip(progress.snapshots, reloaded_progress.snapshots,
                                       strict=True):
        np.testing.assert_array_equal(images, again)


def test_changing_a_number_of_the_gan_retrains_it(smoke_run, model_dir, capsys):
    # Notebook 9's exercise 1 (a smaller learning rate) needs no RETRAIN switch.
    run = smoke_run
    _train_through_once(run)
    capsys.readouterr()
    _train_through_once(run, learning_rate=1e-4)
    assert checkpoints.TRAINED_LINE in capsys.readouterr().out


class _ReplayGAN(training.GAN):
    """Notebook 9's ReplayGAN, at the tests' size."""

    def __init__(self, *args, replay_capacity=16, **kwargs):
        super().__init__(*args, **kwargs)
        self.replay = training.ReplayBuffer(replay_capacity, (4, 4), seed=1)

    def fake_images_for_discriminator(self, batch_size):
        fresh = super().fake_images_for_discriminator(batch_size)
        self.replay.add(fresh)
        from_buffer = self.replay.sample(batch_size // 2)
        return ops.concatenate([fresh[: batch_size - batch_size // 2], from_buffer], axis=0)


def test_a_replay_buffer_of_another_size_retrains(smoke_run, model_dir, capsys):
    run = smoke_run
    for capacity in (16, 8, 16):
        keras.utils.set_random_seed(1)
        gan = _ReplayGAN(*_networks(), CODINGS_SIZE, seed=3, replay_capacity=capacity)
        gan.compile(d_optimizer=keras.optimizers.RMSprop(), g_optimizer=keras.optimizers.RMSprop())
        checkpoints.once(run, "09", "tiny_replay_gan", gan).fit(_real_batches(), epochs=1,
                                                                 shuffle=False,
                                                                 verbose=0)
    lines = [line for line in capsys.readouterr().out.splitlines() if "tiny_replay_gan" in line]
    assert [checkpoints.TRAINED_LINE in line for line in lines] == [True, True, False]
