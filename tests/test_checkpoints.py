"""Train once, never stale: checkpoints.once(...).fit retrains after every edit that changes what
training computes, reloads after every edit that does not, and saves so that no interruption
loses a good entry or leaves anything behind.

The "cells" below stand for a notebook's cells: a module of student code (layer, loss, metric,
trainer, callback) written to a file and imported under one fixed name, as a notebook's cells all
live in __main__, and a training cell that builds, compiles and fits through once(...).fit.
"""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from course_utils import checkpoints, config, data, files, training

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

STUDENT_CODE = '''
import keras
import tensorflow as tf
from keras import ops

SCALE = {scale}  # a global that the loss and train_step read


class Scale(keras.layers.Layer):
    def call(self, inputs):
        return inputs * {layer_factor}


def loss_fn(y_true, y_pred):
    return ops.mean(ops.square(y_true - y_pred)) * SCALE


def close_enough(y_true, y_pred):
    return ops.mean(ops.cast(ops.abs(y_true - y_pred) < {tolerance}, "float32"))


class Trainer(keras.Model):
    """{docstring}"""

    def __init__(self, network, weight=1.0, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.weight = weight
        self.tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self):
        return [self.tracker]

    def call(self, inputs, training=False):
        return self.network(inputs, training=training)

    def train_step(self, batch):
        x, y = batch
        with tf.GradientTape() as tape:
            loss = ops.mean(ops.square(y - self.network(x, training=True))) * self.weight * SCALE
            {late_branch}
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)  # {comment}
        self.tracker.update_state(loss)
        return {{"loss": self.tracker.result()}}

    def test_step(self, batch):
        x, y = batch
        loss = ops.mean(ops.square(y - self.network(x, training=False))) * self.weight * SCALE
        self.tracker.update_state(loss)
        return {{"loss": self.tracker.result()}}


class Shrink(keras.callbacks.Callback):
    """Multiplies the learning rate by `factor` after every epoch."""

    reload_safe = True  # the learning rate is an optimizer variable: a reload restores it

    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def on_epoch_end(self, epoch, logs=None):
        rate = self.model.optimizer.learning_rate
        rate.assign(rate * self.factor)
'''

CODE = {"scale": 1.0, "layer_factor": 1.0, "tolerance": 0.1, "docstring": "Fits a network.",
        "late_branch": "pass", "comment": "one optimizer step"}
CELL = {"cell": "standard", "seed": 42, "n_train": 96, "order": "as is", "batch_size": 16,
        "epochs": 2, "optimizer": "Adam", "learning_rate": 1e-2, "dropout": 0.2, "weight": 1.0,
        "shrink": 0.5, "validation": 16, "jit_compile": False, "steps_per_execution": 1,
        "sample_weight": None, "map": None, "verbose": 0, "mode": "smoke", "print": False}

DATA = np.random.default_rng(0).random((128, 6)).astype("float32")


@pytest.fixture(autouse=True)
def no_bytecode(monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)


class Notebook:
    """A student's session: edit the code or the numbers, run the training cell, see what ran."""

    def __init__(self, folder, capsys):
        self.folder, self.capsys, self.versions = folder, capsys, 0

    def code(self, **edits):
        self.versions += 1
        path = self.folder / f"version{self.versions}" / "student_cell.py"
        path.parent.mkdir(parents=True)
        path.write_text(STUDENT_CODE.format(**{**CODE, **edits}), encoding="utf-8")
        spec = importlib.util.spec_from_file_location("student_cell", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["student_cell"] = module
        spec.loader.exec_module(module)
        return module

    def build(self, module, cell):
        keras.utils.set_random_seed(cell["seed"])
        network = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4), module.Scale(),
                                    keras.layers.Dropout(cell["dropout"]), keras.layers.Dense(6)])
        model = network if cell["cell"] == "standard" else module.Trainer(network, cell["weight"])
        optimizer = getattr(keras.optimizers, cell["optimizer"])(
            learning_rate=cell["learning_rate"])
        if cell["cell"] == "standard":
            model.compile(optimizer=optimizer, loss=module.loss_fn, metrics=[module.close_enough],
                          jit_compile=cell["jit_compile"],
                          steps_per_execution=cell["steps_per_execution"])
        else:
            model.compile(optimizer=optimizer, jit_compile=cell["jit_compile"],
                          steps_per_execution=cell["steps_per_execution"])
        return model

    def fit(self, module, model, cell, name):
        x = DATA[: cell["n_train"]]
        if cell["order"] == "reversed":
            x = x[::-1].copy()
        valid = DATA[-cell["validation"]:]
        arguments = {"epochs": cell["epochs"], "verbose": cell["verbose"],
                     "validation_data": (valid, valid),
                     "callbacks": [module.Shrink(cell["shrink"])]}
        run = config.RunSettings(mode=cell["mode"], seed=cell["seed"])
        if cell["map"] is None and cell["sample_weight"] is None:
            train = (x, x)
            arguments.update(batch_size=cell["batch_size"], shuffle=False)
        elif cell["map"] is not None:
            train = (data.to_dataset(x, x, cell["batch_size"], shuffle=False)
                     .map(lambda images, targets: (images * cell["map"], targets)),)
        else:
            train = (x, x)
            arguments.update(batch_size=cell["batch_size"], shuffle=False,
                             sample_weight=np.full(len(x), cell["sample_weight"], "float32"))
        if cell["print"]:
            print("a line the student added to the training cell")
        history = checkpoints.once(run, "01", name, model).fit(*train, **arguments)
        return history

    def run_cell(self, name, module, model=None, **numbers):
        cell = {**CELL, **numbers}
        model = model if model is not None else self.build(module, cell)
        self.capsys.readouterr()
        history = self.fit(module, model, cell, name)
        printed = self.capsys.readouterr().out
        assert (checkpoints.TRAINED_LINE in printed) != (checkpoints.RELOADED_LINE in printed)
        return ("trained" if checkpoints.TRAINED_LINE in printed else "reloaded"), model, history


