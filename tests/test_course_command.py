"""`make course`, the README's first command: JupyterLab starts for root and non-root users, on
a machine with or without a display, prints the URL to open with its token, and stops cleanly."""

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tools import start_course

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_WITHIN_S = 60


# --- the command line tools/start_course.py builds ---------------------------------------------


@pytest.mark.parametrize("root", [True, False])
def test_allow_root_is_added_for_root_only(root):
    command = start_course.build_command(None, root=root, display=True, python="py")
    assert ("--allow-root" in command) is root
    assert command[:4] == ["py", "-m", "jupyterlab", "notebooks/00_introduction.ipynb"]


@pytest.mark.parametrize("display", [True, False])
def test_no_browser_exactly_when_there_is_no_display(display):
    command = start_course.build_command(None, root=False, display=display, python="py")
    assert ("--no-browser" in command) is not display


def test_a_port_asked_for_is_used_exactly_and_the_default_may_move():
    asked = start_course.build_command(9123, "0.0.0.0", root=False, display=False, python="py",
                                       extra=["--ServerApp.base_url=/x/"])
    assert asked[-5:] == ["--ip=0.0.0.0", "--port=9123", "--port-retries=0", "--no-browser",
                          "--ServerApp.base_url=/x/"]
    default = start_course.build_command(None, root=False, display=True, python="py")
    assert "--port=8888" in default and "--ip=127.0.0.1" in default
    assert not any(part.startswith("--port-retries") for part in default)


@pytest.mark.parametrize(
    ("platform", "environ", "expected"),
    [
        ("linux", {}, False),
        ("linux", {"DISPLAY": ":0"}, True),
        ("linux", {"WAYLAND_DISPLAY": "wayland-0"}, True),
        ("linux", {"DISPLAY": ""}, False),
        ("darwin", {}, True),
        ("darwin", {"SSH_CONNECTION": "10.0.0.1 5000 10.0.0.2 22"}, False),
        ("win32", {}, True),
    ],
)
def test_has_display(platform, environ, expected):
    assert start_course.has_display(environ, platform) is expected


def test_urls_open_the_first_notebook_with_the_token():
    info = {"url": "http://box:8890/", "port": 8890, "base_url": "/", "token": "abc"}
    assert start_course.course_urls(info, "127.0.0.1") == [
        "http://box:8890/lab/tree/notebooks/00_introduction.ipynb?token=abc"]
    assert start_course.course_urls(info, "0.0.0.0")[1] == (
        "http://127.0.0.1:8890/lab/tree/notebooks/00_introduction.ipynb?token=abc")
    assert start_course.course_urls({**info, "token": ""}, "127.0.0.1") == [
        "http://box:8890/lab/tree/notebooks/00_introduction.ipynb"]


def test_a_busy_port_asked_for_is_refused_with_advice(capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert start_course.port_in_use("127.0.0.1", port)
        assert start_course.main(["--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"Port {port} is already in use" in err
    assert f"make course PORT={port + 1}" in err


# --- `make course` itself ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"token {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_group(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM to make and everything it started, then SIGKILL whatever outlives timeout."""
    if group_alive(process.pid):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (process.poll() is None or group_alive(process.pid)):
        time.sleep(0.1)
    if group_alive(process.pid):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


@pytest.fixture
def course(tmp_path):
    """`make course PORT=<a free port>` from the repository root, headless, in its own process
    group; its output lines are collected as they come."""
    up_to_date = subprocess.run(["make", "-q", ".venv/.installed-from-pyproject"], cwd=REPO_ROOT)
    if up_to_date.returncode != 0:
        pytest.fail("the virtual environment is out of date: run `make setup` first (CI does)")
    port = free_port()
    env = {key: value for key, value in os.environ.items()
           if key not in ("DISPLAY", "WAYLAND_DISPLAY", "JUPYTER_TOKEN", "MAKEFLAGS", "MFLAGS",
                          "MAKELEVEL", "IP", "JUPYTER_ARGS")}
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    process = subprocess.Popen(["make", "course", f"PORT={port}"], cwd=REPO_ROOT, env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    try:
        yield process, port, lines
    finally:
        stop_group(process)
        reader.join(timeout=10)


def test_make_course_serves_the_first_notebook_prints_its_url_and_stops_cleanly(course):
    process, port, lines = course
    pattern = re.compile(rf"http://127\.0\.0\.1:{port}/lab/tree/notebooks/00_introduction\.ipynb"
                         r"\?token=(\w+)")
    started = time.monotonic()
    match = None
    while match is None and time.monotonic() - started < READY_WITHIN_S:
        assert process.poll() is None, "make course stopped:\n" + "".join(lines)
        match = next(filter(None, map(pattern.search, list(lines))), None)
        time.sleep(0.2)
    output = "".join(lines)
    assert match, f"no course URL within {READY_WITHIN_S} s:\n{output}"
    url, token = match.group(0), match.group(1)

    status, body = get(f"http://127.0.0.1:{port}/api/status", token)
    assert status == 200 and "started" in json.loads(body)
    assert get(f"http://127.0.0.1:{port}/api/status")[0] == 403  # the token is what lets one in
    status, body = get(url)
    assert status == 200 and b"JupyterLab" in body
    status, body = get(f"http://127.0.0.1:{port}/api/contents/notebooks/00_introduction.ipynb"
                       "?content=0", token)
    assert status == 200 and json.loads(body)["type"] == "notebook"
    assert "No display was found here, so no browser was opened" in output
    assert "Running as root is not recommended" not in output

    pgid = process.pid
    os.killpg(pgid, signal.SIGTERM)
    process.wait(timeout=30)
    deadline = time.monotonic() + 10
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not group_alive(pgid), "a process of `make course` outlived it"
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "the port is still served"
    assert time.monotonic() - started < READY_WITHIN_S
