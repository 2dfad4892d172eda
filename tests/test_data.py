"""Tests for course_utils.data: finding, verifying, downloading and parsing Fashion-MNIST."""

import functools
import gzip
import hashlib
import http.server
import os
import socket
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from course_utils import data

NAMES = tuple(data.FASHION_MNIST_SHA256)
ORDER = ("env", "repo", "debian", "keras")
REPO_ROOT = Path(data.__file__).resolve().parent.parent


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array in the idx format."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write array as a gzipped idx file, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as stream:
        stream.write(idx_bytes(array))
    return path


def make_tiny_arrays() -> dict[str, np.ndarray]:
    """Return a few random images and labels shaped like Fashion-MNIST's four files."""
    rng = np.random.default_rng(0)
    return {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (6, 4, 4), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, 6, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (3, 4, 4), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, 3, dtype=np.uint8),
    }


TINY = make_tiny_arrays()
TINY_SHA256 = {name: hashlib.sha256(idx_bytes(array)).hexdigest() for name, array in TINY.items()}


def write_source(directory: Path, names=NAMES) -> Path:
    """Fill directory with good tiny copies of the given files."""
    for name in names:
        write_idx(directory / name, TINY[name])
    return directory


def flip_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    # The last byte of the deflate stream (the 8-byte trailer follows): a byte in the header, e.g.
    # in the stored file name, would not change the content, so would not count as corruption.
    raw[-9] ^= 0xFF
    path.write_bytes(bytes(raw))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def replace_with_text(path: Path) -> None:
    path.write_bytes(b"<html>this is an error page, not gzip</html>")


def replace_with_other_content(path: Path) -> None:
    # Valid gzip and valid idx, just not the pinned content.
    write_idx(path, TINY[path.name] + 1)


CORRUPTIONS = [flip_byte, truncate, replace_with_text, replace_with_other_content]


def files_in(directory: Path) -> list[str]:
    """Every name in directory, hidden ones included, sorted: comparing it with the expected files
    catches a temporary file left behind whatever it is called. The folder must exist."""
    return sorted(os.listdir(directory))


@pytest.fixture(autouse=True)
def no_internet(monkeypatch):
    # No test may reach the internet: downloads are off unless a test serves files itself.
    monkeypatch.setenv("FASHION_MNIST_OFFLINE", "1")
    monkeypatch.delenv("FASHION_MNIST_URL", raising=False)


@pytest.fixture
def sources(tmp_path, monkeypatch):
    """Point all four search locations at (not yet created) folders under tmp_path."""
    dirs = {
        "env": tmp_path / "env",
        "repo": tmp_path / "repo" / "data" / "fashion-mnist",
        "debian": tmp_path / "usr-share" / "fashion-mnist",
        "keras": tmp_path / "home" / ".keras" / "datasets" / "fashion-mnist",
    }
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FASHION_MNIST_DIR", str(dirs["env"]))
    monkeypatch.setattr(data, "REPO_CACHE_DIR", dirs["repo"])
    monkeypatch.setattr(data, "DEBIAN_DIR", dirs["debian"])
    return dirs


class RecordingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder and records every requested path."""

    def do_GET(self):
        self.server.requests.append(self.path)
        super().do_GET()

    def log_message(self, format, *args):
        pass


@pytest.fixture
def file_server(tmp_path):
    """Serve tmp_path/served over HTTP on 127.0.0.1."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(RecordingHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.requests = []
    # A short poll interval keeps shutdown() from waiting the default half second per test.
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield SimpleNamespace(
        url=f"http://127.0.0.1:{server.server_port}/", dir=served, requests=server.requests
    )
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def online(file_server, monkeypatch):
    """Allow downloads, from the local file server only."""
    monkeypatch.delenv("FASHION_MNIST_OFFLINE")
    monkeypatch.setenv("FASHION_MNIST_URL", file_server.url)
    return file_server


def locate_tiny(**kwargs) -> Path:
    return data.locate_fashion_mnist(checksums=TINY_SHA256, **kwargs)


# --- where the data is looked for -------------------------------------------------------------


def test_candidate_dirs_follow_the_course_order(sources):
    dirs = [directory for _, directory in data.candidate_dirs()]
    assert dirs == [sources[name] for name in ORDER]


def test_unset_env_dir_is_reported_but_not_searched(sources, monkeypatch):
    monkeypatch.delenv("FASHION_MNIST_DIR")
    assert data.candidate_dirs()[0][1] is None
    write_source(sources["keras"])
    assert locate_tiny() == sources["keras"]


