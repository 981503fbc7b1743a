#!/usr/bin/env node
// Dead lettering: reject/nack without requeue, x-death, a retry loop, cycles.
const assert = require('node:assert/strict');
const {
  sleep, unique, waitUntil, getOne, withConnection, deadLetterTarget, run,
} = require('./queue_features_lib');

run({
  // reject(requeue=false) dead-letters with x-death and the first/last death headers.
  'reject-dead-letters': () => withConnection(async (connection) => {
    const channel = await connection.createChannel();
    const { dlx, dlq } = await deadLetterTarget(channel);
    const { queue } = await channel.assertQueue('', {
      exclusive: true, deadLetterExchange: dlx, deadLetterRoutingKey: 'failed',
    });
    channel.sendToQueue(queue, Buffer.from('bad'), { expiration: '60000' });
    const msg = await getOne(channel, queue, 5000, false);
    channel.reject(msg, false);
    const dead = await getOne(channel, dlq);
    assert.equal(dead.fields.routingKey, 'failed');
    assert.equal(dead.properties.expiration, undefined);
    const h = dead.properties.headers;
    const [death] = h['x-death'];
    assert.equal(death.reason, 'rejected');
    assert.equal(death.queue, queue);
    assert.equal(death['original-expiration'], '60000');
    assert.equal(h['x-first-death-queue'], queue);
    assert.equal(h['x-first-death-reason'], 'rejected');
    assert.equal(h['x-first-death-exchange'], '');
    assert.equal(h['x-last-death-reason'], 'rejected');
    await channel.deleteExchange(dlx);
    await channel.close();
  }),

  // A retry loop: the work queue dead-letters rejected messages to a TTL queue, which
  // dead-letters them back once they expire.
  'retry-loop': () => withConnection(async (connection) => {
    const channel = await connection.createChannel();
    const workX = unique('work.x');
    const retryX = unique('retry.x');
    await channel.assertExchange(workX, 'direct', { durable: false });
    await channel.assertExchange(retryX, 'direct', { durable: false });
    const work = (await channel.assertQueue('', {
      exclusive: true, deadLetterExchange: retryX,
    })).queue;
    const retry = (await channel.assertQueue('', {
      exclusive: true, deadLetterExchange: workX, messageTtl: 50,
    })).queue;
    await channel.bindQueue(work, workX, 'job');
    await channel.bindQueue(retry, retryX, 'job');
    const attempts = [];
    await channel.consume(work, (msg) => {
      attempts.push(msg);
      if (attempts.length < 3) channel.reject(msg, false);
      else channel.ack(msg);
    });
    channel.publish(workX, 'job', Buffer.from('job'));
    await waitUntil(() => attempts.length >= 3, 5000, 'three attempts');
    const deaths = attempts[2].properties.headers['x-death'];
    assert.deepEqual(deaths.map((d) => [d.queue, d.reason, d.count]),
      [[retry, 'expired', 2], [work, 'rejected', 2]]);
    assert.equal(attempts[2].fields.exchange, workX);
    await channel.deleteExchange(workX);
    await channel.deleteExchange(retryX);
    await channel.close();
  }),

  // Expiring back into the same queue is a cycle without rejection: dropped.
  'dead-letter-cycle-dropped': () => withConnection(async (connection) => {
    const channel = await connection.createChannel();
    const { queue } = await channel.assertQueue('', {
      exclusive: true, deadLetterExchange: '', messageTtl: 50,
    });
    channel.sendToQueue(queue, Buffer.from('loop'));
    await sleep(300);
    assert.equal((await channel.checkQueue(queue)).messageCount, 0);
    await channel.close();
  }),
});
