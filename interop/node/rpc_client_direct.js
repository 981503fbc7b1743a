#!/usr/bin/env node
// Tutorial 6 (RPC) as RabbitMQ's JavaScript tutorial publishes it today: the client
// receives its reply through direct reply-to (the pseudo-queue amq.rabbitmq.reply-to,
// consumed in no-ack mode) instead of declaring a callback queue.
// Usage: rpc_client_direct.js num
// Interop changes: AMQP_URL; exits with status 3 after TUTORIAL_TIMEOUT seconds.
const amqp = require('amqplib/callback_api');
const { randomUUID } = require('node:crypto');

const args = process.argv.slice(2);
if (args.length === 0) {
  console.log('Usage: rpc_client_direct.js num');
  process.exit(1);
}

const url = process.env.AMQP_URL || 'amqp://guest:guest@localhost:5672/';
const REPLY_QUEUE = 'amq.rabbitmq.reply-to';
setTimeout(() => { console.error(' [!] timed out'); process.exit(3); },
  1000 * Number(process.env.TUTORIAL_TIMEOUT || 60)).unref();

amqp.connect(url, (error0, connection) => {
  if (error0) throw error0;
  connection.createChannel((error1, channel) => {
    if (error1) throw error1;
    const correlationId = randomUUID();
    const num = parseInt(args[0], 10);

    channel.consume(REPLY_QUEUE, (msg) => {
      if (msg.properties.correlationId === correlationId) {
        console.log(' [.] Got %s', msg.content.toString());
        connection.close();
      }
    }, { noAck: true }, (error2) => {
      if (error2) throw error2;
      console.log(' [x] Requesting fib(%d)', num);
      channel.sendToQueue('rpc_queue', Buffer.from(num.toString()), {
        correlationId: correlationId,
        replyTo: REPLY_QUEUE,
      });
    });
  });
});
