#!/usr/bin/env node
// Message TTL (x-message-ttl, the expiration property) and queue expiry (x-expires).
const assert = require('node:assert/strict');
const {
  sleep, unique, getOne, channelError, withConnection, deadLetterTarget, run,
} = require('./queue_features_lib');

run({
  // Messages older than x-message-ttl are dead-lettered with reason "expired".
  'queue-ttl-dead-letters': () => withConnection(async (connection) => {
    const channel = await connection.createChannel();
    const { dlx, dlq } = await deadLetterTarget(channel);
    const { queue } = await channel.assertQueue('', {
      exclusive: true, messageTtl: 100, deadLetterExchange: dlx,
    });
    channel.sendToQueue(queue, Buffer.from('late'), { headers: { app: 'kept' } });
    const dead = await getOne(channel, dlq);
    assert.equal(dead.content.toString(), 'late');
    assert.equal(dead.fields.exchange, dlx);
    assert.equal(dead.fields.routingKey, queue);
    const h = dead.properties.headers;
    assert.equal(h.app, 'kept');
    assert.equal(h['x-death'].length, 1);
    const death = h['x-death'][0];
    assert.equal(death.reason, 'expired');
    assert.equal(death.queue, queue);
    assert.equal(death.count, 1);
    assert.equal(death.exchange, '');
    assert.deepEqual(death['routing-keys'], [queue]);
    assert.equal(death.time['!'], 'timestamp'); // amqplib's decoding of a 'T' field
    assert.ok(Math.abs(death.time.value - Date.now() / 1000) < 60, `time ${death.time.value}`);
    assert.equal(h['x-first-death-reason'], 'expired');
    assert.equal(h['x-last-death-queue'], queue);
    assert.equal((await channel.checkQueue(queue)).messageCount, 0);
    await channel.deleteExchange(dlx);
    await channel.close();
  }),

  // The expiration property expires one message; the others stay.
  'per-message-expiration': () => withConnection(async (connection) => {
    const channel = await connection.createChannel();
    const { queue } = await channel.assertQueue('', { exclusive: true });
    channel.sendToQueue(queue, Buffer.from('short'), { expiration: '50' });
    channel.sendToQueue(queue, Buffer.from('kept'));
    await sleep(150);
    const msg = await channel.get(queue, { noAck: true });
    assert.equal(msg.content.toString(), 'kept');
    assert.equal(await channel.get(queue, { noAck: true }), false);
    await channel.close();
  }),

  // An invalid expiration closes the channel with 406, worded as RabbitMQ.
  'invalid-expiration-406': () => withConnection(async (connection) => {
    const channel = await connection.createChannel();
    channel.on('error', () => {});
    const closed = new Promise((resolve) => channel.once('error', resolve));
    channel.sendToQueue(unique('nowhere'), Buffer.from('x'), { expiration: 'soon' });
    const err = await closed;
    assert.equal(err.code, 406, err.message);
    assert.match(err.message, /invalid expiration 'soon': no_integer/);
  }),

  // An unused queue goes after x-expires; a redeclaration renews the lease.
  'x-expires': () => withConnection(async (connection) => {
    const channel = await connection.createChannel();
    const name = unique('lease');
    await channel.assertQueue(name, { expires: 200 });
    await sleep(120);
    await channel.checkQueue(name); // renews the lease
    await sleep(120);
    await channel.checkQueue(name);
    await sleep(450);
    channel.on('error', () => {});
    const err = await channelError(channel.checkQueue(name), 'checkQueue of an expired queue');
    assert.equal(err.code, 404, err.message);
  }),
});
