"""redis-py, in its default configuration (RESP3 since 8.0), doing what its README shows.

Run by tests/clients.rs with KVS_URL set to a kvs-zoo server; exits non-zero on the first
check that fails. Prints one line per check, so a failure says how far it got.
"""

import os
import sys

import redis

url = os.environ["KVS_URL"]
# Whether one copy of each key serves it (the registry says; see tests/clients.rs).
one_copy = os.environ["KVS_ONE_COPY_PER_KEY"] == "1"
r = redis.Redis.from_url(url)


def check(name, got, want):
    if got != want:
        print(f"FAIL {name}: got {got!r}, want {want!r}")
        sys.exit(1)
    print(f"ok {name}")


check("ping", r.ping(), True)
check("set", r.set("py:color", "blue"), True)
check("get", r.get("py:color"), b"blue")
check("get missing", r.get("py:missing"), None)
check("mset", r.mset({"py:a": "1", "py:b": "2"}), True)
check("mget", r.mget(["py:a", "py:missing", "py:b"]), [b"1", None, b"2"])
check("exists", r.exists("py:a", "py:b", "py:missing"), 2)
check("delete", r.delete("py:a", "py:b", "py:missing"), 2)
check("client id", isinstance(r.client_id(), int), True)
check("getset", r.getset("py:color", "green"), b"blue")
check("set get", r.set("py:color", "red", get=True), b"green")
check("type", r.type("py:color"), b"string")
check("type missing", r.type("py:missing"), b"none")
check("strlen", r.strlen("py:color"), 3)
check("getdel", r.getdel("py:color"), b"red")
check("getdel missing", r.getdel("py:color"), None)
# Counters everywhere: atomic where one copy (or one log) holds the key, a PN-counter on the
# replicated stores. Appends and conditional writes: where one copy holds the key; refused,
# with the reason, where replicas accept writes independently.
check("incr", r.incr("py:n"), 1)
check("incrby", r.incrby("py:n", 10), 11)
check("decr", r.decr("py:n"), 10)
check("get counter", r.get("py:n"), b"10")
if one_copy:
    check("setnx", r.setnx("py:nx", "a"), True)
    check("setnx again", r.setnx("py:nx", "b"), False)
    check("set nx", r.set("py:nx", "c", nx=True), None)
    check("set xx", r.set("py:nx", "d", xx=True), True)
    check("append", r.append("py:nx", "e"), 2)
    check("after append", r.get("py:nx"), b"de")
else:
    try:
        r.append("py:nx", "e")
        check("append refused", "answered", "refused")
    except redis.ResponseError as e:
        check("append refused", "one write would be lost" in str(e), True)

# Expiry: where one copy (or one log) holds the key and judges time; refused elsewhere.
if one_copy:
    check("set ex", r.set("py:ttl", "v", ex=100), True)
    check("ttl", 98 <= r.ttl("py:ttl") <= 100, True)
    check("pttl", 98_000 <= r.pttl("py:ttl") <= 100_000, True)
    check("persist", r.persist("py:ttl"), True)
    check("ttl after persist", r.ttl("py:ttl"), -1)
    check("expire", r.expire("py:ttl", 50), True)
    check("ttl after expire", 48 <= r.ttl("py:ttl") <= 50, True)
    check("setex", r.setex("py:ttl2", 100, "w"), True)
    check("pexpire in the past", r.pexpire("py:ttl2", -1), True)
    check("gone at once", r.get("py:ttl2"), None)
    check("ttl missing", r.ttl("py:ttl2"), -2)
else:
    try:
        r.set("py:ttl", "v", ex=100)
        check("expiry refused", "answered", "refused")
    except redis.ResponseError as e:
        check("expiry refused", "expiry needs one clock" in str(e), True)

# The keyspace: every shard's keys (on the replicated stores, as this client's replica has
# them). scan_iter follows the cursor across shards until it comes back 0.
r.mset({"py:scan:a": "1", "py:scan:b": "2", "py:scan:c": "3"})
scanned = set(r.scan_iter(match="py:scan:*", count=2))
check("scan_iter", scanned, {b"py:scan:a", b"py:scan:b", b"py:scan:c"})
check("keys", set(r.keys("py:scan:*")), scanned)
check("dbsize", r.dbsize() >= 3, True)
check("flushdb", r.flushdb(), True)
if one_copy:
    check("dbsize after flushdb", r.dbsize(), 0)

# A name of its own on one connection (redis-py pools connections: pin one).
with r.client() as one:
    check("client setname", one.client_setname("compat"), True)
    check("client getname", one.client_getname(), "compat")
check("info", r.info("server")["redis_version"], "7.0.0")

# A pipeline without a transaction: many commands, one round trip.
pipe = r.pipeline(transaction=False)
pipe.set("py:p", "x").get("py:p").get("py:missing")
check("pipeline", pipe.execute(), [True, b"x", None])

# A transaction: redis-py's pipeline() is MULTI ... EXEC by default. The keys share a hash
# tag, so on the sharded stores they live on one shard, where the transaction is atomic.
pipe = r.pipeline()
pipe.set("{py}:t1", "a").set("{py}:t2", "b").mget(["{py}:t1", "{py}:t2"])
check("transaction", pipe.execute(), [True, True, [b"a", b"b"]])

# Optimistic locking: redis-py's transaction() helper WATCHes, reads, then runs MULTI/EXEC
# (retrying if the key changed meanwhile). Refused, with the reason, where replicas accept
# writes independently.
def double_plus_one(pipe):
    n = int(pipe.get("{py}:w") or 0)
    pipe.multi()
    pipe.set("{py}:w", n * 2 + 1)


if one_copy:
    r.set("{py}:w", 1)
    check("transaction with watch", r.transaction(double_plus_one, "{py}:w"), [True])
    check("after the watched transaction", r.get("{py}:w"), b"3")
else:
    try:
        r.transaction(double_plus_one, "{py}:w")
        check("watch refused", "answered", "refused")
    except redis.ResponseError as e:
        check("watch refused", "WATCH needs one copy" in str(e), True)

# A connection in RESP2, as older code asks for it. (Its own writes: on the replicated
# stores another connection may be served by another replica, which may not have heard of
# the first connection's writes yet.)
r2 = redis.Redis.from_url(url, protocol=2)
check("resp2 set", r2.set("py2:color", "green"), True)
check("resp2 get", r2.get("py2:color"), b"green")
check("resp2 mget", r2.mget(["py2:color", "py2:missing"]), [b"green", None])
