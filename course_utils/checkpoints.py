"""Train once, present many times: trained models and histories saved and reloaded in a second.

Plumbing for notebooks 1-12. `train_once` runs a training function the first time and saves the
trained networks (`.keras`), the history (JSON) and any extra arrays under
build/models/trained/ (or $COURSE_MODEL_DIR/trained). Later runs reload them in safe mode, unless
`run.retrain` is set (the RETRAIN switch of every notebook, or COURSE_RETRAIN=1).

An entry is keyed by notebook, name and mode plus a SHA-256 of everything that decides the result:
each network's architecture and *starting* weights (so the seed and any earlier training that fed
them count), its compile settings and optimizers, the settings the notebook passes (epochs, data
sizes, arrays), and the source of the training function and of the trainer's own methods. Change
any of them and the old weights are never reloaded.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np

from course_utils import data

MODEL_DIR_ENV_VAR = "COURSE_MODEL_DIR"
COURSE_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = COURSE_ROOT / "build" / "models"
# What train_once prints; tools/benchmark.py and the tests count these very lines.
TRAINED_LINE = "and saved it"
RELOADED_LINE = "Reloaded the trained"


def folder_from_env(variable: str, default: Path) -> Path:
    """The folder named by an environment variable (stripped, ~ expanded, relative paths taken
    from the course's root folder, so every notebook and tool shares one), else default. Plumbing.
    """
    value = os.environ.get(variable, "").strip()
    if not value:
        return default
    folder = Path(value).expanduser()
    if not folder.is_absolute():
        folder = COURSE_ROOT / folder
    folder = folder.resolve()
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(
            f"{variable}={value!r} names a file ({folder}), not a folder: point it at a folder "
            f"(it is created if missing), or unset it to use {default}."
        )
    return folder


def model_dir() -> Path:
    """Where trained models are kept: $COURSE_MODEL_DIR, else build/models. Notebooks 1-12."""
    return folder_from_env(MODEL_DIR_ENV_VAR, DEFAULT_MODEL_DIR)


def _without_names(config):
    # Keras numbers automatic layer names per session (conv2d, conv2d_1, ...): leave them out.
    if isinstance(config, dict):
        return {key: _without_names(value) for key, value in config.items() if key != "name"}
    if isinstance(config, list):
        return [_without_names(value) for value in config]
    return config


MANIFEST = "manifest.json"
HISTORY = "history.json"
KEPT_ARRAYS = "kept.npz"
KEY_LENGTH = 12  # hex digits of the key in a folder name: enough to tell settings apart


def trained_dir() -> Path:
    """Where trained models live: build/models/trained (or $COURSE_MODEL_DIR/trained)."""
    return model_dir() / "trained"


def _check_name(label: str, value: str) -> str:
    if not isinstance(value, str) or not value or not all(
        character.isascii() and (character.isalnum() or character == "_") for character in value
    ):
        raise ValueError(
            f"{label} must be a non-empty name of ASCII letters, digits and '_'; got {value!r}."
        )
    return value


def _as_model_dict(models, name: str = "model") -> dict[str, keras.Model]:
    if isinstance(models, keras.Model):
        models = {name: models}
    if not isinstance(models, Mapping) or not models:
        raise TypeError("models must be a keras.Model or a non-empty dict of name -> keras.Model.")
    for name, model in models.items():
        _check_name("Each model's name", name)
        if not isinstance(model, keras.Model):
            raise TypeError(f"models[{name!r}] is a {type(model).__name__}, not a keras.Model.")
    return dict(models)


def _describe_value(value: Any) -> Any:
    """A JSON-able stand-in for a setting; arrays become their shape, dtype and SHA-256."""
    if isinstance(value, Mapping):
        return {str(key): _describe_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_describe_value(item) for item in value]
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) or hasattr(value, "__array__"):
        array = np.ascontiguousarray(np.asarray(value))
        digest = hashlib.sha256(array.tobytes()).hexdigest()
        return {"array": list(array.shape), "dtype": str(array.dtype), "sha256": digest}
    raise TypeError(
        f"Cannot use a {type(value).__name__} as a training setting: pass numbers, strings, "
        "lists, dicts or NumPy arrays (describe a dataset by its size and seed)."
    )


def _architecture(model: keras.layers.Layer) -> Any:
    """The model's config without auto-numbered names; layer by layer if it refuses a config."""
    try:
        return _canonical_names(json.loads(model.to_json() if isinstance(model, keras.Model)
                                            else json.dumps(model.get_config(), default=str)))
    except NotImplementedError:  # e.g. a tied layer, which refuses a config it could not honour
        pass
    sublayers = getattr(model, "layers", None)
    return {
        "class": type(model).__qualname__,
        "layers": [_architecture(layer) for layer in sublayers] if sublayers is not None else None,
        "weights": [list(weight.shape) for weight in model.weights],
        "code": _own_methods_source(model),
        "attributes": {key: _describe_attribute(value) for key, value in sorted(vars(model).items())
                       if not key.startswith("_") and key not in VOLATILE_ATTRIBUTES
                       and _describe_attribute(value) is not None},
    }


VOLATILE_ATTRIBUTES = {"name", "built", "compiled", "stop_training"}


def _describe_attribute(value) -> str | None:
    if isinstance(value, (int, float, str, bool)):
        return repr(value)
    if inspect.isfunction(value):  # e.g. an activation
        return f"{value.__module__}.{value.__qualname__}"
    return None


def _canonical_names(config: Any) -> Any:
    """The config with layer names replaced by their order of appearance (layer0, layer1...).

    Keras numbers automatic names per session (dense, dense_1...), and loading a model advances
    the counters; a functional config also refers to its layers by those names (keras_history,
    input_layers, output_layers), so numbering them by position keeps the key stable.
    """
    order: dict[str, str] = {}

    def collect(node):
        if isinstance(node, dict):
            if "inbound_nodes" in node and isinstance(node.get("name"), str):
                order.setdefault(node["name"], f"layer{len(order)}")
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    def rename(node):
        if isinstance(node, dict):
            return {key: rename(value) for key, value in node.items() if key != "name"}
        if isinstance(node, list):
            return [rename(value) for value in node]
        return order.get(node, node) if isinstance(node, str) else node

    collect(config)
    return rename(config)


def _weights_digest(model: keras.Model) -> str:
    digest = hashlib.sha256()
    for array in model.get_weights():
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _source_of(function: Callable) -> str:
    if not (inspect.isfunction(function) or inspect.ismethod(function)):
        return "\n".join(_own_methods_source(function))  # a callable object: its class's code
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):  # defined where no source is kept: fall back to its bytecode
        code = function.__code__
        return repr((code.co_code, code.co_consts))