@pytest.mark.parametrize("winner", ORDER)
def test_higher_priority_source_wins(sources, winner):
    for name in ORDER[ORDER.index(winner) :]:
        write_source(sources[name])
    assert locate_tiny() == sources[winner]


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=lambda f: f.__name__)
def test_corrupted_file_is_skipped_with_a_warning(sources, corrupt):
    write_source(sources["env"])
    write_source(sources["debian"])
    corrupt(sources["env"] / "train-images-idx3-ubyte.gz")
    with pytest.warns(UserWarning, match=r"checksum of train-images-idx3-ubyte\.gz did not match"):
        assert locate_tiny() == sources["debian"]


def test_regzipped_copy_with_a_different_header_verifies(sources):
    # Debian re-gzips the official files without the name; the content is what is pinned.
    official = write_source(sources["repo"])
    sources["env"].mkdir()
    for name in NAMES:
        with (
            open(sources["env"] / name, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as stream,
        ):
            stream.write(idx_bytes(TINY[name]))
        assert (sources["env"] / name).read_bytes() != (official / name).read_bytes()
    assert locate_tiny() == sources["env"]


def test_source_missing_one_file_is_skipped(sources):
    write_source(sources["env"], NAMES[:3])
    write_source(sources["repo"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing file is not a corruption: no warning
        assert locate_tiny() == sources["repo"]


def test_no_good_source_offline_explains_every_place_and_both_fixes(sources):
    write_source(sources["env"])
    flip_byte(sources["env"] / "t10k-images-idx3-ubyte.gz")
    write_source(sources["repo"], NAMES[:2])
    sources["keras"].mkdir(parents=True)
    with pytest.warns(UserWarning), pytest.raises(data.DataUnavailableError) as excinfo:
        locate_tiny()
    message = str(excinfo.value)
    assert "could not be found or downloaded" in message
    for directory in sources.values():
        assert str(directory) in message
    assert "checksum mismatch for t10k-images-idx3-ubyte.gz" in message
    assert "missing files t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz" in message
    assert "missing (no such folder)" in message
    assert "skipped because offline" in message
    assert "sudo apt-get install dataset-fashion-mnist" in message
    assert "FASHION_MNIST_DIR=/that/folder" in message
    assert "make data" in message
    assert "python -m course_utils.data" in message


@pytest.mark.parametrize(
    ("value", "offline"), [("1", True), ("yes", True), ("0", False), ("", False)]
)
def test_offline_switch(monkeypatch, value, offline):
    monkeypatch.setenv("FASHION_MNIST_OFFLINE", value)
    assert data.is_offline() is offline


def test_download_urls_default_to_official_then_keras_mirror(monkeypatch):
    urls = data.download_urls()
    assert urls[0] == "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    assert urls[1] == "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
    monkeypatch.setenv("FASHION_MNIST_URL", "http://127.0.0.1:1/mirror")
    assert data.download_urls() == ["http://127.0.0.1:1/mirror/"]


# --- downloads ----------------------------------------------------------------------------------


def test_download_fills_the_repo_cache(sources, online):
    write_source(online.dir)
    assert locate_tiny() == sources["repo"]
    assert files_in(sources["repo"]) == sorted(NAMES)
    assert data.inspect_dir(sources["repo"], TINY_SHA256) == ([], [])
    assert sorted(online.requests) == sorted("/" + name for name in NAMES)


def test_download_fetches_only_missing_or_corrupt_files(sources, online):
    write_source(online.dir)
    good, corrupt = write_source(sources["repo"], NAMES[:2]) / NAMES[0], sources["repo"] / NAMES[1]
    good_before = (good.stat().st_mtime_ns, good.stat().st_ino)
    flip_byte(corrupt)
    with pytest.warns(UserWarning, match=NAMES[1]):
        assert locate_tiny() == sources["repo"]
    # The good file was neither fetched nor rewritten; the corrupt one was replaced.
    assert sorted(online.requests) == sorted("/" + name for name in NAMES[1:])
    assert (good.stat().st_mtime_ns, good.stat().st_ino) == good_before
    assert data.inspect_dir(sources["repo"], TINY_SHA256) == ([], [])
    assert files_in(sources["repo"]) == sorted(NAMES)


def test_corrupt_download_leaves_no_file_behind(sources, online):
    write_source(online.dir)
    bad_name = "t10k-labels-idx1-ubyte.gz"
    flip_byte(online.dir / bad_name)
    with pytest.raises(data.DataUnavailableError) as excinfo:
        locate_tiny()
    assert f"checksum mismatch for {bad_name} downloaded from {online.url}{bad_name}" in str(
        excinfo.value
    )
    assert files_in(sources["repo"]) == sorted(name for name in NAMES if name != bad_name)


def test_failed_download_never_replaces_a_good_file(tmp_path, file_server):
    name = "train-labels-idx1-ubyte.gz"
    dest = write_idx(tmp_path / "cache" / name, TINY[name])
    before = dest.read_bytes()
    replace_with_other_content(write_idx(file_server.dir / name, TINY[name]))
    with pytest.raises(ValueError, match="checksum mismatch"):
        data.download_file(file_server.url + name, dest, TINY_SHA256[name])
    assert dest.read_bytes() == before
    assert os.listdir(dest.parent) == [name]


def test_http_404_names_the_url(sources, online):
    write_source(online.dir, [name for name in NAMES if name != "t10k-images-idx3-ubyte.gz"])
    with pytest.raises(data.DataUnavailableError) as excinfo:
        locate_tiny()
    message = str(excinfo.value)
    assert f"{online.url}t10k-images-idx3-ubyte.gz: HTTP Error 404" in message
    assert "download failed" in message
    assert files_in(sources["repo"]) == sorted(set(NAMES) - {"t10k-images-idx3-ubyte.gz"})


def test_unreachable_url_falls_back_to_the_next_one(sources, online, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    monkeypatch.delenv("FASHION_MNIST_URL")
    monkeypatch.setattr(data, "DOWNLOAD_URLS", (f"http://127.0.0.1:{dead_port}/", online.url))
    write_source(online.dir)
    assert locate_tiny() == sources["repo"]
    assert len(online.requests) == len(NAMES)
    assert files_in(sources["repo"]) == sorted(NAMES)


def test_unreachable_url_is_tried_once_not_per_file(sources, monkeypatch):
    # Without this, a firewalled machine would wait one timeout per file and URL.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    monkeypatch.delenv("FASHION_MNIST_OFFLINE")
    monkeypatch.setenv("FASHION_MNIST_URL", dead_url)
    with pytest.raises(data.DataUnavailableError) as excinfo:
        locate_tiny()
    assert str(excinfo.value).count(dead_url) == 1
    assert files_in(sources["repo"]) == []


@pytest.mark.parametrize("offline_by", ["env", "argument"])
def test_offline_never_downloads(sources, online, monkeypatch, offline_by):
    write_source(online.dir)
    if offline_by == "env":
        monkeypatch.setenv("FASHION_MNIST_OFFLINE", "1")
    with pytest.raises(data.DataUnavailableError, match="skipped because offline"):
        locate_tiny(download=offline_by == "env")
    assert online.requests == []
    assert not sources["repo"].exists()


def test_interrupted_download_removes_its_temp_file(tmp_path, monkeypatch):
    class InterruptedResponse:
        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            return False

        def read(self, *args):
            raise KeyboardInterrupt

    monkeypatch.setattr(data.urllib.request, "urlopen", lambda *a, **k: InterruptedResponse())
    with pytest.raises(KeyboardInterrupt):
        data.download_file("http://127.0.0.1:1/x.gz", tmp_path / "x.gz", "0" * 64)
    assert os.listdir(tmp_path) == []


# --- read_idx -----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5,), (3, 4, 4), (2, 3, 4, 5)])
def test_read_idx_round_trip(tmp_path, shape):
    array = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    result = data.read_idx(write_idx(tmp_path / "a-idx.gz", array))
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, array)
    result[...] = 0  # callers get a writable array of their own


def test_read_idx_reads_uncompressed_files(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = tmp_path / "plain-idx2-ubyte"
    path.write_bytes(idx_bytes(array))
    np.testing.assert_array_equal(data.read_idx(path), array)


def write_gz(path: Path, raw: bytes) -> Path:
    with gzip.open(path, "wb") as stream:
        stream.write(raw)
    return path


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"\x01\x00\x08\x01\x00\x00\x00\x01\x07", "bad magic"),
        (b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00\x00\x00\x00", "unsupported idx dtype code 0x0d"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02\x03\x04", r"shape \(5,\) \(5 bytes\)"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x02\x01\x02\x03", r"shape \(2,\) .* but 3 bytes follow"),
        (b"\x00\x00\x08\x02\x00\x00\x00\x02", "header truncated"),
    ],
    ids=["magic", "dtype", "too-short", "too-long", "header"],
)
def test_read_idx_rejects_bad_files_naming_them(tmp_path, raw, match):
    path = write_gz(tmp_path / "broken-idx.gz", raw)
    with pytest.raises(ValueError, match=match) as excinfo:
        data.read_idx(path)
    assert "broken-idx.gz" in str(excinfo.value)


def test_read_idx_rejects_non_gzip(tmp_path):
    path = tmp_path / "page.gz"
    replace_with_text(path)
    with pytest.raises(ValueError, match="page.gz: not a valid gzip file"):
        data.read_idx(path)


# --- the real data set --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_dir():
    """The verified real Fashion-MNIST folder (the test command installs it in CI)."""
    try:
        return data.locate_fashion_mnist(download=False)
    except data.DataUnavailableError as error:
        if os.environ.get("CI"):
            pytest.fail(str(error))
        pytest.skip("Fashion-MNIST is not installed here; run `make data`")


@pytest.fixture(scope="module")
def real(real_dir):
    return data.load_fashion_mnist(download=False)


def test_pinned_checksums_match_the_real_files(real_dir):
    assert sorted(NAMES) == sorted(
        [
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        ]
    )
    for name in NAMES:
        with gzip.open(real_dir / name, "rb") as stream:
            digest = hashlib.sha256(stream.read()).hexdigest()
        assert digest == data.FASHION_MNIST_SHA256[name], name


def test_real_shapes_dtypes_and_ranges(real):
    assert real.X_train.shape == (55000, 28, 28)
    assert real.X_valid.shape == (5000, 28, 28)
    assert real.X_test.shape == (10000, 28, 28)
    assert [len(y) for y in (real.y_train, real.y_valid, real.y_test)] == [55000, 5000, 10000]
    for X in (real.X_train, real.X_valid, real.X_test):
        assert X.dtype == np.float32
        assert X.min() == 0.0
        assert X.max() == 1.0
    for y in (real.y_train, real.y_valid, real.y_test):
        assert y.dtype == np.uint8
        assert set(np.unique(y)) == set(range(10))
    assert real.class_names == data.CLASS_NAMES
    assert data.CLASS_NAMES[0] == "T-shirt/top"
    assert data.CLASS_NAMES[9] == "Ankle boot"
    assert len(data.CLASS_NAMES) == 10


def test_validation_set_is_the_last_5000_training_images(real, real_dir):
    images = data.read_idx(real_dir / "train-images-idx3-ubyte.gz")
    labels = data.read_idx(real_dir / "train-labels-idx1-ubyte.gz")

    def to_uint8(X):
        return np.rint(X * 255).astype(np.uint8)

    # np.array_equal rather than assert_array_equal: several times faster on 43M pixels.
    assert np.array_equal(to_uint8(real.X_valid), images[-5000:])
    assert np.array_equal(to_uint8(real.X_train), images[:-5000])
    np.testing.assert_array_equal(real.y_valid, labels[-5000:])
    np.testing.assert_array_equal(real.y_train, labels[:-5000])


def test_limit_keeps_the_first_images_of_each_split(real):
    small = data.load_fashion_mnist(limit=100, download=False)
    for split in ("X_train", "y_train", "X_valid", "y_valid", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(small, split), getattr(real, split)[:100])
    larger_than_valid = data.load_fashion_mnist(limit=6000, download=False)
    assert larger_than_valid.X_train.shape == (6000, 28, 28)
    assert larger_than_valid.X_valid.shape == (5000, 28, 28)


@pytest.mark.parametrize("limit", [0, -5, 2.5, "100", True])
def test_bad_limit_raises(limit):
    with pytest.raises((TypeError, ValueError), match="limit"):
        data.load_fashion_mnist(limit=limit, download=False)


@pytest.mark.parametrize("validation_size", [-1, 60000])
def test_bad_validation_size_raises(real_dir, validation_size):
    with pytest.raises(ValueError, match="validation_size"):
        data.load_fashion_mnist(validation_size=validation_size, download=False)


def test_each_load_returns_fresh_arrays(real_dir):
    first = data.load_fashion_mnist(limit=5, download=False)
    first.X_train[...] = 7.0
    first.y_train[...] = 42
    second = data.load_fashion_mnist(limit=5, download=False)
    assert second.X_train.max() <= 1.0
    assert second.y_train.max() <= 9


def test_summary_shows_the_split_shapes(real):
    expected = "Fashion-MNIST: train (55000, 28, 28), valid (5000, 28, 28), test (10000, 28, 28)"
    assert real.summary() == expected
    assert repr(real) == expected


# --- the 3D toy data ----------------------------------------------------------------------------


def test_3d_data_shape_and_dtype():
    assert data.make_3d_data().shape == (200, 3)
    X = data.make_3d_data(m=50)
    assert X.shape == (50, 3)
    assert X.dtype == np.float32


def test_3d_data_is_centred():
    np.testing.assert_allclose(data.make_3d_data().mean(axis=0), 0.0, atol=1e-6)


def test_3d_data_is_seeded():
    np.testing.assert_array_equal(data.make_3d_data(seed=3), data.make_3d_data(seed=3))
    assert not np.allclose(data.make_3d_data(seed=3), data.make_3d_data(seed=4))


@pytest.mark.parametrize(("w1", "w2"), [(0.1, 0.3), (-0.5, 0.8)])
def test_3d_data_lies_near_the_plane_x3_eq_w1_x1_plus_w2_x2(w1, w2):
    X = data.make_3d_data(w1=w1, w2=w2)
    (fit_w1, fit_w2), *_ = np.linalg.lstsq(X[:, :2], X[:, 2], rcond=None)
    assert fit_w1 == pytest.approx(w1, abs=0.1)
    assert fit_w2 == pytest.approx(w2, abs=0.1)


def test_3d_data_without_noise_is_exactly_on_the_plane():
    X = data.make_3d_data(noise=0.0).astype(np.float64)
    np.testing.assert_allclose(X[:, 2], 0.1 * X[:, 0] + 0.3 * X[:, 1], atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"m": 2}, ValueError),
        ({"m": 0}, ValueError),
        ({"m": 10.5}, TypeError),
        ({"noise": -0.1}, ValueError),
        ({"noise": float("nan")}, ValueError),
    ],
)
def test_3d_data_rejects_bad_arguments(kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        data.make_3d_data(**kwargs)


# --- the command line ---------------------------------------------------------------------------


def test_cli_reports_where_the_data_is(real_dir, capsys):
    assert data.main(["--offline"]) == 0
    out = capsys.readouterr().out
    assert str(real_dir) in out
    assert "train (55000, 28, 28)" in out


def test_cli_without_data_fails_cleanly(sources, capsys):
    assert data.main(["--offline"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "could not be found or downloaded" in captured.err
    assert "make data" in captured.err
    assert "Traceback" not in captured.err


def test_cli_runs_as_a_module(real_dir):
    result = subprocess.run(
        [sys.executable, "-m", "course_utils.data", "--offline"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert str(real_dir) in result.stdout


def test_to_dataset_batches_every_example_once_per_epoch():
    inputs = np.arange(10, dtype=np.float32).reshape(10, 1)
    dataset = data.to_dataset(inputs, inputs * 2, batch_size=4, seed=1)
    batches = list(dataset.as_numpy_iterator())
    assert [len(x) for x, _ in batches] == [4, 4, 2]
    seen_x = np.concatenate([x for x, _ in batches]).ravel()
    seen_y = np.concatenate([y for _, y in batches]).ravel()
    assert sorted(seen_x) == list(range(10))
    np.testing.assert_array_equal(seen_y, seen_x * 2)  # pairs stay together when shuffled
    assert not np.array_equal(seen_x, np.arange(10))  # shuffled


def test_to_dataset_repeats_for_a_seed_and_keeps_order_unshuffled():
    inputs = np.arange(50, dtype=np.float32)
    first = np.concatenate(list(data.to_dataset(inputs, inputs, 8, seed=3).map(
        lambda x, y: x).as_numpy_iterator()))
    again = np.concatenate(list(data.to_dataset(inputs, inputs, 8, seed=3).map(
        lambda x, y: x).as_numpy_iterator()))
    np.testing.assert_array_equal(first, again)
    ordered = data.to_dataset(inputs, inputs, 50, shuffle=False)
    np.testing.assert_array_equal(next(ordered.as_numpy_iterator())[0], inputs)


def _epoch_order(dataset):
    return np.concatenate([x for x, _ in dataset.as_numpy_iterator()]).ravel()


def test_to_dataset_draws_each_epoch_from_its_seed_and_read_count_alone():
    import keras

    inputs = np.arange(40, dtype=np.float32).reshape(40, 1)
    keras.utils.set_random_seed(0)
    dataset = data.to_dataset(inputs, inputs, 8, seed=3)
    epochs = [_epoch_order(dataset) for _ in range(3)]
    keras.utils.set_random_seed(1)  # the global seed plays no part
    again = data.to_dataset(inputs, inputs, 8, seed=3)
    for first, repeated in zip(epochs, [_epoch_order(again) for _ in range(3)], strict=True):
        np.testing.assert_array_equal(first, repeated)
    assert not np.array_equal(epochs[0], epochs[1])  # a new order every epoch
    assert int(dataset.course_recipe.reads.numpy()) == 3
    assert dataset.cardinality().numpy() == 5
    # The recipe's first batch is the one the next read yields, without reading the pipeline.
    expected = dataset.course_recipe.first_batch()
    assert int(dataset.course_recipe.reads.numpy()) == 3
    actual = next(dataset.as_numpy_iterator())
    np.testing.assert_array_equal(expected[0], actual[0])
    np.testing.assert_array_equal(expected[1], actual[1])


def test_a_to_dataset_recipe_names_content_batch_size_seed_and_reads():
    inputs = np.arange(20, dtype=np.float32).reshape(20, 1)
    described = data.to_dataset(inputs, inputs, 4, seed=3).course_recipe.describe()
    edited = inputs.copy()
    edited[7] = -1
    others = [data.to_dataset(edited, inputs, 4, seed=3),
              data.to_dataset(inputs, inputs, 5, seed=3),
              data.to_dataset(inputs, inputs, 4, seed=4),
              data.to_dataset(inputs, inputs, 4, seed=3, drop_remainder=True),
              data.to_dataset(inputs, inputs, 4, shuffle=False)]
    descriptions = [other.course_recipe.describe() for other in others]
    read = data.to_dataset(inputs, inputs, 4, seed=3)
    next(iter(read))
    descriptions.append(read.course_recipe.describe())
    assert described == data.to_dataset(inputs, inputs, 4, seed=3).course_recipe.describe()
    assert len({described, *descriptions}) == len(descriptions) + 1


def test_a_seedless_shuffle_has_no_recipe_and_a_mapped_pipeline_finds_its_source():
    inputs = np.arange(20, dtype=np.float32).reshape(20, 1)
    assert data.dataset_recipes(data.to_dataset(inputs, seed=None)) == []
    source = data.to_dataset(inputs, inputs, 4, seed=3)
    assert data.dataset_recipes(source.map(lambda x, y: x).take(2)) == [source.course_recipe]


def test_to_dataset_rejects_mismatched_lengths_and_bad_batch_size():
    with pytest.raises(ValueError, match="one row each"):
        data.to_dataset(np.zeros((3, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="batch_size"):
        data.to_dataset(np.zeros((3, 2)), np.zeros((3, 2)), batch_size=0)


def test_to_dataset_without_targets_yields_equal_input_batches():
    inputs = np.arange(10, dtype="float32").reshape(10, 1)
    dataset = data.to_dataset(inputs, batch_size=4, seed=2, drop_remainder=True)
    batches = [batch.numpy() for batch in dataset]
    assert [len(batch) for batch in batches] == [4, 4]
    seen = np.concatenate(batches).ravel()
    assert len(set(seen.tolist())) == 8 and set(seen.tolist()) <= set(range(10))
    assert dataset.element_spec.shape.as_list() == [4, 1]  # static batch size for compiled steps


def test_to_dataset_refuses_a_drop_remainder_that_drops_everything():
    with pytest.raises(ValueError, match="no batch at all"):
        data.to_dataset(np.zeros((3, 2)), batch_size=4, drop_remainder=True)


def test_pad_images_centres_each_image_and_explains_bad_sizes():
    images = np.arange(2 * 28 * 28, dtype=np.float32).reshape(2, 28, 28)
    padded = data.pad_images(images, size=32, value=-1.0)
    assert padded.shape == (2, 32, 32)
    np.testing.assert_array_equal(padded[:, 2:30, 2:30], images)
    assert np.all(padded[:, :2] == -1.0) and np.all(padded[:, :, -2:] == -1.0)
    assert data.pad_images(images[..., None], size=30).shape == (2, 30, 30, 1)
    with pytest.raises(ValueError, match="evenly"):
        data.pad_images(images, size=31)
    with pytest.raises(ValueError, match="evenly"):
        data.pad_images(images, size=20)
    with pytest.raises(ValueError, match="square"):
        data.pad_images(np.zeros((2, 28, 20)))


