#!/usr/bin/env node
// Tutorial 5 (Topics): receive messages matching the given binding keys.
// Usage: receive_logs_topic.js <facility>.<severity> ...
// Interop changes: AMQP_URL; exits after TUTORIAL_COUNT messages (if set)
// or with status 3 after TUTORIAL_TIMEOUT seconds.
const amqp = require('amqplib/callback_api');

const args = process.argv.slice(2);
if (args.length === 0) {
  console.log('Usage: receive_logs_topic.js <facility>.<severity>');
  process.exit(1);
}

const url = process.env.AMQP_URL || 'amqp://guest:guest@localhost:5672/';
const count = Number(process.env.TUTORIAL_COUNT || 0);
setTimeout(() => { console.error(' [!] timed out'); process.exit(3); },
  1000 * Number(process.env.TUTORIAL_TIMEOUT || 60)).unref();

amqp.connect(url, (error0, connection) => {
  if (error0) throw error0;
  process.once('SIGINT', () => connection.close(() => process.exit(0)));
  connection.createChannel((error1, channel) => {
    if (error1) throw error1;

    const exchange = 'topic_logs';
    let received = 0;

    channel.assertExchange(exchange, 'topic', { durable: false });

    channel.assertQueue('', { exclusive: true }, (error2, q) => {
      if (error2) throw error2;

      args.forEach((key) => {
        channel.bindQueue(q.queue, exchange, key);
      });

      channel.consume(q.queue, (msg) => {
        console.log(" [x] %s:'%s'", msg.fields.routingKey, msg.content.toString());
        received += 1;
        if (count && received === count) connection.close();
      }, { noAck: true }, (error3) => {
        if (error3) throw error3;
        console.log(' [*] Waiting for logs. To exit press CTRL+C');
      });
    });
  });
});