def _own_methods_source(obj) -> list[str]:
    """Source of the methods an object's class (and its non-Keras bases) define themselves."""
    sources = []
    for cls in type(obj).__mro__:
        if cls is object or cls.__module__.split(".")[0] in {"keras", "tensorflow", "builtins"}:
            continue
        for attribute in sorted(vars(cls)):
            member = vars(cls)[attribute]
            if isinstance(member, property):
                member = member.fget
            if inspect.isfunction(member):
                sources.append(f"{cls.__qualname__}.{attribute}:{_source_of(member)}")
    return sources


def _optimizer_configs(obj) -> dict[str, Any]:
    found = {}
    for attribute, value in sorted(vars(obj).items()):
        if isinstance(value, keras.optimizers.Optimizer):
            config = dict(value.get_config())
            config.pop("name", None)
            found[attribute] = _describe_value(config)
    return found


def _compile_description(obj) -> Any:
    if not getattr(obj, "compiled", False):
        return None
    try:
        config = obj.get_compile_config()
    except Exception:  # a custom compile() may not record its arguments
        config = None
    return {"compile": _without_names(json.loads(json.dumps(config, default=str))),
            "optimizers": _optimizer_configs(obj)}


def describe_training(models, train: Callable, settings=None, trainer=None) -> dict[str, Any]:
    """Everything that decides a training's result, as JSON-able data (the key is its hash)."""
    models = _as_model_dict(models)
    description = {
        "models": {
            name: {
                "architecture": _architecture(model),
                "starting_weights": _weights_digest(model),
                "training": _compile_description(model),
                "code": _own_methods_source(model),
            }
            for name, model in sorted(models.items())
        },
        "settings": _describe_value(settings or {}),
        "train": _source_of(train),
    }
    if trainer is not None:
        description["trainer"] = {
            "class": type(trainer).__qualname__,
            "code": _own_methods_source(trainer),
            "training": _compile_description(trainer),
        }
    return description


def training_key(models, train: Callable, settings=None, trainer=None) -> str:
    """SHA-256 of `describe_training`: equal keys mean the same training would run."""
    described = json.dumps(describe_training(models, train, settings, trainer), sort_keys=True,
                           default=str)
    return hashlib.sha256(described.encode("utf-8")).hexdigest()


def entry_dir(run, notebook: str, name: str, key: str) -> Path:
    """The folder of one saved training: trained/<notebook>/<name>-<mode>-<key>."""
    _check_name("notebook", notebook)
    _check_name("name", name)
    return trained_dir() / notebook / f"{name}-{run.mode}-{key[:KEY_LENGTH]}"


