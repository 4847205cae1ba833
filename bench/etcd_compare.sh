#!/usr/bin/env bash
# Write throughput and latency: `kvs-zoo serve linearizable` beside etcd 3.4, three members
# each, on this machine, driven by the same closed-loop client (examples/closed_loop.rs): N
# clients, each sending one write and waiting for its acknowledgement before the next.
#
#   bash bench/etcd_compare.sh               # 1 and 50 clients, 10 s each, 3 rounds
#   CLIENTS="50" SECONDS_EACH=5 ROUNDS=1 bash bench/etcd_compare.sh
#   STORAGE=disk bash bench/etcd_compare.sh  # both durable, on this machine's disk
#
# STORAGE=tmpfs (the default): etcd keeps its data on tmpfs (/dev/shm) and kvs-zoo keeps none,
# so neither store waits for a disk: both are measured for their protocol and their code
# (etcd still fsyncs, but to memory). STORAGE=disk: both keep their data on the disk this
# checkout is on (under target/), and both sync before they answer — etcd its WAL, kvs-zoo
# its acceptors' logs (`--data-dir … --fsync always`). Each round runs the stores one after
# the other; the median round is reported.
#
# Needs etcd (Debian: apt-get install etcd-server etcd-client). Builds kvs-zoo and the client
# in release; the first run also builds the store's processes optimized (minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=${CLIENTS:-"1 50"}
SECONDS_EACH=${SECONDS_EACH:-10}
ROUNDS=${ROUNDS:-3}
STORAGE=${STORAGE:-tmpfs}
case "$STORAGE" in
  tmpfs) mkdir -p /dev/shm && BASE=/dev/shm ;;
  disk) mkdir -p target/bench && BASE=$(cd target/bench && pwd) ;;
  *) echo "STORAGE is tmpfs or disk, not '$STORAGE'" >&2; exit 1 ;;
esac

for tool in etcd etcdctl; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install etcd-server etcd-client" >&2; exit 1; }
done

source bench/common.sh

echo "== building kvs-zoo and the closed-loop client (release)" >&2
cargo build --release --bin kvs-zoo --example closed_loop >&2

DATA=$(mktemp -d "$BASE/etcd-bench.XXXXXX")
LOG=$(mktemp)
PIDS=()
cleanup() {
  [ -n "${ZOO_PID:-}" ] && kill -INT "$ZOO_PID" 2>/dev/null && wait "$ZOO_PID" 2>/dev/null || true
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$DATA" "$LOG"
}
trap cleanup EXIT

echo "== starting etcd, three members on loopback, data in $DATA" >&2
CLIENT_PORTS=() PEER_PORTS=() CLUSTER=""
for i in 0 1 2; do
  CLIENT_PORTS+=("$(free_port)")
  PEER_PORTS+=("$(free_port)")
  CLUSTER+="${CLUSTER:+,}e$i=http://127.0.0.1:${PEER_PORTS[$i]}"
done
for i in 0 1 2; do
  etcd --name "e$i" --data-dir "$DATA/e$i" \
    --listen-client-urls "http://127.0.0.1:${CLIENT_PORTS[$i]}" \
    --advertise-client-urls "http://127.0.0.1:${CLIENT_PORTS[$i]}" \
    --listen-peer-urls "http://127.0.0.1:${PEER_PORTS[$i]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${PEER_PORTS[$i]}" \
    --initial-cluster "$CLUSTER" --initial-cluster-state new \
    --initial-cluster-token kvs-zoo-bench >"$DATA/e$i.log" 2>&1 &
  PIDS+=($!)
done
ENDPOINTS="127.0.0.1:${CLIENT_PORTS[0]},127.0.0.1:${CLIENT_PORTS[1]},127.0.0.1:${CLIENT_PORTS[2]}"
for _ in $(seq 1 100); do
  ETCDCTL_API=3 etcdctl --endpoints "$ENDPOINTS" endpoint health >/dev/null 2>&1 && break
  sleep 0.2
done
ETCDCTL_API=3 etcdctl --endpoints "$ENDPOINTS" endpoint health >&2
# Writes go to the leader's member (a follower would forward them: one hop more).
LEADER=$(ETCDCTL_API=3 etcdctl --endpoints "$ENDPOINTS" endpoint status -w simple |
  awk -F', ' '$5 == "true" {print $1}')
echo "   etcd leader: $LEADER" >&2

ZOO_PORT=$(free_port)
if [ "$STORAGE" = disk ]; then
  start_zoo linearizable "$ZOO_PORT" "$LOG" --data-dir "$DATA/kvs-zoo" --fsync always
else
  start_zoo linearizable "$ZOO_PORT" "$LOG"
fi

run() { ./target/release/examples/closed_loop "$@"; }
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }

echo "== $ROUNDS rounds of ${SECONDS_EACH}s per store and client count; medians" >&2
printf "%-8s %-14s %12s %10s %10s\n" clients store writes/s p50_us p99_us
for clients in $CLIENTS; do
  for store in kvs-zoo etcd; do
    results=()
    for _ in $(seq 1 "$ROUNDS"); do
      if [ "$store" = kvs-zoo ]; then
        results+=("$(run resp "127.0.0.1:$ZOO_PORT" "$clients" "$SECONDS_EACH")")
      else
        results+=("$(run etcd "$LEADER" "$clients" "$SECONDS_EACH")")
      fi
    done
    median=$(for r in "${results[@]}"; do echo "$(echo "$r" | field writes_per_s) $r"; done |
      sort -n | awk -v n="${#results[@]}" 'NR == int((n + 1) / 2) {$1=""; print}')
    printf "%-8s %-14s %12s %10s %10s\n" "$clients" "$store" \
      "$(echo "$median" | field writes_per_s)" "$(echo "$median" | field p50_us)" \
      "$(echo "$median" | field p99_us)"
  done
done
