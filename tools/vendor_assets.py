"""Fetch, verify and unpack the JavaScript that the course site needs, so it works offline.

    python tools/vendor_assets.py                 # fetch into build/vendor/ (cached), verify
    python tools/vendor_assets.py DIR             # ... and unpack into DIR (a site's _static/)

reveal.js, require.js, jQuery and MathJax 2 come from the npm registry as tarballs, downloaded
and cached in build/vendor/ by pooch: each is checked against the sha512 `integrity` the registry
published for that exact version (pinned below), and a download that does not match is deleted,
never kept; a cached tarball that matches is used without the network. Only the files a page uses
are unpacked (our own step: pooch's Untar keeps the tarball's paths, and the site needs them
renamed). A mirror of the npm registry can be named with the NPM_CONFIG_REGISTRY environment
variable, as for npm itself.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pooch
import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / "build" / "vendor"
DEFAULT_REGISTRY = "https://registry.npmjs.org"

# pooch logs each download at INFO level to stderr; this tool reports for itself.
pooch.get_logger().setLevel("WARNING")


class VendorError(RuntimeError):
    """An asset could not be fetched, verified or found; the message says how to fix it."""


@dataclass(frozen=True)
class NpmTarball:
    """One npm package version, and which of its files the site uses (tarball path -> here)."""

    name: str
    version: str
    integrity: str  # the registry's dist.integrity for this version: "sha512-" + base64
    files: dict[str, str]

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}.tgz"

    def url(self, registry: str) -> str:
        return f"{registry.rstrip('/')}/{self.name}/-/{self.filename}"

    @property
    def known_hash(self) -> str:
        """The integrity in pooch's form: "sha512:" + hex."""
        algorithm, _, digest = self.integrity.partition("-")
        if algorithm != "sha512":
            raise VendorError(f"{self.name} {self.version}: expected a sha512 integrity, "
                              f"not {self.integrity!r}")
        try:
            return "sha512:" + base64.b64decode(digest, validate=True).hex()
        except ValueError:  # binascii.Error: not base64
            raise VendorError(f"{self.name} {self.version}: the pinned integrity {self.integrity!r}"
                              " is not valid base64; copy it again from the registry.") from None


# nbconvert's slides template is written for reveal.js 4; 4.6.1 is the last 4.x release.
REVEAL = NpmTarball(
    "reveal.js", "4.6.1",
    "sha512-1CW0auaXNPmwmvQ7TwpszwVxMi2Xr5cTS3J3EBC/HHgbPF32Dn7aiu/LKWDOGjMbaDwKQiGmfqcoGQ74HUHCMw==",
    # Only the "white" theme: the others @import their fonts from Google's servers.
    {f"package/{path}": f"reveal.js/{path}" for path in (
        "dist/reveal.js", "dist/reveal.css", "dist/theme/white.css",
        "dist/theme/fonts/source-sans-pro/", "plugin/notes/", "LICENSE",
    )},
)
REQUIRE_JS = NpmTarball(
    "requirejs", "2.3.7",
    "sha512-DouTG8T1WanGok6Qjg2SXuCMzszOo0eHeH9hDZ5Y4x8Je+9JB38HdTLT4/VA8OaUhBa0JPVHJ0pyBkM1z+pDsw==",
    {"package/require.js": "require.js"},
)
JQUERY = NpmTarball(
    "jquery", "3.7.1",
    "sha512-m4avr8yL8kmFN8psrbFFFmB/If14iN5o9nw/NgnnM+kybDJpRsAynV2BsfpTYrTRysYUdADVD7CkUUizgkpLfg==",
    {"package/dist/jquery.min.js": "jquery.min.js", "package/LICENSE.txt": "jquery.LICENSE.txt"},
)
# nbconvert's pages are written for MathJax 2 and its CommonHTML output, whose TeX web fonts
# come in this package (a 21 MB download, cached; about 3 MB of it is unpacked).
MATHJAX = NpmTarball(
    "mathjax", "2.7.9",
    "sha512-NOGEDTIM9+MrsqnjPEjVGNx4q0GQxqm61yQwSK+/5S59i26wId5IC5gNu9/bu8+CCVl5p9G2IHcAl/wJa+5+BQ==",
    {f"package/{path}": f"mathjax/{path}" for path in (
        "MathJax.js", "LICENSE", "config/TeX-AMS_CHTML-full.js", "config/Safe.js", "extensions/",
        "jax/input/TeX/", "jax/element/", "jax/output/CommonHTML/", "fonts/HTML-CSS/TeX/woff/",
    )},
)
TARBALLS = (REVEAL, REQUIRE_JS, JQUERY, MATHJAX)

