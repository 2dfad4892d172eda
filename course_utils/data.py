"""Fashion-MNIST (found, verified, downloaded and parsed without TensorFlow) and the 3D toy data.

Run `python -m course_utils.data` (or `make data`) once to fetch and check the data set.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gzip
import hashlib
import http.client
import os
import shutil
import sys
import textwrap
import urllib.error
import urllib.request
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from course_utils import files
from course_utils.checks import check_count, check_finite, check_number, check_seed

CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# We pin the SHA-256 of each file's *decompressed* bytes, not of the .gz: Debian re-gzips the
# official files (dropping the name from the gzip header), so the .gz bytes differ between
# sources while the content is identical. Hashing the content lets every source verify.
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": (
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
    ),
    "train-labels-idx1-ubyte.gz": (
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
    ),
}

# Module constants rather than literals inside functions, so tests can point them at tmp dirs.
REPO_CACHE_DIR = Path(__file__).resolve().parent.parent / "data" / "fashion-mnist"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DOWNLOAD_URLS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
)
TIMEOUT_S = 30

IDX_UINT8 = 0x08


class DataUnavailableError(RuntimeError):
    """Raised when no verified copy of Fashion-MNIST can be found or downloaded."""


@dataclass(frozen=True, eq=False, repr=False)
class FashionMNIST:
    """Fashion-MNIST split into train/valid/test: float32 images in [0, 1], uint8 labels."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_valid: np.ndarray
    y_valid: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...] = CLASS_NAMES

    def summary(self) -> str:
        """Return one line with the split shapes. Used by notebooks 0 and 2-15."""
        return (
            f"Fashion-MNIST: train {self.X_train.shape}, valid {self.X_valid.shape}, "
            f"test {self.X_test.shape}"
        )

    def __repr__(self) -> str:
        # The default repr would print three large arrays in full.
        return self.summary()


def is_offline() -> bool:
    """Tell whether FASHION_MNIST_OFFLINE forbids downloads. Used by locate_fashion_mnist()."""
    value = os.environ.get("FASHION_MNIST_OFFLINE", "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(
        f"FASHION_MNIST_OFFLINE={value!r} is not understood: set it to 1 (never download) or 0 "
        "(download if needed), or unset it."
    )


def candidate_dirs() -> list[tuple[str, Path | None]]:
    """List (label, directory) to search, in priority order. Used by locate_fashion_mnist()."""
    # Read env and home at call time so a changed FASHION_MNIST_DIR or HOME takes effect.
    env_dir = os.environ.get("FASHION_MNIST_DIR", "").strip()
    return [
        ("$FASHION_MNIST_DIR", Path(env_dir).expanduser() if env_dir else None),
        ("repo cache", Path(REPO_CACHE_DIR)),
        ("Debian package dataset-fashion-mnist", Path(DEBIAN_DIR)),
        ("Keras cache", Path.home() / ".keras" / "datasets" / "fashion-mnist"),
    ]


def download_urls() -> list[str]:
    """List the base URLs to download from, in order. Used by locate_fashion_mnist()."""
    env_url = os.environ.get("FASHION_MNIST_URL", "").strip()
    urls = [env_url] if env_url else list(DOWNLOAD_URLS)
    return [url if url.endswith("/") else url + "/" for url in urls]


@functools.lru_cache(maxsize=64)
def _cached_content_sha256(path: str, size: int, mtime_ns: int, inode: int) -> str | None:
    # size, mtime and inode are only part of the key: a changed or replaced file is re-hashed.
    digest = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as stream:
            for chunk in iter(functools.partial(stream.read, 1 << 20), b""):
                digest.update(chunk)
    except (OSError, EOFError, zlib.error):
        # Not gzip, truncated, or a damaged stream: the file is corrupted, not a crash.
        return None
    return digest.hexdigest()


def content_sha256(path: Path) -> str | None:
    """Return the SHA-256 of a .gz file's content, None if not valid gzip. Used by this module."""
    stat = os.stat(path)
    return _cached_content_sha256(
        str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino
    )