@pytest.fixture
def notebook(tmp_path, model_dir, capsys):
    return Notebook(tmp_path / "code", capsys)


# Each edit a student might make, as (code edits, number edits): every one changes what training
# computes, so the cell must train afresh.
RETRAINING_EDITS = {
    "trainer attribute": ({}, {"cell": "trainer", "weight": 10 / 784}),
    "loss body (a global it reads)": ({"scale": 2.0}, {}),
    "custom layer call": ({"layer_factor": 0.5}, {}),
    "custom metric body": ({"tolerance": 0.2}, {}),
    "global read inside train_step": ({"scale": 3.0}, {"cell": "trainer"}),
    "train_step branch the first step skips": (
        {"late_branch": "loss = ops.where(self.optimizer.iterations > 10**9, loss * 2, loss)"},
        {"cell": "trainer"}),
    "optimizer": ({}, {"optimizer": "Nadam"}),
    "learning rate": ({}, {"learning_rate": 3e-3}),
    "data subset": ({}, {"n_train": 80}),
    "data order": ({}, {"order": "reversed"}),
    "batch size": ({}, {"batch_size": 32}),
    "epochs": ({}, {"epochs": 3}),
    "callback parameter": ({}, {"shrink": 0.9}),
    "seed": ({}, {"seed": 7}),
    "architecture setting (dropout rate)": ({}, {"dropout": 0.3}),
    "validation data": ({}, {"validation": 24}),
    "jit_compile": ({}, {"jit_compile": True}),
    "steps_per_execution": ({}, {"steps_per_execution": 2}),
    "sample weights": ({}, {"sample_weight": 2.0}),
    "preprocessing in the tf.data pipeline": ({}, {"map": 0.5}),
    "run mode": ({}, {"mode": "default"}),
}

# Edits that retrain although, here, the numbers come out the same (a branch never taken, the same
# run in another mode, steps grouped differently without XLA): what they change is not visible
# in this tiny run, so only the retraining is asserted.
SAME_NUMBERS = {"train_step branch the first step skips", "run mode", "steps_per_execution"}

# Edits that change nothing training computes: the cell must reload.
RELOADING_EDITS = {
    "a comment in train_step": ({"comment": "apply the gradients"}, {"cell": "trainer"}),
    "a docstring": ({"docstring": "Fits a network, step by step."}, {"cell": "trainer"}),
    "a print in the training cell": ({}, {"print": True}),
    "fit's verbosity": ({}, {"verbose": 2}),
    "nothing (the cell run again, as after a markdown edit)": ({}, {}),
}


@pytest.mark.parametrize("edit", RETRAINING_EDITS, ids=str)
def test_an_edit_that_changes_training_trains_afresh(notebook, edit):
    code, numbers = RETRAINING_EDITS[edit]
    base = {"cell": numbers.get("cell", "standard")}
    first, _, before = notebook.run_cell("m", notebook.code(), **base)
    assert first == "trained"
    again, _, after = notebook.run_cell("m", notebook.code(**code), **{**base, **numbers})
    assert again == "trained", f"{edit}: reloaded a stale model"
    if edit not in SAME_NUMBERS:
        assert after.history != before.history


@pytest.mark.parametrize("edit", RELOADING_EDITS, ids=str)
def test_an_edit_that_changes_nothing_reloads_the_same_model(notebook, edit):
    code, numbers = RELOADING_EDITS[edit]
    base = {"cell": numbers.get("cell", "standard")}
    first, trained, before = notebook.run_cell("m", notebook.code(), **base)
    again, reloaded, after = notebook.run_cell("m", notebook.code(**code), **{**base, **numbers})
    assert (first, again) == ("trained", "reloaded"), edit
    assert after.history == before.history
    for weight, same in zip(trained.get_weights(), reloaded.get_weights(), strict=True):
        np.testing.assert_array_equal(weight, same)


def test_plotting_and_an_unrelated_notebook_in_between_still_reload(notebook):
    import matplotlib.pyplot as plt

    module = notebook.code()
    assert notebook.run_cell("m", module)[0] == "trained"
    figure, axes = plt.subplots()  # a plotting cell, with random numbers of its own
    axes.plot(np.random.default_rng().random(10))
    plt.close(figure)
    assert notebook.run_cell("other_notebook_model", module, learning_rate=1e-3)[0] == "trained"
    assert notebook.run_cell("m", module)[0] == "reloaded"


