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

drop_torchaudio_ops() {  # drop_torchaudio_ops DIR (nothing to do where torchaudio is not installed)
  # torchaudio's wheels on the index are linked against CUDA builds of torch, so the CPU torch
  # cannot load its compiled ops and `import torchaudio` (which speechbrain does) fails. None of
  # them is used here (audio is read with soundfile, features are computed in torch), and without
  # the libraries torchaudio imports as pure Python.
  "$1/bin/python" - <<'PY'
import importlib.util
import pathlib

spec = importlib.util.find_spec("torchaudio")
if spec is not None and spec.submodule_search_locations:
    for library in pathlib.Path(spec.submodule_search_locations[0], "lib").glob("*.so"):
        library.unlink()
PY
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
  drop_torchaudio_ops "$dir"
  "$dir/bin/python" -m pip install --quiet --no-deps --force-reinstall .
  echo "$stamp" >"$dir/.mww-stamp"
}

install_browser() {  # Debian's chromium and its driver, which the studio's browser tests drive (tests/studio)
  [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "note: chromium and chromium-driver are missing and need root and apt to install; the studio's browser tests will be skipped" >&2
    return 0
  fi
  echo "== installing chromium and chromium-driver (Debian's packages) for the studio's browser tests"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; }; then
    echo "note: chromium could not be installed; the studio's browser tests will be skipped" >&2
  fi
}

case "$which_env" in
  tf) setup .venv requirements.txt && install_browser ;;
  torch) setup .venv-torch requirements-torch.txt ;;
  all) setup .venv requirements.txt && install_browser && setup .venv-torch requirements-torch.txt ;;
  *) echo "usage: scripts/setup_env.sh [tf|torch|all]" >&2; exit 2 ;;
esac
