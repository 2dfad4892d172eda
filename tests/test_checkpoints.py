"""Train once, reload many times: checkpoints.train_once keys, saves atomically, reloads in safe
mode, and never reloads weights trained for another architecture, setting or starting point."""

import json

import keras
import numpy as np
import pytest

from course_utils import checkpoints, config, training

X = np.random.default_rng(0).random((64, 4)).astype("float32")


@pytest.fixture
def run():
    return config.RunSettings(mode="smoke", seed=42)


def build_autoencoder(units=2, seed=0, learning_rate=1e-2):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(units),
                              keras.layers.Dense(4)])
    model.compile(loss="mse", optimizer=keras.optimizers.SGD(learning_rate=learning_rate))
    return model


class Calls:
    """A training function that counts its calls and fits the model it is given."""

    def __init__(self, model, epochs=2):
        self.model, self.epochs, self.count = model, epochs, 0

    def __call__(self):
        self.count += 1
        return self.model.fit(X, X, epochs=self.epochs, batch_size=16, verbose=0, shuffle=False)


def train_once(run, model, train, **kwargs):
    return checkpoints.train_once(run, "01", "tiny_ae", model, train, **kwargs)


def entries(model_dir):
    return sorted(path.name for path in (model_dir / "trained" / "01").iterdir())


def test_first_call_trains_and_saves_then_a_rebuilt_model_reloads_the_same_weights(
    run, model_dir, capsys
):
    model = build_autoencoder()
    train = Calls(model)
    history = train_once(run, model, train, settings={"epochs": 2})
    assert train.count == 1 and len(history.history["loss"]) == 2
    assert "saved it" in capsys.readouterr().out
    [entry] = entries(model_dir)
    assert entry.startswith("tiny_ae-smoke-") and len(entry) == len("tiny_ae-smoke-") + 12
    saved = model_dir / "trained" / "01" / entry
    assert sorted(path.name for path in saved.iterdir()) == [
        "history.json", "manifest.json", "tiny_ae.keras"]
    manifest = json.loads((saved / "manifest.json").read_text())
    assert manifest["notebook"] == "01" and manifest["mode"] == "smoke"
    assert manifest["key"].startswith(entry[-12:])

    rebuilt = build_autoencoder()
    again = Calls(rebuilt)
    reloaded = train_once(run, rebuilt, again, settings={"epochs": 2})
    assert again.count == 0
    assert "Reloaded the trained tiny_ae" in capsys.readouterr().out
    for trained, restored in zip(model.get_weights(), rebuilt.get_weights(), strict=True):
        np.testing.assert_array_equal(trained, restored)
    assert reloaded.history == history.history
    assert reloaded.epoch == [0, 1]


def test_retrain_switch_trains_again_and_replaces_the_entry(run, model_dir):
    model = build_autoencoder()
    train_once(run, model, Calls(model))
    retrain_run = config.RunSettings(mode="smoke", seed=42, retrain=True)
    rebuilt = build_autoencoder()
    train = Calls(rebuilt)
    train_once(retrain_run, rebuilt, train)
    assert train.count == 1
    assert len(entries(model_dir)) == 1


@pytest.mark.parametrize(
    "change",
    ["architecture", "starting weights", "optimizer", "settings", "training code", "mode"],
)
def test_any_change_that_decides_the_result_gives_a_new_key_and_trains_again(
    run, model_dir, change
):
    model = build_autoencoder()
    train_once(run, model, Calls(model), settings={"epochs": 2})
    variants = {
        "architecture": dict(units=3),
        "starting weights": dict(seed=1),
        "optimizer": dict(learning_rate=1e-3),
    }
    rebuilt = build_autoencoder(**variants.get(change, {}))
    train = Calls(rebuilt, epochs=3 if change == "settings" else 2)
    settings = {"epochs": train.epochs}
    changed_run = config.RunSettings(mode="default", seed=42) if change == "mode" else run
    if change == "training code":
        checkpoints.train_once(changed_run, "01", "tiny_ae", rebuilt,
                               lambda: (train(), rebuilt.fit(X, X, verbose=0))[0],
                               settings=settings)
    else:
        train_once(changed_run, rebuilt, train, settings=settings)
    assert train.count == 1
    # A newer key replaces the older entry of the same notebook, name and mode.
    assert len(entries(model_dir)) == (2 if change == "mode" else 1)


def test_array_settings_are_keyed_by_content():
    model = build_autoencoder()
    codings = np.zeros((5, 3), dtype="float32")
    key = checkpoints.training_key(model, Calls(model), settings={"codings": codings})
    same = checkpoints.training_key(model, Calls(model), settings={"codings": codings.copy()})
    assert key == same
    codings[2, 1] = 1.0
    assert key != checkpoints.training_key(model, Calls(model), settings={"codings": codings})


