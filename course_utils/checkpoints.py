"""Train once, present many times: a trained model reloads in a second, and never goes stale.

Plumbing for notebooks 1-15 (a student may skip it). A training cell reads like plain Keras,

    history = checkpoints.once(run, "08", "vae", vae).fit(train_set, epochs=EPOCHS)

and deleting `checkpoints.once(run, "08", "vae", ...)` leaves `vae.fit(...)`. The first run trains
and saves the model's variables (weights, batch-norm statistics, random-generator states), its
optimizers' state, the history and the snapshots of callbacks such as `training.GanProgress`, in
one .npz file under build/models/trained/ (or $COURSE_MODEL_DIR/trained). Later runs put them back
into the very same model, unless `run.retrain` is set (the RETRAIN switch of every notebook, or
COURSE_RETRAIN=1).

The key is a fingerprint of what training *computes*, not of how the cell is written:
- the starting state: every variable's value and shape, and any optimizer state already there
  (so the seed, and a model trained in an earlier cell, count);
- the compile settings (jit_compile, steps_per_execution) and every optimizer's configuration;
- fit's arguments (epochs, batch size, ...), the training and validation data themselves: a
  data.to_dataset pipeline by its recipe (the examples' content, batch size, seed, and how many
  epochs of it were read before), any other pipeline by one full pass over it (subset, order,
  batch size and preprocessing all count); and the callbacks' classes and settings (a fade-in
  schedule's length, GanProgress's fixed codings);
- the code of the model's own classes and custom layers (comments and docstrings left out);
- a probe: one real training step (and one validation step) run eagerly on the first batch from
  the starting state, then undone. Its losses, metrics and updated variables catch what no source
  reading can: an attribute such as a VAE's latent weight, a loss or metric body, a custom layer's
  call, a global read inside train_step, the learning rate.
A cell that only prints, plots or comments differently reloads. A reload advances the
to_dataset pipelines as far as training read them, so a later training on the same pipeline finds
its own entry whether this one trained or reloaded. The probe's numbers are exact on
one machine; another machine (other CPU, thread count or TensorFlow build) may train once more.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import io
import json
import os
import shutil
import textwrap
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np
import xxhash

from course_utils import data, files

MODEL_DIR_ENV_VAR = "COURSE_MODEL_DIR"
COURSE_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = COURSE_ROOT / "build" / "models"
# What `once(...).fit` prints; solutions.run_chapter and the tests count these very lines.
TRAINED_LINE = "and saved it"
RELOADED_LINE = "Reloaded the trained"
KEY_LENGTH = 12  # hex digits of the key in a file name: enough to tell trainings apart
ENTRIES_KEPT = 3  # per notebook, name and mode: switching a number back and forth reloads both
FORMAT = 2  # the layout of an entry; older layouts (folders) are never read, only pruned


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
    """Where trained models are kept: $COURSE_MODEL_DIR, else build/models. Notebooks 1-15."""
    return folder_from_env(MODEL_DIR_ENV_VAR, DEFAULT_MODEL_DIR)


def trained_dir() -> Path:
    """Where train-once entries live: <model_dir>/trained. Notebooks 1-15."""
    return model_dir() / "trained"


def _check_name(label: str, value: str) -> str:
    if not isinstance(value, str) or not value or not all(
        character.isascii() and (character.isalnum() or character == "_") for character in value
    ):
        raise ValueError(
            f"{label} must be a non-empty name of ASCII letters, digits and '_' (it names a "
            f"file); got {value!r}."
        )
    return value


def entry_path(run, notebook: str, name: str, key: str) -> Path:
    """The file of one saved training: trained/<notebook>/<name>-<mode>-<key>.npz. Plumbing."""
    _check_name("notebook", notebook)
    _check_name("name", name)
    return trained_dir() / notebook / f"{name}-{run.mode}-{key[:KEY_LENGTH]}.npz"


def saved_entries(folder: Path | None = None) -> dict[Path, dict[str, Any]]:
    """Each once(...).fit entry under <folder>/trained and its manifest, read-only. benchmark.py."""
    # folder: a model folder, model_dir() by default. Only once(...).fit's entries have a
    # manifest: compute_once's arrays, temporary files of a save under way or killed (hidden
    # names), older layouts (folders) and damaged files are left out.
    found = {}
    trained = (model_dir() if folder is None else Path(folder)) / "trained"
    for path in sorted(trained.glob("*/*.npz")):
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            with np.load(path, allow_pickle=False) as stored:
                if "manifest.json" not in stored.files:
                    continue
                manifest = json.loads(str(stored["manifest.json"]))
        except Exception:  # damaged: a training that did not save, as once(...).fit sees it
            continue
        if isinstance(manifest, dict):
            found[path] = manifest
    return found


# --- Describing values, data and code (the ingredients of the key) -----------------------------

def _buffer(array) -> np.ndarray:
    """The array's bytes, without a copy when it is contiguous (empty and 0-d arrays too)."""
    return np.ascontiguousarray(array).reshape(-1).view(np.uint8)


