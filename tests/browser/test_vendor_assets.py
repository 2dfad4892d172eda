"""tools/vendor_assets.py against a local stand-in registry: verified, cached (offline once
cached), clear on failure."""

import functools
import hashlib
import io
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tools.vendor_assets import NpmTarball, VendorError, fetch, integrity_of, unpack


def make_tarball(files):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


TARBALL = make_tarball({"package/dist/tool.js": b"tool()", "package/dist/x/y.css": b"a{}",
                        "package/README.md": b"not wanted"})


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@pytest.fixture
def registry(tmp_path):
    """A folder served over HTTP the way the npm registry lays out tarballs."""
    root = tmp_path / "registry"
    (root / "tool" / "-").mkdir(parents=True)
    (root / "tool" / "-" / "tool-1.0.0.tgz").write_bytes(TARBALL)
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 functools.partial(_Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def package(integrity):
    return NpmTarball("tool", "1.0.0", integrity,
                      {"package/dist/": "tool/", "package/README.md": "tool/README.md"})


def test_a_verified_download_is_cached_and_unpacked(registry, tmp_path):
    cache = tmp_path / "cache"
    path = fetch(package(integrity_of(TARBALL)), cache, registry=registry)
    assert path == cache / "tool-1.0.0.tgz" and path.read_bytes() == TARBALL
    assert [p.name for p in cache.iterdir()] == ["tool-1.0.0.tgz"]  # no temporary file left
    written = unpack(package(integrity_of(TARBALL)), path, tmp_path / "static")
    assert sorted(p.relative_to(tmp_path / "static").as_posix() for p in written) == [
        "tool/README.md", "tool/tool.js", "tool/x/y.css"]


def test_the_cached_tarball_is_used_without_the_network(registry, tmp_path):
    cache = tmp_path / "cache"
    first = fetch(package(integrity_of(TARBALL)), cache, registry=registry)
    # Nothing listens on port 9: any attempt to download would fail with a VendorError.
    assert fetch(package(integrity_of(TARBALL)), cache, registry="http://127.0.0.1:9") == first
    assert first.read_bytes() == TARBALL


def test_a_cached_tarball_that_does_not_match_is_downloaded_again(registry, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "tool-1.0.0.tgz").write_bytes(b"cut off")
    path = fetch(package(integrity_of(TARBALL)), cache, registry=registry)
    assert path.read_bytes() == TARBALL


def test_npm_config_registry_names_the_mirror(registry, tmp_path, monkeypatch):
    monkeypatch.setenv("NPM_CONFIG_REGISTRY", registry)
    assert fetch(package(integrity_of(TARBALL)), tmp_path).read_bytes() == TARBALL


def test_a_download_with_the_wrong_checksum_is_refused_and_not_kept(registry, tmp_path):
    cache = tmp_path / "cache"
    wrong = "sha512-" + "A" * 86 + "=="
    got = hashlib.sha512(TARBALL).hexdigest()[:30]
    with pytest.raises(VendorError, match=f"does not match its pinned sha512 \\(got {got}"):
        fetch(package(wrong), cache, registry=registry)
    assert not cache.exists() or list(cache.iterdir()) == []


@pytest.mark.parametrize("integrity, message", [
    ("md5-" + "A" * 22 + "==", "expected a sha512 integrity"),
    ("sha512-not*base64", "is not valid base64"),
])
def test_a_malformed_pinned_integrity_is_explained_before_any_download(tmp_path, integrity,
                                                                       message):
    with pytest.raises(VendorError, match=message):
        fetch(package(integrity), tmp_path, registry="http://127.0.0.1:9")


def test_an_unreachable_registry_says_what_failed_and_how_to_fix_it(tmp_path):
    with pytest.raises(VendorError) as failure:
        fetch(package(integrity_of(TARBALL)), tmp_path, registry="http://127.0.0.1:9")
    message = str(failure.value)
    assert "Could not download tool 1.0.0 from http://127.0.0.1:9/tool/-/tool-1.0.0.tgz" in message
    assert "NPM_CONFIG_REGISTRY" in message and "tool-1.0.0.tgz in" in message
