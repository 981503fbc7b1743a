#!/usr/bin/env node
// Tutorial 1 ("Hello World!"): the producer.
// Interop change: the broker URL comes from AMQP_URL.
const amqp = require('amqplib/callback_api');

const url = process.env.AMQP_URL || 'amqp://guest:guest@localhost:5672/';
// Interop addition: TUTORIAL_QUEUE_TYPE=quorum declares the queue as RabbitMQ's current
// tutorials do, as a durable quorum queue.
const QUORUM = process.env.TUTORIAL_QUEUE_TYPE === 'quorum';
// Interop addition: never run forever.
setTimeout(() => { console.error(' [!] timed out'); process.exit(3); },
  1000 * Number(process.env.TUTORIAL_TIMEOUT || 60)).unref();

amqp.connect(url, (error0, connection) => {
  if (error0) throw error0;
  connection.createChannel((error1, channel) => {
    if (error1) throw error1;

    const queue = 'hello';
    const msg = process.argv.slice(2).join(' ') || 'Hello World!';

    channel.assertQueue(queue, QUORUM ? { durable: true, arguments: { 'x-queue-type': 'quorum' } } : { durable: false });
    channel.sendToQueue(queue, Buffer.from(msg));
    console.log(" [x] Sent '%s'", msg);

    // Close gracefully so the message is on the broker before we exit.
    channel.close(() => connection.close());
  });
});