def _digest_array(array) -> dict[str, Any]:
    array = np.ascontiguousarray(np.asarray(array))
    return {"shape": list(array.shape), "dtype": str(array.dtype),
            "xxh3_128": xxhash.xxh3_128_hexdigest(_buffer(array))}


def _is_array(value) -> bool:
    return isinstance(value, np.ndarray) or (
        hasattr(value, "__array__") and hasattr(value, "shape") and hasattr(value, "dtype"))


def _describe_value(value: Any, *, strict: bool = True) -> Any:
    """A JSON-able stand-in for a setting; arrays become their shape, dtype and content digest.

    With strict=False, values that cannot be described (a function, a model) become None: they
    are references, not settings.
    """
    if isinstance(value, Mapping):
        return {str(key): _describe_value(item, strict=strict) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_describe_value(item, strict=strict) for item in value]
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if _is_array(value):
        return _digest_array(value)
    if strict:
        raise TypeError(
            f"Cannot use a {type(value).__name__} as a training setting: pass numbers, strings, "
            "lists, dicts or arrays."
        )
    return None


def _leaves(structure) -> list:
    if isinstance(structure, Mapping):
        return [leaf for key in sorted(structure) for leaf in _leaves(structure[key])]
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in _leaves(item)]
    return [structure]


def _is_dataset(value) -> bool:
    import tensorflow as tf

    return isinstance(value, tf.data.Dataset)


def _reshuffles(dataset) -> bool:
    """True if the pipeline has a shuffle that draws a new order every time it is read."""
    pending = [dataset]
    while pending:
        node = pending.pop()
        if getattr(node, "_reshuffle_each_iteration", False):
            return True
        try:
            pending.extend(node._inputs())
        except Exception:  # a dataset kind that does not list its inputs: assume the worst
            return True
    return False


_READ_BY_A_TRAINING: dict[int, tuple[Any, str]] = {}  # id -> (weak reference, training's name)


def _check_fresh(dataset, label: str, owner: str) -> None:
    """Refuse a reshuffling pipeline that an earlier once(...).fit already read: its order now
    depends on whether that training ran or was reloaded, so this one could never reload."""
    import weakref

    for key, (reference, _) in list(_READ_BY_A_TRAINING.items()):
        if reference() is None:
            del _READ_BY_A_TRAINING[key]
    if not _reshuffles(dataset):
        return
    known = _READ_BY_A_TRAINING.get(id(dataset))
    if known is not None and known[0]() is dataset:
        raise ValueError(
            f"The {label} dataset was already read by an earlier training ({known[1]}), and it "
            "reshuffles every time it is read: what this training would see depends on whether "
            "that one trained or was reloaded. Build the dataset in the cell that trains (e.g. "
            "train_set = data.to_dataset(...) right before fit), so each training reads a fresh "
            "one."
        )
    _READ_BY_A_TRAINING[id(dataset)] = (weakref.ref(dataset), owner)


class _DataFingerprint:
    """A content digest of training or validation data, and its first batch for the probe."""

    def __init__(self, value, batch_size: int | None, label: str, owner: str = "?",
                 steps: int | None = None):
        self.first_batch = None
        self.batches = 0
        if value is None:
            self.digest = None
            return
        digest = xxhash.xxh3_128()  # not cryptographic: it tells edits apart, at memory speed
        recipe = getattr(value, "course_recipe", None) if _is_dataset(value) else None
        if recipe is not None:
            # A data.to_dataset pipeline says what it will yield (its examples' digest, batch
            # size, seed and how often it was read): no pass over the data needed.
            digest.update(recipe.describe().encode())
            self.first_batch = recipe.first_batch()
            self.batches = recipe.n_batches
        elif _is_dataset(value):
            _check_fresh(value, label, owner)
            cardinality = int(value.cardinality())  # -1: endless (.repeat()), -2: unknown
            if cardinality == -1 and steps is None:
                fix = "validation_steps" if label == "validation" else "steps_per_epoch"
                raise ValueError(
                    f"The {label} dataset repeats forever: pass {fix} to fit (the digest then "
                    "reads exactly the batches training will see), or end it with .take(n)."
                )
            if cardinality < 0 and steps is not None:
                value = value.take(steps)
            # One full pass (what fit will read), so that the subset, the order, the batch size
            # and any preprocessing in the pipeline are all in the key.
            for element in value.as_numpy_iterator():
                if self.first_batch is None:
                    self.first_batch = element
                for leaf in _leaves(element):
                    leaf = np.ascontiguousarray(leaf)
                    digest.update(f"{leaf.dtype}{leaf.shape}".encode())
                    digest.update(_buffer(leaf))
                self.batches += 1
            if self.first_batch is None:
                raise ValueError(f"The {label} dataset yields no batch at all: check its size "
                                 "and batch size (drop_remainder=True on too few examples?).")
        elif all(_is_array(leaf) for leaf in _leaves(value)):
            leaves = _leaves(value)
            lengths = {len(leaf) for leaf in leaves if np.ndim(leaf) > 0}
            if not leaves or lengths == {0}:
                raise ValueError(f"The {label} data is empty: pass at least one example.")
            for leaf in leaves:
                digest.update(json.dumps(_digest_array(leaf)).encode())
            size = batch_size or 32
            self.first_batch = _map_structure(lambda leaf: np.asarray(leaf)[:size], value)
            self.batches = -(-min(lengths) // size) if lengths else 1
        else:
            raise TypeError(
                f"once(...).fit can fingerprint {label} data given as NumPy arrays (or tuples / "
                f"dicts of them) or a tf.data.Dataset, not a {type(value).__name__}: convert it, "
                "e.g. with data.to_dataset(inputs, targets)."
            )
        self.digest = digest.hexdigest()


def _map_structure(function, structure):
    if isinstance(structure, Mapping):
        return {key: _map_structure(function, item) for key, item in structure.items()}
    if isinstance(structure, tuple):
        return tuple(_map_structure(function, item) for item in structure)
    if isinstance(structure, list):
        return [_map_structure(function, item) for item in structure]
    return function(structure)


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module))
                and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


