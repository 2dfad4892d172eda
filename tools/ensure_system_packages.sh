#!/bin/sh
# Install the Debian packages the course needs, when they are missing and apt is available.
#   venv           python3-venv, without which a bare Debian Python cannot create .venv
#   fashion-mnist  dataset-fashion-mnist, an offline copy of the data set
#   chromium       chromium, the browser that tests/browser drives (Playwright's own download
#                  is never used)
# Elsewhere (macOS, conda, no root) it only says what it could not do; the next step then
# fails with its own explanation.
set -u
what=${1:?usage: ensure_system_packages.sh venv|fashion-mnist|chromium}

apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "note: apt-get not found; cannot install the Debian package $1 here." >&2
        return 1
    fi
    if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
        echo "note: not root and no sudo; install the Debian package $1 yourself." >&2
        return 1
    fi
    echo "Installing the Debian package $1 ..."
    $sudo apt-get install -y -q "$1" >/dev/null 2>&1 \
        || { $sudo apt-get update -q >/dev/null 2>&1 && $sudo apt-get install -y -q "$1" >/dev/null; }
}

case "$what" in
    venv)
        python_bin=${PYTHON:-python3}
        if ! "$python_bin" -c "import ensurepip, venv" >/dev/null 2>&1; then
            version=$("$python_bin" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
            apt_install "python$version-venv" || apt_install python3-venv
        fi
        ;;
    fashion-mnist)
        [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] \
            || apt_install dataset-fashion-mnist || true
        ;;
    chromium)
        [ -x /usr/bin/chromium ] || apt_install chromium \
            || { echo "error: the browser tests need /usr/bin/chromium (Debian package chromium)." >&2; exit 1; }
        ;;
    *)
        echo "unknown request: $what" >&2
        exit 2
        ;;
esac
exit 0
