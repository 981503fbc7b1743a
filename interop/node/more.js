#!/usr/bin/env node
// More amqplib checks (beyond the tutorials and features.js): backpressure with
// publish() returning false and 'drain', heartbeats, exchange-to-exchange and
// headers routing, consumer cancel notifications, exclusive consumers, basic.recover,
// basic.cancel, server capabilities and a refused login.
// Usage: more.js <check>...   (no argument: list the checks)
// Each check prints "PASS <name>" or "FAIL <name>: <reason>"; the exit status is
// 0 only if every named check passed. The broker URL comes from AMQP_URL.
const assert = require('node:assert/strict');
const {
  amqp, url, sleep, unique, waitUntil, getOne, withConnection, nextEvent, withUrlParam,
} = require('./queue_features_lib');

const checks = {
  // Publish large messages as fast as possible until publish() returns false (the
  // channel's write buffer is full: amqplib buffers about 2 x 1024 frames per
  // channel, two per message here), wait for 'drain', publish some more. Every
  // message arrives, in order and intact, at a consumer on another connection.
  'backpressure-drain': () => withConnection(async (consumerConn) => withConnection(async (publisherConn) => {
    const size = 32 * 1024;
    const queue = unique('drain');
    const cch = await consumerConn.createChannel();
    await cch.assertQueue(queue, { durable: false, autoDelete: true });
    const seqs = [];
    let bad = 0;
    const { consumerTag } = await cch.consume(queue, (msg) => {
      if (msg === null) return; // cancelled by the broker
      const seq = msg.properties.headers.seq;
      if (msg.content.length !== size || msg.content[size - 1] !== seq % 251) bad += 1;
      seqs.push(seq);
    }, { noAck: true });

    const pch = await publisherConn.createChannel();
    let seq = 0;
    const publish = () => {
      const body = Buffer.alloc(size, 0x61);
      body[size - 1] = seq % 251;
      return pch.publish('', queue, body, { headers: { seq: seq++ } });
    };
    while (publish()) {
      if (seq >= 20000) throw new Error('publish() never returned false: no backpressure');
    }
    const full = seq;
    await nextEvent(pch, 'drain', 15000);
    for (let i = 0; i < 200; i++) {
      if (!publish()) await nextEvent(pch, 'drain', 15000);
    }
    const total = seq;
    console.log('publish() returned false after %d messages (%d MB); %d sent in all',
      full, Math.round((full * size) / 1e6), total);
    await waitUntil(() => seqs.length >= total, 30000, `${total} messages (got ${seqs.length})`);
    await sleep(100);
    assert.equal(bad, 0, `${bad} messages arrived damaged`);
    assert.equal(seqs.length, total);
    assert.ok(seqs.every((s, i) => s === i), 'messages out of order');
    await pch.close();
    await cch.cancel(consumerTag);
    await cch.close();
  })),

  // close() right after a burst of publishes: amqplib sends Connection.Close at
  // once while its channel buffer still streams publish frames out behind it. The
  // broker discards frames after the Close, answers Close-Ok, and the close must
  // complete without a socket error (a broker that closes its socket while the
  // client is still sending makes the kernel answer with RST, which can destroy
  // the Close-Ok before amqplib reads it: close() then never resolves).
  'close-after-burst': async () => {
    const connection = await amqp.connect(url);
    const errors = [];
    connection.on('error', (err) => errors.push(err.message));
    const channel = await connection.createChannel();
    const { queue } = await channel.assertQueue('', { exclusive: true });
    const body = Buffer.alloc(32 * 1024, 0x62);
    let sent = 0;
    while (channel.publish('', queue, body) && sent < 20000) sent += 1;
    const outcome = await Promise.race([
      connection.close().then(() => 'closed', (err) => `close() failed: ${err.message}`),
      sleep(5000).then(() => 'no Close-Ok within 5 s'),
    ]);
    assert.equal(outcome, 'closed', `errors: ${errors.join('; ')}`);
    assert.deepEqual(errors, []);
  },

  // heartbeat=2 in the URL: negotiated to 2 s; idle for 3 intervals, the connection
  // stays open (amqplib errors with 'Heartbeat timeout' if nothing arrives for two
  // intervals, so the broker must send heartbeats) and works afterwards.
  'heartbeat': async () => {
    const connection = await amqp.connect(withUrlParam(url, 'heartbeat', '2'));
    let closed = null;
    let errored = null;
    connection.on('close', (err) => { closed = err || 'closed'; });
    connection.on('error', (err) => { errored = err; });
    try {
      assert.equal(connection.connection.heartbeat, 2);
      await sleep(6500);
      assert.equal(errored, null, `connection error while idle: ${errored && errored.message}`);
      assert.equal(closed, null, `connection closed while idle: ${closed}`);
      const channel = await connection.createChannel();
      const { queue } = await channel.assertQueue('', { exclusive: true });
      channel.sendToQueue(queue, Buffer.from('still alive'));
      const msg = await getOne(channel, queue);
      assert.equal(msg.content.toString(), 'still alive');
      await channel.close();
    } finally {
      await connection.close().catch(() => {});
    }
  },

  // Exchange-to-exchange bindings route through, unbindExchange stops it.
  'exchange-to-exchange': () => withConnection(async (connection) => {
    const channel = await connection.createChannel();
    const upstream = unique('e2e.up');
    const downstream = unique('e2e.down');
    await channel.assertExchange(upstream, 'topic', { durable: false, autoDelete: false });
    await channel.assertExchange(downstream, 'direct', { durable: false, autoDelete: false });
    const { queue } = await channel.assertQueue('', { exclusive: true });
    await channel.bindQueue(queue, downstream, 'eu.orders');
    await channel.bindExchange(downstream, upstream, 'eu.#');
    try {
      channel.publish(upstream, 'eu.orders', Buffer.from('routed'));
      channel.publish(upstream, 'us.orders', Buffer.from('not routed'));
      const msg = await getOne(channel, queue);
      assert.equal(msg.content.toString(), 'routed');
      assert.equal(msg.fields.exchange, upstream);
      await sleep(100);
      assert.equal(await channel.get(queue, { noAck: true }), false);
      await channel.unbindExchange(downstream, upstream, 'eu.#');
      channel.publish(upstream, 'eu.orders', Buffer.from('after unbind'));
      await sleep(200);
      assert.equal(await channel.get(queue, { noAck: true }), false, 'unbindExchange did not stop routing');
    } finally {
      await channel.deleteExchange(upstream);
      await channel.deleteExchange(downstream);
      await channel.close();
    }
  }),

  // Headers exchange: x-match all / any against message headers.
  'headers-exchange': () => withConnection(async (connection) => {
    const channel = await connection.createChannel();
    const exchange = unique('headers');
    await channel.assertExchange(exchange, 'headers', { durable: false, autoDelete: false });
    const all = (await channel.assertQueue('', { exclusive: true })).queue;
    const any = (await channel.assertQueue('', { exclusive: true })).queue;
    await channel.bindQueue(all, exchange, '', { 'x-match': 'all', format: 'pdf', type: 'report' });
    await channel.bindQueue(any, exchange, '', { 'x-match': 'any', format: 'zip', type: 'log' });
    try {
      const send = (name, headers) => channel.publish(exchange, '', Buffer.from(name), { headers });
      send('pdf-report', { format: 'pdf', type: 'report' });
      send('pdf-log', { format: 'pdf', type: 'log' });
      send('pdf', { format: 'pdf' });
      send('zip', { format: 'zip', extra: 1 });
      const drain = async (queue) => {
        const out = [];
        await sleep(200);
        for (let m = await channel.get(queue, { noAck: true }); m; m = await channel.get(queue, { noAck: true })) {
          out.push(m.content.toString());
        }
        return out;
      };
      assert.deepEqual(await drain(all), ['pdf-report']);
      assert.deepEqual(await drain(any), ['pdf-log', 'zip']);
    } finally {
      await channel.deleteExchange(exchange);
      await channel.close();
    }
  }),

  // Deleting the queue under a consumer: the broker sends basic.cancel (consumer
  // cancel notification) and amqplib calls the consumer with null.
  'consumer-cancel-notify': () => withConnection(async (connection) => {
    const channel = await connection.createChannel();
    const other = await connection.createChannel();
    const queue = unique('cancel-notify');
    await channel.assertQueue(queue, { durable: false });
    let cancelled = false;
    const got = [];
    await channel.consume(queue, (msg) => {
      if (msg === null) cancelled = true;
      else got.push(msg.content.toString());
    }, { noAck: true });
    channel.sendToQueue(queue, Buffer.from('first'));
    await waitUntil(() => got.length === 1, 5000, 'the first message');
    await other.deleteQueue(queue);
    await waitUntil(() => cancelled, 5000, 'basic.cancel from the broker');
    // The channel is still usable.
    const ok = await channel.assertQueue('', { exclusive: true });
    assert.match(ok.queue, /\S/);
    await other.close();
    await channel.close();
  }),

  // An exclusive consumer keeps others off the queue: 403 ACCESS_REFUSED.
  'exclusive-consumer-403': () => withConnection(async (connection) => {
    const channel = await connection.createChannel();
    const queue = unique('exclusive-consumer');
    await channel.assertQueue(queue, { durable: false, autoDelete: true });
    await channel.consume(queue, () => {}, { exclusive: true, noAck: true });
    const second = await connection.createChannel();
    second.on('error', () => {});
    const err = await second.consume(queue, () => {}, { noAck: true }).then(
      () => { throw new Error('a second consumer joined an exclusive consumer'); }, (e) => e);
    assert.equal(err.code, 403, err.message);
    assert.match(err.message, /ACCESS_REFUSED/);
    await channel.deleteQueue(queue);
    await channel.close();
  }),

  // basic.recover(requeue) redelivers every unacked message, flagged redelivered.
  'recover': () => withConnection(async (connection) => {
    const channel = await connection.createChannel();
    const { queue } = await channel.assertQueue('', { exclusive: true });
    for (const text of ['a', 'b']) channel.sendToQueue(queue, Buffer.from(text));
    const got = [];
    await channel.consume(queue, (msg) => got.push(msg), { noAck: false });
    await waitUntil(() => got.length === 2, 5000, 'two deliveries');
    await channel.recover();
    await waitUntil(() => got.length === 4, 5000, 'two redeliveries');
    assert.deepEqual(got.map((m) => [m.content.toString(), m.fields.redelivered]),
      [['a', false], ['b', false], ['a', true], ['b', true]]);
    channel.ack(got[3], true);
    await channel.close();
  }),

  // basic.cancel: no deliveries after cancel-ok; what was not delivered stays queued.
  'cancel-consumer': () => withConnection(async (connection) => {
    const channel = await connection.createChannel();
    const { queue } = await channel.assertQueue('', { exclusive: true });
    await channel.prefetch(1);
    const got = [];
    const { consumerTag } = await channel.consume(queue, (msg) => got.push(msg), { noAck: false });
    for (let i = 0; i < 3; i++) channel.sendToQueue(queue, Buffer.from(`c${i}`));
    await waitUntil(() => got.length === 1, 5000, 'one delivery');
    await channel.cancel(consumerTag);
    channel.ack(got[0]);
    await sleep(200);
    assert.equal(got.length, 1, 'deliveries after basic.cancel');
    const { messageCount } = await channel.checkQueue(queue);
    assert.equal(messageCount, 2);
    await channel.close();
  }),

  // Server properties advertise the extensions amqplib and others look for.
  'server-capabilities': () => withConnection(async (connection) => {
    const props = connection.connection.serverProperties;
    const caps = props.capabilities || {};
    for (const cap of ['publisher_confirms', 'exchange_exchange_bindings', 'basic.nack',
      'consumer_cancel_notify', 'connection.blocked', 'authentication_failure_close',
      'per_consumer_qos']) {
      assert.equal(caps[cap], true, `capability ${cap}: ${caps[cap]}`);
    }
    assert.equal(typeof props.product, 'string');
    assert.equal(typeof props.version, 'string');
  }),

  // A wrong password: the broker closes with 403 ACCESS_REFUSED (the client
  // advertises authentication_failure_close) and connect() rejects.
  'auth-failure': async () => {
    const u = new URL(url);
    u.password = 'definitely-wrong';
    const err = await amqp.connect(u.toString()).then(
      async (c) => { await c.close(); throw new Error('login with a wrong password succeeded'); },
      (e) => e);
    assert.match(String(err.message), /403|ACCESS.REFUSED/, err.message);
  },
};

// The shared check runner (PASS/FAIL lines, exit status): queue_features_lib.run.
require('./queue_features_lib').run(checks);