def _describe_code(code) -> str:
    """Bytecode, names and constants, nested code objects included (never their addresses)."""
    constants = [_describe_code(constant) if inspect.iscode(constant) else repr(constant)
                 for constant in code.co_consts]
    return repr((code.co_code.hex(), code.co_names, constants))


def _normalised_source(obj) -> str:
    """The code of a function or class without comments, docstrings or layout (its AST).

    A class is read method by method: Python cannot find the source of a class defined in a
    notebook cell, but it can find its functions'.
    """
    if inspect.isclass(obj):
        parts = []
        for attribute, member in sorted(vars(obj).items()):
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if isinstance(member, property):
                member = member.fget
            if inspect.isfunction(member):
                parts.append(f"{attribute}:{_normalised_source(member)}")
            elif isinstance(member, (int, float, str, bool, tuple)) and not attribute.startswith(
                    "__"):
                parts.append(f"{attribute}={member!r}")
        return "\n".join(parts)
    try:
        source = textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):  # no source kept (e.g. built at run time): its bytecode
        code = getattr(obj, "__code__", None)
        return _describe_code(code) if code else type(obj).__qualname__
    try:
        return ast.dump(_strip_docstrings(ast.parse(source)), annotate_fields=False)
    except SyntaxError:  # a lambda inside a longer statement: its lines as they are
        return source


_LIBRARIES = {"keras", "tensorflow", "builtins", "numpy"}


def _own_classes(obj) -> list[type]:
    """The classes of obj's type that are the course's or the student's, not Keras' own."""
    return [cls for cls in type(obj).__mro__
            if cls is not object and cls.__module__.split(".")[0] not in _LIBRARIES]


def _code_of(model: keras.Model, callbacks) -> dict[str, str]:
    objects = [model, *_sublayers(model), *callbacks]
    classes = {cls for obj in objects for cls in _own_classes(obj)}
    return {f"{cls.__module__}.{cls.__qualname__}": _normalised_source(cls)
            for cls in sorted(classes, key=lambda cls: (cls.__module__, cls.__qualname__))}


def _sublayers(model: keras.Model) -> list:
    try:
        return list(model._flatten_layers(include_self=False))
    except (AttributeError, TypeError):
        return list(getattr(model, "layers", []))


_CALLBACK_REFERENCES = {"model", "params", "validation_data"}
DISPLAY_ONLY = ("show",)  # callback attributes that only draw (GanProgress's live grid)


def _describe_callable(function) -> Any:
    # A schedule or other function a callback calls: its code, its default arguments, the numbers
    # it closes over and the module-level numbers it reads (a DECAY constant, say).
    if isinstance(function, functools.partial):
        return {"partial": _describe_callable(function.func),
                "args": _describe_value(list(function.args), strict=False),
                "keywords": _describe_value(dict(function.keywords), strict=False)}
    if inspect.isfunction(function):
        code = function.__code__
        closure = [cell.cell_contents for cell in function.__closure__ or ()]
        globals_read = {name: function.__globals__[name] for name in code.co_names
                        if name in function.__globals__
                        and not callable(function.__globals__[name])
                        and not inspect.ismodule(function.__globals__[name])}
        return {"code": _normalised_source(function),
                "defaults": _describe_value(list(function.__defaults__ or ()), strict=False),
                "keyword_defaults": _describe_value(dict(function.__kwdefaults__ or {}),
                                                    strict=False),
                "closure": _describe_value(closure, strict=False),
                "globals": _describe_value(globals_read, strict=False)}
    return {"class": type(function).__qualname__,
            "settings": _describe_value(dict(vars(function)) if hasattr(function, "__dict__")
                                        else {}, strict=False)}