def test_a_model_trained_in_an_earlier_cell_and_reused_trains_from_where_it_is(notebook):
    module = notebook.code()
    _, model, _ = notebook.run_cell("m", module)
    trained_weights = model.get_weights()
    outcome, _, _ = notebook.run_cell("m", module, model=model)  # the same object, already trained
    assert outcome == "trained"  # its starting state is not a fresh model's: never the old entry
    assert not all(np.array_equal(a, b) for a, b in zip(trained_weights, model.get_weights(),
                                                       strict=True))
    assert notebook.run_cell("m", module)[0] == "reloaded"  # a freshly built one still reloads


def test_a_callback_that_records_during_fit_makes_the_training_run_every_time(model_dir, capsys):
    run = config.RunSettings(mode="smoke", seed=0)
    for _ in range(2):
        losses = []
        recorder = keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs, losses=losses: losses.append(logs["loss"]))
        checkpoints.once(run, "01", "recorded", tiny_model()).fit(DATA, DATA, epochs=2, verbose=0,
                                                                   callbacks=[recorder])
        assert len(losses) == 2  # filled on every run: never an empty record after a "reload"
    printed = capsys.readouterr().out
    assert printed.count("records what happens during fit") == 2
    assert checkpoints.RELOADED_LINE not in printed and not (model_dir / "trained").exists()


def test_retrain_switch_trains_again(notebook, model_dir):
    module = notebook.code()
    notebook.run_cell("m", module)
    model = notebook.build(module, CELL)
    run = config.RunSettings(mode="smoke", seed=42, retrain=True)
    notebook.capsys.readouterr()
    checkpoints.once(run, "01", "m", model).fit(DATA[:96], DATA[:96], epochs=2, batch_size=16,
                                                 shuffle=False, verbose=0,
                                                 validation_data=(DATA[-16:], DATA[-16:]),
                                                 callbacks=[module.Shrink(0.5)])
    assert checkpoints.TRAINED_LINE in notebook.capsys.readouterr().out


