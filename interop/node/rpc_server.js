#!/usr/bin/env node
// Tutorial 6 (RPC): the Fibonacci server.
// Interop changes: AMQP_URL; exits after TUTORIAL_COUNT requests (if set),
// on SIGINT, or with status 3 after TUTORIAL_TIMEOUT seconds.
const amqp = require('amqplib/callback_api');

const url = process.env.AMQP_URL || 'amqp://guest:guest@localhost:5672/';
// Interop addition: TUTORIAL_QUEUE_TYPE=quorum declares the queue as RabbitMQ's current
// tutorials do, as a durable quorum queue.
const QUORUM = process.env.TUTORIAL_QUEUE_TYPE === 'quorum';
const count = Number(process.env.TUTORIAL_COUNT || 0);
setTimeout(() => { console.error(' [!] timed out'); process.exit(3); },
  1000 * Number(process.env.TUTORIAL_TIMEOUT || 60)).unref();

function fibonacci(n) {
  if (n === 0 || n === 1) return n;
  return fibonacci(n - 1) + fibonacci(n - 2);
}

amqp.connect(url, (error0, connection) => {
  if (error0) throw error0;
  process.once('SIGINT', () => connection.close(() => process.exit(0)));
  connection.createChannel((error1, channel) => {
    if (error1) throw error1;

    const queue = 'rpc_queue';
    let served = 0;

    channel.assertQueue(queue, QUORUM ? { durable: true, arguments: { 'x-queue-type': 'quorum' } } : { durable: false });
    channel.prefetch(1);

    channel.consume(queue, (msg) => {
      const n = parseInt(msg.content.toString(), 10);
      console.log(' [.] fib(%d)', n);

      const r = fibonacci(n);

      channel.sendToQueue(msg.properties.replyTo, Buffer.from(r.toString()), {
        correlationId: msg.properties.correlationId,
      });
      channel.ack(msg);
      served += 1;
      if (count && served === count) channel.close(() => connection.close());
    }, { noAck: false }, (error2) => {
      if (error2) throw error2;
      console.log(' [x] Awaiting RPC requests');
    });
  });
});