def _describe_callback(callback) -> dict[str, Any]:
    display_only = set(getattr(callback, "display_only", DISPLAY_ONLY))
    settings = {}
    for attribute, value in sorted(vars(callback).items()):
        if attribute in _CALLBACK_REFERENCES or attribute in display_only:
            continue
        if isinstance(value, (keras.Model, keras.layers.Layer)):
            continue
        described = (_describe_callable(value) if callable(value)
                     else _describe_value(value, strict=False))
        if described is not None and described != [] and described != {}:
            settings[attribute] = described
    return {"class": f"{type(callback).__module__}.{type(callback).__qualname__}",
            "settings": settings}


# Keras' own callbacks whose whole effect is in the model's or optimizer's variables (restored by
# a reload) or on screen; the others keep records (EarlyStopping.stopped_epoch, a History, a CSV
# file, TensorBoard logs, checkpoints on disk) that a reload could not replay.
REPLAYABLE_KERAS_CALLBACKS = ("ProgbarLogger", "TerminateOnNaN", "LearningRateScheduler",
                              "ReduceLROnPlateau")


def _unreplayable(callbacks) -> list[str]:
    """Callbacks whose side effects (a list they append to, a file they write) a reload could not
    replay; fine are the Keras ones above, ones that keep arrays, and ones marked reload_safe."""
    names = []
    for callback in callbacks if isinstance(callbacks, (list, tuple)) else [callbacks]:
        cls = type(callback)
        if (cls.__module__.split(".")[0] == "keras"
                and cls.__name__ in REPLAYABLE_KERAS_CALLBACKS):
            continue
        if getattr(callback, "reload_safe", False) or (
                hasattr(callback, "saved_arrays") and hasattr(callback, "restore_arrays")):
            continue
        names.append(cls.__qualname__)
    return names


def _optimizers(model: keras.Model) -> dict[str, keras.optimizers.Optimizer]:
    """Every optimizer the model holds as an attribute (`optimizer`, a GAN's two)."""
    return {attribute: value for attribute, value in sorted(vars(model).items())
            if isinstance(value, keras.optimizers.Optimizer)}


def _optimizer_config(optimizer) -> Any:
    try:
        config = dict(optimizer.get_config())
    except NotImplementedError as error:
        raise ValueError(_UNCOPYABLE.format(type(optimizer).__name__, error)) from None
    config = dict(config)
    config.pop("name", None)
    return _describe_value(json.loads(json.dumps(config, default=str)), strict=False)


def _variables(model: keras.Model) -> list:
    """Every variable the model owns, in a fixed order: weights, statistics, generator states."""
    seen, variables = set(), []
    for variable in model.variables:
        if id(variable) not in seen:
            seen.add(id(variable))
            variables.append(variable)
    return variables


def _values(variables) -> list[np.ndarray]:
    return [np.array(variable.numpy()) for variable in variables]


def _digest_values(values) -> str:
    digest = xxhash.xxh3_128()
    for value in values:
        value = np.ascontiguousarray(value)
        digest.update(f"{value.dtype}{value.shape}".encode())
        digest.update(_buffer(value))
    return digest.hexdigest()


def _global_seed_state():
    # keras.random calls without a seed draw from one global generator outside any model.
    try:
        from keras.src.random.seed_generator import global_seed_generator

        return global_seed_generator().state
    except Exception:  # a Keras without it: nothing to save
        return None


_UNCOPYABLE = (
    "once(...).fit copies the {} optimizer to probe a training step, and could not ({}): "
    "give a custom learning-rate schedule a get_config() and register it with "
    "@keras.saving.register_keras_serializable(), as Keras needs for saving anyway."
)


def _copy_optimizer(optimizer):
    try:
        return type(optimizer).from_config(optimizer.get_config())
    except Exception as error:
        raise ValueError(_UNCOPYABLE.format(type(optimizer).__name__, error)) from None


# --- The probe -----------------------------------------------------------------------------

def _as_tensors(batch):
    import tensorflow as tf

    return _map_structure(tf.convert_to_tensor, batch)


def _probe(model: keras.Model, train_batch, valid_batch) -> str:
    """One training step (and one validation step) run eagerly from the current state, then
    undone: a digest of the losses, metrics and updated variables."""
    owned = len(_variables(model))
    variables = _variables(model) + list(model.metrics_variables)
    before = _values(variables)
    seed_state = _global_seed_state()
    seed_before = None if seed_state is None else np.array(seed_state.numpy())
    originals = _optimizers(model)
    digest = xxhash.xxh3_128()
    try:
        # Fresh copies of the optimizers: the real ones must stay exactly as they are (unbuilt,
        # or holding the state that training continues from).
        copies = {attribute: _copy_optimizer(optimizer)
                  for attribute, optimizer in originals.items()}
        for attribute, copy in copies.items():
            setattr(model, attribute, copy)
        logs = model.train_step(_as_tensors(train_batch))
        if len(_variables(model)) != owned:
            raise ValueError(
                f"{model.name} created weights during its first training step, so its starting "
                "weights cannot be read before training: build its networks first (give them a "
                "keras.Input, or call them once on a batch) before once(...).fit."
            )
        digest.update(_digest_logs(logs).encode())
        digest.update(_digest_values(_values(_variables(model))).encode())
        if valid_batch is not None:
            digest.update(_digest_logs(model.test_step(_as_tensors(valid_batch))).encode())
    finally:
        for attribute, optimizer in originals.items():
            setattr(model, attribute, optimizer)
        for variable, value in zip(variables, before, strict=True):
            variable.assign(value)
        for metric in model.metrics:  # including those the probe's step created
            metric.reset_state()
        if seed_state is not None:
            seed_state.assign(seed_before)
    return digest.hexdigest()


