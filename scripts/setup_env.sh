#!/usr/bin/env bash
# Create .venv in the repository and install focalkit with the given extras (default: dev).
# Usage: bash scripts/setup_env.sh [EXTRAS]      e.g. bash scripts/setup_env.sh dev,demo,jax
#
# torch is installed first, before any package can ask for it: on a machine without an NVIDIA GPU the pinned CPU
# build torch==2.13.0, so that no resolver pulls a multi-GB CUDA build; with a GPU, any torch >= 2.4.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev}"
python="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)

if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    "${pip[@]}" install "torch>=2.4"
  else
    "${pip[@]}" install "torch==2.13.0"
  fi
fi
# Installing against the torch already present: a range it satisfies installs nothing more.
"${pip[@]}" install -e ".[${extras}]"
