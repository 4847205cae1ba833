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
redis.disconnect();