def _digest_logs(logs) -> str:
    if not isinstance(logs, Mapping):
        logs = {"value": logs}
    return json.dumps({str(name): np.asarray(value).astype("float64").tobytes().hex()
                       for name, value in sorted(logs.items())})


# --- The fit call --------------------------------------------------------------------------

_FIT = inspect.signature(keras.Model.fit)
_NOT_SETTINGS = {"self", "x", "y", "validation_data", "sample_weight", "callbacks", "verbose"}


def _fit_arguments(args, kwargs) -> dict[str, Any]:
    try:
        bound = _FIT.bind(None, *args, **kwargs)
    except TypeError as error:
        raise TypeError(f"once(...).fit takes the arguments of keras.Model.fit: {error}.") from None
    return {name: value for name, value in bound.arguments.items() if name != "self"}


def _check_model(model) -> keras.Model:
    if not isinstance(model, keras.Model):
        raise TypeError(f"once() needs a keras.Model to train, got a {type(model).__name__}.")
    if not getattr(model, "compiled", False):
        raise ValueError(f"{model.name} is not compiled: call its compile(...) before "
                         "once(...).fit, as you would before fit.")
    return model


def _needs_build(layer) -> bool:
    # A layer that keeps Keras' default build() has nothing to create there (an upsampling, a
    # buffer that makes its variables in __init__): unbuilt in name only.
    return not layer.built and type(layer).build is not keras.layers.Layer.build


def _build(model: keras.Model, batch) -> None:
    if not any(_needs_build(layer) for layer in _sublayers(model)):
        return  # a subclassed trainer is "unbuilt" until fit runs, but its networks are built
    # What fit itself does first: weights are drawn here, so the starting state can be read.
    try:
        model._symbolic_build(data_batch=_as_tensors(batch))
    except Exception as error:
        raise ValueError(
            f"{model.name} could not be built from its first batch ({error}). Give its "
            "networks a keras.Input (or call them once on a batch) before training."
        ) from error


class _Training:
    """Everything about one fit call that decides its result, and the key made from it."""

    def __init__(self, model, args, kwargs, owner: str = "?"):
        self.model = model
        self.arguments = _fit_arguments(args, kwargs)
        callbacks = self.arguments.get("callbacks") or []
        self.callbacks = list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
        self.kept = [callback for callback in self.callbacks
                     if hasattr(callback, "saved_arrays") and hasattr(callback, "restore_arrays")]
        batch_size = self.arguments.get("batch_size")
        x, y = self.arguments.get("x"), self.arguments.get("y")
        steps = self.arguments.get("steps_per_epoch")
        total = None if steps is None else int(steps) * int(self.arguments.get("epochs", 1))
        self.train_data = _DataFingerprint(x if y is None else (x, y), batch_size, "training",
                                           owner, steps=total)
        self.sample_weight = _DataFingerprint(self.arguments.get("sample_weight"), batch_size,
                                              "sample-weight")
        validation = self.arguments.get("validation_data")
        self.valid_data = _DataFingerprint(
            validation, self.arguments.get("validation_batch_size") or batch_size, "validation",
            owner, steps=self.arguments.get("validation_steps"))
        _build(model, self._train_batch())
        # The to_dataset pipelines this fit reads: a reload advances them as far as training did.
        recipes = [recipe for value in (x, validation) if _is_dataset(value)
                   for recipe in data.dataset_recipes(value)]
        self.recipes = list({id(recipe): recipe for recipe in recipes}.values())

    def reads(self) -> list[int]:
        return [int(recipe.reads.numpy()) for recipe in self.recipes]

    def _train_batch(self):
        batch = self.train_data.first_batch
        x, y = self.arguments.get("x"), self.arguments.get("y")
        if not _is_dataset(x):
            # fit() hands train_step (x, y) pairs built from arrays; a lone x becomes (x,).
            batch = batch if y is not None else (batch,)
        return batch

    def describe(self) -> dict[str, Any]:
        model = self.model
        variables = _variables(model)
        optimizers = _optimizers(model)
        settings = {name: _describe_value(value, strict=False)
                    for name, value in sorted(self.arguments.items()) if name not in _NOT_SETTINGS}
        return {
            "format": FORMAT,
            "model": f"{type(model).__module__}.{type(model).__qualname__}",
            "variables": [[list(variable.shape), str(variable.dtype)] for variable in variables],
            "start": _digest_values(_values(variables)),
            "optimizer_state": {
                attribute: _digest_values(_values(optimizer.variables))
                for attribute, optimizer in optimizers.items() if optimizer.built},
            "optimizers": {attribute: [type(optimizer).__qualname__, _optimizer_config(optimizer)]
                           for attribute, optimizer in optimizers.items()},
            "compile": {"jit_compile": _describe_value(getattr(model, "jit_compile", None),
                                                       strict=False),
                        "steps_per_execution": getattr(model, "steps_per_execution", None),
                        "run_eagerly": getattr(model, "run_eagerly", None)},
            "fit": settings,
            "data": [self.train_data.digest, self.sample_weight.digest, self.valid_data.digest],
            "callbacks": [_describe_callback(callback) for callback in self.callbacks],
            "code": _code_of(model, self.callbacks),
        }

    def key(self) -> tuple[str, str]:
        """(key, seed key): the probe's result is in the first only, so that the random numbers
        after training are the same on every machine."""
        described = self.describe()
        static = json.dumps(described, sort_keys=True, default=str)
        valid_batch = self.valid_data.first_batch
        probe = _probe(self.model, self._train_batch(), valid_batch)
        key = hashlib.sha256(f"{static}|{probe}".encode()).hexdigest()
        return key, hashlib.sha256(static.encode()).hexdigest()