def _history_dict(history) -> dict[str, list[float]]:
    if isinstance(history, keras.callbacks.History):
        history = history.history
    if not isinstance(history, Mapping):
        raise TypeError(
            "The training function must return the History from fit() (or a dict of per-epoch "
            f"lists); it returned a {type(history).__name__}."
        )
    return {str(key): [float(value) for value in np.ravel(values)]
            for key, values in history.items()}


def _as_history(values: Mapping[str, list[float]]) -> keras.callbacks.History:
    history = keras.callbacks.History()
    history.history = {key: list(items) for key, items in values.items()}
    history.epoch = list(range(max((len(items) for items in values.values()), default=0)))
    return history


def _kept_arrays(keep) -> dict[str, np.ndarray]:
    arrays = {}
    for index, kept in enumerate(keep):
        for key, array in kept.saved_arrays().items():
            arrays[f"{index}/{key}"] = np.asarray(array)
    return arrays


def _restore_kept(keep, arrays: Mapping[str, np.ndarray]) -> None:
    for index, kept in enumerate(keep):
        prefix = f"{index}/"
        kept.restore_arrays({key[len(prefix):]: value for key, value in arrays.items()
                             if key.startswith(prefix)})


def _save_entry(target: Path, models, history, keep, manifest) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # Everything is written into a hidden folder next to the target and renamed into place last:
    # an interrupted save leaves no entry at all (the next run trains again), never a broken one.
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".tmp-{target.name}-"))
    try:
        formats = {}
        for name, model in models.items():
            try:
                model.save(staging / f"{name}.keras")
                formats[name] = "keras"
            except NotImplementedError:
                # A model with tied layers cannot be saved whole (a reloaded copy would lose the
                # tie), so only its weights are kept; the notebook rebuilds the architecture.
                (staging / f"{name}.keras").unlink(missing_ok=True)
                model.save_weights(staging / f"{name}.weights.h5")
                formats[name] = "weights.h5"
        manifest = {**manifest, "formats": formats}
        (staging / HISTORY).write_text(json.dumps(history, indent=1), encoding="utf-8")
        arrays = _kept_arrays(keep)
        if arrays:
            np.savez_compressed(staging / KEPT_ARRAYS, **arrays)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        os.chmod(staging, 0o755)  # mkdtemp makes the folder private; trained models are not
        retired = None
        if target.exists():
            retired = target.with_name(f".old-{target.name}-{os.getpid()}-{time.time_ns()}")
            os.replace(target, retired)
        os.replace(staging, target)
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _remove_other_keys(target: Path) -> None:
    """Drop older entries (folders or files) of the same notebook, name and mode: they can never
    match again."""
    stem = target.name[: -(KEY_LENGTH + len(target.suffix) + 1)]
    for other in target.parent.glob(f"{stem}-*{target.suffix}"):
        if other == target or len(other.name) != len(target.name):
            continue
        if other.is_dir():
            shutil.rmtree(other, ignore_errors=True)
        else:
            other.unlink(missing_ok=True)


def _read_weights_file(model: keras.Model, path: Path) -> list[np.ndarray]:
    """Weights from a .weights.h5 file, read through the model and then put back as they were."""
    current = model.get_weights()
    try:
        model.load_weights(path)
        return model.get_weights()
    finally:
        model.set_weights(current)


