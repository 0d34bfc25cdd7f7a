#!/usr/bin/env bash
# Start a single-node Ray head on loopback for `ray job submit` (development).
# The venv's bin must come first on PATH so jobs run with the project's Python.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.venv/bin:$PATH"
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-disabled}"   # loopback only; use token auth on shared clusters
export DS_ACCELERATOR="${DS_ACCELERATOR:-cpu}"
export TORCH_EXTENSIONS_DIR="${TORCH_EXTENSIONS_DIR:-$PWD/.tuneforge/torch_extensions}"
export RAY_TRAIN_HEALTH_CHECK_INTERVAL_S="${RAY_TRAIN_HEALTH_CHECK_INTERVAL_S:-0.5}"
exec ray start --head --num-cpus="${NUM_CPUS:-4}" --port="${RAY_PORT:-6379}" \
  --node-ip-address=127.0.0.1 --dashboard-host=127.0.0.1 --dashboard-port="${DASHBOARD_PORT:-8265}" "$@"