# --- Saving and loading an entry -------------------------------------------------------------

def _optimizer_indices(model, optimizer) -> list[int] | None:
    """Where the optimizer's variables sit in model.trainable_variables (to rebuild it)."""
    tracked = getattr(optimizer, "_trainable_variables", None)
    if tracked is None:
        return None
    positions = {id(variable): index for index, variable in enumerate(model.trainable_variables)}
    indices = [positions.get(id(variable)) for variable in tracked]
    return None if None in indices else indices


def _entry_arrays(training: _Training, history: dict, manifest: dict) -> dict[str, np.ndarray]:
    model = training.model
    arrays = {f"variable/{index}": value
              for index, value in enumerate(_values(_variables(model)))}
    optimizers = {}
    for attribute, optimizer in _optimizers(model).items():
        indices = _optimizer_indices(model, optimizer) if optimizer.built else None
        if indices is None:
            continue
        optimizers[attribute] = {"indices": indices, "count": len(optimizer.variables)}
        for index, value in enumerate(_values(optimizer.variables)):
            arrays[f"optimizer/{attribute}/{index}"] = value
    for index, kept in enumerate(training.kept):
        for name, value in kept.saved_arrays().items():
            arrays[f"kept/{index}/{name}"] = np.asarray(value)
    manifest = {**manifest, "optimizers": optimizers}
    manifest["epochs"] = [int(epoch) for epoch in getattr(training, "epochs", [])]
    manifest["dataset_reads"] = list(getattr(training, "dataset_reads", []))
    arrays["history.json"] = np.array(json.dumps(history))
    arrays["manifest.json"] = np.array(json.dumps(manifest))
    return arrays


