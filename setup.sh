#!/usr/bin/env bash
# Sets up a development environment in .venv: Python 3.11, the CPU build of torch, then the project
# with its dev extras.
#
# Which torch: PyPI's Linux wheel of torch is the CUDA build (several GB), so on Linux this installs
# the CPU build, "torch==X+cpu". It comes from wherever pip is configured to look first (a local
# wheel folder through find-links, as on our build machines, needs no network), else from PyTorch's
# CPU wheel index. On macOS and Windows PyPI's wheel is already the CPU build. To choose another
# build (the CUDA one on a machine with an NVIDIA GPU), set TORCH_INDEX_URL to PyTorch's wheel index
# for it (e.g. https://download.pytorch.org/whl/cu126); pip then installs torch from there only.
set -euo pipefail
cd "$(dirname "$0")"
TORCH_VERSION=2.13.0
TORCH_CPU_INDEX_URL="${TORCH_CPU_INDEX_URL:-https://download.pytorch.org/whl/cpu}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' \
  || { echo "setup.sh: Python 3.11 or newer is needed (found $("$PYTHON" --version))." >&2; exit 2; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip_install() { .venv/bin/python -m pip install -q "$@"; }
pip_install --upgrade pip
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  pip_install "torch==$TORCH_VERSION" --index-url "$TORCH_INDEX_URL"
elif [ "$(uname -s)" = Linux ]; then
  if ! pip_install "torch==$TORCH_VERSION+cpu" >/dev/null 2>&1; then
    echo "setup.sh: no CPU build of torch $TORCH_VERSION where pip looks; getting it from $TORCH_CPU_INDEX_URL"
    pip_install "torch==$TORCH_VERSION+cpu" --index-url "$TORCH_CPU_INDEX_URL"
  fi
else
  pip_install "torch==$TORCH_VERSION"
fi
pip_install -e ".[dev]"
.venv/bin/python -c 'import torch; print("setup.sh: torch", torch.__version__, "CUDA", torch.version.cuda or "none")'
echo "Ready: activate with 'source .venv/bin/activate', then run 'modelai demo' or 'modelai-desktop'."
