#!/usr/bin/env node
// Consumer (delivery acknowledgement) timeout, here with the per-queue x-consumer-timeout.
const assert = require('node:assert/strict');
const { unique, getOne, withConnection, run } = require('./queue_features_lib');

run({
  'consumer-timeout-406': () => withConnection(async (connection) => {
    const setup = await connection.createChannel();
    const name = unique('slow');
    await setup.assertQueue(name, { arguments: { 'x-consumer-timeout': 200 } });
    const channel = await connection.createChannel();
    const closed = new Promise((resolve) => channel.once('error', resolve));
    await channel.consume(name, () => {}, { noAck: false }); // never acks
    setup.sendToQueue(name, Buffer.from('job'));
    const err = await closed;
    assert.equal(err.code, 406, err.message);
    assert.match(err.message, /delivery acknowledgement on channel \d+ timed out\. Timeout value used: 200 ms/);
    const again = await getOne(setup, name);
    assert.equal(again.content.toString(), 'job');
    assert.equal(again.fields.redelivered, true);
    await setup.deleteQueue(name);
    await setup.close();
  }),
});
