"""course_utils.files: a file or a folder is replaced whole or not at all, whatever interrupts
the writer (an exception, Ctrl-C, or SIGKILL at each stage), and leftovers of dead writers go."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from course_utils import files

REPO_ROOT = Path(__file__).resolve().parent.parent


def files_in(directory: Path) -> list[str]:
    """Every name in directory, hidden ones included, sorted: a leftover shows up whatever its
    name."""
    return sorted(os.listdir(directory))


def test_write_atomically_replaces_the_file_whole_and_keeps_its_suffix(tmp_path):
    target = tmp_path / "sub" / "figures.json"
    seen_names = []

    def write(tmp):
        seen_names.append(tmp.name)
        tmp.write_text("new")

    files.write_atomically(target, write)
    assert target.read_text() == "new"
    assert seen_names[0].startswith(".figures.json-") and seen_names[0].endswith(".json")
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)
    assert [path.name for path in target.parent.iterdir()] == ["figures.json"]


@pytest.mark.parametrize("failure", [ValueError("disk full"), KeyboardInterrupt()])
def test_write_atomically_keeps_the_old_file_and_no_temp_when_writing_fails(tmp_path, failure):
    target = tmp_path / "figures.json"
    target.write_text("old")

    def write_half_then_fail(tmp):
        tmp.write_text("half")
        raise failure

    with pytest.raises(type(failure)):
        files.write_atomically(target, write_half_then_fail)
    assert target.read_text() == "old"
    assert [path.name for path in tmp_path.iterdir()] == ["figures.json"]


def test_write_atomically_removes_what_killed_writers_left_and_nothing_else(tmp_path):
    target = tmp_path / "figures.json"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid names a writer that is gone
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as alive:
        try:
            stale_file = tmp_path / f".figures.json-{dead.pid}-a1b2{files.PART_MARKER}.json"
            stale_dir = tmp_path / f".figures.json-{dead.pid}-c3d4{files.PART_MARKER}.json"
            live = tmp_path / f".figures.json-{alive.pid}-e5f6{files.PART_MARKER}.json"
            other = tmp_path / f".other.json-{dead.pid}-a1b2{files.PART_MARKER}.json"
            for path in (stale_file, live, other):
                path.write_text("half")
            stale_dir.mkdir()
            (stale_dir / "inside").write_text("half")
            assert files.partial_files(target) == sorted([stale_file, stale_dir, live])

            files.write_atomically(target, lambda tmp: tmp.write_text("new"))
        finally:
            alive.kill()
    # The dead writer's leftovers are gone; a live writer's file and another file's are kept.
    assert files_in(tmp_path) == sorted(["figures.json", live.name, other.name])
    assert target.read_text() == "new"



def fill_with(text):
    def fill(folder):
        (folder / "index.html").write_text(text)
        (folder / "_static").mkdir()
        (folder / "_static" / "style.css").write_text(text)
    return fill


def site_text(folder: Path) -> str:
    return "|".join((folder / name).read_text() for name in ("index.html", "_static/style.css"))


def test_replace_folder_builds_beside_and_swaps_in_whole(tmp_path):
    site = tmp_path / "site" / "smoke"
    files.replace_folder(site, fill_with("first"))
    assert site_text(site) == "first|first"
    assert oct(site.stat().st_mode & 0o777) == oct(0o755)
    files.replace_folder(site, fill_with("second"))
    assert site_text(site) == "second|second"
    assert files_in(site.parent) == ["smoke"]  # no staging or set-aside folder left


@pytest.mark.parametrize("stage", ["filled", "set aside"])
def test_replace_folder_interrupted_before_the_new_one_is_in_keeps_the_old(
        tmp_path, monkeypatch, stage):
    site = tmp_path / "smoke"
    files.replace_folder(site, fill_with("old"))
    monkeypatch.setenv("COURSE_INTERRUPT_AT", stage)
    with pytest.raises(KeyboardInterrupt):
        files.replace_folder(site, fill_with("new"))
    assert site_text(site) == "old|old"
    assert files_in(tmp_path) == ["smoke"]


def test_replace_folder_interrupted_after_the_swap_has_the_new_one_and_tidies_next_time(
        tmp_path, monkeypatch):
    site = tmp_path / "smoke"
    files.replace_folder(site, fill_with("old"))
    monkeypatch.setenv("COURSE_INTERRUPT_AT", "replaced")
    with pytest.raises(KeyboardInterrupt):
        files.replace_folder(site, fill_with("new"))
    assert site_text(site) == "new|new"
    monkeypatch.delenv("COURSE_INTERRUPT_AT")
    files.replace_folder(site, fill_with("newer"))  # the old one, set aside, goes now
    assert files_in(tmp_path) == ["smoke"]


def test_a_failing_fill_keeps_the_old_folder_and_no_staging(tmp_path):
    site = tmp_path / "smoke"
    files.replace_folder(site, fill_with("old"))

    def fail(folder):
        (folder / "index.html").write_text("half")
        raise ValueError("the build failed")

    with pytest.raises(ValueError, match="the build failed"):
        files.replace_folder(site, fail)
    assert site_text(site) == "old|old" and files_in(tmp_path) == ["smoke"]


KILLED_BUILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from course_utils import files

    def fill(folder):
        (folder / "index.html").write_text(sys.argv[2])
        (folder / "_static").mkdir()
        (folder / "_static" / "style.css").write_text(sys.argv[2])

    files.replace_folder(Path(sys.argv[1]), fill)
""")


@pytest.mark.parametrize("stage", ["filled", "set aside", "replaced"])
def test_a_build_killed_at_any_stage_leaves_a_whole_folder_after_the_next_build(tmp_path, stage):
    site = tmp_path / "smoke"
    script = tmp_path / "build.py"
    script.write_text(KILLED_BUILD)

    def build(text, **environment):
        return subprocess.run([sys.executable, str(script), str(site), text], cwd=REPO_ROOT,
                              env={**os.environ, **environment}, capture_output=True, text=True)

    assert build("old").returncode == 0
    killed = build("new", COURSE_KILL_AT=stage)
    assert killed.returncode == -9, killed.stderr  # SIGKILL: nothing could clean up
    # Killed between its renames the old site is set aside, not lost: the next build puts it
    # back first, and every build ends with one whole site and nothing else.
    assert build("next").returncode == 0
    assert site_text(site) == "next|next"
    assert files_in(tmp_path) == ["build.py", "smoke"]


def test_replace_folder_says_what_is_in_its_way(tmp_path):
    in_the_way = tmp_path / "smoke"
    in_the_way.write_text("a file")
    with pytest.raises(NotADirectoryError, match="a file of that name is in the way"):
        files.replace_folder(in_the_way, fill_with("new"))
    assert in_the_way.read_text() == "a file"