def _save_entry(target: Path, arrays: Mapping[str, np.ndarray]) -> None:
    # One file, written next to its place and renamed onto it (files.write_atomically): a killed
    # save leaves either the old entry or the new one, never half of either.
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    content = buffer.getvalue()

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as file:
            file.write(content[: len(content) // 2])
            file.flush()
            files.stage("writing")  # the tests interrupt a save here, half written
            file.write(content[len(content) // 2:])

    files.write_atomically(target, write)


class _Loaded:
    """A saved entry read and checked in full before anything in the notebook changes."""

    def __init__(self, target: Path, key: str, training: _Training):
        with np.load(target, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
        self.manifest = json.loads(str(arrays.pop("manifest.json")))
        self.history = json.loads(str(arrays.pop("history.json")))
        if self.manifest.get("key") != key or self.manifest.get("format") != FORMAT:
            raise ValueError("its manifest does not match this training")
        model = training.model
        variables = _variables(model)
        self.variables = [arrays.get(f"variable/{index}") for index in range(len(variables))]
        for variable, value in zip(variables, self.variables, strict=True):
            if value is None or tuple(value.shape) != tuple(variable.shape):
                raise ValueError(f"the saved {variable.path} is missing or of another shape")
        self.optimizers = {}
        for attribute, saved in self.manifest.get("optimizers", {}).items():
            values = [arrays.get(f"optimizer/{attribute}/{index}")
                      for index in range(saved["count"])]
            if attribute not in _optimizers(model) or any(value is None for value in values):
                raise ValueError(f"the saved state of the optimizer {attribute!r} is incomplete")
            self.optimizers[attribute] = (saved["indices"], values)
        self.dataset_reads = self.manifest.get("dataset_reads")
        if (not isinstance(self.dataset_reads, list)
                or len(self.dataset_reads) != len(training.recipes)):
            raise ValueError("it does not say how far training read its datasets")
        self.kept = []
        for index in range(len(training.kept)):
            prefix = f"kept/{index}/"
            self.kept.append({name[len(prefix):]: value for name, value in arrays.items()
                              if name.startswith(prefix)})

    def restore(self, training: _Training) -> None:
        model = training.model
        for attribute, (indices, values) in self.optimizers.items():
            optimizer = getattr(model, attribute)
            if not optimizer.built:
                trainable = model.trainable_variables
                optimizer.build([trainable[index] for index in indices])
            if [tuple(v.shape) for v in optimizer.variables] != [tuple(v.shape) for v in values]:
                raise ValueError(f"the optimizer {attribute!r} holds variables of other shapes")
            for variable, value in zip(optimizer.variables, values, strict=True):
                variable.assign(value)
        for variable, value in zip(_variables(model), self.variables, strict=True):
            variable.assign(value)
        for kept, arrays in zip(training.kept, self.kept, strict=True):
            kept.restore_arrays(arrays)
        # Last, as nothing can fail after it: the next read of each pipeline draws the order it
        # would have drawn after training.
        for recipe, reads in zip(training.recipes, self.dataset_reads, strict=True):
            recipe.reads.assign_add(int(reads))


class _Snapshot:
    """The model's and its optimizers' state, to put back if a reload fails half-way."""

    def __init__(self, training: _Training):
        model = training.model
        self.variables = _values(_variables(model))
        # An unbuilt optimizer already holds its step count and learning rate.
        self.optimizers = {attribute: _values(optimizer.variables)
                           for attribute, optimizer in _optimizers(model).items()}
        self.kept = [kept.saved_arrays() for kept in training.kept]

    def restore(self, training: _Training) -> None:
        model = training.model
        for variable, value in zip(_variables(model), self.variables, strict=True):
            variable.assign(value)
        for attribute, optimizer in _optimizers(model).items():
            values = self.optimizers.get(attribute, [])
            if len(values) != len(optimizer.variables):
                # Built by the failed reload: back to the state of a freshly built optimizer.
                fresh = type(optimizer).from_config(optimizer.get_config())
                fresh.build(optimizer._trainable_variables)
                values = _values(fresh.variables)
            for variable, value in zip(optimizer.variables, values, strict=True):
                variable.assign(value)
        for kept, arrays in zip(training.kept, self.kept, strict=True):
            kept.restore_arrays(arrays)


def _prune(target: Path) -> None:
    """Keep the newest few entries of one notebook, name and mode; drop older layouts' folders."""
    stem = target.name[: -(KEY_LENGTH + len(".npz") + 1)]
    others = [other for other in target.parent.glob(f"{stem}-*")
              if other != target and len(other.name) in {len(target.name),
                                                         len(target.name) - len(".npz")}]
    for legacy in [other for other in others if other.is_dir()]:
        shutil.rmtree(legacy, ignore_errors=True)
    # Temporary files that killed saves of *other* keys left (.<entry>.npz-<pid>-....part.npz).
    for part in target.parent.glob(f".{stem}-*.npz-*{files.PART_MARKER}.npz"):
        files.remove_stale_parts(target.parent / part.name[1: part.name.index(".npz-") + 4])
    entries = sorted((other for other in others if other.is_file()),
                     key=lambda other: other.stat().st_mtime, reverse=True)
    for old in entries[ENTRIES_KEPT - 1:]:
        old.unlink(missing_ok=True)


def _as_history(model, values: Mapping[str, list[float]], params=None,
                epochs=None) -> keras.callbacks.History:
    history = keras.callbacks.History()
    history.history = {key: list(items) for key, items in values.items()}
    history.epoch = list(epochs) if epochs else list(
        range(max((len(items) for items in values.values()), default=0)))
    history.params = params or {}
    history.set_model(model)
    model.history = history
    return history


def _history_dict(history) -> dict[str, list[float]]:
    return {str(key): [float(value) for value in np.ravel(values)]
            for key, values in history.history.items()}


def _reseed_from(key: str) -> None:
    # Training draws random numbers and reloading does not; reseeding from the key afterwards
    # puts the generators in the same state either way, so the models built in later cells
    # start from the same weights (and find their own saved copies) on every run.
    keras.utils.set_random_seed(int(key[:8], 16))


class once:  # noqa: N801 - reads as a verb in the notebooks: checkpoints.once(...).fit(...)
    """Wrap a compiled model so that `.fit(...)` trains once and reloads afterwards. NB 1-15.

    `run` comes from config.setup (its mode and RETRAIN switch), `notebook` is the two-digit
    number, `name` names the saved entry. `.fit` takes exactly keras.Model.fit's arguments and
    returns its History (reloaded or new), whose `train_seconds` is how long the training took
    when it ran; the model itself ends up trained either way.
    """

    def __init__(self, run, notebook: str, name: str, model: keras.Model, *,
                 verbose: bool = True):
        self.run = run
        self.notebook = _check_name("notebook", notebook)
        self.name = _check_name("name", name)
        self.model = model
        self.verbose = verbose
        if not hasattr(run, "mode"):
            raise TypeError("once() needs the run settings from config.setup(...) first, e.g. "
                            f'once(run, "08", "vae", vae); got a {type(run).__name__}.')

    def fit(self, *args, **kwargs) -> keras.callbacks.History:
        """keras.Model.fit, or a reload of its saved result when nothing that shapes it changed."""
        started = time.perf_counter()
        model = _check_model(self.model)
        unreplayable = _unreplayable(_fit_arguments(args, kwargs).get("callbacks") or [])
        if unreplayable:
            # Their records would stay empty after a reload: train every time, and say why.
            if self.verbose:
                print(f"Training {self.name} (not saved for reloading: the callback "
                      f"{', '.join(unreplayable)} records what happens during fit, and a reload "
                      "could not replay that).")
            return model.fit(*args, **kwargs)
        training = _Training(model, args, kwargs, owner=f"notebook {self.notebook}'s {self.name}")
        key, seed_key = training.key()
        target = entry_path(self.run, self.notebook, self.name, key)
        if not getattr(self.run, "retrain", False) and target.is_file():
            history = self._reload(training, target, key, started)
            if history is not None:
                _reseed_from(seed_key)
                return history  # its train_seconds: how long the saved training took
        started = time.perf_counter()
        reads_before = training.reads()
        history = model.fit(*args, **kwargs)
        seconds = time.perf_counter() - started
        history.train_seconds = seconds  # the same attribute a reload gives back
        training.epochs = list(getattr(history, "epoch", []))
        training.dataset_reads = [after - before for before, after
                                  in zip(reads_before, training.reads(), strict=True)]
        manifest = {"format": FORMAT, "notebook": self.notebook, "name": self.name,
                    "mode": self.run.mode, "key": key, "train_seconds": round(seconds, 2),
                    "saved_at": time.strftime("%Y-%m-%d %H:%M:%S"), "keras": keras.__version__,
                    "params": _describe_value(getattr(history, "params", {}) or {},
                                              strict=False)}
        try:
            _save_entry(target, _entry_arrays(training, _history_dict(history), manifest))
        except Exception as error:  # training succeeded; a failed save must not lose the result
            warnings.warn(f"Trained {self.name}, but could not save it to {target} ({error}); "
                          "the next run will train again.", stacklevel=2)
        else:
            _prune(target)
            if self.verbose:
                print(f"Trained {self.name} in {seconds:.0f} s {TRAINED_LINE}; the next run "
                      "reloads it in seconds.")
        _reseed_from(seed_key)
        return history

    def _reload(self, training: _Training, target: Path, key: str, started: float):
        files.remove_stale_parts(target)  # what a save killed in an earlier run left behind
        snapshot = _Snapshot(training)
        try:
            loaded = _Loaded(target, key, training)
            loaded.restore(training)
        except KeyboardInterrupt:
            snapshot.restore(training)  # half a reload is never left in the notebook's model
            raise
        except Exception as error:  # a damaged or foreign entry is retrained, never trusted
            snapshot.restore(training)  # training starts from where it would have started
            warnings.warn(f"Training {self.name} again: the saved copy {target} did not load "
                          f"({error}).", stacklevel=3)
            return None
        if self.verbose:
            print(f"{RELOADED_LINE} {self.name} in {time.perf_counter() - started:.1f} s "
                  f"(training it took {loaded.manifest['train_seconds']:.0f} s). "
                  "Set RETRAIN = True in the first cell to train again.")
        history = _as_history(training.model, loaded.history, loaded.manifest.get("params"),
                              loaded.manifest.get("epochs"))
        history.train_seconds = float(loaded.manifest["train_seconds"])
        return history


def compute_once(
    run, notebook: str, name: str, compute: Callable[[], Any], *, settings=None,
    verbose: bool = True,
) -> np.ndarray:
    """Run a slow computation that is not a Keras model (t-SNE) once; reload its array. NB 2.

    Keyed by notebook, name, mode and a digest of `settings` (arrays by content) and of
    `compute`'s code; saved atomically as .npz, loaded without pickle.
    """
    description = {"settings": _describe_value(settings or {}),
                   "compute": _normalised_source(compute)}
    key = hashlib.sha256(json.dumps(description, sort_keys=True).encode("utf-8")).hexdigest()
    target = entry_path(run, notebook, name, key)
    if not getattr(run, "retrain", False) and target.is_file():
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
        files.write_atomically(target, lambda tmp: np.savez_compressed(tmp, result=result))
    except Exception as error:  # the result is still returned; only the saved copy is missing
        warnings.warn(f"Computed {name}, but could not save it ({error}).", stacklevel=2)
    else:
        _prune(target)
    return result