def test_a_reload_restores_weights_optimizer_state_and_history_and_prints_no_warning(notebook):
    module = notebook.code()
    _, trained, history = notebook.run_cell("m", module, optimizer="Nadam")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning at all fails the reload
        outcome, reloaded, reloaded_history = notebook.run_cell("m", module, optimizer="Nadam")
    assert outcome == "reloaded"
    assert reloaded_history.history == history.history
    assert reloaded.history is reloaded_history
    # The training's own time comes back with the reload, not the seconds the reload took.
    assert history.train_seconds > 0
    assert reloaded_history.train_seconds == pytest.approx(history.train_seconds, abs=0.01)
    for a, b in zip(trained.optimizer.variables, reloaded.optimizer.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(reloaded.optimizer.iterations.numpy()) == 2 * 6  # 2 epochs of 6 batches
    # The seed generator state of the Dropout layer is a variable too, so it comes back as well.
    for a, b in zip(trained.variables, reloaded.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_random_numbers_after_training_and_after_reloading_are_the_same(notebook):
    module = notebook.code()
    notebook.run_cell("m", module)
    legacy_global = np.random.random  # noqa: NPY002 - the global state students' cells may use
    after_training = legacy_global(3), keras.random.normal((2,), seed=1).numpy()
    notebook.run_cell("m", module)
    after_reloading = legacy_global(3), keras.random.normal((2,), seed=1).numpy()
    for a, b in zip(after_training, after_reloading, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_model_without_input_and_a_lambda_layer_reloads_and_its_key_follows_the_seed(
        notebook):
    def build(seed):
        keras.utils.set_random_seed(seed)
        model = keras.Sequential([keras.layers.Dense(3), keras.layers.Lambda(lambda t: t * 2),
                                  keras.layers.Dense(6)])  # no keras.Input: built by fit
        model.compile(loss="mse", optimizer="sgd")
        return model

    run = config.RunSettings(mode="smoke", seed=0)
    printed = []
    for seed in (1, 1, 2):
        model = build(seed)
        checkpoints.once(run, "01", "unbuilt", model).fit(DATA, DATA, epochs=1, verbose=0)
        printed.append(notebook.capsys.readouterr().out)
    assert [checkpoints.TRAINED_LINE in text for text in printed] == [True, False, True]


def test_a_gan_reloads_both_networks_both_optimizers_and_its_snapshots(
    smoke_run, model_dir, capsys
):
    run = smoke_run
    noise = np.random.default_rng(5).standard_normal((4, 3)).astype("float32")

    def train():
        keras.utils.set_random_seed(3)
        images = data.to_dataset(DATA, None, 16, seed=3, drop_remainder=True)
        generator = keras.Sequential([keras.Input((3,)), keras.layers.Dense(6, "sigmoid")])
        discriminator = keras.Sequential([keras.Input((6,)), keras.layers.Dense(1, "sigmoid")])
        gan = training.GAN(generator, discriminator, 3, seed=4)
        gan.compile(d_optimizer=keras.optimizers.RMSprop(), g_optimizer=keras.optimizers.Adam())
        progress = training.GanProgress(noise, show=lambda images, epoch: None)
        history = checkpoints.once(run, "09", "gan", gan).fit(images, epochs=2, verbose=0,
                                                               callbacks=[progress])
        return gan, progress, history

    gan, progress, history = train()
    again, again_progress, again_history = train()
    assert checkpoints.RELOADED_LINE in capsys.readouterr().out
    assert again_history.history == history.history
    for network in ("generator", "discriminator", "d_optimizer", "g_optimizer"):
        for a, b in zip(getattr(gan, network).variables, getattr(again, network).variables,
                        strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(gan.noise_seed.state.numpy(), again.noise_seed.state.numpy())
    assert [epoch for epoch, _ in again_progress.snapshots] == [1, 2]
    for (_, a), (_, b) in zip(progress.snapshots, again_progress.snapshots, strict=True):
        np.testing.assert_array_equal(a, b)


def tiny_gan():
    """A seeded two-network GAN and a fresh pipeline of DATA for it."""
    keras.utils.set_random_seed(3)
    images = data.to_dataset(DATA, None, 16, seed=3, drop_remainder=True)
    gan = training.GAN(keras.Sequential([keras.Input((3,)), keras.layers.Dense(6)]),
                       keras.Sequential([keras.Input((6,)), keras.layers.Dense(1, "sigmoid")]),
                       3, seed=4)
    gan.compile(d_optimizer=keras.optimizers.RMSprop(), g_optimizer=keras.optimizers.RMSprop())
    return gan, images


def test_the_fixed_codings_of_gan_progress_are_in_the_key_but_its_display_is_not(
    smoke_run, model_dir, capsys
):
    run = smoke_run

    def train(noise_seed, show):
        gan, images = tiny_gan()
        noise = np.random.default_rng(noise_seed).standard_normal((4, 3))
        progress = training.GanProgress(noise, show=show)
        checkpoints.once(run, "09", "gan", gan).fit(images, epochs=1, verbose=0,
                                                     callbacks=[progress])
        return checkpoints.TRAINED_LINE in capsys.readouterr().out

    def draw(images, epoch):
        return None

    def draw_differently(images, epoch):
        return images[:2]

    assert [train(0, draw), train(0, draw_differently), train(1, draw)] == [True, False, True]


def test_a_fade_in_schedule_length_is_in_the_key(smoke_run, model_dir, capsys):
    run = smoke_run

    def train(fade_steps):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(6)])
        model.compile(loss="mse", optimizer="adam")
        schedule = training.FadeInSchedule([], fade_steps)
        checkpoints.once(run, "11", "stage", model).fit(DATA, DATA, epochs=1, verbose=0,
                                                         callbacks=[schedule])
        return checkpoints.TRAINED_LINE in capsys.readouterr().out

    assert [train(10), train(10), train(20)] == [True, False, True]


def test_a_reshuffling_dataset_read_by_an_earlier_training_is_refused_with_the_fix(
    smoke_run, model_dir
):
    import tensorflow as tf

    run = smoke_run
    # tf.data's own shuffle draws an order nobody can replay (to_dataset without a seed too).
    shared = tf.data.Dataset.from_tensor_slices((DATA, DATA)).shuffle(
        len(DATA), seed=3, reshuffle_each_iteration=True).batch(16)
    unshuffled = data.to_dataset(DATA, DATA, 16, shuffle=False)
    for name in ("first", "second"):
        model = tiny_model()
        checkpoints.once(run, "01", name, model).fit(unshuffled, epochs=1, verbose=0)
    checkpoints.once(run, "01", "third", tiny_model()).fit(shared, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"already read by an earlier training \(notebook 01's "
                                         r"third\).*Build the dataset in the cell that trains"):
        checkpoints.once(run, "01", "fourth", tiny_model()).fit(shared, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="already read by an earlier training"):
        seedless = data.to_dataset(DATA, DATA, 16, seed=None)
        checkpoints.once(run, "01", "fifth", tiny_model()).fit(seedless, epochs=1, verbose=0)
        checkpoints.once(run, "01", "sixth", tiny_model()).fit(seedless, epochs=1, verbose=0)


def _two_trainings_on_one_pipeline(run, peek=False, map_it=False):
    """Notebook-like: one to_dataset pipeline read by two trainings in turn."""
    shared = data.to_dataset(DATA, DATA, 16, seed=3)
    read = shared.map(lambda x, y: (x, y)) if map_it else shared
    models = []
    for name in ("first", "second"):
        if peek and name == "second":
            next(iter(read))  # a look at one batch starts an epoch: the order after it changes
        keras.utils.set_random_seed(0)
        model = tiny_model()
        checkpoints.once(run, "01", name, model, verbose=False).fit(read, epochs=2, verbose=0)
        models.append(model)
    return shared.course_recipe.reads.numpy(), [m.get_weights() for m in models]


@pytest.mark.parametrize("map_it", [False, True], ids=["to_dataset", "mapped to_dataset"])
def test_a_pipeline_shared_by_two_trainings_reloads_both_in_the_state_training_left(
    smoke_run, model_dir, map_it
):
    run = smoke_run
    trained_reads, trained = _two_trainings_on_one_pipeline(run, map_it=map_it)
    entries = sorted(path.name for path in (model_dir / "trained" / "01").iterdir())
    reloaded_reads, reloaded = _two_trainings_on_one_pipeline(run, map_it=map_it)
    # No new entry: both reloaded, and the pipeline is as far read as after training.
    assert sorted(path.name for path in (model_dir / "trained" / "01").iterdir()) == entries
    assert reloaded_reads == trained_reads == (6 if map_it else 4)
    for first, again in zip(trained, reloaded, strict=True):
        for a, b in zip(first, again, strict=True):
            np.testing.assert_array_equal(a, b)


def test_peeking_at_a_shared_pipeline_changes_what_the_next_training_sees(
    smoke_run, model_dir, capsys
):
    run = smoke_run
    _two_trainings_on_one_pipeline(run)
    count = len(list((model_dir / "trained" / "01").iterdir()))
    _two_trainings_on_one_pipeline(run, peek=True)
    assert len(list((model_dir / "trained" / "01").iterdir())) == count + 1  # second trained


def test_a_to_dataset_key_reads_no_batch_and_ignores_the_global_seed(model_dir):
    keys = []
    for global_seed in (0, 1):
        keras.utils.set_random_seed(global_seed)
        train_set = data.to_dataset(DATA, DATA, 16, seed=3)
        keras.utils.set_random_seed(0)
        model = tiny_model()
        keys.append(checkpoints._Training(model, (train_set,), {"epochs": 1}).key()[0])
        assert train_set.course_recipe.reads.numpy() == 0  # the key was made without a read
    assert keys[0] == keys[1]


def test_a_damaged_entry_warns_and_trains_again_from_the_starting_weights(notebook, model_dir):
    module = notebook.code()
    _, trained, _ = notebook.run_cell("m", module)
    [entry] = (model_dir / "trained" / "01").glob("m-smoke-*.npz")
    entry.write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match="did not load"):
        outcome, retrained, _ = notebook.run_cell("m", module)
    assert outcome == "trained"
    for a, b in zip(trained.get_weights(), retrained.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # the same training again, from the same start


RESTORE_FAILS = {"now": False}  # read by restore_arrays, so the key does not see it change


def test_a_failed_restore_of_kept_snapshots_trains_from_the_start_not_from_the_reload(
    smoke_run, model_dir, capsys
):
    run = smoke_run

    class Fragile(training.GanProgress):
        def restore_arrays(self, arrays):
            if RESTORE_FAILS["now"] and arrays:
                raise ValueError("snapshots do not fit")
            super().restore_arrays(arrays)

    def train():
        gan, images = tiny_gan()
        progress = Fragile(np.zeros((2, 3)))
        history = checkpoints.once(run, "09", "gan", gan).fit(images, epochs=2, verbose=0,
                                                               callbacks=[progress])
        return gan, history

    first, history = train()
    RESTORE_FAILS["now"] = True
    with pytest.warns(UserWarning, match="snapshots do not fit"):
        again, again_history = train()
    assert checkpoints.TRAINED_LINE in capsys.readouterr().out
    # Trained again from the same fresh start (not from the reloaded weights): the same result.
    assert again_history.history == history.history
    for a, b in zip(first.generator.get_weights(), again.generator.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(again.d_optimizer.iterations.numpy()) == int(first.d_optimizer.iterations.numpy())


def test_older_entries_are_pruned_to_the_newest_few_and_old_layouts_removed(notebook, model_dir):
    folder = model_dir / "trained" / "01"
    folder.mkdir(parents=True)
    legacy = folder / "m-smoke-0123456789ab"  # an entry of the earlier folder layout
    legacy.mkdir()
    (legacy / "manifest.json").write_text("{}")
    module = notebook.code()
    for rate in (1e-2, 2e-2, 3e-2, 4e-2):
        notebook.run_cell("m", module, learning_rate=rate)
    assert len(list(folder.glob("m-smoke-*.npz"))) == checkpoints.ENTRIES_KEPT
    assert not legacy.exists()
    assert notebook.run_cell("m", module, learning_rate=3e-2)[0] == "reloaded"  # toggled back


# --- Interrupted saves: a real kill at each stage, in a process of its own ----------------------

TRAIN_SCRIPT = textwrap.dedent('''
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import keras, numpy as np
    from course_utils import checkpoints, config
    rate = float(sys.argv[1])
    run = config.RunSettings(mode="smoke", seed=0, retrain=sys.argv[2] == "retrain")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4)])
    model.compile(loss="mse", optimizer=keras.optimizers.SGD(learning_rate=rate))
    x = np.linspace(0, 1, 64, dtype="float32").reshape(16, 4)
    checkpoints.once(run, "01", "tiny", model).fit(x, x, epochs=2, verbose=0)
    print("weights", float(np.sum(model.get_weights()[0])))
''')


def run_script(model_dir, *arguments, **environment):
    env = {**os.environ, "COURSE_MODEL_DIR": str(model_dir), "PYTHONPATH": REPO_ROOT,
           **environment}
    return subprocess.run([sys.executable, "-c", TRAIN_SCRIPT, *arguments], env=env,
                          capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)


def folder_listing(model_dir):
    folder = model_dir / "trained" / "01"
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def test_a_fresh_process_reloads_what_another_process_trained(tmp_path):
    first = run_script(tmp_path, "0.1", "train")
    second = run_script(tmp_path, "0.1", "train")
    assert checkpoints.TRAINED_LINE in first.stdout, first.stderr
    assert checkpoints.RELOADED_LINE in second.stdout, second.stderr
    assert first.stdout.splitlines()[-1] == second.stdout.splitlines()[-1]


@pytest.mark.parametrize("stage", ["writing", "written", "renamed"])
def test_a_save_killed_at_any_stage_loses_no_good_entry_and_leaves_nothing_after_the_next_run(
        tmp_path, stage):
    good = run_script(tmp_path, "0.1", "train")
    [entry] = folder_listing(tmp_path)
    good_bytes = (tmp_path / "trained" / "01" / entry).read_bytes()
    # Retraining the same key overwrites the good entry: killed mid-way, it must survive whole.
    killed = run_script(tmp_path, "0.1", "retrain", COURSE_KILL_AT=stage)
    assert killed.returncode == -signal.SIGKILL
    listing = folder_listing(tmp_path)
    assert entry in listing
    if stage == "renamed":  # the new, complete entry is in place: the same training, same bytes
        assert listing == [entry]
    assert (tmp_path / "trained" / "01" / entry).stat().st_size > 0
    after = run_script(tmp_path, "0.1", "train")  # the next run reloads and tidies up
    assert checkpoints.RELOADED_LINE in after.stdout, after.stderr
    assert after.stdout.splitlines()[-1] == good.stdout.splitlines()[-1]
    assert folder_listing(tmp_path) == [entry]
    assert (tmp_path / "trained" / "01" / entry).stat().st_size > len(good_bytes) // 2


@pytest.mark.parametrize("stage", ["writing", "written"])
def test_a_first_save_killed_mid_way_leaves_no_entry_and_the_next_run_trains(tmp_path, stage):
    killed = run_script(tmp_path, "0.1", "train", COURSE_KILL_AT=stage)
    assert killed.returncode == -signal.SIGKILL
    assert all(name.startswith(".") for name in folder_listing(tmp_path))  # no entry, only a part
    after = run_script(tmp_path, "0.1", "train")
    assert checkpoints.TRAINED_LINE in after.stdout, after.stderr
    assert len(folder_listing(tmp_path)) == 1 and not folder_listing(tmp_path)[0].startswith(".")


@pytest.mark.parametrize("stage", ["writing", "written"])
def test_ctrl_c_during_a_save_leaves_nothing_and_keeps_the_good_entry(notebook, model_dir,
                                                                       monkeypatch, stage):
    module = notebook.code()
    notebook.run_cell("m", module)
    [entry] = folder_listing(model_dir)
    before = (model_dir / "trained" / "01" / entry).read_bytes()
    monkeypatch.setenv("COURSE_INTERRUPT_AT", stage)
    with pytest.raises(KeyboardInterrupt):
        notebook.run_cell("m", module, learning_rate=5e-3)
    assert folder_listing(model_dir) == [entry]  # exactly: no temporary file either
    assert (model_dir / "trained" / "01" / entry).read_bytes() == before


def test_a_failed_save_warns_and_keeps_the_trained_model(notebook, model_dir, monkeypatch):
    module = notebook.code()

    def full_disk(path, write):
        raise OSError("No space left on device")

    monkeypatch.setattr(files, "write_atomically", full_disk)
    with pytest.warns(UserWarning, match="No space left on device"):
        model = notebook.build(module, CELL)
        notebook.fit(module, model, CELL, "m")
    assert folder_listing(model_dir) == []
    assert not np.array_equal(model.get_weights()[0],
                              notebook.build(module, CELL).get_weights()[0])  # it did train


# --- Where the models live, and what once() refuses ---------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("  /tmp/course-models  ", "/tmp/course-models"),
    ("~/course-models", os.path.expanduser("~/course-models")),
    ("build/elsewhere", os.path.join(REPO_ROOT, "build", "elsewhere")),
    ("", os.path.join(REPO_ROOT, "build", "models")),
])
def test_the_model_folder_from_the_environment_is_stripped_expanded_and_rooted(
        monkeypatch, value, expected):
    monkeypatch.setenv(checkpoints.MODEL_DIR_ENV_VAR, value)
    assert str(checkpoints.model_dir()) == os.path.realpath(expected)


def test_a_model_folder_that_is_a_file_gets_a_clear_error(monkeypatch, tmp_path):
    (tmp_path / "a_file").write_text("x")
    monkeypatch.setenv(checkpoints.MODEL_DIR_ENV_VAR, str(tmp_path / "a_file"))
    with pytest.raises(NotADirectoryError, match="names a file.*point it at a folder"):
        checkpoints.model_dir()


def tiny_model(compiled=True):
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(6)])
    if compiled:
        model.compile(loss="mse", optimizer="sgd")
    return model


