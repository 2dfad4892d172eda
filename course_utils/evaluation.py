"""A Fashion-MNIST classifier that judges generated images, trained once per mode (checkpoints).

Plumbing for notebooks 9-15: it tells which class a generated image looks like (mode collapse as
a number) and, in notebook 15, gives the features for the domain Fréchet distance.
"""

from __future__ import annotations

import collections
import weakref
from pathlib import Path

import keras
import numpy as np

from course_utils import checkpoints, data, files, metrics


def build_fashion_classifier() -> keras.Model:
    """The judge: a small CNN whose 128-unit "features" layer feeds the domain FID. Notebook 15."""
    return keras.Sequential(
        [
            keras.Input((28, 28)),
            keras.layers.Reshape((28, 28, 1)),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPool2D(),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.MaxPool2D(),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(128, activation="relu", name="features"),
            keras.layers.Dense(10, activation="softmax", name="class_probabilities"),
        ],
        name="fashion_classifier",
    )


def load_fashion_classifier(run, verbose=True) -> keras.Model:
    """Return the judge classifier, trained once per run mode (checkpoints.once). NB 9-15."""
    epochs = run.pick(smoke=1, default=4, book=10)
    keras.utils.set_random_seed(run.seed)  # the same judge in every notebook that asks for it
    judge = build_fashion_classifier()
    judge.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    fashion = data.load_fashion_mnist(limit=2000 if run.mode == "smoke" else None)
    train_set = data.to_dataset(fashion.X_train, fashion.y_train, batch_size=128, seed=run.seed)
    checkpoints.once(run, "judge", "fashion_classifier", judge, verbose=verbose).fit(
        train_set, epochs=epochs, verbose=0)
    return judge


def _check_judge_images(images, classifier, batch_size=256) -> np.ndarray:
    from course_utils import checks

    if not callable(getattr(classifier, "predict", None)):
        raise TypeError(f"The judge must be a Keras model, got {type(classifier).__name__}; pass "
                        "evaluation.load_fashion_classifier(run).")
    checks.check_count(batch_size, "batch_size", 1)
    # NaN or inf images would still get labels and a finite FID: refuse them, and images on
    # another scale (tanh, 0-255), with the rescaling that fixes them.
    batch = checks.check_images(images, "images", (0.0, 1.0))
    if batch.shape[1:] != (28, 28):
        raise ValueError(f"The judge expects 28x28 images, got a batch shaped {batch.shape}; "
                         "crop or resize them first (e.g. padded 32x32 images[:, 2:30, 2:30]).")
    return batch.astype("float32")


# The judge's two heads in one model, built once per judge: a new model per call would trace a
# new predict function every time. Plumbing a student may skip.
_JUDGE_HEADS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# The last few batches judged, by the judge's weights and the images' content: notebook 15 asks
# for the classes and the features of the same samples, which one pass gives.
_RECENT_JUDGEMENTS: collections.OrderedDict = collections.OrderedDict()
_JUDGEMENTS_KEPT = 8


def _judge_heads(classifier):
    heads = _JUDGE_HEADS.get(classifier)
    if heads is None:
        try:
            features = classifier.get_layer("features")
        except ValueError:
            raise ValueError("This classifier has no layer named 'features', so it is not the "
                             "judge; pass evaluation.load_fashion_classifier(run).") from None
        heads = keras.Model(classifier.inputs[0], [features.output, classifier.outputs[0]])
        _JUDGE_HEADS[classifier] = heads
    return heads


JUDGED_KEPT = 64  # judged batches kept on disk (a few MB): notebook 15 asks for about a dozen


def judged_dir() -> Path:
    """Where the judge's answers are kept between runs: <model_dir>/judged. Notebooks 9-15."""
    return checkpoints.model_dir() / "judged"


def _load_judged(path: Path):
    try:
        with np.load(path, allow_pickle=False) as stored:
            return stored["features"], stored["probabilities"]
    except Exception:  # missing or damaged: judged again, and written anew
        return None


def _save_judged(path: Path, features, probabilities) -> None:
    try:
        files.write_atomically(path, lambda tmp: np.savez(tmp, features=features,
                                                         probabilities=probabilities))
        kept = sorted(path.parent.glob("*.npz"), key=lambda other: other.stat().st_mtime)
        for old in kept[:-JUDGED_KEPT]:
            old.unlink(missing_ok=True)
    except OSError:  # a read-only or full disk only costs the next run a pass of the judge
        pass