def inspect_dir(directory: Path, checksums: dict[str, str]) -> tuple[list[str], list[str]]:
    """Return (missing, corrupted) file names in a directory. Used by locate_fashion_mnist()."""
    missing, corrupted = [], []
    for name, expected in checksums.items():
        path = Path(directory) / name
        if not path.is_file():
            missing.append(name)
        elif content_sha256(path) != expected:
            corrupted.append(name)
    return missing, corrupted


def describe_problems(directory: Path, missing: list[str], corrupted: list[str]) -> str:
    """Say in a few words why a directory was rejected. Used by locate_fashion_mnist()."""
    if not Path(directory).is_dir():
        return "missing (no such folder)"
    problems = []
    if missing:
        problems.append("missing files " + ", ".join(missing))
    if corrupted:
        problems.append("checksum mismatch for " + ", ".join(corrupted))
    return "; ".join(problems)


def describe_error(error: BaseException) -> str:
    """Turn a download exception into a short reason. Used by download_missing()."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP Error {error.code}: {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return str(error) or type(error).__name__


def download_file(url: str, dest: Path, expected_sha256: str, timeout: float = TIMEOUT_S) -> None:
    """Download url to dest atomically, replacing dest only once verified. Used by make data."""

    def fetch_and_verify(tmp_path: Path) -> None:
        with urllib.request.urlopen(url, timeout=timeout) as response, tmp_path.open("wb") as tmp:
            shutil.copyfileobj(response, tmp)
        if content_sha256(tmp_path) != expected_sha256:
            raise ValueError(f"checksum mismatch for {Path(dest).name} downloaded from {url}")

    files.write_atomically(Path(dest), fetch_and_verify)


def download_missing(
    names: list[str], dest: Path, checksums: dict[str, str], urls: list[str]
) -> tuple[list[str], list[str]]:
    """Fetch each file from the first URL that works; return (failed, why). Used by make data."""
    failed, reasons = [], []
    dead_urls: set[str] = set()
    for name in names:
        for base in urls:
            if base in dead_urls:
                continue
            url = base + name
            try:
                download_file(url, dest / name, checksums[name])
                break
            except (OSError, ValueError, http.client.HTTPException) as error:
                reasons.append(f"{url}: {describe_error(error)}")
                # An unreachable host fails every file the same way; skipping it saves a timeout
                # per file. An HTTP error or a bad file says nothing about the other files.
                if isinstance(error, OSError) and not isinstance(error, urllib.error.HTTPError):
                    dead_urls.add(base)
        else:
            failed.append(name)
    return failed, reasons


def format_unavailable(looked: list[tuple[str, str]], names: list[str]) -> str:
    """Build the message for DataUnavailableError. Used by locate_fashion_mnist()."""
    places = "\n".join(f"  - {place}: {reason}" for place, reason in looked)
    files = textwrap.fill(
        "The files: " + ", ".join(names) + ".",
        width=100,
        initial_indent="     ",
        subsequent_indent="     ",
    )
    return (
        "Fashion-MNIST could not be found or downloaded. Looked in these places, in order:\n"
        f"{places}\n"
        "Fix it in one of two ways:\n"
        "  1. Get a local copy: `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu),\n"
        "     or copy the four official .gz files into a folder and set\n"
        "     FASHION_MNIST_DIR=/that/folder.\n"
        f"{files}\n"
        "  2. Connect to the internet and run `make data` (or `python -m course_utils.data`)."
    )


def locate_fashion_mnist(
    download: bool = True, checksums: dict[str, str] = FASHION_MNIST_SHA256
) -> Path:
    """Return a folder holding the four verified files, downloading if needed. Used by make data."""
    looked = []
    for label, directory in candidate_dirs():
        if directory is None:
            looked.append((label, "not set"))
            continue
        missing, corrupted = inspect_dir(directory, checksums)
        if not missing and not corrupted:
            return directory
        for name in corrupted:
            warnings.warn(
                f"Skipping {directory}: the checksum of {name} did not match "
                "(the file is corrupted or not the official one).",
                stacklevel=2,
            )
        looked.append((f"{label} ({directory})", describe_problems(directory, missing, corrupted)))

    dest = Path(REPO_CACHE_DIR)
    place = f"download into {dest}"
    if not download or is_offline():
        looked.append((place, "skipped because offline (downloads disabled)"))
        raise DataUnavailableError(format_unavailable(looked, list(checksums)))
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        looked.append((place, f"download failed: cannot create the folder: {error}"))
        raise DataUnavailableError(format_unavailable(looked, list(checksums))) from error
    missing, corrupted = inspect_dir(dest, checksums)
    failed, reasons = download_missing(missing + corrupted, dest, checksums, download_urls())
    if failed:
        looked.append((place, "download failed:" + "".join(f"\n      {r}" for r in reasons)))
        raise DataUnavailableError(format_unavailable(looked, list(checksums)))
    return dest


def read_idx(path: Path) -> np.ndarray:
    """Parse an idx file (gzipped or not) of uint8 into an array. Used by load_fashion_mnist()."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing (or not a file); run `make data` (or "
                                "`python -m course_utils.data`) to fetch a verified copy.")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as stream:
                raw = stream.read()
        else:
            raw = path.read_bytes()
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise ValueError(f"{path}: not a valid gzip file ({error}); delete it and run "
                         "`make data` to fetch a verified copy.") from error
    if len(raw) < 4 or raw[:2] != b"\x00\x00":
        raise ValueError(f"{path}: not an idx file (bad magic number {raw[:4].hex()})")
    if raw[2] != IDX_UINT8:
        raise ValueError(f"{path}: unsupported idx dtype code 0x{raw[2]:02x} (only 0x08, uint8)")
    ndim = raw[3]
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise ValueError(f"{path}: header truncated ({len(raw)} bytes for {ndim} dimensions)")
    shape = tuple(int(n) for n in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64))
    actual = len(raw) - header_size
    if actual != expected:
        raise ValueError(
            f"{path}: header says shape {shape} ({expected} bytes) but {actual} bytes follow"
        )
    # Copy so the caller gets a writable array, not a view of the immutable bytes.
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape).copy()


