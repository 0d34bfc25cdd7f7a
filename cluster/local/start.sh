#!/usr/bin/env bash
# A local Ray cluster for `tuneforge submit` and `tuneforge doctor`, on loopback only:
#   cluster/local/start.sh            a Ray head (GCS, dashboard and job API) and an `mlflow server`
#   cluster/local/start.sh --worker   one more Ray node on this machine joins the head (a real 2-node
#                                     cluster: its own raylet, object store and resources)
#   cluster/local/stop.sh             stops exactly what these started
#
# Every process is started in its own process group, whose id goes to $STATE_DIR/*.pgid; stop.sh kills
# those groups, never a broad `ray stop` (which would stop every Ray instance on the machine).
# $STATE_DIR/cluster.env holds the addresses and the token path; `source` it before `tuneforge submit`.
#
# Token authentication stays on (Ray 2.60's default): the token is written once to
# $STATE_DIR/auth_token, and clients read it through RAY_AUTH_MODE=token + RAY_AUTH_TOKEN_PATH (both in
# cluster.env). `--no-auth` turns it off, for throwaway test clusters only.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"

# Ports, resources and data dirs, all in one place (override any of them through the environment).
STATE_DIR="${TUNEFORGE_CLUSTER_DIR:-$ROOT/.tuneforge/cluster}"   # keep it short: Ray's socket paths
RAY_PORT="${RAY_PORT:-6379}"                 # GCS: nodes and drivers join here (keep all three
                                             # outside Ray's worker range, 10002-19999)
DASHBOARD_PORT="${DASHBOARD_PORT:-8265}"     # dashboard + job submission API (runs arbitrary code)
MLFLOW_PORT="${MLFLOW_PORT:-5000}"           # mlflow server, sqlite backend in $STATE_DIR/mlflow
HEAD_CPUS="${HEAD_CPUS:-2}"                  # logical CPUs each node offers to Ray
WORKER_CPUS="${WORKER_CPUS:-2}"
STORAGE="${TUNEFORGE_STORAGE:-$ROOT/.tuneforge}"   # jobs' TUNEFORGE_HOME: one machine's disk is shared
BIND=127.0.0.1                               # loopback only; remote users tunnel (ssh -L)
START_TIMEOUT_S="${START_TIMEOUT_S:-120}"

auth=token worker=0 mlflow=1
for arg in "$@"; do
  case "$arg" in
    --worker) worker=1 ;;
    --no-auth) auth=disabled ;;
    --no-mlflow) mlflow=0 ;;
    *) echo "error: unknown option '$arg' (use --worker, --no-auth, --no-mlflow)" >&2; exit 1 ;;
  esac
done

export PATH="$ROOT/.venv/bin:$PATH"          # jobs run with the project's Python
export DS_ACCELERATOR="${DS_ACCELERATOR:-cpu}"
export TORCH_EXTENSIONS_DIR="${TORCH_EXTENSIONS_DIR:-$ROOT/.tuneforge/torch_extensions}"
export RAY_USAGE_STATS_ENABLED=0 MLFLOW_DISABLE_TELEMETRY=true HF_HUB_OFFLINE=1
mkdir -p "$STATE_DIR"

if [[ -f "$STATE_DIR/cluster.env" ]]; then
  # shellcheck disable=SC1091
  source "$STATE_DIR/cluster.env"           # a running cluster: --worker joins it with its settings
  auth="$RAY_AUTH_MODE"
fi
export RAY_AUTH_MODE="$auth"
if [[ "$auth" == token ]]; then
  export RAY_AUTH_TOKEN_PATH="$STATE_DIR/auth_token"
  if [[ ! -s "$RAY_AUTH_TOKEN_PATH" ]]; then
    (umask 077 && python -c "import secrets; print(secrets.token_hex(32), end='')" > "$RAY_AUTH_TOKEN_PATH")
  fi
fi

wait_for() {  # wait_for URL NAME: poll until the URL answers; fail, showing its log, if NAME exits
  local deadline=$((SECONDS + START_TIMEOUT_S)) log="$STATE_DIR/$2.log"
  local pgid auth_header=()
  pgid="$(cat "$STATE_DIR/$2.pgid")"
  if [[ "$RAY_AUTH_MODE" == token ]]; then  # the dashboard answers only with the token
    auth_header=(-H "Authorization: Bearer $(cat "$RAY_AUTH_TOKEN_PATH")")
  fi
  until curl -sf -o /dev/null "${auth_header[@]}" "$1"; do
    if ! kill -0 -- "-$pgid" 2>/dev/null || ((SECONDS > deadline)); then
      echo "error: $2 did not start ($1 does not answer); last lines of $log:" >&2
      tail -n 8 "$log" >&2
      kill -KILL -- "-$pgid" 2>/dev/null || true
      rm -f "$STATE_DIR/$2.pgid"
      exit 1
    fi
    sleep 1
  done
}

