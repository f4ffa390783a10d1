#!/usr/bin/env bash
# Create or update the project's environments. Usage: scripts/setup_env.sh [tf|torch|all]
#   .venv        TensorFlow environment: requirements.txt + this package
#   .venv-torch  PyTorch environment:   requirements-torch.txt + this package (no TensorFlow)
# An environment is rebuilt only when its requirements file or the package sources changed.
set -euo pipefail
cd "$(dirname "$0")/.."
which_env="${1:-all}"

pick_python() {
  for candidate in "${PYTHON:-}" python3.11 python3.12 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  echo "error: Python 3.11 or newer was not found. Install it (Debian/Ubuntu: apt install python3.11 python3.11-venv) or set PYTHON=/path/to/python3.11." >&2
  return 1
}

make_venv() {  # make_venv DIR
  local py
  py="$(pick_python)"
  if ! "$py" -m venv "$1" 2>/dev/null; then
    rm -rf "$1"
    if "$py" -m pip --version >/dev/null 2>&1; then
      "$py" -m pip install --user --quiet virtualenv && "$py" -m virtualenv --quiet "$1"
    else
      echo "error: could not create a virtual environment with $py: the venv module is missing. On Debian/Ubuntu install it with 'apt install python3-venv' (or python3.11-venv), then rerun." >&2
      return 1
    fi
  fi
}

stamp_of() {  # stamp_of REQUIREMENTS: what the environment was built from
  cat "$1" pyproject.toml | sha256sum | cut -d' ' -f1
}

setup() {  # setup DIR REQUIREMENTS
  local dir="$1" req="$2" stamp
  stamp="$(stamp_of "$req")"
  if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.mww-stamp" 2>/dev/null)" = "$stamp" ]; then
    "$dir/bin/python" -m pip install --quiet --no-deps --no-build-isolation --force-reinstall . >/dev/null
    return 0
  fi
  echo "== setting up $dir from $req (first run downloads packages; this takes a few minutes)"
  [ -x "$dir/bin/python" ] || make_venv "$dir"
  "$dir/bin/python" -m pip install --quiet --upgrade pip setuptools wheel
  "$dir/bin/python" -m pip install --quiet -r "$req"
  "$dir/bin/python" -m pip install --quiet --no-deps --force-reinstall .
  echo "$stamp" >"$dir/.mww-stamp"
}

case "$which_env" in
  tf) setup .venv requirements.txt ;;
  torch) setup .venv-torch requirements-torch.txt ;;
  all) setup .venv requirements.txt && setup .venv-torch requirements-torch.txt ;;
  *) echo "usage: scripts/setup_env.sh [tf|torch|all]" >&2; exit 2 ;;
esac