def _load_entry(target: Path, key: str, models, keep):
    manifest = json.loads((target / MANIFEST).read_text(encoding="utf-8"))
    if manifest.get("key") != key or sorted(manifest.get("models", [])) != sorted(models):
        raise ValueError("its manifest does not match this training")
    formats = manifest.get("formats", {})
    loaded = {}
    for name, model in models.items():
        if formats.get(name, "keras") == "keras":
            saved = keras.saving.load_model(target / f"{name}.keras", safe_mode=True,
                                            compile=False)
            weights = saved.get_weights()
        else:
            weights = _read_weights_file(model, target / f"{name}.weights.h5")
        expected = [tuple(array.shape) for array in model.get_weights()]
        if [tuple(array.shape) for array in weights] != expected:
            raise ValueError(f"the saved {name} holds weights of other shapes")
        loaded[name] = weights
    history = json.loads((target / HISTORY).read_text(encoding="utf-8"))
    arrays = {}
    if (target / KEPT_ARRAYS).exists():
        with np.load(target / KEPT_ARRAYS, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
    # Only now that every file has loaded are the notebook's own networks changed.
    for name, model in models.items():
        model.set_weights(loaded[name])
    _restore_kept(keep, arrays)
    return history, manifest


def train_once(
    run,
    notebook: str,
    name: str,
    models,
    train: Callable[[], Any],
    *,
    settings: Mapping[str, Any] | None = None,
    trainer=None,
    keep=(),
    verbose: bool = True,
) -> keras.callbacks.History:
    """Run `train()` and save the result, or reload a saved one with the same key. NB 1-12.

    `models` (a model or a dict of them) are the networks whose weights are saved and restored in
    place; `train` is a function of no arguments that trains them and returns fit()'s History;
    `settings` are the values that shape the result but are not in the models (epochs, data size,
    seed, arrays); `trainer` is the object whose `fit` runs when it is not one of `models` (a GAN or
    VAE class); `keep` lists objects with `saved_arrays()` / `restore_arrays()` (such as
    `training.GanProgress`) whose records are saved too. Returns the History, reloaded or new.
    Either way the random generators are then reseeded from the key, so later cells see the same
    random numbers whether the model was trained or reloaded.
    """
    models = _as_model_dict(models, _check_name("name", name))
    for kept in keep:
        if not (hasattr(kept, "saved_arrays") and hasattr(kept, "restore_arrays")):
            raise TypeError(f"keep: a {type(kept).__name__} has no saved_arrays/restore_arrays.")
    key = training_key(models, train, settings, trainer)
    target = entry_dir(run, notebook, name, key)
    if not getattr(run, "retrain", False) and (target / MANIFEST).exists():
        started = time.perf_counter()
        try:
            history, manifest = _load_entry(target, key, models, keep)
        except Exception as error:  # a damaged or foreign entry is retrained, never trusted
            warnings.warn(f"Training {name} again: the saved copy in {target} did not load "
                          f"({error}).", stacklevel=2)
        else:
            if verbose:
                print(f"Reloaded the trained {name} in {time.perf_counter() - started:.1f} s "
                      f"(training it took {manifest['train_seconds']:.0f} s). "
                      "Set RETRAIN = True in the first cell to train again.")
            _reseed_from(key)
            return _as_history(history)
    started = time.perf_counter()
    history = _history_dict(train())
    seconds = time.perf_counter() - started
    manifest = {
        "notebook": notebook, "name": name, "mode": run.mode, "key": key,
        "models": sorted(models), "train_seconds": round(seconds, 2),
        "saved_at": time.strftime("%Y-%m-%d %H:%M:%S"), "keras": keras.__version__,
    }
    try:
        _save_entry(target, models, history, keep, manifest)
    except Exception as error:  # training succeeded; a failed save must not lose the result
        warnings.warn(f"Trained {name}, but could not save it to {target} ({error}); the "
                      "next run will train again.", stacklevel=2)
    else:
        _remove_other_keys(target)
        if verbose:
            print(f"Trained {name} in {seconds:.0f} s and saved it; the next run reloads it "
                  "in seconds.")
    _reseed_from(key)
    return _as_history(history)


def _reseed_from(key: str) -> None:
    # Training draws random numbers and reloading does not; reseeding from the key afterwards
    # puts the generators in the same state either way, so the models built in later cells
    # start from the same weights (and find their own saved copies) on every run.
    keras.utils.set_random_seed(int(key[:8], 16))


def compute_once(
    run, notebook: str, name: str, compute: Callable[[], Any], *, settings=None,
    verbose: bool = True,
) -> np.ndarray:
    """Run a slow computation that is not a Keras model (t-SNE) once; reload its array. NB 2.

    Keyed like `train_once`: by notebook, name, mode and a SHA-256 of `settings` (arrays by
    content) and of `compute`'s source; saved atomically as .npz, loaded without pickle.
    """
    description = {"settings": _describe_value(settings or {}), "compute": _source_of(compute)}
    key = hashlib.sha256(json.dumps(description, sort_keys=True).encode("utf-8")).hexdigest()
    target = entry_dir(run, notebook, name, key).with_suffix(".npz")
    if not getattr(run, "retrain", False) and target.exists():
        try:
            with np.load(target, allow_pickle=False) as stored:
                result = stored["result"]
        except Exception as error:  # a damaged file is recomputed, never trusted
            warnings.warn(f"Computing {name} again: {target} did not load ({error}).",
                          stacklevel=2)
        else:
            if verbose:
                print(f"Reloaded the saved {name} (set RETRAIN = True to compute it again).")
            return result
    result = np.asarray(compute())
    try:
        data.write_atomically(target, lambda tmp: np.savez_compressed(tmp, result=result))
    except Exception as error:  # the result is still returned; only the saved copy is missing
        warnings.warn(f"Computed {name}, but could not save it ({error}).", stacklevel=2)
    else:
        _remove_other_keys(target)
    return result
