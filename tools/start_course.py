"""Start the course in JupyterLab (what `make course` runs), for root and non-root users alike.

    python tools/start_course.py [--port 8888] [--ip 127.0.0.1] [--no-browser] [-- JUPYTER ARGS]

It builds the JupyterLab command line (--allow-root only when run as root, --no-browser when there
is no display to open a browser on), starts JupyterLab on the first notebook, waits until the
server answers, then prints the URL to open with its token: on a headless machine (a container,
a cloud VM, over SSH) that URL is the way in. It stays in the foreground until JupyterLab stops
(Ctrl-C twice) and passes on JupyterLab's exit status.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
FIRST_NOTEBOOK = "notebooks/00_introduction.ipynb"
DEFAULT_PORT = 8888
DEFAULT_IP = "127.0.0.1"
WILDCARD_IPS = ("", "0.0.0.0", "*", "::")


def is_root() -> bool:
    """Tell whether this process runs as root (JupyterLab then needs --allow-root)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def has_display(environ=os.environ, platform: str = sys.platform) -> bool:
    """Tell whether a browser could be opened here: Windows and a local macOS always can, other
    systems (Linux, BSD) only with an X11 or Wayland display."""
    if platform == "win32":
        return True
    if environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
        return True
    if platform == "darwin":
        return not (environ.get("SSH_CONNECTION") or environ.get("SSH_TTY"))
    return False


def build_command(port: int | None, ip: str = DEFAULT_IP, *, root: bool, display: bool,
                  extra: list[str] = (), python: str = sys.executable) -> list[str]:
    """The JupyterLab command line. A port that was asked for is used exactly (JupyterLab fails
    if it is taken); without one, JupyterLab tries 8888 and then the next free ports."""
    command = [python, "-m", "jupyterlab", FIRST_NOTEBOOK, f"--ServerApp.root_dir={REPO_ROOT}",
               f"--ip={ip}"]
    if port is None:
        command.append(f"--port={DEFAULT_PORT}")
    else:
        command += [f"--port={port}", "--port-retries=0"]
    if root:
        command.append("--allow-root")
    if not display:
        command.append("--no-browser")
    return command + list(extra)


