"""Writing files and folders so that a crash, Ctrl-C or a full disk never leaves half of one.

Every saver in the course goes through here: `write_atomically` for one file (models, caches,
quality figures, downloads; notebooks 1-15 through checkpoints, evaluation, report and data) and
`replace_folder` for a folder built whole (tools/build_site.py). Plumbing a student may skip.
(tools/vendor_assets.py leaves its downloads to pooch, which also writes them beside their place
and renames them once verified.)

Both build their result next to its place under a temporary name, `.<name>-<pid>-<random>.part`
plus the name's suffix, and rename it into place only once it is complete. A writer killed with
SIGKILL cannot clean up after itself; the next writer of the same name removes what it left, once
that process (its pid is in the name) is gone. COURSE_KILL_AT=<stage> or COURSE_INTERRUPT_AT=<stage>
end the process there (as `kill -9` would) or raise KeyboardInterrupt there (as Ctrl-C would): the
tests interrupt a save at each stage that way.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path

PART_MARKER = ".part"  # temporary files are named .<name>-<pid>-<random>.part<suffix>
ASIDE_MARKER = ".aside"  # a replaced folder, kept until its successor is in place


def stage(name: str) -> None:
    """A point where the tests interrupt a save on purpose (COURSE_KILL_AT, COURSE_INTERRUPT_AT)."""
    if os.environ.get("COURSE_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("COURSE_INTERRUPT_AT") == name:
        raise KeyboardInterrupt(f"interrupted at {name} (COURSE_INTERRUPT_AT)")


def partial_files(path: Path) -> list[Path]:
    """Temporary files or folders that writers of path left (killed mid-write)."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    return sorted(other for other in path.parent.glob(f".{path.name}-*{PART_MARKER}{path.suffix}")
                  if other.is_file() or other.is_dir())


def _writer_is_alive(part: Path, path: Path) -> bool:
    """Whether the process named in part's name (.<path name>-<pid>-...) may still be writing."""
    pid = part.name[len(path.name) + 2:].split("-", 1)[0].removesuffix(ASIDE_MARKER)
    if not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process: assume it is still writing
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_stale_parts(path: Path) -> list[Path]:
    """Delete what killed writers of path left behind (their process is gone)."""
    removed = []
    for part in partial_files(path):
        if not _writer_is_alive(part, path):
            _remove(part)
            removed.append(part)
    return removed


def _parent_folder(path: Path) -> None:
    """Make path's folder, or say clearly what stands in its way."""
    if path.parent.exists() and not path.parent.is_dir():
        raise NotADirectoryError(
            f"Cannot save {path.name}: {path.parent} is a file, not a folder. Move or delete that "
            "file, or point the course at another folder (COURSE_MODEL_DIR / COURSE_QUALITY_DIR)."
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as error:
        raise NotADirectoryError(
            f"Cannot save {path.name}: a file stands where a folder of {path.parent} should be "
            f"({error}). Move or delete it, or choose another folder."
        ) from None


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Have write(tmp) fill a temporary file, then rename it onto path."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"Cannot save {path}: a folder of that name is in the way; "
                                "delete or rename it.")
    _parent_folder(path)
    remove_stale_parts(path)
    # Next to path, so that os.replace is an atomic rename on one filesystem; path's suffix kept,
    # because Keras and NumPy choose the format by it; a leading dot keeps it out of `ls`.
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-{os.getpid()}-",
                                        suffix=f"{PART_MARKER}{path.suffix}")
    os.close(handle)
    tmp_path = Path(tmp_name)
    try:
        write(tmp_path)
        stage("written")
        if not tmp_path.is_file() or tmp_path.stat().st_size == 0:
            raise OSError(f"writing {path.name} produced no data")
        tmp_path.chmod(0o644)  # mkstemp makes files private; nothing saved here is secret
        os.replace(tmp_path, path)
    except BaseException:
        # BaseException on purpose: Ctrl-C during a write must not leave a half file either.
        tmp_path.unlink(missing_ok=True)
        raise
    stage("renamed")


def _set_aside_folders(folder: Path) -> list[Path]:
    return sorted(folder.parent.glob(f".{folder.name}-*{ASIDE_MARKER}"))


def _restore_or_drop_set_aside(folder: Path) -> None:
    """A writer killed (or, in this process, interrupted) between its two renames left folder set
    aside: put it back if folder is missing, else drop it."""
    own = folder.with_name(f".{folder.name}-{os.getpid()}{ASIDE_MARKER}")
    for aside in reversed(_set_aside_folders(folder)):
        if aside != own and _writer_is_alive(aside, folder):
            continue  # another process is between its renames right now
        if not folder.exists():
            os.replace(aside, folder)
        else:
            _remove(aside)


def replace_folder(folder: Path, fill: Callable[[Path], None]) -> None:
    """Have fill(tmp) fill a temporary folder, then put it in folder's place."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"Cannot build {folder}: a file of that name is in the way; "
                                 "delete or rename it.")
    _parent_folder(folder)
    _restore_or_drop_set_aside(folder)
    remove_stale_parts(folder)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-{os.getpid()}-",
                                    suffix=f"{PART_MARKER}{folder.suffix}"))
    aside = folder.with_name(f".{folder.name}-{os.getpid()}{ASIDE_MARKER}")
    try:
        fill(staging)
        stage("filled")
        staging.chmod(0o755)  # mkdtemp makes folders private; a site is for reading
        # A folder cannot be renamed onto another: the old one goes aside, then the new one in.
        if folder.exists():
            os.replace(folder, aside)
            stage("set aside")
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if aside.exists() and not folder.exists():
            os.replace(aside, folder)  # interrupted between the renames: the old one comes back
        raise
    stage("replaced")
    _remove(aside)
