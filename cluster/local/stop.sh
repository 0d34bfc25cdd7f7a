#!/usr/bin/env bash
# Stop what cluster/local/start.sh started: the process groups recorded in $STATE_DIR/*.pgid (worker
# nodes first, then MLflow, then the head). Nothing else on the machine is touched.
set -euo pipefail
cd "$(dirname "$0")/../.."
STATE_DIR="${TUNEFORGE_CLUSTER_DIR:-$PWD/.tuneforge/cluster}"
shopt -s nullglob
for file in "$STATE_DIR"/worker*.pgid "$STATE_DIR"/mlflow.pgid "$STATE_DIR"/head.pgid; do
  pgid="$(cat "$file")"
  if kill -TERM -- "-$pgid" 2>/dev/null; then
    for _ in $(seq 1 20); do kill -0 -- "-$pgid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pgid" 2>/dev/null || true
    echo "stopped $(basename "$file" .pgid) (process group $pgid)"
  fi
  rm -f "$file"
done
rm -f "$STATE_DIR/cluster.env"