RUN = config.RunSettings(mode="smoke", seed=0)


@pytest.mark.parametrize("make_call, error, message", [
    (lambda: checkpoints.once(RUN, "01", "m", "not a model").fit(DATA, DATA), TypeError,
     "needs a keras.Model"),
    (lambda: checkpoints.once(RUN, "01", "m", tiny_model(False)).fit(DATA, DATA), ValueError,
     "is not compiled: call its compile"),
    (lambda: checkpoints.once(RUN, "1 ", "m", tiny_model()), ValueError, "notebook must be"),
    (lambda: checkpoints.once(RUN, "01", "my/model", tiny_model()), ValueError, "name must be"),
    (lambda: checkpoints.once(RUN, "01", "", tiny_model()), ValueError, "name must be"),
    (lambda: checkpoints.once("smoke", "01", "m", tiny_model()), TypeError, "config.setup"),
    (lambda: checkpoints.once(RUN, "01", "m", tiny_model()).fit(iter([DATA])), TypeError,
     "NumPy arrays .* or a tf.data.Dataset"),
    (lambda: checkpoints.once(RUN, "01", "m", tiny_model()).fit(DATA[:0], DATA[:0]), ValueError,
     "training data is empty"),
    (lambda: checkpoints.once(RUN, "01", "m", tiny_model()).fit(
        data.to_dataset(DATA, DATA, 256, drop_remainder=False).take(0)), ValueError,
     "yields no batch"),
    (lambda: checkpoints.once(RUN, "01", "m", tiny_model()).fit(DATA, DATA, epochz=2),
     TypeError, "arguments of keras.Model.fit"),
])
def test_bad_arguments_get_clear_errors_before_any_training(model_dir, make_call, error,
                                                             message):
    with pytest.raises(error, match=message):
        make_call()
    assert not (model_dir / "trained").exists()


