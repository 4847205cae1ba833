#!/usr/bin/env bash
# Side-by-side throughput: Redis 7 and `kvs-zoo serve <architecture>`, same redis-benchmark runs.
#
#   bash bench/redis_compare.sh            # 200000 requests per test and run (times the
#                                          # pipeline depth with -P), against `serve local`
#   N=50000 bash bench/redis_compare.sh    # quicker
#   ROUNDS=3 bash bench/redis_compare.sh   # fewer rounds (default 5)
#   ARCH=sharded CONFIGS="-c 50" bash bench/redis_compare.sh
#                                          # another architecture; only the given
#                                          # redis-benchmark options (default: "-c 1",
#                                          # "-c 50" and "-c 50 -P 16"; separate with ';')
#   FSYNC=always bash bench/redis_compare.sh
#                                          # both durable on this checkout's disk (under
#                                          # target/): Redis with `appendonly yes` and
#                                          # `appendfsync FSYNC`, kvs-zoo with `--data-dir`
#                                          # and `--fsync FSYNC` (always, everysec or no);
#                                          # unset, both keep their data in memory only
#
# Each configuration runs ROUNDS times against each server, alternating, and the median is
# reported: on a 2-core machine redis-benchmark and the server share the CPU, and single runs
# vary by ±10%.
#
# It also reports each server's CPU time per request (user + system, the kvs-zoo figure
# summed over all its processes: proxy and every member). Throughput says who answered more requests per second; CPU per
# request says why. Without pipelining the single-threaded redis-benchmark is the bottleneck
# (it saturates its core while either server idles part of the time), so throughput there
# mostly measures the client, and CPU per request is the server's own cost.
#
# Needs redis-server and redis-benchmark (Debian: apt-get install redis-server redis-tools).
# Builds kvs-zoo in release; the first run also builds the store's process optimized (minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-200000}
ROUNDS=${ROUNDS:-5}
ARCH=${ARCH:-local}
CONFIGS=${CONFIGS:-"-c 1;-c 50;-c 50 -P 16"}
FSYNC=${FSYNC:-}
case "$FSYNC" in
  "" | always | everysec | no) ;;
  *) echo "FSYNC is always, everysec or no, not '$FSYNC'" >&2; exit 1 ;;
esac

for tool in redis-server redis-benchmark; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install redis-server redis-tools" >&2; exit 1; }
done

source bench/common.sh

echo "== building kvs-zoo (release)" >&2
cargo build --release --bin kvs-zoo >&2

REDIS_PORT=$(free_port)
ZOO_PORT=$(free_port)
LOG=$(mktemp)
mkdir -p target/bench
DATA=$(mktemp -d "$(cd target/bench && pwd)/redis-compare.XXXXXX")
cleanup() {
  [ -n "${ZOO_PID:-}" ] && kill -INT "$ZOO_PID" 2>/dev/null && wait "$ZOO_PID" 2>/dev/null || true
  [ -n "${REDIS_PID:-}" ] && kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null || true
  rm -rf "$LOG" "$DATA"
}
trap cleanup EXIT

if [ -n "$FSYNC" ]; then
  echo "== both durable in $DATA: fsync $FSYNC" >&2
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --dir "$DATA" \
    --appendonly yes --appendfsync "$FSYNC" --daemonize no >/dev/null &
  REDIS_PID=$!
  start_zoo "$ARCH" "$ZOO_PORT" "$LOG" --data-dir "$DATA/kvs-zoo" --fsync "$FSYNC"
else
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >/dev/null &
  REDIS_PID=$!
  start_zoo "$ARCH" "$ZOO_PORT" "$LOG"
fi

# CPU time (clock ticks) used so far by a process and all its descendants.
cpu_ticks() {
  local total child
  total=$(awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0)
  for child in $(pgrep -P "$1"); do
    total=$((total + $(cpu_ticks "$child")))
  done
  echo "$total"
}
TICKS=$(getconf CLK_TCK)

# Requests per test for the given redis-benchmark options: N, times the pipeline depth when
# there is one (-P 16 answers about 16 times as many requests per second, and a run of a
# fraction of a second would mostly measure connecting and ramping up).
requests_for() {
  local depth
  depth=$(sed -n 's/.*-P \{0,1\}\([0-9][0-9]*\).*/\1/p' <<<"$*")
  echo $((N * ${depth:-1}))
}

# Prints "<test> <requests per second> <p50 ms> <p99 ms>" for each test of one
# redis-benchmark run, then "CPU <server microseconds per request>" for the whole run.
run() {
  local port=$1 pid=$2; shift 2
  local before after n
  n=$(requests_for "$@")
  before=$(cpu_ticks "$pid")
  redis-benchmark -p "$port" -t get,set -n "$n" --csv "$@" | tail -n +2 | tr -d '"' | awk -F, '{print $1, $2, $5, $7}'
  after=$(cpu_ticks "$pid")
  awk -v a="$before" -v b="$after" -v t="$TICKS" -v n="$n" 'BEGIN { printf "CPU %.3f\n", (b - a) / t * 1e6 / (2 * n) }'
}

# Median of the numbers on stdin.
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "== $ROUNDS rounds of -n $N per configuration (times the depth with -P); medians" >&2
printf '%-14s %-5s %12s %12s %7s   %-17s %-17s\n' "clients" "test" "kvs-zoo" "redis" "ratio" \
  "kvs-zoo p50/p99" "redis p50/p99 (ms)"
cpu_lines=()
IFS=';' read -r -a configs <<<"$CONFIGS"
for opts in "${configs[@]}"; do
  zoo="" red=""
  for _ in $(seq 1 "$ROUNDS"); do
    # shellcheck disable=SC2086
    zoo+=$(run "$ZOO_PORT" "$ZOO_PID" $opts)$'\n'
    # shellcheck disable=SC2086
    red+=$(run "$REDIS_PORT" "$REDIS_PID" $opts)$'\n'
  done
  for test in SET GET; do
    ours=$(awk -v t="$test" '$1==t {print $2}' <<<"$zoo" | median)
    theirs=$(awk -v t="$test" '$1==t {print $2}' <<<"$red" | median)
    ratio=$(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.2f", a / b }')
    # Latency percentiles: the median of each over the rounds.
    pct() { awk -v t="$test" -v c="$2" '$1==t {print $c}' <<<"$1" | median; }
    latency_ours="$(pct "$zoo" 3)/$(pct "$zoo" 4)"
    latency_theirs="$(pct "$red" 3)/$(pct "$red" 4)"
    printf '%-14s %-5s %12.0f %12.0f %6sx   %-17s %-17s\n' "$opts" "$test" "$ours" "$theirs" \
      "$ratio" "$latency_ours" "$latency_theirs"
  done
  ours=$(awk '$1=="CPU" {print $2}' <<<"$zoo" | median)
  theirs=$(awk '$1=="CPU" {print $2}' <<<"$red" | median)
  cpu_lines+=("$(printf '%-14s %12.2f %12.2f' "$opts" "$ours" "$theirs")")
done
echo
printf '%-14s %12s %12s\n' "server CPU µs" "kvs-zoo" "redis"
printf '%s\n' "${cpu_lines[@]}"
