#!/usr/bin/env node
// Feature checks with amqplib beyond the tutorials.
// Usage: features.js <check>...   (no argument: list the checks)
// Each check prints "PASS <name>" or "FAIL <name>: <reason>"; the exit status is
// 0 only if every named check passed. The broker URL comes from AMQP_URL.
const assert = require('node:assert/strict');
const {
  sleep, unique, waitUntil, getOne, withConnection, nextEvent,
} = require('./queue_features_lib');

const checks = {
  // checkQueue on a missing queue rejects with a 404 channel error; the channel
  // is closed, the connection survives.
  'check-queue-404': () => withConnection(async (connection) => {
    const channel = await connection.createChannel();
    channel.on('error', () => {});
    const closed = nextEvent(channel, 'close');
    const name = unique('missing');
    const err = await channel.checkQueue(name).then(
      () => { throw new Error('checkQueue on a missing queue succeeded'); },
      (e) => e,
    );
    assert.equal(err.code, 404, `expected code 404, got ${err.code}: ${err.message}`);
    assert.match(err.message, /NOT_FOUND/);
    assert.ok(err.message.includes(name), `the error should name the queue: ${err.message}`);
    console.log('error message: %s', err.message);
    await closed;
    const other = await connection.createChannel();
    const ok = await other.assertQueue('', { exclusive: true });
    assert.match(ok.queue, /\S/);
    await other.close();
  }),

  // ConfirmChannel: every publish callback gets a positive ack, waitForConfirms resolves.
  'confirm-channel': () => withConnection(async (connection) => {
    const channel = await connection.createConfirmChannel();
    const { queue } = await channel.assertQueue('', { exclusive: true });
    const results = [];
    const n = 200;
    for (let i = 0; i < n; i++) {
      channel.sendToQueue(queue, Buffer.from(`m${i}`), { persistent: true },
        (err) => results.push(err));
    }
    await channel.waitForConfirms();
    assert.equal(results.length, n);
    assert.ok(results.every((e) => e === null || e === undefined), `nacks: ${results.filter((e) => e).length}`);
    const { messageCount } = await channel.checkQueue(queue);
    assert.equal(messageCount, n);
    await channel.close();
  }),

  // An exchange declared with alternateExchange hands unroutable messages to it.
  'alternate-exchange': () => withConnection(async (connection) => {
    const channel = await connection.createChannel();
    const ae = unique('ae');
    const main = unique('main');
    await channel.assertExchange(ae, 'fanout', { durable: false, autoDelete: false });
    await channel.assertExchange(main, 'direct', { durable: false, alternateExchange: ae });
    const aeQueue = (await channel.assertQueue('', { exclusive: true })).queue;
    const mainQueue = (await channel.assertQueue('', { exclusive: true })).queue;
    await channel.bindQueue(aeQueue, ae, '');
    await channel.bindQueue(mainQueue, main, 'routed');
    try {
      channel.publish(main, 'routed', Buffer.from('to-main'));
      channel.publish(main, 'nowhere', Buffer.from('to-ae'));
      const a = await getOne(channel, mainQueue);
      const b = await getOne(channel, aeQueue);
      assert.equal(a.content.toString(), 'to-main');
      assert.equal(b.content.toString(), 'to-ae');
      assert.equal(b.fields.routingKey, 'nowhere');
      assert.equal(b.fields.exchange, main);
      assert.equal(await channel.get(aeQueue, { noAck: true }), false, 'routed message leaked to the AE');
      assert.equal(await channel.get(mainQueue, { noAck: true }), false);
    } finally {
      await channel.deleteExchange(main);
      await channel.deleteExchange(ae);
      await channel.close();
    }
  }),

  // prefetch(n) bounds the unacknowledged deliveries to a consumer.
  'prefetch': () => withConnection(async (connection) => {
    const channel = await connection.createChannel();
    const { queue } = await channel.assertQueue('', { exclusive: true });
    for (let i = 0; i < 5; i++) channel.sendToQueue(queue, Buffer.from(`p${i}`));
    await channel.prefetch(2);
    const got = [];
    await channel.consume(queue, (msg) => got.push(msg), { noAck: false });
    await waitUntil(() => got.length >= 2, 5000, '2 deliveries');
    await sleep(300);
    assert.equal(got.length, 2, 'prefetch 2 must hold back the third message');
    channel.ack(got[0]);
    await waitUntil(() => got.length >= 3, 5000, 'a 3rd delivery after one ack');
    await sleep(300);
    assert.equal(got.length, 3);
    channel.ack(got[2], true); // multiple: acks deliveries 2 and 3
    await waitUntil(() => got.length >= 5, 5000, 'all 5 deliveries');
    assert.deepEqual(got.map((m) => m.content.toString()), ['p0', 'p1', 'p2', 'p3', 'p4']);
    channel.ackAll();
    await channel.close();
  }),

  // A mandatory message nobody can take comes back with 312 NO_ROUTE.
  'mandatory-return': () => withConnection(async (connection) => {
    const channel = await connection.createChannel();
    const returned = nextEvent(channel, 'return');
    const key = unique('noroute');
    channel.publish('', key, Buffer.from('lost'), { mandatory: true, messageId: 'r1' });
    const msg = await returned;
    assert.equal(msg.fields.replyCode, 312);
    assert.equal(msg.fields.replyText, 'NO_ROUTE');
    assert.equal(msg.fields.exchange, '');
    assert.equal(msg.fields.routingKey, key);
    assert.equal(msg.properties.messageId, 'r1');
    assert.equal(msg.content.toString(), 'lost');
    await channel.close();
  }),

  // nack with requeue redelivers with the redelivered flag set.
  'nack-requeue': () => withConnection(async (connection) => {
    const channel = await connection.createChannel();
    const { queue } = await channel.assertQueue('', { exclusive: true });
    channel.sendToQueue(queue, Buffer.from('again'));
    const got = [];
    await channel.consume(queue, (msg) => {
      got.push(msg);
      if (got.length === 1) channel.nack(msg, false, true);
      else channel.ack(msg);
    });
    await waitUntil(() => got.length >= 2, 5000, 'the redelivery');
    assert.equal(got[0].fields.redelivered, false);
    assert.equal(got[1].fields.redelivered, true);
    assert.equal(got[1].content.toString(), 'again');
    await channel.close();
  }),

  // Redeclaring a queue with different properties fails with 406.
  'precondition-failed-406': () => withConnection(async (connection) => {
    const name = unique('pre');
    const channel = await connection.createChannel();
    await channel.assertQueue(name, { durable: false, autoDelete: true });
    const other = await connection.createChannel();
    other.on('error', () => {});
    const err = await other.assertQueue(name, { durable: true }).then(
      () => { throw new Error('redeclare with durable=true succeeded'); }, (e) => e);
    assert.equal(err.code, 406, err.message);
    assert.match(err.message, /PRECONDITION_FAILED/);
    await channel.deleteQueue(name);
    await channel.close();
  }),

  // Another connection may not use an exclusive queue: 405.
  'exclusive-locked-405': () => withConnection(async (owner) => {
    const channel = await owner.createChannel();
    const name = unique('excl');
    await channel.assertQueue(name, { exclusive: true });
    await withConnection(async (intruder) => {
      const ch = await intruder.createChannel();
      ch.on('error', () => {});
      const err = await ch.checkQueue(name).then(
        () => { throw new Error('passive declare of a foreign exclusive queue succeeded'); }, (e) => e);
      assert.equal(err.code, 405, err.message);
      assert.match(err.message, /RESOURCE_LOCKED/);
    });
    await channel.close();
  }),

  // basic.get, purge and delete report message counts.
  'get-purge-delete-counts': () => withConnection(async (connection) => {
    const channel = await connection.createChannel();
    const name = unique('counts');
    await channel.assertQueue(name, { durable: false });
    try {
      assert.equal(await channel.get(name), false);
      for (let i = 0; i < 3; i++) channel.sendToQueue(name, Buffer.from(`c${i}`));
      const first = await getOne(channel, name);
      assert.equal(first.content.toString(), 'c0');
      assert.equal(first.fields.messageCount, 2);
      const purged = await channel.purgeQueue(name);
      assert.equal(purged.messageCount, 2);
      channel.sendToQueue(name, Buffer.from('last'));
      const { messageCount } = await channel.checkQueue(name);
      assert.equal(messageCount, 1);
    } finally {
      const deleted = await channel.deleteQueue(name);
      assert.equal(deleted.messageCount, 1);
      await channel.close();
    }
  }),

  // Message properties and header tables survive the broker unchanged.
  'properties-roundtrip': () => withConnection(async (connection) => {
    const channel = await connection.createChannel();
    const { queue } = await channel.assertQueue('', { exclusive: true });
    const ts = Math.floor(Date.now() / 1000);
    const body = Buffer.alloc(300000, 7); // spans several frames
    channel.sendToQueue(queue, body, {
      contentType: 'application/octet-stream',
      contentEncoding: 'identity',
      headers: { s: 'text', i: 42, neg: -7, f: 1.5, b: true, list: [1, 'two'], nested: { k: 'v' } },
      persistent: true,
      priority: 3,
      correlationId: 'corr-1',
      replyTo: 'nowhere',
      expiration: '60000',
      messageId: 'msg-1',
      timestamp: ts,
      type: 'kind',
      appId: 'interop',
    });
    const msg = await getOne(channel, queue);
    const p = msg.properties;
    assert.ok(msg.content.equals(body), 'body changed');
    assert.equal(p.contentType, 'application/octet-stream');
    assert.equal(p.contentEncoding, 'identity');
    assert.equal(p.headers.s, 'text');
    assert.equal(p.headers.i, 42);
    assert.equal(p.headers.neg, -7);
    assert.equal(p.headers.f, 1.5);
    assert.equal(p.headers.b, true);
    assert.deepEqual(p.headers.list, [1, 'two']);
    assert.deepEqual(p.headers.nested, { k: 'v' });
    assert.equal(p.deliveryMode, 2);
    assert.equal(p.priority, 3);
    assert.equal(p.correlationId, 'corr-1');
    assert.equal(p.replyTo, 'nowhere');
    assert.equal(p.expiration, '60000');
    assert.equal(p.messageId, 'msg-1');
    assert.equal(p.timestamp, ts);
    assert.equal(p.type, 'kind');
    assert.equal(p.appId, 'interop');
    await channel.close();
  }),
};

// The shared check runner (PASS/FAIL lines, exit status): queue_features_lib.run.
require('./queue_features_lib').run(checks);
