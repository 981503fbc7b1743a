#!/usr/bin/env node
// x-delivery-limit with the x-delivery-count header (on this broker's classic queues;
// RabbitMQ offers it on quorum queues).
const assert = require('node:assert/strict');
const { waitUntil, getOne, withConnection, deadLetterTarget, run } = require('./queue_features_lib');

run({
  'delivery-limit': () => withConnection(async (connection) => {
    const channel = await connection.createChannel();
    const { dlx, dlq } = await deadLetterTarget(channel);
    const { queue } = await channel.assertQueue('', {
      exclusive: true, deadLetterExchange: dlx, arguments: { 'x-delivery-limit': 2 },
    });
    const counts = [];
    await channel.consume(queue, (msg) => {
      counts.push(msg.properties.headers['x-delivery-count']);
      channel.nack(msg, false, true);
    });
    channel.sendToQueue(queue, Buffer.from('poison'));
    const dead = await getOne(channel, dlq);
    await waitUntil(() => counts.length >= 3, 2000, 'three deliveries');
    assert.deepEqual(counts, [undefined, 1, 2]);
    assert.equal(dead.properties.headers['x-death'][0].reason, 'delivery_limit');
    await channel.deleteExchange(dlx);
    await channel.close();
  }),
});