class Trainer:
    def fit(self):
        return {"loss": [1.0]}


class OtherTrainer(Trainer):
    def fit(self):
        return {"loss": [2.0]}


def test_the_trainers_own_methods_are_part_of_the_key():
    model = build_autoencoder()
    key = checkpoints.training_key(model, Calls(model), trainer=Trainer())
    assert key == checkpoints.training_key(model, Calls(model), trainer=Trainer())
    assert key != checkpoints.training_key(model, Calls(model), trainer=OtherTrainer())


def test_an_interrupted_save_leaves_no_entry_and_the_older_one_intact(
    run, model_dir, monkeypatch
):
    model = build_autoencoder()
    train_once(run, model, Calls(model))
    [before] = entries(model_dir)
    saved_weights = (model_dir / "trained" / "01" / before / "tiny_ae.keras").read_bytes()

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(keras.Model, "save", interrupted)
    rebuilt = build_autoencoder()
    with pytest.raises(KeyboardInterrupt):
        train_once(config.RunSettings(mode="smoke", seed=42, retrain=True), rebuilt,
                   Calls(rebuilt))
    after = sorted(path.name for path in (model_dir / "trained" / "01").iterdir())
    assert after == [before]  # no hidden staging folder either
    assert (model_dir / "trained" / "01" / before / "tiny_ae.keras").read_bytes() == (
        saved_weights)


def test_a_failed_save_warns_and_keeps_the_trained_model(run, model_dir, monkeypatch):
    def disk_full(self, *args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(keras.Model, "save", disk_full)
    model = build_autoencoder()
    with pytest.warns(UserWarning, match="could not save"):
        history = train_once(run, model, Calls(model))
    assert len(history.history["loss"]) == 2
    assert list((model_dir / "trained" / "01").iterdir()) == []


def test_a_damaged_entry_is_trained_again_never_trusted(run, model_dir):
    model = build_autoencoder()
    train_once(run, model, Calls(model))
    [entry] = entries(model_dir)
    (model_dir / "trained" / "01" / entry / "tiny_ae.keras").write_bytes(b"not a zip file")
    rebuilt = build_autoencoder()
    train = Calls(rebuilt)
    with pytest.warns(UserWarning, match="did not load"):
        train_once(run, rebuilt, train)
    assert train.count == 1
    follow_up = build_autoencoder()
    untouched = Calls(follow_up)
    train_once(run, follow_up, untouched)  # the retrained entry is whole again
    assert untouched.count == 0


def test_reloads_happen_in_safe_mode(run, model_dir):
    def build_with_lambda():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4),
                                  keras.layers.Lambda(lambda x: x * 2.0)])
        model.compile(loss="mse", optimizer="sgd")
        return model

    model = build_with_lambda()
    train_once(run, model, Calls(model))
    rebuilt = build_with_lambda()
    train = Calls(rebuilt)
    # Safe mode refuses to deserialise the Lambda's bytecode, so the entry is not trusted.
    with pytest.warns(UserWarning, match="did not load"):
        train_once(run, rebuilt, train)
    assert train.count == 1


def test_kept_records_are_saved_and_restored(run, model_dir):
    class Record:
        def __init__(self):
            self.values = None

        def saved_arrays(self):
            return {"values": self.values}

        def restore_arrays(self, arrays):
            self.values = arrays["values"]

    model = build_autoencoder()
    record = Record()

    def train():
        record.values = np.arange(6).reshape(2, 3)
        return Calls(model)()

    train_once(run, model, train, keep=[record])
    rebuilt, restored = build_autoencoder(), Record()
    train_once(run, rebuilt, train, keep=[restored])
    np.testing.assert_array_equal(restored.values, np.arange(6).reshape(2, 3))


def test_gan_progress_snapshots_round_trip():
    shown = []
    def show(images, epoch):
        shown.append(epoch)

    progress = training.GanProgress(np.zeros((3, 2)), show=show)
    progress.snapshots = [(1, np.zeros((3, 28, 28))), (2, np.ones((3, 28, 28)))]
    arrays = progress.saved_arrays()
    restored = training.GanProgress(np.zeros((3, 2)), show=show)
    restored.restore_arrays(arrays)
    assert [epoch for epoch, _ in restored.snapshots] == [1, 2]
    np.testing.assert_array_equal(restored.snapshots[1][1], np.ones((3, 28, 28)))
    assert shown == [2]  # a reloaded GAN shows its last grid
    assert training.GanProgress(np.zeros((3, 2))).saved_arrays() == {}


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(name="bad name"), ValueError, "letters, digits"),
        (dict(notebook="../01"), ValueError, "letters, digits"),
        (dict(models=[]), TypeError, "keras.Model"),
        (dict(models={"net": "not a model"}), TypeError, "not a keras.Model"),
        (dict(settings={"data": object()}), TypeError, "training setting"),
        (dict(keep=[object()]), TypeError, "saved_arrays"),
        (dict(train=lambda: 42), TypeError, "must return the History"),
    ],
)
def test_bad_arguments_get_clear_errors(run, model_dir, kwargs, error, message):
    model = build_autoencoder()
    arguments = dict(notebook="01", name="tiny_ae", models=model, train=Calls(model))
    arguments.update(kwargs)
    with pytest.raises(error, match=message):
        checkpoints.train_once(run, arguments.pop("notebook"), arguments.pop("name"),
                               arguments.pop("models"), arguments.pop("train"), **arguments)