@functools.lru_cache(maxsize=2)
def _read_raw(directory: str) -> tuple[np.ndarray, ...]:
    # Keyed on the directory alone: it was verified against the pinned checksums, so its content
    # is fixed. Arrays are made read-only so no caller can corrupt the cache.
    arrays = tuple(
        read_idx(Path(directory) / name)
        for name in (
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        )
    )
    for array in arrays:
        array.flags.writeable = False
    return arrays


def scale_images(images: np.ndarray) -> np.ndarray:
    """Return a fresh float32 copy of uint8 images in [0, 1]. Used by load_fashion_mnist()."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"scale_images expects uint8 pixels (0-255), got dtype {images.dtype}; "
                        "images that are already floats in [0, 1] need no scaling.")
    return np.divide(images, 255, dtype=np.float32)


def load_fashion_mnist(
    limit: int | None = None, validation_size: int = 5000, download: bool = True
) -> FashionMNIST:
    """Load Fashion-MNIST split into train/valid/test (uint8 labels). Notebooks 0 and 2-15."""
    if limit is not None:
        limit = check_count(limit, "limit", 1)
    validation_size = check_count(validation_size, "validation_size", 0)
    directory = locate_fashion_mnist(download=download)
    X_train_full, y_train_full, X_test, y_test = _read_raw(str(directory))
    n_train = len(X_train_full) - validation_size
    if n_train < 1:
        raise ValueError(
            f"validation_size must be smaller than {len(X_train_full)}, got {validation_size}"
        )
    # Slicing with limit=None keeps the whole split; a limit past the end does too.
    keep = slice(None, limit)
    return FashionMNIST(
        X_train=scale_images(X_train_full[:n_train][keep]),
        y_train=y_train_full[:n_train][keep].copy(),
        X_valid=scale_images(X_train_full[n_train:][keep]),
        y_valid=y_train_full[n_train:][keep].copy(),
        X_test=scale_images(X_test[keep]),
        y_test=y_test[keep].copy(),
    )


def pad_images(images, size=32, value=0.0):
    """Pad a batch of square images evenly on every side to size x size. Notebook 11."""
    images = check_finite(images, "images")
    size = check_count(size, "size", 1)
    check_number(value, "value")
    if images.ndim < 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"Expected square images shaped (n, height, width[, channels]), got "
                         f"{images.shape}; pass a batch, e.g. images[None] for one image.")
    margin = size - images.shape[1]
    if margin < 0 or margin % 2:
        raise ValueError(
            f"Cannot pad {images.shape[1]}x{images.shape[2]} images evenly to {size}x{size}: "
            "the size must be at least as large, with an even difference."
        )
    padding = [(0, 0), (margin // 2, margin // 2), (margin // 2, margin // 2)]
    padding += [(0, 0)] * (images.ndim - 3)
    return np.pad(images, padding, constant_values=value)


@dataclass
class DatasetRecipe:
    """What a to_dataset pipeline yields, for checkpoints' key: plumbing a student may skip.

    An order is a function of (seed, how many times the pipeline was read before), so the key can
    name the batches training will see without reading them, and a reload can advance `reads` as
    far as the training it replaces did.
    """

    digest: str  # the examples' content, taken when the pipeline was made
    n_examples: int
    batch_size: int
    shuffle: bool
    seed: int | None
    drop_remainder: bool
    tensors: Any  # the examples as tensors (what the pipeline gathers from)
    reads: Any  # a tf.Variable: how many epochs of this pipeline have been started

    @property
    def n_batches(self) -> int:
        whole, rest = divmod(self.n_examples, self.batch_size)
        return whole + (1 if rest and not self.drop_remainder else 0)

    def describe(self) -> str:
        """The recipe and how far it has been read: equal strings, equal batches."""
        return (f"to_dataset|{self.digest}|{self.n_examples}|{self.batch_size}|{self.shuffle}|"
                f"{self.seed}|{self.drop_remainder}|{int(self.reads.numpy())}")

    def order(self, epoch: int):
        """The example indices of one epoch, as the pipeline draws them (an int64 tensor)."""
        import tensorflow as tf

        indices = tf.range(self.n_examples, dtype=tf.int64)
        if not self.shuffle:
            return indices
        seed = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(epoch, tf.int64)])
        return tf.random.experimental.stateless_shuffle(indices, seed=seed)

    def first_batch(self):
        """The batch the next read will start with, computed without reading the pipeline."""
        import tensorflow as tf

        indices = self.order(int(self.reads.numpy()))[:self.batch_size]
        return tf.nest.map_structure(lambda tensor: tf.gather(tensor, indices).numpy(),
                                     self.tensors)


def _digest_examples(elements) -> str:
    import xxhash

    digest = xxhash.xxh3_128()
    for array in (elements if isinstance(elements, tuple) else (elements,)):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.reshape(-1).view(np.uint8))
    return digest.hexdigest()


def _as_tensors(elements):
    """Tensors of the examples; an autoencoder's targets (its inputs again) are copied once."""
    import tensorflow as tf

    if not isinstance(elements, tuple):
        return tf.constant(elements)
    inputs = tf.constant(elements[0])
    return inputs, inputs if elements[1] is elements[0] else tf.constant(elements[1])


