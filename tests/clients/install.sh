#!/usr/bin/env bash
# Installs the client libraries the compatibility suite (tests/clients.rs) runs, once:
# redis-py in a virtualenv under target/, node-redis and ioredis from package-lock.json.
# Idempotent and quiet when everything is in place; the suite calls it before it starts.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/../../target/client-venv"

if ! "$venv/bin/python" -c 'import redis, sys; sys.exit(redis.__version__ != "8.1.0")' 2>/dev/null; then
  echo "== installing redis-py into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
fi

if [ ! -d "$here/node_modules/redis" ] || [ ! -d "$here/node_modules/ioredis" ] \
   || [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
  echo "== installing node-redis and ioredis" >&2
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
