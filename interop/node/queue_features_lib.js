// Shared helpers for the amqplib check scripts (features.js, more.js, features_queue_*.js).
// Each script defines named checks; `run(checks)` lists them without arguments, else runs
// the named ones and prints "PASS <name>" / "FAIL <name>: <reason>" (exit status 0 only if
// all passed). The broker URL comes from AMQP_URL.
const amqp = require('amqplib');
const { randomUUID } = require('node:crypto');

const url = process.env.AMQP_URL || 'amqp://guest:guest@localhost:5672/';
setTimeout(() => { console.error(' [!] timed out'); process.exit(3); },
  1000 * Number(process.env.TUTORIAL_TIMEOUT || 60)).unref();

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const unique = (prefix) => `interop.node.qf.${prefix}.${randomUUID()}`;

async function waitUntil(predicate, ms, what) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

// Poll basic.get until a message arrives (or `ms` pass).
async function getOne(channel, queue, ms = 5000, noAck = true) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const msg = await channel.get(queue, { noAck });
    if (msg) return msg;
    await sleep(10);
  }
  throw new Error(`no message in ${queue} within ${ms} ms`);
}

// Resolve with the first event `name` on `emitter`, reject after `ms`.
function nextEvent(emitter, name, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no '${name}' event within ${ms} ms`)), ms);
    emitter.once(name, (value) => { clearTimeout(timer); resolve(value); });
  });
}

function withUrlParam(base, key, value) {
  const u = new URL(base);
  u.searchParams.set(key, value);
  return u.toString();
}

// The error a broker-side channel close gives: awaits `promise`, which must reject.
async function channelError(promise, what) {
  return promise.then(() => { throw new Error(`${what} succeeded`); }, (e) => e);
}

async function withConnection(fn, connectUrl = url) {
  const connection = await amqp.connect(connectUrl);
  // A channel error is expected in some checks; never let it crash the process.
  connection.on('error', (err) => console.error('connection error:', err.message));
  try {
    return await fn(connection);
  } finally {
    await connection.close().catch(() => {});
  }
}

// A fanout dead letter exchange with one exclusive queue behind it.
async function deadLetterTarget(channel) {
  const dlx = unique('dlx');
  await channel.assertExchange(dlx, 'fanout', { durable: false, autoDelete: false });
  const { queue } = await channel.assertQueue('', { exclusive: true });
  await channel.bindQueue(queue, dlx, '');
  return { dlx, dlq: queue };
}

function run(checks) {
  const names = process.argv.slice(2);
  if (names.length === 0) {
    console.log(Object.keys(checks).join('\n'));
    return;
  }
  (async () => {
    let failed = 0;
    for (const name of names) {
      const check = checks[name];
      try {
        if (!check) throw new Error('no such check');
        await check();
        console.log('PASS %s', name);
      } catch (err) {
        failed += 1;
        console.log('FAIL %s: %s', name, err && err.stack ? err.stack : err);
      }
    }
    process.exitCode = failed ? 1 : 0;
  })().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}

module.exports = {
  amqp, url, sleep, unique, waitUntil, getOne, channelError, withConnection,
  deadLetterTarget, run, nextEvent, withUrlParam,
};
