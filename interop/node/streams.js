#!/usr/bin/env node
// Stream queues (issue 11) and quorum queues (issue 10) with amqplib, as RabbitMQ 4.x
// serves them over AMQP 0-9-1: x-stream-offset specs, x-stream-offset headers on
// deliveries, independent consumers, filters, server-side offset tracking (LavinMQ's
// x-stream-automatic-offset-tracking), RabbitMQ's refusals, and a quorum queue's
// delivery count and global-QoS refusal. Same runner contract as features_queue_*.js.
const assert = require('node:assert/strict');
const amqp = require('amqplib');
const { sleep, unique, waitUntil, getOne, channelError, withConnection, deadLetterTarget, run } =
  require('./queue_features_lib');

const url = process.env.AMQP_URL || 'amqp://guest:guest@localhost:5672/';
const STREAM = { durable: true, arguments: { 'x-queue-type': 'stream' } };
const QUORUM = { durable: true, arguments: { 'x-queue-type': 'quorum' } };

async function declareStream(connection, prefix, count, headersOf = () => undefined) {
  const name = unique(prefix);
  const channel = await connection.createConfirmChannel();
  await channel.assertQueue(name, STREAM);
  for (let i = 0; i < count; i += 1) {
    channel.sendToQueue(name, Buffer.from(`m${i}`), { headers: headersOf(i) });
  }
  await channel.waitForConfirms();
  await channel.close();
  return name;
}

// Consume `n` messages with the given arguments (acking each), then cancel.
async function consumeN(connection, queue, n, { args = {}, prefetch = 10, tag, ms = 5000 } = {}) {
  const channel = await connection.createChannel();
  await channel.prefetch(prefetch);
  const got = [];
  const { consumerTag } = await channel.consume(queue, (msg) => {
    if (msg === null || got.length >= n) return; // cancelled, or beyond what was asked for
    got.push(msg);
    channel.ack(msg);
  }, { arguments: args, consumerTag: tag });
  const deadline = Date.now() + ms;
  while (got.length < n && Date.now() < deadline) await sleep(5);
  await channel.cancel(consumerTag);
  await channel.close();
  return got;
}

const offsets = (msgs) => msgs.map((m) => m.properties.headers['x-stream-offset']);
const bodies = (msgs) => msgs.map((m) => m.content.toString());

// A method that RabbitMQ answers with a connection error (540 NOT_IMPLEMENTED).
async function connectionError(fn) {
  const connection = await amqp.connect(url);
  const closed = new Promise((resolve) => connection.on('error', resolve));
  const channel = await connection.createChannel();
  channel.on('error', () => {});
  await fn(channel).catch(() => {});
  const err = await Promise.race([closed, sleep(5000).then(() => null)]);
  await connection.close().catch(() => {});
  if (!err) throw new Error('the connection was not closed');
  return err;
}

