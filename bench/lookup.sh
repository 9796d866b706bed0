#!/usr/bin/env bash
# Benchmark: treatment-status lookups per second through `xngin serve` (2 workers) on PostgreSQL
# and Redis, against a bare FastAPI endpoint served the same way, measured in the same run.
#
# A preassigned, running experiment of N (default 1,000,000) participants is stored in a new
# PostgreSQL database of its own and copied into a Redis server of its own (loopback, no
# persistence; CACHE=cold skips the copy, so lookups start from the database). wrk then looks
# up random participant IDs (GET /v1/experiments/{id}/assignments/{participant}) with
# CONNECTIONS (default 32) connections for DURATION (default 15) seconds, after a short warm-up.
# The bare endpoint gets the same load. Everything started here is stopped, and the database
# dropped, on exit. Only loopback addresses are used.
#
# Target: >= 5000 lookups/s with p99 < 20 ms and no errors. Run: bench/lookup.sh; the last line is
# the JSON summary. Needs wrk (apt-get install -y wrk), redis-server and the local PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
N=${N:-1000000}
DURATION=${DURATION:-15}
CONNECTIONS=${CONNECTIONS:-32}
CACHE=${CACHE:-warm}  # cold: no warm_cache, lookups start from the database
THREADS=2
HOST=127.0.0.1

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
BARE_PORT=$(free_port)
REDIS_PORT=$(free_port)
WORK=$(mktemp -d /tmp/xngin-lookup-bench.XXXXXX)
SERVER_PID=""
BARE_PID=""

cleanup() {
  set +e
  for pid in "$SERVER_PID" "$BARE_PID"; do
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
  done
  redis-cli -h "$HOST" -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1
  if [ -f "$WORK/env" ]; then
    DB_NAME=$(sed -n 's/^DB_NAME=//p' "$WORK/env")
    [ -n "$DB_NAME" ] && "$PY" bench/lookup_setup.py teardown "$DB_NAME"
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

wait_http() {  # url
  for _ in $(seq 1 150); do
    [ "$(curl -s -o /dev/null -w "%{http_code}" "$1")" != "000" ] && return 0
    sleep 0.2
  done
  echo "server at $1 did not come up" >&2
  return 1
}

redis-server --bind "$HOST" --port "$REDIS_PORT" --save '' --appendonly no --daemonize yes \
  --dir "$WORK" --logfile "$WORK/redis.log" --pidfile "$WORK/redis.pid"
REDIS_URL="redis://$HOST:$REDIS_PORT/0"
for _ in $(seq 1 50); do redis-cli -h "$HOST" -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

echo "setting up $N assignments..." >&2
"$PY" bench/lookup_setup.py setup "$REDIS_URL" "$N" "$CACHE" >"$WORK/env"
# shellcheck disable=SC1091
source "$WORK/env"

echo '{}' >"$WORK/settings.json"
XNGIN_SETTINGS_FILE="$WORK/settings.json" XNGIN_DATABASE_URL="$DB_URL" XNGIN_CACHE_URL="$REDIS_URL" \
  XNGIN_DATA_DIR="$WORK/data" XNGIN_LOG_LEVEL=warning \
  .venv/bin/xngin serve --host "$HOST" --port "$PORT" --workers 2 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
.venv/bin/uvicorn lookup_setup:bare_app --app-dir bench --host "$HOST" --port "$BARE_PORT" \
  --workers 2 --log-level warning >"$WORK/bare.log" 2>&1 &
BARE_PID=$!
wait_http "http://$HOST:$PORT/health"
wait_http "http://$HOST:$BARE_PORT/v1/ping/x"

cat >"$WORK/lookup.lua" <<'LUA'
local key = os.getenv("XNGIN_BENCH_KEY")
local base = os.getenv("XNGIN_BENCH_BASE")
local n = tonumber(os.getenv("XNGIN_BENCH_N"))
local threads = 0
wrk.headers["X-API-Key"] = key

function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

function init(args)
  math.randomseed(os.time() + 7919 * thread_number)
end

function request()
  return wrk.format("GET", string.format("%sp%07d", base, math.random(0, n - 1)))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "socket_errors": %d, "non2xx": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
LUA

check_answer() {
  local reply
  reply=$(curl -fs -H "X-API-Key: $API_KEY" "http://$HOST:$PORT/v1/experiments/$EXPERIMENT_ID/assignments/p0000042")
  echo "sample answer: $reply" >&2
  case "$reply" in *'"arm_id"'*) ;; *) echo "lookup does not answer an arm" >&2; return 1 ;; esac
}
check_answer

load() {  # base-url-prefix duration -> WRK_RESULT json
  XNGIN_BENCH_KEY="$API_KEY" XNGIN_BENCH_BASE="$2" XNGIN_BENCH_N="$N" \
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${3}s" -s "$WORK/lookup.lua" "$1" | sed -n 's/^WRK_RESULT //p'
}

LOOKUP_PATH="/v1/experiments/$EXPERIMENT_ID/assignments/"
load "http://$HOST:$PORT" "$LOOKUP_PATH" 3 >/dev/null   # warm-up: connections, keys, code paths
load "http://$HOST:$BARE_PORT" "/v1/ping/" 3 >/dev/null
OURS=$(load "http://$HOST:$PORT" "$LOOKUP_PATH" "$DURATION")
BARE=$(load "http://$HOST:$BARE_PORT" "/v1/ping/" "$DURATION")

"$PY" - "$OURS" "$BARE" "$CONNECTIONS" "$DURATION" "$N" <<'PYEOF'
import json, sys
ours, bare = json.loads(sys.argv[1]), json.loads(sys.argv[2])
connections, duration, n = sys.argv[3], sys.argv[4], int(sys.argv[5])

def rate(r): return r["requests"] / (r["duration_us"] / 1e6)

for name, r in (("xngin lookup", ours), ("bare FastAPI", bare)):
    print(f"{name:13s} {rate(r):8.0f} req/s  p50 {r['p50_us'] / 1000:6.2f} ms  "
          f"p90 {r['p90_us'] / 1000:6.2f} ms  p99 {r['p99_us'] / 1000:6.2f} ms  "
          f"errors {r['socket_errors']} non-2xx {r['non2xx']}")
print(f"{n:,} participants, {connections} connections, {duration} s; lookups run at "
      f"{rate(ours) / rate(bare):.0%} of the bare endpoint's rate")
met = rate(ours) >= 5000 and ours["p99_us"] < 20_000 and ours["socket_errors"] == 0 and ours["non2xx"] == 0
print(json.dumps({"bench": "lookup", "value": round(rate(ours)), "unit": "lookups/s",
                  "target": 5000, "met": met}))
PYEOF
