#!/usr/bin/env bash
# The whole test suite: builds both environments, lints, then runs each environment's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh all
export PYTHONDONTWRITEBYTECODE=1 TF_CPP_MIN_LOG_LEVEL=2

echo "== lint (ruff)"
.venv/bin/ruff check src tests scripts benchmarks config
.venv/bin/ruff format --check src tests scripts benchmarks config

echo "== tests, TensorFlow environment"
.venv/bin/python -m pytest tests --ignore=tests/cluster "$@"

echo "== tests, PyTorch environment"
.venv-torch/bin/python -m pytest tests/cluster -p no:cacheprovider "$@"