def to_dataset(inputs, targets=None, batch_size=32, shuffle=True, seed=42, drop_remainder=False):
    """A batched, prefetched tf.data pipeline over NumPy arrays (faster than fit(X, y)). NB 2-15.

    With targets=None it yields input batches only (what a GAN trains on); drop_remainder=True
    keeps every batch the same size. With a seed, each read (each epoch) draws a new order that
    depends only on the seed and on how many times the pipeline was read before.
    """
    import tensorflow as tf  # here, not at the top: the rest of this module needs no TensorFlow

    inputs = check_finite(inputs, "inputs")
    if inputs.ndim == 0 or len(inputs) == 0:
        raise ValueError(f"inputs holds no examples (shape {inputs.shape}); pass at least one "
                         "row, e.g. fashion.X_train (check the limit you loaded with).")
    if targets is not None:
        targets = check_finite(targets, "targets")
        if targets.ndim == 0 or len(inputs) != len(targets):
            raise ValueError(
                f"inputs and targets must have one row each per example: {len(inputs)} vs "
                f"{len(targets) if targets.ndim else 'a scalar'}; pass matching arrays."
            )
    batch_size = check_count(batch_size, "batch_size", 1)
    seed = None if seed is None else check_seed(seed)
    if drop_remainder and len(inputs) < batch_size:
        raise ValueError(
            f"drop_remainder=True with {len(inputs)} examples and batch_size={batch_size} would "
            "yield no batch at all: use a smaller batch or more data."
        )
    elements = inputs if targets is None else (inputs, targets)
    if shuffle and seed is None:  # an order nobody can repeat: tf.data's own shuffle
        dataset = tf.data.Dataset.from_tensor_slices(elements)
        dataset = dataset.shuffle(len(inputs), reshuffle_each_iteration=True)
        return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)

    recipe = DatasetRecipe(
        digest=_digest_examples(elements), n_examples=len(inputs), batch_size=batch_size,
        shuffle=bool(shuffle), seed=seed, drop_remainder=bool(drop_remainder),
        tensors=_as_tensors(elements),
        reads=tf.Variable(0, dtype=tf.int64, trainable=False, name="epochs_started"),
    )

    def one_epoch(_):
        epoch = recipe.reads.assign_add(1) - 1  # runs when an epoch's first batch is drawn
        return tf.data.Dataset.from_tensor_slices(recipe.order(epoch)).batch(
            batch_size, drop_remainder=drop_remainder)

    def gather(indices):
        return tf.nest.map_structure(lambda tensor: tf.gather(tensor, indices), recipe.tensors)

    dataset = (tf.data.Dataset.from_tensors(0).flat_map(one_epoch)
               .map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
               .apply(tf.data.experimental.assert_cardinality(recipe.n_batches))
               .prefetch(tf.data.AUTOTUNE))
    dataset.course_recipe = recipe
    return dataset