def port_in_use(ip: str, port: int) -> bool:
    """Tell whether port is already taken on ip (the wildcard address for a wildcard ip)."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("" if ip in WILDCARD_IPS else ip, port))
        except OSError as error:
            return error.errno == errno.EADDRINUSE
    return False


def server_info(pid: int) -> dict | None:
    """What the JupyterLab server with this pid wrote about itself (url, port, token), once it
    listens; None before then."""
    from jupyter_core.paths import jupyter_runtime_dir

    path = Path(jupyter_runtime_dir()) / f"jpserver-{pid}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # not written yet, or caught half-written
        return None


def answers(info: dict, ip: str, timeout: float = 2.0) -> bool:
    """Tell whether the server answers an authenticated GET /api/status."""
    host = "127.0.0.1" if ip in WILDCARD_IPS or ip == "localhost" else ip
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if info.get("secure") else "http"
    url = f"{scheme}://{host}:{info['port']}{info.get('base_url', '/')}api/status"
    request = urllib.request.Request(url, headers={"Authorization": f"token {info['token']}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False


def course_urls(info: dict, ip: str) -> list[str]:
    """The URLs that open the first notebook, token included; with a wildcard ip, the machine's
    name and 127.0.0.1."""
    query = f"?token={info['token']}" if info.get("token") else ""
    path = f"lab/tree/{FIRST_NOTEBOOK}{query}"
    urls = [info["url"].rstrip("/") + "/" + path]
    if ip in WILDCARD_IPS:
        scheme = "https" if info.get("secure") else "http"
        urls.append(f"{scheme}://127.0.0.1:{info['port']}{info.get('base_url', '/')}{path}")
    return urls


def banner(urls: list[str], port: int, display: bool) -> str:
    """What to tell the student once the server answers."""
    rule = "=" * 78
    lines = ["", rule, "The course is running in JupyterLab. Open this URL in a web browser:", ""]
    lines += [f"    {url}" for url in urls]
    lines.append("")
    if display:
        lines.append("(A browser tab should open by itself; if not, open the URL above.)")
    else:
        lines += [
            "No display was found here, so no browser was opened. Open the URL above in a",
            "browser on this machine; on a remote machine or in a container, first forward the",
            f"port to your own computer (e.g. `ssh -L {port}:127.0.0.1:{port} USER@MACHINE`),",
            "or start the course with `make course IP=0.0.0.0` and use the machine's address.",
        ]
    lines += ["Stop the course with Ctrl-C, twice.", rule, ""]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=None,
                        help=f"the port to serve on, exactly (default: {DEFAULT_PORT}, or the "
                        "next free one if it is taken)")
    parser.add_argument("--ip", default=DEFAULT_IP,
                        help=f"the address to listen on (default {DEFAULT_IP}; 0.0.0.0 makes the "
                        "course reachable from other machines, e.g. outside a container)")
    parser.add_argument("--no-browser", action="store_true",
                        help="never open a browser (the default when there is no display)")
    parser.add_argument("jupyter_args", nargs="*",
                        help="more JupyterLab options, after `--`")
    return parser.parse_args(argv)


def wait_until_serving(child: subprocess.Popen, ip: str, stopping=()) -> dict | None:
    """Wait until the child server answers; its info, or None if it stopped first."""
    started = time.monotonic()
    hinted = False
    while child.poll() is None:
        if stopping:
            return None
        info = server_info(child.pid)
        if info is not None and answers(info, ip):
            return info
        if not hinted and time.monotonic() - started > 60:
            print("JupyterLab is still starting (a slow or busy machine) ...", flush=True)
            hinted = True
        time.sleep(0.2)
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    display = has_display() and not args.no_browser
    if args.port is not None and port_in_use(args.ip, args.port):
        print(f"Port {args.port} is already in use (is the course already running in another "
              "terminal? `.venv/bin/jupyter server list` shows running servers). Choose another "
              f"one, e.g. `make course PORT={args.port + 1}`.", file=sys.stderr)
        return 1
    command = build_command(args.port, args.ip, root=is_root(), display=display,
                            extra=args.jupyter_args)

    # Ctrl-C reaches JupyterLab from the terminal directly (it asks for a second one); this
    # process only waits for it. A handler rather than SIG_IGN: an ignored signal would stay
    # ignored in JupyterLab, a handler is reset when it starts.
    signal.signal(signal.SIGINT, lambda *_: None)
    children: list[subprocess.Popen] = []
    stopping: list[float] = []  # when SIGTERM or SIGHUP asked this process to stop

    def stop_child(signum, _frame):
        # Only pass the signal on: waiting here could deadlock with the wait in progress.
        stopping.append(time.monotonic())
        for child in children:
            child.send_signal(signum)  # JupyterLab shuts down (and stops its kernels)

    for name in ("SIGTERM", "SIGHUP"):  # SIGHUP: the terminal was closed (not on Windows)
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), stop_child)
    child = subprocess.Popen(command, cwd=REPO_ROOT)
    children.append(child)
    if stopping:  # a stop request that came while it was being started
        child.terminate()

    info = wait_until_serving(child, args.ip, stopping)
    if info is None:
        code = wait_for(child, stopping)
        if not stopping:
            print(f"JupyterLab stopped before it was ready (exit status {code}); its messages "
                  "are above.", file=sys.stderr)
        return code or (0 if stopping else 1)
    print(banner(course_urls(info, args.ip), info["port"], display), flush=True)
    return wait_for(child, stopping)


def wait_for(child: subprocess.Popen, stopping: list[float], grace_s: float = 20.0) -> int:
    """Wait until the child exits (its exit status); kill it if it outlives a stop request by
    grace_s."""
    while True:
        try:
            code = child.wait(timeout=0.5)
            return 128 - code if code < 0 else code  # killed by a signal: the shell's 128 + N
        except subprocess.TimeoutExpired:
            if stopping and time.monotonic() - stopping[0] > grace_s:
                child.kill()


if __name__ == "__main__":
    sys.exit(main())
