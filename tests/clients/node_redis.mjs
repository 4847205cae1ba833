// node-redis, in its default configuration, doing what its README shows.
//
// Run by tests/clients.rs with KVS_URL set to a kvs-zoo server; exits non-zero on the first
// check that fails. Prints one line per check, so a failure says how far it got.
import { createClient } from 'redis';
import { isDeepStrictEqual, inspect } from 'node:util';

function check(name, got, want) {
  if (!isDeepStrictEqual(got, want)) {
    console.log(`FAIL ${name}: got ${inspect(got)}, want ${inspect(want)}`);
    process.exit(1);
  }
  console.log(`ok ${name}`);
}

const client = createClient({ url: process.env.KVS_URL });
client.on('error', (err) => {
  console.log(`FAIL client error: ${err}`);
  process.exit(1);
});
await client.connect();
check('ping', await client.ping(), 'PONG');
check('set', await client.set('node:color', 'blue'), 'OK');
check('get', await client.get('node:color'), 'blue');
check('get missing', await client.get('node:missing'), null);
check('mSet', await client.mSet({ 'node:a': '1', 'node:b': '2' }), 'OK');
check('mGet', await client.mGet(['node:a', 'node:missing', 'node:b']), ['1', null, '2']);
check('exists', await client.exists(['node:a', 'node:b', 'node:missing']), 2);
check('del', await client.del(['node:a', 'node:b', 'node:missing']), 2);
// Commands sent together without waiting: node-redis pipelines them on one connection.
check(
  'auto-pipelining',
  await Promise.all([client.set('node:p', 'x'), client.get('node:p'), client.get('node:missing')]),
  ['OK', 'x', null],
);
// A pipeline without a transaction.
check(
  'execAsPipeline',
  await client.multi().set('node:q', 'y').get('node:q').execAsPipeline(),
  ['OK', 'y'],
);
// A transaction (MULTI ... EXEC); one hash tag keeps its keys on one shard.
check(
  'multi exec',
  await client.multi().set('{node}:t1', 'a').set('{node}:t2', 'b').mGet(['{node}:t1', '{node}:t2']).exec(),
  ['OK', 'OK', ['a', 'b']],
);
// Counters everywhere: atomic where one copy (or one log) holds the key, a PN-counter on the
// replicated stores (no increment lost). APPEND where one copy holds the key; refused, with
// the reason, where replicas accept writes independently.
// Whether one copy of each key serves it (the registry says; see tests/clients.rs).
const atomic = process.env.KVS_ONE_COPY_PER_KEY === '1';
check('incr', await client.incr('node:n'), 1);
check('incrBy', await client.incrBy('node:n', 10), 11);
check('decr', await client.decr('node:n'), 10);
check('get counter', await client.get('node:n'), '10');
if (!atomic) {
  try {
    await client.append('node:s', 'x');
    check('append refused', 'answered', 'refused');
  } catch (err) {
    check('append refused', String(err).includes('one write would be lost'), true);
  }
}
// Expiry: where one copy (or one log) holds the key and judges time; refused elsewhere.
if (atomic) {
  check('set EX', await client.set('node:ttl', 'v', { EX: 100 }), 'OK');
  const ttl = await client.ttl('node:ttl');
  check('ttl', ttl >= 98 && ttl <= 100, true);
  check('persist', await client.persist('node:ttl'), 1);
  check('ttl after persist', await client.ttl('node:ttl'), -1);
  check('pExpire', await client.pExpire('node:ttl', 50000), 1);
  const pttl = await client.pTTL('node:ttl');
  check('pTTL', pttl > 48000 && pttl <= 50000, true);
} else {
  try {
    await client.set('node:ttl', 'v', { EX: 100 });
    check('expiry refused', 'answered', 'refused');
  } catch (err) {
    check('expiry refused', String(err).includes('expiry needs one clock'), true);
  }
}
// The keyspace: scanIterator follows the cursor (across shards) until it comes back 0.
await client.mSet({ 'node:scan:a': '1', 'node:scan:b': '2', 'node:scan:c': '3' });
const scanned = [];
for await (const batch of client.scanIterator({ MATCH: 'node:scan:*', COUNT: 2 })) {
  scanned.push(...(Array.isArray(batch) ? batch : [batch]));
}
check('scanIterator', scanned.sort(), ['node:scan:a', 'node:scan:b', 'node:scan:c']);
check('keys', (await client.keys('node:scan:*')).sort(), scanned);
await client.close();