def _judge(classifier, images, batch_size) -> tuple[np.ndarray, np.ndarray]:
    """(features, probabilities) of the judge for each image, from one predict pass.

    The answers are a function of the judge's weights and the images alone, so they are kept,
    in memory and on disk, under a digest of both: a second run of notebook 15 skips ~20,000
    images' worth of convolutions, and any change to the weights or the images judges afresh.
    """
    import xxhash

    images = _check_judge_images(images, classifier, batch_size)
    heads = _judge_heads(classifier)
    digest = xxhash.xxh3_128(repr(classifier.get_config()).encode())  # architecture, weights
    for weight in classifier.get_weights():
        digest.update(f"{weight.dtype}{weight.shape}".encode())
        digest.update(np.ascontiguousarray(weight))
    weights_digest = digest.hexdigest()
    digest = xxhash.xxh3_128(f"{images.dtype}{images.shape}".encode())
    digest.update(np.ascontiguousarray(images))
    images_digest = digest.hexdigest()
    key = (weights_digest, images_digest)
    if key not in _RECENT_JUDGEMENTS:
        path = judged_dir() / f"{weights_digest[:16]}-{images_digest[:16]}.npz"
        answers = _load_judged(path)
        if answers is None or len(answers[0]) != len(images):
            answers = tuple(heads.predict(images, batch_size=batch_size, verbose=0))
            _save_judged(path, *answers)
        _RECENT_JUDGEMENTS[key] = answers
        while len(_RECENT_JUDGEMENTS) > _JUDGEMENTS_KEPT:
            _RECENT_JUDGEMENTS.popitem(last=False)
    _RECENT_JUDGEMENTS.move_to_end(key)
    features, probabilities = _RECENT_JUDGEMENTS[key]
    return features.copy(), probabilities.copy()


def classify_images(classifier: keras.Model, images, batch_size=256) -> np.ndarray:
    """The judge's class for each image in [0, 1] (rescale tanh outputs first). Notebooks 9-15."""
    if isinstance(classifier, keras.Model) and _has_features(classifier):
        return np.argmax(_judge(classifier, images, batch_size)[1], axis=-1)
    images = _check_judge_images(images, classifier, batch_size)  # any other classifier
    probabilities = classifier.predict(images, batch_size=batch_size, verbose=0)
    return np.argmax(probabilities, axis=-1)


# A verdict counts for coverage only when the judge gives its class at least this probability:
# on real validation images nearly all verdicts clear it, on ambiguous samples many do not.
JUDGE_MIN_CONFIDENCE = 0.8


def classify_with_confidence(classifier: keras.Model, images,
                             batch_size=256) -> tuple[np.ndarray, np.ndarray]:
    """The judge's class for each image and its probability for that class. Notebooks 9-15."""
    if isinstance(classifier, keras.Model) and _has_features(classifier):
        probabilities = _judge(classifier, images, batch_size)[1]
    else:
        images = _check_judge_images(images, classifier, batch_size)  # any other classifier
        probabilities = np.asarray(classifier.predict(images, batch_size=batch_size, verbose=0))
    return np.argmax(probabilities, axis=-1), probabilities.max(axis=-1)


def judge_coverage(classifier: keras.Model, images, min_confidence=JUDGE_MIN_CONFIDENCE,
                   batch_size=256) -> dict:
    """metrics.class_coverage of the judge's confident verdicts on images. Notebooks 9-15.

    Only verdicts whose probability reaches min_confidence are counted: a judge labels every
    image, even one unlike any garment, and its unsure labels are not coverage.
    """
    labels, confidences = classify_with_confidence(classifier, images, batch_size)
    return metrics.class_coverage(labels, n_classes=10, confidences=confidences,
                                  min_confidence=min_confidence)


def class_conditional_accuracy(classifier: keras.Model, images, requested_labels,
                               min_confidence=JUDGE_MIN_CONFIDENCE, batch_size=256) -> dict:
    """How often the judge sees the class a conditional generator was asked for. Notebook 12.

    Returns the share of images judged as their requested class ("accuracy"), the same per
    requested class ("per_class", NaN for a class never requested) and the share judged as the
    requested class with at least min_confidence ("confident_accuracy").
    """
    from course_utils import checks

    labels, confidences = classify_with_confidence(classifier, images, batch_size)
    requested = checks.check_class_labels(requested_labels, 10, "requested_labels",
                                          count=len(labels))
    hits = labels == requested
    per_class = np.array([hits[requested == k].mean() if np.any(requested == k) else np.nan
                          for k in range(10)])
    return {"accuracy": float(hits.mean()), "per_class": per_class,
            "confident_accuracy": float(np.mean(hits & (confidences >= min_confidence)))}


