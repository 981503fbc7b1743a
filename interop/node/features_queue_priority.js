#!/usr/bin/env node
// Priority queues (x-max-priority).
const assert = require('node:assert/strict');
const { getOne, withConnection, run } = require('./queue_features_lib');

run({
  // Higher priorities first, FIFO within a priority, above the maximum = the maximum.
  'priority-order': () => withConnection(async (connection) => {
    const channel = await connection.createChannel();
    const { queue } = await channel.assertQueue('', { exclusive: true, maxPriority: 5 });
    const sent = [['low', 1], ['high', 5], ['mid', 3], ['high2', 5], ['over', 9], ['none', null]];
    for (const [body, priority] of sent) {
      channel.sendToQueue(queue, Buffer.from(body), priority === null ? {} : { priority });
    }
    await channel.checkQueue(queue); // a round trip: every publish has been enqueued
    const got = [];
    for (let i = 0; i < sent.length; i++) got.push((await getOne(channel, queue)).content.toString());
    assert.deepEqual(got, ['high', 'high2', 'over', 'mid', 'low', 'none']);
    await channel.close();
  }),
});
