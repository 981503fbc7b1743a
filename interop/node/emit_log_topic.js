#!/usr/bin/env node
// Tutorial 5 (Topics): publish a log message with a "<facility>.<severity>" key.
// Usage: emit_log_topic.js [routing.key] [message]
// Interop change: the broker URL comes from AMQP_URL.
const amqp = require('amqplib/callback_api');

const url = process.env.AMQP_URL || 'amqp://guest:guest@localhost:5672/';
setTimeout(() => { console.error(' [!] timed out'); process.exit(3); },
  1000 * Number(process.env.TUTORIAL_TIMEOUT || 60)).unref();

amqp.connect(url, (error0, connection) => {
  if (error0) throw error0;
  connection.createChannel((error1, channel) => {
    if (error1) throw error1;

    const exchange = 'topic_logs';
    const args = process.argv.slice(2);
    const key = args.length > 0 ? args[0] : 'anonymous.info';
    const msg = args.slice(1).join(' ') || 'Hello World!';

    channel.assertExchange(exchange, 'topic', { durable: false });
    channel.publish(exchange, key, Buffer.from(msg));
    console.log(" [x] Sent %s:'%s'", key, msg);

    channel.close(() => connection.close());
  });
});
