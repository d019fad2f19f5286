#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian machine, then run it:
#   - a virtualenv in .venv with borderfusion and its test extras (editable);
#   - the Mosquitto broker (apt-get when missing; the tests start their own
#     instances on free loopback ports, never the system service);
#   - Debian's chromium (apt-get when missing), driven by Playwright in the map's tests
#     (Playwright's own browser download is not used).
# Extra arguments are passed to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'

if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
    echo "tests/run.sh: installing the Mosquitto broker with apt-get" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq mosquitto mosquitto-clients >/dev/null; }; then
        echo "tests/run.sh: could not install mosquitto; install it (e.g. 'apt-get install mosquitto') and rerun" >&2
        exit 1
    fi
fi

if ! [ -x /usr/bin/chromium ]; then
    echo "tests/run.sh: installing Debian's chromium with apt-get (the map's browser tests drive it)" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null; }; then
        echo "tests/run.sh: could not install chromium; install it (e.g. 'apt-get install chromium') and rerun" >&2
        exit 1
    fi
fi

exec .venv/bin/python -m pytest "$@"
