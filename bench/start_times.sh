#!/usr/bin/env bash
# How long `kvs-zoo serve` takes to be ready, start after start, run exactly as the README
# says (`cargo run --release --bin kvs-zoo -- serve …`), and whether a start that should find
# everything built compiled anything.
#
#   bash bench/start_times.sh
#   STARTS="local;replicated;local" bash bench/start_times.sh     # another sequence (';')
#   PROFILE=debug bash bench/start_times.sh                        # `cargo run` without --release
#
# Each start is timed from the command to its `ready:` line, then stopped with Ctrl-C. It
# fails (exit 1) if
#   - any start but the first compiles the driver again (cargo prints `Compiling`), or
#   - a start of an architecture that already started once compiles any of its processes
#     (`serve` then prints `built and launched` instead of `already built`).
# The default sequence is the README's: a first start, another architecture, the first with
# other options, a third architecture, the first again.
set -euo pipefail
cd "$(dirname "$0")/.."

STARTS=${STARTS:-"local;replicated;local --requirepass x --max-clients 7;linearizable;local"}
PROFILE=${PROFILE:-release}
case "$PROFILE" in
  release) CARGO_PROFILE=(--release) ;;
  debug) CARGO_PROFILE=() ;;
  *) echo "PROFILE is release or debug, not '$PROFILE'" >&2; exit 2 ;;
esac

source bench/common.sh

LOG=$(mktemp)
PID=
cleanup() {
  [ -n "$PID" ] && kill -INT "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  rm -f "$LOG"
}
trap cleanup EXIT

declare -A started=()
failed=0
first=1
IFS=';' read -ra sequence <<<"$STARTS"
printf '%-48s %10s  %s\n' "start" "to ready" "built"
for start in "${sequence[@]}"; do
  read -ra words <<<"$start"
  arch=${words[0]}
  port=$(free_port)
  t0=$(date +%s.%N)
  cargo run --locked "${CARGO_PROFILE[@]}" --bin kvs-zoo -- serve "${words[@]}" --port "$port" >"$LOG" 2>&1 &
  PID=$!
  ready=
  # A first build takes minutes: wait up to 40 minutes, showing serve's progress lines.
  shown=0
  for _ in $(seq 1 4800); do
    if grep -q "^ready: " "$LOG"; then ready=1; break; fi
    kill -0 "$PID" 2>/dev/null || break
    lines=$(wc -l <"$LOG")
    if [ "$lines" -gt "$shown" ]; then
      sed -n "$((shown + 1)),${lines}p" "$LOG" | grep -E "^kvs-zoo: |Compiling|Finished" | sed 's/^/    /' >&2 || true
      shown=$lines
    fi
    sleep 0.5
  done
  t1=$(date +%s.%N)
  if [ -z "$ready" ]; then
    cat "$LOG" >&2
    echo "kvs-zoo serve $start never became ready" >&2
    exit 1
  fi
  kill -INT "$PID"
  wait "$PID" 2>/dev/null || true
  PID=
  seconds=$(awk "BEGIN { print $t1 - $t0 }")
  driver=$(grep -c "Compiling" "$LOG" || true)
  if grep -q "already built" "$LOG"; then built="nothing"; else built="processes"; fi
  [ "$driver" -gt 0 ] && built="driver ($driver crates), $built"
  printf '%-48s %9.1fs  %s\n' "serve $start" "$seconds" "$built"
  if [ -z "$first" ] && [ "$driver" -gt 0 ]; then
    echo "FAIL: serve $start compiled the driver again:" >&2
    grep "Compiling" "$LOG" >&2
    failed=1
  fi
  if [ -n "${started[$arch]:-}" ] && [ "$built" != "nothing" ]; then
    echo "FAIL: serve $start built '$arch' processes again, although they were built" >&2
    grep "^kvs-zoo: " "$LOG" >&2
    failed=1
  fi
  started[$arch]=1
  first=
done
exit $failed
