// ioredis, in its default configuration, doing what its README shows.
//
// Run by tests/clients.rs with KVS_URL set to a kvs-zoo server; exits non-zero on the first
// check that fails. Prints one line per check, so a failure says how far it got.
import Redis from 'ioredis';
import { isDeepStrictEqual, inspect } from 'node:util';

function check(name, got, want) {
  if (!isDeepStrictEqual(got, want)) {
    console.log(`FAIL ${name}: got ${inspect(got)}, want ${inspect(want)}`);
    process.exit(1);
  }
  console.log(`ok ${name}`);
}

const redis = new Redis(process.env.KVS_URL);
redis.on('error', (err) => {
  console.log(`FAIL client error: ${err}`);
  process.exit(1);
});
check('ping', await redis.ping(), 'PONG');
check('set', await redis.set('io:color', 'blue'), 'OK');
check('get', await redis.get('io:color'), 'blue');
check('get missing', await redis.get('io:missing'), null);
check('mset', await redis.mset({ 'io:a': '1', 'io:b': '2' }), 'OK');
check('mget', await redis.mget('io:a', 'io:missing', 'io:b'), ['1', null, '2']);
check('exists', await redis.exists('io:a', 'io:b', 'io:missing'), 2);
check('del', await redis.del('io:a', 'io:b', 'io:missing'), 2);
// A pipeline: [error, result] per command.
check(
  'pipeline',
  await redis.pipeline().set('io:p', 'x').get('io:p').get('io:missing').exec(),
  [[null, 'OK'], [null, 'x'], [null, null]],
);
// A transaction (MULTI ... EXEC); one hash tag keeps its keys on one shard.
check(
  'multi exec',
  await redis.multi().set('{io}:t1', 'a').set('{io}:t2', 'b').mget('{io}:t1', '{io}:t2').exec(),
  [[null, 'OK'], [null, 'OK'], [null, ['a', 'b']]],
);
// Counters everywhere: atomic where one copy (or one log) holds the key, a PN-counter on the
// replicated stores (no increment lost). APPEND where one copy holds the key; refused, with
// the reason, where replicas accept writes independently.
// Whether one copy of each key serves it (the registry says; see tests/clients.rs).
const atomic = process.env.KVS_ONE_COPY_PER_KEY === '1';
check('incr', await redis.incr('io:n'), 1);
check('incrby', await redis.incrby('io:n', 10), 11);
check('decr', await redis.decr('io:n'), 10);
check('get counter', await redis.get('io:n'), '10');
if (!atomic) {
  try {
    await redis.append('io:s', 'x');
    check('append refused', 'answered', 'refused');
  } catch (err) {
    check('append refused', String(err).includes('one write would be lost'), true);
  }
}
// Expiry: where one copy (or one log) holds the key and judges time; refused elsewhere.
if (atomic) {
  check('set EX', await redis.set('io:ttl', 'v', 'EX', 100), 'OK');
  const ttl = await redis.ttl('io:ttl');
  check('ttl', ttl >= 98 && ttl <= 100, true);
  check('setex', await redis.setex('io:ttl2', 100, 'w'), 'OK');
  check('expire', await redis.expire('io:ttl2', 50), 1);
  check('persist', await redis.persist('io:ttl2'), 1);
  check('ttl after persist', await redis.ttl('io:ttl2'), -1);
} else {
  try {
    await redis.set('io:ttl', 'v', 'EX', 100);
    check('expiry refused', 'answered', 'refused');
  } catch (err) {
    check('expiry refused', String(err).includes('expiry needs one clock'), true);
  }
}
// The keyspace: SCAN by hand, following the cursor (across shards) until it comes back 0.
await redis.mset({ 'io:scan:a': '1', 'io:scan:b': '2', 'io:scan:c': '3' });
const scanned = [];
let cursor = '0';
do {
  const [next, keys] = await redis.scan(cursor, 'MATCH', 'io:scan:*', 'COUNT', 2);
  scanned.push(...keys);
  cursor = next;
} while (cursor !== '0');
check('scan', scanned.sort(), ['io:scan:a', 'io:scan:b', 'io:scan:c']);
check('keys', (await redis.keys('io:scan:*')).sort(), scanned);
redis.disconnect();