def test_compute_once_saves_an_array_and_reloads_it_until_its_input_changes(model_dir, capsys):
    calls = []

    def embed(values):
        calls.append(1)
        return values * 2

    def cached(values):
        return checkpoints.compute_once(RUN, "02", "tsne", lambda: embed(values),
                                        settings={"values": values})

    values = np.arange(4.0)
    np.testing.assert_array_equal(cached(values), values * 2)
    np.testing.assert_array_equal(cached(values), values * 2)
    assert len(calls) == 1 and "Reloaded the saved tsne" in capsys.readouterr().out
    np.testing.assert_array_equal(cached(values + 1), (values + 1) * 2)
    assert len(calls) == 2


def test_an_entry_holds_no_pickle_and_says_what_it_is(notebook, model_dir):
    notebook.run_cell("m", notebook.code())
    [entry] = (model_dir / "trained" / "01").glob("m-smoke-*.npz")
    with np.load(entry, allow_pickle=False) as stored:  # would raise if anything were pickled
        manifest = json.loads(str(stored["manifest.json"]))
        history = json.loads(str(stored["history.json"]))
    assert manifest["name"] == "m" and manifest["mode"] == "smoke"
    assert manifest["key"].startswith(entry.name.split("-")[-1][:-4])
    assert len(history["loss"]) == 2