# Where the pages find them, relative to a page of the site.
MATHJAX_URL = "_static/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe"  # nbconvert's
REQUIRE_JS_URL = "_static/require.js"
JQUERY_URL = "_static/jquery.min.js"
REVEAL_PREFIX = "_static/reveal.js"
REVEAL_THEME = "white"


def integrity_of(data: bytes) -> str:
    """The npm-style sha512 integrity string of some bytes."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


def fetch(package: NpmTarball, cache_dir: Path = CACHE_DIR, registry: str | None = None) -> Path:
    """The verified tarball of `package` in cache_dir, downloaded first if it is not there."""
    registry = registry or os.environ.get("NPM_CONFIG_REGISTRY") or DEFAULT_REGISTRY
    url, known_hash = package.url(registry), package.known_hash
    fix = (f"Check the connection to {registry} (or point NPM_CONFIG_REGISTRY at a mirror), "
           f"or put a verified copy of {package.filename} in {cache_dir}, then run this again.")
    try:
        # pooch downloads to a temporary file beside the target and moves it there only once
        # its hash matches; a cached file whose hash matches is returned without the network.
        return Path(pooch.retrieve(url, known_hash=known_hash, fname=package.filename,
                                   path=cache_dir, downloader=pooch.HTTPDownloader(timeout=60)))
    except (requests.RequestException, OSError) as error:
        raise VendorError(
            f"Could not download {package.name} {package.version} from {url}: {error}. {fix}"
        ) from error
    except ValueError as error:  # requests' own ValueErrors are caught above
        if "does not match the known hash" not in str(error):
            raise VendorError(f"Could not fetch {package.name} {package.version} from {url}: "
                              f"{error}. {fix}") from error
        got = str(error).split(" but got ")[-1].split(".")[0]
        raise VendorError(
            f"{package.name} {package.version} from {url} does not match its pinned sha512 (got "
            f"{got[:30]}...); the download was deleted, nothing was saved. {fix}"
        ) from error


def unpack(package: NpmTarball, tarball: Path, static_dir: Path) -> list[Path]:
    """Copy the package's listed files from its tarball into static_dir; return what was written."""
    written, unmatched = [], set(package.files)
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive.getmembers():
            for source, destination in package.files.items():
                inside = source.endswith("/") and member.name.startswith(source)
                if not member.isfile() or not (member.name == source or inside):
                    continue
                relative = PurePosixPath(destination + member.name[len(source):])
                if ".." in relative.parts or relative.is_absolute():
                    raise VendorError(f"{tarball.name} holds an unsafe path: {member.name}")
                path = static_dir.joinpath(*relative.parts)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(archive.extractfile(member).read())
                written.append(path)
                unmatched.discard(source)
    if unmatched:
        raise VendorError(f"{tarball.name} lacks files the site needs: {sorted(unmatched)}")
    return written


def install_assets(static_dir: Path, cache_dir: Path = CACHE_DIR) -> None:
    """Fill static_dir with every vendored asset (fetching what is not cached yet)."""
    tarballs = [(package, fetch(package, cache_dir)) for package in TARBALLS]
    static_dir.mkdir(parents=True, exist_ok=True)
    for package, tarball in tarballs:
        unpack(package, tarball, static_dir)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv:
            install_assets(Path(argv[0]))
            print(f"Vendored reveal.js, require.js, jQuery and MathJax into {argv[0]}")
        else:
            for package in TARBALLS:
                print(f"{package.name} {package.version}: {fetch(package)}")
    except VendorError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
