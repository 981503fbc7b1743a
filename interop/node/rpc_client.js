#!/usr/bin/env node
// Tutorial 6 (RPC): the client. Sends n, waits for fib(n) on an exclusive
// callback queue, matching the reply by correlation id.
// Usage: rpc_client.js num
// Interop changes: AMQP_URL; exits with status 3 after TUTORIAL_TIMEOUT seconds.
const amqp = require('amqplib/callback_api');
const { randomUUID } = require('node:crypto');

const args = process.argv.slice(2);
if (args.length === 0) {
  console.log('Usage: rpc_client.js num');
  process.exit(1);
}

const url = process.env.AMQP_URL || 'amqp://guest:guest@localhost:5672/';
setTimeout(() => { console.error(' [!] timed out'); process.exit(3); },
  1000 * Number(process.env.TUTORIAL_TIMEOUT || 60)).unref();

amqp.connect(url, (error0, connection) => {
  if (error0) throw error0;
  connection.createChannel((error1, channel) => {
    if (error1) throw error1;

    channel.assertQueue('', { exclusive: true }, (error2, q) => {
      if (error2) throw error2;

      const correlationId = randomUUID();
      const num = parseInt(args[0], 10);

      console.log(' [x] Requesting fib(%d)', num);

      channel.consume(q.queue, (msg) => {
        if (msg.properties.correlationId === correlationId) {
          console.log(' [.] Got %s', msg.content.toString());
          connection.close();
        }
      }, { noAck: true }, (error3) => {
        if (error3) throw error3;
        channel.sendToQueue('rpc_queue', Buffer.from(num.toString()), {
          correlationId: correlationId,
          replyTo: q.queue,
        });
      });
    });
  });
});
