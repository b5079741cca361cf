#!/usr/bin/env bash
# Set up everything on a fresh machine and run the whole test suite (the README's test command; CI runs it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh "dev,demo,plots,bench,jax,keras,triton,test-frontends,peers"
export PYTHONUNBUFFERED=1
exec .venv/bin/python -m pytest -q "$@"