def generate_images(generator: keras.Model, codings, labels=None, batch_size=500) -> np.ndarray:
    """A generator's outputs for codings (and one class per coding if conditional). NB 12-15."""
    from course_utils import checks

    if not isinstance(generator, keras.Model):
        raise TypeError(f"generator must be a keras.Model, got {type(generator).__name__}.")
    codings = checks.check_finite(codings, "codings").astype("float32")
    codings_size = generator.inputs[0].shape[-1]
    if codings.ndim != 2 or codings.shape[1] != codings_size:
        raise ValueError(f"{generator.name} takes codings shaped (n, {codings_size}), got "
                         f"{codings.shape}; draw them with rng.standard_normal((n, "
                         f"{codings_size})).")
    conditional = len(generator.inputs) == 2
    if conditional and labels is None:
        raise ValueError(f"{generator.name} is conditional: pass labels=, one class index per "
                         "coding, e.g. labels=np.arange(n) % 10.")
    if not conditional and labels is not None:
        raise ValueError(f"{generator.name} takes no labels (it has one input); drop labels=, "
                         "or pass a conditional generator.")
    inputs = codings
    if conditional:
        inputs = [codings, checks.check_class_labels(labels, 10, "labels", count=len(codings))]
    checks.check_count(batch_size, "batch_size", 1)
    return np.asarray(generator.predict(inputs, batch_size=batch_size, verbose=0))


def _has_features(classifier) -> bool:
    return any(layer.name == "features" for layer in getattr(classifier, "layers", []))


def judge_features(classifier: keras.Model, images, batch_size=256) -> np.ndarray:
    """The judge's 128 penultimate ("features" layer) activations per image. Notebook 15."""
    return _judge(classifier, images, batch_size)[0]


def domain_fid_against(classifier: keras.Model, real_images):
    """A function images -> domain FID to real_images, whose features are computed once. NB 15."""
    real_features = judge_features(classifier, real_images)

    def domain_fid_to_real(generated_images) -> float:
        return metrics.frechet_distance(real_features,
                                        judge_features(classifier, generated_images))

    return domain_fid_to_real


def domain_fid(classifier: keras.Model, real_images, generated_images) -> float:
    """Fréchet distance between real and generated images in the judge's feature space. NB 15."""
    return domain_fid_against(classifier, real_images)(generated_images)


# Trained models handed from one notebook to another (notebooks 8-14 publish, 15 loads).
PUBLISHED_FROM = {
    "vae_decoder": "08_variational_autoencoder",
    "gan_generator": "09_generative_adversarial_networks",
    "dcgan_generator": "10_deep_convolutional_gan",
    "stylegan_generator": "11_progressive_growing_and_stylegan",
    "cgan_generator": "12_conditional_and_wasserstein_gans",
    "wgan_gp_generator": "12_conditional_and_wasserstein_gans",
    "vq_vae_generator": "13_discrete_codes",
    "diffusion_ddim_generator": "14_diffusion_and_flow_matching",
    "diffusion_ddpm_generator": "14_diffusion_and_flow_matching",
    "diffusion_guided_generator": "14_diffusion_and_flow_matching",
    "flow_matching_generator": "14_diffusion_and_flow_matching",
}


def published_path(name: str, run) -> Path:
    """Where a notebook's trained model for `run`'s mode is kept. Notebooks 8-15."""
    if name not in PUBLISHED_FROM:
        raise ValueError(f"Unknown published model {name!r}; known: {', '.join(PUBLISHED_FROM)}.")
    return checkpoints.model_dir() / "published" / f"{name}-{run.mode}.keras"


def publish_model(model: keras.Model, name: str, run) -> Path:
    """Save a trained model (atomically, .keras) for a later notebook. Notebooks 8-14."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"publish_model saves a keras.Model, not a {type(model).__name__}.")
    path = published_path(name, run)
    files.write_atomically(path, model.save)
    return path


def load_published_model(name: str, run) -> keras.Model:
    """Reload (safe mode) a model published by an earlier notebook, or explain the fix. NB 15."""
    # Importing the layer modules registers the course's layers, so that safe mode finds them.
    from course_utils import (  # noqa: F401
        autoencoder_layers,
        diffusion_layers,
        discrete_layers,
        gan_layers,
    )

    path = published_path(name, run)
    notebook = f"notebooks/{PUBLISHED_FROM[name]}.ipynb"
    if not path.exists():
        raise FileNotFoundError(
            f"No trained {name} for {run.mode} mode at {path}: run {notebook} in {run.mode} "
            "mode first (its last section saves the model), then re-run this cell."
        )
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as error:
        raise ValueError(
            f"{path} is damaged and did not load ({error}). Run {notebook} in {run.mode} mode "
            "again to save a fresh copy, then re-run this cell."
        ) from error