def test_saved_entries_lists_each_training_with_its_manifest_and_nothing_else(notebook,
                                                                            model_dir):
    module = notebook.code()
    notebook.run_cell("m", module)
    notebook.run_cell("m", module, learning_rate=3e-3)  # a second entry of the same name
    folder = model_dir / "trained" / "01"
    trainings = sorted(folder.glob("m-smoke-*.npz"))
    checkpoints.compute_once(RUN, "02", "tsne", lambda: np.zeros(3))  # an array, not a training
    # A save killed after writing its temporary file whole, before renaming it into place.
    (folder / ".m-smoke-0123456789ab.npz-1-x.part.npz").write_bytes(trainings[0].read_bytes())
    (folder / "m-smoke-ba9876543210.npz").write_bytes(b"not a zip")  # damaged
    (folder / "m-smoke-0123456789ab.npz").mkdir()  # not a file
    expected = {}
    for path in trainings:
        with np.load(path, allow_pickle=False) as stored:
            expected[path] = json.loads(str(stored["manifest.json"]))
    listed = checkpoints.saved_entries()  # $COURSE_MODEL_DIR, as the notebooks see it
    assert len(listed) == 2 and listed == expected
    assert checkpoints.saved_entries(model_dir) == listed
    for path, manifest in listed.items():
        assert (manifest["notebook"], manifest["name"], manifest["mode"]) == ("01", "m", "smoke")
        assert path.name == f"m-smoke-{manifest['key'][:checkpoints.KEY_LENGTH]}.npz"
        assert manifest["train_seconds"] >= 0
    assert len({manifest["key"] for manifest in listed.values()}) == 2
    assert checkpoints.saved_entries(model_dir / "nothing here") == {}


