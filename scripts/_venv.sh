# Sourced by scripts/test and scripts/demo: make .venv (Python >= 3.13) and install
# requirements_test.txt into it when missing or changed.
set -euo pipefail

find_python() {
  local candidate
  for candidate in python3.13 python3.14 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 13) else 1)' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  # pyenv installs that are not on PATH (as on the project's CI machines).
  if command -v pyenv >/dev/null 2>&1; then
    for candidate in "$(pyenv root)"/versions/3.1[3-9]*/bin/python3; do
      [ -x "$candidate" ] && { echo "$candidate"; return 0; }
    done
  fi
  return 1
}

ensure_venv() {
  local req_hash
  req_hash=$(sha256sum requirements_test.txt | cut -d' ' -f1)
  if [ ! -x .venv/bin/python ]; then
    local python
    python=$(find_python) || {
      echo "error: Python 3.13 or newer is needed (install it, e.g. with pyenv, and retry)" >&2
      exit 1
    }
    echo "==> creating .venv with $python"
    "$python" -m venv .venv
  fi
  if [ "$(cat .venv/.requirements.sha256 2>/dev/null)" != "$req_hash" ]; then
    echo "==> installing requirements_test.txt into .venv (first time: a few minutes)"
    .venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
    .venv/bin/python -m pip install --quiet -r requirements_test.txt 2>&1 | grep -v '^WARNING: Location' || true
    .venv/bin/python -c 'import homeassistant, ocpp, pytest_homeassistant_custom_component' || {
      echo "error: installing requirements_test.txt failed" >&2
      exit 1
    }
    echo "$req_hash" > .venv/.requirements.sha256
  fi
}