@pytest.mark.parametrize(
    ("value", "expected"), [("", False), ("0", False), ("no", False), ("1", True), ("TRUE", True)]
)
def test_retrain_switch_reads_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv(config.RETRAIN_ENV_VAR, value)
    assert config.resolve_retrain(None) is expected
    assert config.resolve_retrain(True) is True  # the notebook's own switch wins
    assert config.resolve_retrain(False) is False


def test_retrain_switch_rejects_unclear_values(monkeypatch):
    monkeypatch.setenv(config.RETRAIN_ENV_VAR, "maybe")
    with pytest.raises(ValueError, match="COURSE_RETRAIN"):
        config.resolve_retrain(None)
    with pytest.raises(TypeError, match="RETRAIN must be"):
        config.resolve_retrain("yes")


def build_tied(activation="sigmoid"):
    from course_utils import layers

    keras.utils.set_random_seed(0)
    dense = keras.layers.Dense(2)
    encoder = keras.Sequential([keras.Input((4,)), dense])
    decoder = keras.Sequential([keras.Input((2,)),
                                layers.DenseTranspose(dense, activation=activation)])
    model = keras.Sequential([encoder, decoder])
    model.compile(loss="mse", optimizer="sgd")
    return model


def test_a_tied_model_keeps_its_weights_in_h5_and_reloads_with_the_tie_intact(run, model_dir):
    model = build_tied()
    train_once(run, model, Calls(model))
    [entry] = entries(model_dir)
    saved = model_dir / "trained" / "01" / entry
    assert sorted(path.name for path in saved.iterdir()) == [
        "history.json", "manifest.json", "tiny_ae.weights.h5"]  # no broken .keras left
    rebuilt = build_tied()
    train = Calls(rebuilt)
    train_once(run, rebuilt, train)
    assert train.count == 0
    for trained, restored in zip(model.get_weights(), rebuilt.get_weights(), strict=True):
        np.testing.assert_array_equal(trained, restored)
    encoder_kernel = rebuilt.layers[0].layers[0].kernel
    assert rebuilt.layers[1].layers[0].dense.kernel is encoder_kernel  # still tied


def test_a_tied_models_key_still_sees_its_decoder(run):
    model = build_tied()
    key = checkpoints.training_key(model, Calls(model))
    assert key == checkpoints.training_key(build_tied(), Calls(model))
    assert key != checkpoints.training_key(build_tied("relu"), Calls(model))


def test_random_numbers_after_training_and_after_reloading_are_the_same(run, model_dir):
    model = build_autoencoder()
    train_once(run, model, Calls(model))
    after_training = keras.random.uniform((3,)).numpy()
    rebuilt = build_autoencoder()
    train_once(run, rebuilt, Calls(rebuilt))
    after_reloading = keras.random.uniform((3,)).numpy()
    np.testing.assert_array_equal(after_training, after_reloading)


def test_compute_once_saves_an_array_and_reloads_it_until_its_input_changes(run, model_dir):
    calls = []

    def embed(values):
        calls.append(1)
        return values * 2.0

    def compute(values, run=run):  # one call site, as in a notebook cell
        return checkpoints.compute_once(run, "02", "tsne", lambda: embed(values),
                                        settings={"codings": values})

    data = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(compute(data), compute(data))
    assert len(calls) == 1
    changed = data + 1
    compute(changed)
    assert len(calls) == 2
    [saved] = (model_dir / "trained" / "02").glob("tsne-smoke-*.npz")  # the old one is gone
    saved.write_bytes(b"damaged")
    with pytest.warns(UserWarning, match="did not load"):
        compute(changed)
    assert len(calls) == 3
    compute(changed, run=config.RunSettings(mode="smoke", seed=42, retrain=True))
    assert len(calls) == 4


def test_a_functional_models_key_ignores_keras_automatic_layer_numbering():
    def build_functional():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((4,))
        outputs = keras.layers.Dense(4)(keras.layers.Dense(2)(inputs))
        return keras.Model(inputs, outputs)

    first, second = build_functional(), build_functional()  # dense_2, dense_3 the second time
    assert first.layers[1].name != second.layers[1].name
    assert checkpoints.training_key(first, Calls(first)) == checkpoints.training_key(
        second, Calls(first))