def test_a_layer_unbuilt_in_name_only_is_not_symbolically_built(smoke_run, model_dir, capsys):
    # A replay buffer makes its variables in __init__ and is never called: Keras calls it
    # unbuilt, yet nothing is missing; building the GAN on images would feed images to call().
    run = smoke_run

    class BufferedGAN(training.GAN):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.replay = training.ReplayBuffer(16, (6,), seed=1)

        def fake_images_for_discriminator(self, batch_size):
            fresh = super().fake_images_for_discriminator(batch_size)
            self.replay.add(fresh)
            return ops.concatenate([fresh[: batch_size // 2],
                                    self.replay.sample(batch_size - batch_size // 2)], axis=0)

    for _ in range(2):
        keras.utils.set_random_seed(3)
        images = data.to_dataset(DATA, None, 16, seed=3, drop_remainder=True)
        gan = BufferedGAN(keras.Sequential([keras.Input((3,)), keras.layers.Dense(6)]),
                          keras.Sequential([keras.Input((6,)), keras.layers.Dense(1, "sigmoid")]),
                          3, seed=4)
        gan.compile(d_optimizer=keras.optimizers.RMSprop(), g_optimizer=keras.optimizers.RMSprop())
        checkpoints.once(run, "09", "buffered", gan).fit(images, epochs=1, verbose=0)
    printed = capsys.readouterr().out
    assert checkpoints.TRAINED_LINE in printed and checkpoints.RELOADED_LINE in printed
    assert int(gan.replay.count.numpy()) > 0  # the buffer's contents came back with the reload


def test_a_trainer_whose_networks_are_unbuilt_gets_a_clear_error_not_keras_internals(model_dir):
    class Lazy(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(6)
            self.tracker = keras.metrics.Mean(name="loss")

        def train_step(self, batch):
            x, y = batch
            with tf.GradientTape() as tape:
                loss = ops.mean(ops.square(self.dense(x) - y))
            weights = self.dense.trainable_weights
            self.optimizer.apply(tape.gradient(loss, weights), weights)
            self.tracker.update_state(loss)
            return {"loss": self.tracker.result()}

    model = Lazy()
    model.compile(optimizer="sgd")
    model.dense.build((None, 6))  # built: fine
    checkpoints.once(RUN, "01", "built", model).fit(DATA, DATA, epochs=1, verbose=0)
    model = Lazy()
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="(?s)could not be built from its first batch.*Give its "
                                         "networks a keras.Input"):
        checkpoints.once(RUN, "01", "lazy", model).fit(DATA, DATA, epochs=1, verbose=0)


def test_an_endless_dataset_is_read_for_exactly_the_steps_fit_takes(model_dir, capsys):
    def train(steps):
        keras.utils.set_random_seed(0)
        endless = data.to_dataset(DATA, DATA, 16, shuffle=False).repeat()
        return checkpoints.once(RUN, "11", "endless", tiny_model()).fit(
            endless, epochs=2, steps_per_epoch=steps, verbose=0)

    assert len(train(3).history["loss"]) == 2
    train(3)
    train(4)
    printed = capsys.readouterr().out.splitlines()
    assert [checkpoints.TRAINED_LINE in line for line in printed] == [True, False, True]
    with pytest.raises(ValueError, match="repeats forever: pass steps_per_epoch"):
        checkpoints.once(RUN, "11", "endless", tiny_model()).fit(
            data.to_dataset(DATA, DATA, 16, shuffle=False).repeat(), epochs=1, verbose=0)


DECAY = 0.5  # read by a schedule function: a module-level number the key must see


def _decayed(epoch, rate):
    return rate * DECAY


def _step_decay(epoch, rate, drop=0.5):
    return rate * drop


def test_a_schedule_function_its_globals_defaults_and_partial_arguments_are_in_the_key(
        model_dir, capsys, monkeypatch):
    import functools

    def train(schedule):
        keras.utils.set_random_seed(0)
        checkpoints.once(RUN, "01", "scheduled", tiny_model()).fit(
            DATA, DATA, epochs=2, verbose=0,
            callbacks=[keras.callbacks.LearningRateScheduler(schedule)])
        return checkpoints.TRAINED_LINE in capsys.readouterr().out

    assert train(_decayed) and not train(_decayed)
    monkeypatch.setattr(sys.modules[__name__], "DECAY", 0.9)
    assert train(_decayed)
    assert train(functools.partial(_step_decay, drop=0.5))
    assert train(functools.partial(_step_decay, drop=0.1))
    assert not train(functools.partial(_step_decay, drop=0.1))


def test_a_custom_schedule_keras_cannot_copy_gets_the_fix_not_a_keras_traceback(model_dir):
    class Halve(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            return 0.1 * 0.5 ** ops.cast(step, "float32")

        def get_config(self):
            return {}

    model = tiny_model(compiled=False)
    model.compile(loss="mse", optimizer=keras.optimizers.SGD(learning_rate=Halve()))
    with pytest.raises(ValueError, match="register it with @keras.saving.register_keras_serial"):
        checkpoints.once(RUN, "01", "halved", model).fit(DATA, DATA, epochs=1, verbose=0)


def test_early_stopping_and_other_recording_keras_callbacks_train_every_time(model_dir, capsys):
    for _ in range(2):
        stopper = keras.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10.0)
        checkpoints.once(RUN, "01", "stopped", tiny_model()).fit(DATA, DATA, epochs=5, verbose=0,
                                                                  callbacks=[stopper])
        assert stopper.stopped_epoch == 1  # its record is there on every run
    assert capsys.readouterr().out.count("records what happens during fit") == 2


def test_a_reload_keeps_initial_epoch_numbering_and_leaves_no_probe_numbers_in_metrics(
        model_dir):
    def train():
        keras.utils.set_random_seed(0)
        model = tiny_model(compiled=False)
        model.compile(loss="mse", optimizer="sgd", metrics=["mae"])
        history = checkpoints.once(RUN, "01", "resumed", model).fit(
            DATA, DATA, epochs=3, initial_epoch=1, verbose=0)
        return model, history

    _, trained = train()
    model, reloaded = train()
    assert trained.epoch == reloaded.epoch == [1, 2]
    assert reloaded.history == trained.history
    assert all(float(value) == 0.0 for value in model.get_metrics_result().values())


def test_a_part_file_a_killed_save_of_an_older_key_left_is_removed_later(notebook, model_dir):
    folder = model_dir / "trained" / "01"
    folder.mkdir(parents=True)
    leftover = folder / f".m-smoke-0123456789ab.npz-999999999-x{files.PART_MARKER}.npz"
    leftover.write_bytes(b"half")
    notebook.run_cell("m", notebook.code())
    assert all(not name.startswith(".") for name in folder_listing(model_dir))
