#!/usr/bin/env node
// Queue argument validation and queue types.
const assert = require('node:assert/strict');
const { unique, channelError, withConnection, run } = require('./queue_features_lib');

async function declareError(connection, name, options) {
  const channel = await connection.createChannel();
  channel.on('error', () => {});
  return channelError(channel.assertQueue(name, options), `declaring ${name}`);
}

run({
  // Invalid values are 406 PRECONDITION_FAILED with RabbitMQ's wording.
  'invalid-argument-406': () => withConnection(async (connection) => {
    const name = unique('bad');
    let err = await declareError(connection, name, { arguments: { 'x-message-ttl': -1 } });
    assert.equal(err.code, 406, err.message);
    assert.ok(err.message.includes(
      `invalid arg 'x-message-ttl' for queue '${name}' in vhost '/': {value_negative,-1}`),
    err.message);
    err = await declareError(connection, name, { arguments: { 'x-overflow': 'drop-tail' } });
    assert.ok(err.message.includes('invalid_overflow'), err.message);
    err = await declareError(connection, name, { maxPriority: 256 });
    assert.ok(err.message.includes('{max_value_exceeded,256}'), err.message);
  }),

  // classic, quorum and stream exist; quorum queues and streams must be durable.
  'queue-types': () => withConnection(async (connection) => {
    const channel = await connection.createChannel();
    const ok = await channel.assertQueue('', { exclusive: true, arguments: { 'x-queue-type': 'classic' } });
    assert.match(ok.queue, /\S/);
    for (const type of ['quorum', 'stream']) {
      const name = unique(type);
      const err = await declareError(connection, name,
        { durable: false, arguments: { 'x-queue-type': type } });
      assert.equal(err.code, 406, err.message);
      assert.ok(err.message.includes(
        `invalid property 'non-durable' for queue '${name}' in vhost '/'`), err.message);
      await channel.assertQueue(name, { durable: true, arguments: { 'x-queue-type': type } });
      await channel.deleteQueue(name);
    }
    const err = await declareError(connection, unique('fifo'), { arguments: { 'x-queue-type': 'fifo' } });
    assert.ok(err.message.includes("unsupported queue type 'fifo'"), err.message);
    await channel.close();
  }),
});
