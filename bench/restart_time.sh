#!/usr/bin/env bash
# Restart time against data size: `kvs-zoo serve ARCH --data-dir DIR` filled by redis-benchmark
# with about KEYS keys (`-t set -r KEYS -n KEYS`, VALUE bytes each), every process killed with
# `kill -9`, then served again on DIR: the time from the command to `ready:` (the store has
# replayed its snapshot and log and answers), beside an empty start.
#
#   bash bench/restart_time.sh                          # local, 100k and 1M keys
#   ARCH=sharded KEYS="100000" bash bench/restart_time.sh
#
# The directories live under target/bench/ (this checkout's disk) and are removed at the end.
# Needs redis-benchmark and redis-cli (Debian: apt-get install redis-tools). Builds kvs-zoo in
# release; the first run also builds the store's processes optimized (minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

ARCH=${ARCH:-local}
KEYS=${KEYS:-"100000 1000000"}
VALUE=${VALUE:-16}

for tool in redis-benchmark redis-cli; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install redis-tools" >&2; exit 1; }
done

source bench/common.sh

echo "== building kvs-zoo (release)" >&2
cargo build --release --bin kvs-zoo >&2

mkdir -p target/bench
WORK=$(mktemp -d "$(cd target/bench && pwd)/restart.XXXXXX")
cleanup() {
  [ -n "${ZOO_PID:-}" ] && kill -INT "$ZOO_PID" 2>/dev/null && wait "$ZOO_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Kills the server and every process it started (the `process <role>/<member> pid <PID>`
# lines of its log) with kill -9, and waits for them to be gone.
kill_all() {
  local log=$1 pids
  pids="$ZOO_PID $(sed -n 's/^process [^ ]* pid \([0-9][0-9]*\).*/\1/p' "$log")"
  # shellcheck disable=SC2086
  kill -9 $pids 2>/dev/null || true
  wait "$ZOO_PID" 2>/dev/null || true
  for pid in $pids; do
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  done
  ZOO_PID=""
}

# Starts the server with the given arguments; sets ELAPSED to the seconds from the command to
# `ready:` (in this shell, not a subshell, so that ZOO_PID stays set).
timed_start() {
  local port=$1 log=$2 start end
  shift 2
  start=$(date +%s.%N)
  start_zoo "$ARCH" "$port" "$log" "$@"
  end=$(date +%s.%N)
  ELAPSED=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
}

printf '%-10s %10s %12s %14s %14s\n' keys "log MiB" "snapshot MiB" "empty start s" "restart s"
for keys in $KEYS; do
  data="$WORK/data-$keys"
  port=$(free_port)
  log="$WORK/log-$keys"
  timed_start "$port" "$log" --data-dir "$data"
  empty=$ELAPSED
  echo "== filling with $keys SETs of $VALUE bytes" >&2
  redis-benchmark -p "$port" -t set -n "$keys" -r "$keys" -d "$VALUE" -c 50 -P 16 -q >&2
  stored=$(redis-cli -p "$port" DBSIZE)
  kill_all "$log"
  logs=$(find "$data" -name '*.wal' -printf '%s\n' | awk '{ s += $1 } END { printf "%.1f", s / 1048576 }')
  snaps=$(find "$data" -name '*.snap' -printf '%s\n' | awk '{ s += $1 } END { printf "%.1f", s / 1048576 }')
  port=$(free_port)
  timed_start "$port" "$log.2" --data-dir "$data"
  restart=$ELAPSED
  again=$(redis-cli -p "$port" DBSIZE)
  [ "$again" = "$stored" ] || { echo "restarted with $again keys, not $stored" >&2; exit 1; }
  printf '%-10s %10s %12s %14s %14s\n' "$stored" "$logs" "$snaps" "$empty" "$restart"
  kill -INT "$ZOO_PID" && wait "$ZOO_PID" 2>/dev/null || true
  ZOO_PID=""
done