run({
  'stream-replay-first': () => withConnection(async (connection) => {
    const name = await declareStream(connection, 'replay', 100);
    const got = await consumeN(connection, name, 100, { args: { 'x-stream-offset': 'first' } });
    assert.deepEqual(offsets(got), [...Array(100).keys()]);
    assert.equal(bodies(got)[99], 'm99');
    assert.ok(got.every((m) => !m.fields.redelivered));
    const ch = await connection.createChannel();
    await ch.deleteQueue(name);
  }),

  'stream-offsets': () => withConnection(async (connection) => {
    const name = await declareStream(connection, 'offsets', 30);
    let got = await consumeN(connection, name, 5, { args: { 'x-stream-offset': 25 } });
    assert.deepEqual(offsets(got), [25, 26, 27, 28, 29]);
    got = await consumeN(connection, name, 100, { args: { 'x-stream-offset': 'last' }, ms: 500 });
    assert.equal(offsets(got).at(-1), 29);
    got = await consumeN(connection, name, 30, { args: { 'x-stream-offset': '10m' } });
    assert.deepEqual(offsets(got), [...Array(30).keys()]);
    // "next" (the default): only what comes after the consumer started.
    const channel = await connection.createChannel();
    await channel.prefetch(5);
    const seen = [];
    await channel.consume(name, (msg) => { if (msg) { seen.push(msg); channel.ack(msg); } });
    const pub = await connection.createConfirmChannel();
    pub.sendToQueue(name, Buffer.from('new'));
    await pub.waitForConfirms();
    await waitUntil(() => seen.length === 1, 5000, 'the new message');
    assert.equal(seen[0].properties.headers['x-stream-offset'], 30);
    await channel.deleteQueue(name);
  }),

  'stream-independent-consumers': () => withConnection(async (connection) => {
    const name = await declareStream(connection, 'indep', 60);
    const [a, b] = await Promise.all([
      consumeN(connection, name, 60, { args: { 'x-stream-offset': 'first' }, prefetch: 3 }),
      consumeN(connection, name, 60, { args: { 'x-stream-offset': 'first' }, prefetch: 17 }),
    ]);
    assert.deepEqual(offsets(a), [...Array(60).keys()]);
    assert.deepEqual(offsets(b), offsets(a));
    const ch = await connection.createChannel();
    await ch.deleteQueue(name);
  }),

  'stream-filter': () => withConnection(async (connection) => {
    const colors = ['red', 'blue', undefined];
    const name = await declareStream(connection, 'filter', 9, (i) => (
      colors[i % 3] ? { 'x-stream-filter-value': colors[i % 3] } : undefined));
    let got = await consumeN(connection, name, 3,
      { args: { 'x-stream-offset': 'first', 'x-stream-filter': 'red' } });
    assert.deepEqual(bodies(got), ['m0', 'm3', 'm6']);
    got = await consumeN(connection, name, 6, { args: {
      'x-stream-offset': 'first', 'x-stream-filter': ['blue'], 'x-stream-match-unfiltered': true,
    } });
    assert.deepEqual(bodies(got), ['m1', 'm2', 'm4', 'm5', 'm7', 'm8']);
    const ch = await connection.createChannel();
    await ch.deleteQueue(name);
  }),

  'stream-tracking': () => withConnection(async (connection) => {
    const name = await declareStream(connection, 'tracking', 10);
    const tag = unique('reader');
    const args = { 'x-stream-automatic-offset-tracking': true };
    let got = await consumeN(connection, name, 4, { args, tag, prefetch: 1 });
    assert.deepEqual(offsets(got), [0, 1, 2, 3]);
    got = await consumeN(connection, name, 6, { args, tag, prefetch: 1 });
    assert.deepEqual(offsets(got), [4, 5, 6, 7, 8, 9]);
    const ch = await connection.createChannel();
    await ch.deleteQueue(name);
  }),

  'stream-refusals': async () => {
    const name = await withConnection((connection) => declareStream(connection, 'refuse', 1));
    const where = `queue '${name}' in vhost '/'`;
    let err = await connectionError((ch) => ch.get(name));
    assert.equal(err.code, 540, err.message);
    assert.ok(err.message.includes(`basic.get not supported by stream queues ${where}`), err.message);
    err = await connectionError((ch) => ch.purgeQueue(name));
    assert.ok(err.message.includes(`queue.purge not supported by stream queues ${where}`), err.message);
    err = await connectionError(async (ch) => {
      await ch.prefetch(10);
      await ch.consume(name, () => {}, { noAck: true });
    });
    assert.ok(err.message.includes(`automatic acknowledgement not supported by stream ${where}`),
      err.message);
    await withConnection(async (connection) => {
      const channel = await connection.createChannel();
      channel.on('error', () => {});
      const e = await channelError(channel.consume(name, () => {}), 'consume without prefetch');
      assert.equal(e.code, 406, e.message);
      assert.ok(e.message.includes(`consumer prefetch count is not set for stream ${where}`), e.message);
      const ch = await connection.createChannel();
      await ch.deleteQueue(name);
    });
  },

  'quorum-queue': () => withConnection(async (connection) => {
    const channel = await connection.createChannel();
    const { dlx, dlq } = await deadLetterTarget(channel);
    const name = unique('qq');
    await channel.assertQueue(name, { ...QUORUM, deadLetterExchange: dlx,
      arguments: { ...QUORUM.arguments, 'x-delivery-limit': 2 } });
    const other = await connection.createChannel();
    other.on('error', () => {});
    const bad = await channelError(
      other.assertQueue(unique('qq'), { durable: false, arguments: QUORUM.arguments }),
      'a non-durable quorum queue');
    assert.ok(bad.message.includes("invalid property 'non-durable'"), bad.message);
    channel.sendToQueue(name, Buffer.from('transient'), { deliveryMode: 1 });
    const counts = [];
    await channel.prefetch(1);
    await channel.consume(name, (msg) => {
      if (msg === null) return;
      counts.push(msg.properties.headers['x-delivery-count']);
      assert.equal(msg.properties.deliveryMode, 1);
      channel.nack(msg, false, true);
    });
    const dead = await getOne(channel, dlq);
    assert.deepEqual(counts, [undefined, 1, 2]);
    assert.equal(dead.properties.headers['x-death'][0].reason, 'delivery_limit');
    await channel.deleteQueue(name);
    await channel.deleteExchange(dlx);
    const err = await connectionError(async (ch) => {
      const q = unique('qq');
      await ch.assertQueue(q, QUORUM);
      await ch.prefetch(5, true);
      await ch.consume(q, () => {});
    });
    assert.equal(err.code, 540, err.message);
    assert.ok(err.message.includes('does not support global qos'), err.message);
  }),
});
