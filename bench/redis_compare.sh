#!/usr/bin/env bash
# Side-by-side throughput: Redis 7 and `kvs-zoo serve local`, same redis-benchmark runs.
#
#   bash bench/redis_compare.sh            # 200000 requests per run
#   N=50000 bash bench/redis_compare.sh    # quicker
#   ROUNDS=5 bash bench/redis_compare.sh   # more rounds (default 3)
#
# Each configuration runs ROUNDS times against each server, alternating, and the median is
# reported: on a 2-core machine redis-benchmark and the server share the CPU, and single runs
# vary by ±10%.
#
# Needs redis-server and redis-benchmark (Debian: apt-get install redis-server redis-tools).
# Builds kvs-zoo in release; the first run also builds the store's process optimized (minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-200000}
ROUNDS=${ROUNDS:-3}
ARCH=${ARCH:-local}

for tool in redis-server redis-benchmark; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install redis-server redis-tools" >&2; exit 1; }
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "== building kvs-zoo (release)" >&2
cargo build --release --bin kvs-zoo >&2

REDIS_PORT=$(free_port)
ZOO_PORT=$(free_port)
LOG=$(mktemp)
cleanup() {
  [ -n "${ZOO_PID:-}" ] && kill -INT "$ZOO_PID" 2>/dev/null && wait "$ZOO_PID" 2>/dev/null || true
  [ -n "${REDIS_PID:-}" ] && kill "$REDIS_PID" 2>/dev/null || true
  rm -f "$LOG"
}
trap cleanup EXIT

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >/dev/null &
REDIS_PID=$!

echo "== starting kvs-zoo serve $ARCH (the first start builds its process)" >&2
./target/release/kvs-zoo serve "$ARCH" --port "$ZOO_PORT" >"$LOG" 2>&1 &
ZOO_PID=$!
for _ in $(seq 1 1200); do
  grep -q "^ready: " "$LOG" && break
  kill -0 "$ZOO_PID" 2>/dev/null || { cat "$LOG" >&2; echo "kvs-zoo exited" >&2; exit 1; }
  sleep 0.5
done
grep -q "^ready: " "$LOG" || { cat "$LOG" >&2; echo "kvs-zoo never became ready" >&2; exit 1; }

# Prints "<test> <requests per second>" for each test of one redis-benchmark run.
run() {
  local port=$1; shift
  redis-benchmark -p "$port" -t get,set -n "$N" --csv "$@" | tail -n +2 | tr -d '"' | awk -F, '{print $1, $2}'
}

# Median of the numbers on stdin.
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

printf '%-14s %-5s %12s %12s %7s\n' "clients" "test" "kvs-zoo" "redis" "ratio"
for opts in "-c 1" "-c 50" "-c 50 -P 16"; do
  zoo="" red=""
  for _ in $(seq 1 "$ROUNDS"); do
    # shellcheck disable=SC2086
    zoo+=$(run "$ZOO_PORT" $opts)$'\n'
    # shellcheck disable=SC2086
    red+=$(run "$REDIS_PORT" $opts)$'\n'
  done
  for test in SET GET; do
    ours=$(awk -v t="$test" '$1==t {print $2}' <<<"$zoo" | median)
    theirs=$(awk -v t="$test" '$1==t {print $2}' <<<"$red" | median)
    ratio=$(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.2f", a / b }')
    printf '%-14s %-5s %12.0f %12.0f %6sx\n' "$opts" "$test" "$ours" "$theirs" "$ratio"
  done
done
