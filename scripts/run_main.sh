#!/usr/bin/env bash
# Set up on a fresh machine and run the main job (the README's main command).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh "demo,plots"
exec .venv/bin/focalkit demo --out out/demo --force "$@"
