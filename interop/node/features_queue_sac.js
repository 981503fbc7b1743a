#!/usr/bin/env node
// Single active consumer (x-single-active-consumer).
const assert = require('node:assert/strict');
const { sleep, waitUntil, channelError, withConnection, run } = require('./queue_features_lib');

run({
  // Only the first consumer receives; when its channel closes the next one takes over.
  'single-active-consumer': () => withConnection(async (connection) => {
    const first = await connection.createChannel();
    const second = await connection.createChannel();
    const { queue } = await first.assertQueue('', {
      exclusive: true, arguments: { 'x-single-active-consumer': true },
    });
    const got = { first: [], second: [] };
    await first.consume(queue, (msg) => got.first.push(msg.content.toString()), { noAck: true });
    await second.consume(queue, (msg) => got.second.push(msg.content.toString()), { noAck: true });
    for (let i = 0; i < 4; i++) first.sendToQueue(queue, Buffer.from(`m${i}`));
    await waitUntil(() => got.first.length >= 4, 5000, 'four deliveries to the first');
    await sleep(100);
    assert.deepEqual(got.second, []);
    await first.close();
    second.sendToQueue(queue, Buffer.from('m4'));
    await waitUntil(() => got.second.length >= 1, 5000, 'the second consumer taking over');
    assert.deepEqual(got.second, ['m4']);
    // An exclusive consumer is refused on such a queue (403, as RabbitMQ).
    const third = await connection.createChannel();
    third.on('error', () => {});
    const err = await channelError(third.consume(queue, () => {}, { exclusive: true }),
      'an exclusive consume');
    assert.equal(err.code, 403, err.message);
    await second.close();
  }),
});