def dataset_recipes(dataset) -> list[DatasetRecipe]:
    """The to_dataset recipes a pipeline reads from (itself or the pipelines it was built on)."""
    recipes, pending, seen = [], [dataset], set()
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        recipe = getattr(node, "course_recipe", None)
        if recipe is not None:
            recipes.append(recipe)
            continue
        with contextlib.suppress(Exception):  # a dataset kind that does not list its inputs
            pending.extend(node._inputs())
    return recipes


def make_3d_data(
    m: int = 200, noise: float = 0.1, w1: float = 0.1, w2: float = 0.3, seed: int = 42
) -> np.ndarray:
    """Return m centred float32 points on a noisy curved 2D sheet in 3D. Used by notebook 1."""
    m = check_count(m, "m", 3)
    noise = check_number(noise, "noise", minimum=0)
    w1, w2 = check_number(w1, "w1"), check_number(w2, "w2")
    rng = np.random.default_rng(check_seed(seed))
    angles = rng.uniform(-0.5, 3 * np.pi / 2 - 0.5, size=m)
    X = np.empty((m, 3))
    X[:, 0] = np.cos(angles) + np.sin(angles) / 2 + noise * rng.standard_normal(m) / 2
    X[:, 1] = np.sin(angles) * 0.7 + noise * rng.standard_normal(m) / 2
    X[:, 2] = X[:, 0] * w1 + X[:, 1] * w2 + noise * rng.standard_normal(m)
    # Centred so that PCA and a linear autoencoder without biases see the same subspace.
    X -= X.mean(axis=0)
    return X.astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    """Locate (downloading if needed) and verify Fashion-MNIST; print where. Used by make data."""
    parser = argparse.ArgumentParser(
        prog="python -m course_utils.data",
        description="Find, download if needed, and verify the Fashion-MNIST files.",
    )
    parser.add_argument("--offline", action="store_true", help="never download; fail fast")
    args = parser.parse_args(argv)
    try:
        directory = locate_fashion_mnist(download=not args.offline)
        dataset = load_fashion_mnist(download=False)
    except DataUnavailableError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"Fashion-MNIST verified in {directory}")
    print(dataset.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
