#!/usr/bin/env node
// Length limits: x-max-length, x-max-length-bytes and x-overflow.
const assert = require('node:assert/strict');
const {
  getOne, withConnection, deadLetterTarget, run,
} = require('./queue_features_lib');

run({
  // drop-head (the default): the oldest messages are dead-lettered with reason maxlen.
  'max-length-drop-head': () => withConnection(async (connection) => {
    const channel = await connection.createChannel();
    const { dlx, dlq } = await deadLetterTarget(channel);
    const { queue } = await channel.assertQueue('', {
      exclusive: true, maxLength: 2, deadLetterExchange: dlx,
    });
    for (const body of ['1', '2', '3']) channel.sendToQueue(queue, Buffer.from(body));
    const dead = await getOne(channel, dlq);
    assert.equal(dead.content.toString(), '1');
    assert.equal(dead.properties.headers['x-death'][0].reason, 'maxlen');
    assert.equal((await getOne(channel, queue)).content.toString(), '2');
    assert.equal((await getOne(channel, queue)).content.toString(), '3');
    await channel.deleteExchange(dlx);
    await channel.close();
  }),

  // x-max-length-bytes counts message bodies.
  'max-length-bytes': () => withConnection(async (connection) => {
    const channel = await connection.createChannel();
    const { queue } = await channel.assertQueue('', {
      exclusive: true, arguments: { 'x-max-length-bytes': 5 },
    });
    channel.sendToQueue(queue, Buffer.from('abc'));
    channel.sendToQueue(queue, Buffer.from('def'));
    assert.equal((await getOne(channel, queue)).content.toString(), 'def');
    assert.equal(await channel.get(queue, { noAck: true }), false);
    await channel.close();
  }),

  // reject-publish: a publisher in confirm mode gets a nack.
  'reject-publish-nack': () => withConnection(async (connection) => {
    const channel = await connection.createConfirmChannel();
    const { queue } = await channel.assertQueue('', {
      exclusive: true, maxLength: 1, arguments: { 'x-overflow': 'reject-publish' },
    });
    const results = [];
    channel.sendToQueue(queue, Buffer.from('in'), {}, (err) => results.push(err));
    channel.sendToQueue(queue, Buffer.from('out'), {}, (err) => results.push(err));
    await channel.waitForConfirms().catch(() => {});
    assert.equal(results.length, 2);
    assert.ok(!results[0], 'the first publish must be acked');
    assert.ok(results[1], 'the second publish must be nacked');
    assert.equal((await channel.checkQueue(queue)).messageCount, 1);
    await channel.close();
  }),

  // reject-publish-dlx: nacked and dead-lettered.
  'reject-publish-dlx': () => withConnection(async (connection) => {
    const channel = await connection.createConfirmChannel();
    const { dlx, dlq } = await deadLetterTarget(channel);
    const { queue } = await channel.assertQueue('', {
      exclusive: true, maxLength: 1, deadLetterExchange: dlx,
      arguments: { 'x-overflow': 'reject-publish-dlx' },
    });
    const results = [];
    channel.sendToQueue(queue, Buffer.from('in'), {}, (err) => results.push(err));
    channel.sendToQueue(queue, Buffer.from('out'), {}, (err) => results.push(err));
    await channel.waitForConfirms().catch(() => {});
    assert.ok(!results[0] && results[1]);
    const dead = await getOne(channel, dlq);
    assert.equal(dead.content.toString(), 'out');
    assert.equal(dead.properties.headers['x-death'][0].reason, 'maxlen');
    await channel.deleteExchange(dlx);
    await channel.close();
  }),
});
