#!/usr/bin/env bash
# Sets up a development environment in .venv: Python 3.11, the CPU build of torch (a bare `torch`
# requirement would pull a multi-GB CUDA build), then the project with its dev extras.
# On a machine with an NVIDIA GPU, set TORCH_INDEX_URL to PyTorch's CUDA wheel index first.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' \
  || { echo "setup.sh: Python 3.11 or newer is needed (found $("$PYTHON" --version))." >&2; exit 2; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  .venv/bin/python -m pip install -q "torch==2.13.0" --index-url "$TORCH_INDEX_URL"
else
  .venv/bin/python -m pip install -q "torch==2.13.0"
fi
.venv/bin/python -m pip install -q -e ".[dev]"
echo "Ready: activate with 'source .venv/bin/activate', then run 'modelai demo' or 'modelai-desktop'."
