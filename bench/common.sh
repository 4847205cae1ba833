# Shared by the bench scripts (sourced, not run): a free loopback port, and a kvs-zoo server
# started and waited for.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_zoo ARCH PORT LOG [ARGS...]: starts `kvs-zoo serve ARCH` on PORT with ARGS, its output
# in LOG, sets ZOO_PID, and returns once it prints `ready:` (exits with its log if it dies or
# never does).
start_zoo() {
  local arch=$1 port=$2 log=$3
  shift 3
  echo "== starting kvs-zoo serve $arch $* (the first start builds its processes)" >&2
  ./target/release/kvs-zoo serve "$arch" --port "$port" "$@" >"$log" 2>&1 &
  ZOO_PID=$!
  for _ in $(seq 1 1200); do
    grep -q "^ready: " "$log" && return 0
    kill -0 "$ZOO_PID" 2>/dev/null || { cat "$log" >&2; echo "kvs-zoo exited" >&2; exit 1; }
    sleep 0.5
  done
  cat "$log" >&2
  echo "kvs-zoo never became ready" >&2
  exit 1
}