free_port() {  # a port the kernel has free now: side ports (agents, Ray client) of every node
  python -c "import socket; s = socket.socket(); s.bind(('$BIND', 0)); print(s.getsockname()[1])"
}

start_group() {  # start_group NAME LOG CMD...: run CMD in a new process group, record its id
  local name="$1" log="$2"
  shift 2
  setsid "$@" >"$log" 2>&1 < /dev/null &
  echo $! > "$STATE_DIR/$name.pgid"
}

if [[ ! -f "$STATE_DIR/head.pgid" ]] || ! kill -0 -- "-$(cat "$STATE_DIR/head.pgid")" 2>/dev/null; then
  start_group head "$STATE_DIR/head.log" ray start --head --block --num-cpus="$HEAD_CPUS" \
    --port="$RAY_PORT" --node-ip-address="$BIND" --dashboard-host="$BIND" \
    --dashboard-port="$DASHBOARD_PORT" --include-dashboard=true --temp-dir="$STATE_DIR/ray" \
    --dashboard-agent-listen-port="$(free_port)" --ray-client-server-port="$(free_port)" \
    --disable-usage-stats
  wait_for "http://$BIND:$DASHBOARD_PORT/api/version" head
  cat > "$STATE_DIR/cluster.env" <<ENV
export RAY_ADDRESS=$BIND:$RAY_PORT
export RAY_API_SERVER_ADDRESS=http://$BIND:$DASHBOARD_PORT
export RAY_AUTH_MODE=$auth
export TUNEFORGE_STORAGE=$STORAGE
ENV
  if [[ "$auth" == token ]]; then
    echo "export RAY_AUTH_TOKEN_PATH=$RAY_AUTH_TOKEN_PATH" >> "$STATE_DIR/cluster.env"
  fi
  echo "ray head: dashboard and job API http://$BIND:$DASHBOARD_PORT, GCS $BIND:$RAY_PORT (auth: $auth)"
fi

if ((mlflow)) && [[ ! -f "$STATE_DIR/mlflow.pgid" ]]; then
  mkdir -p "$STATE_DIR/mlflow"
  start_group mlflow "$STATE_DIR/mlflow.log" mlflow server \
    --backend-store-uri "sqlite:///$STATE_DIR/mlflow/mlflow.db" \
    --artifacts-destination "$STATE_DIR/mlflow/artifacts" \
    --host "$BIND" --port "$MLFLOW_PORT" --workers 1
  wait_for "http://$BIND:$MLFLOW_PORT/health" mlflow
  echo "export MLFLOW_TRACKING_URI=http://$BIND:$MLFLOW_PORT" >> "$STATE_DIR/cluster.env"
  echo "mlflow server: http://$BIND:$MLFLOW_PORT (sqlite: $STATE_DIR/mlflow/mlflow.db)"
fi

if ((worker)); then
  # Its own temp dir, as on a real second machine: nodes sharing one would share the runtime-env
  # cache, and one node's cleanup would delete the working dir a job on the other is running in.
  n=1
  while [[ -f "$STATE_DIR/worker$n.pgid" ]]; do n=$((n + 1)); done
  start_group "worker$n" "$STATE_DIR/worker$n.log" ray start --block --address="$BIND:$RAY_PORT" \
    --num-cpus="$WORKER_CPUS" --node-ip-address="$BIND" --temp-dir="$STATE_DIR/ray-worker$n" \
    --dashboard-agent-listen-port="$(free_port)" --disable-usage-stats
  # Joined when the GCS lists one more alive node than before.
  deadline=$((SECONDS + START_TIMEOUT_S))
  until RAY_ADDRESS="$BIND:$RAY_PORT" python - "$n" <<'PY'
import sys, ray
ray.init(logging_level="ERROR", log_to_driver=False)
alive = [node for node in ray.nodes() if node["Alive"]]
sys.exit(0 if len(alive) >= 1 + int(sys.argv[1]) else 1)
PY
  do
    if ((SECONDS > deadline)); then
      echo "error: worker node $n did not join within ${START_TIMEOUT_S} s; see $STATE_DIR/worker$n.log" >&2
      exit 1
    fi
    sleep 1
  done
  echo "ray worker node $n joined ($WORKER_CPUS CPUs)"
fi
echo "source $STATE_DIR/cluster.env   # then: tuneforge submit JOB.yaml --wait"
