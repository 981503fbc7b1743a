#!/usr/bin/env node
// Tutorial 2 (Work queues): the producer of tasks.
// Interop change: the broker URL comes from AMQP_URL.
const amqp = require('amqplib/callback_api');

const url = process.env.AMQP_URL || 'amqp://guest:guest@localhost:5672/';
// Interop addition: TUTORIAL_QUEUE_TYPE=quorum declares the queue as RabbitMQ's current
// tutorials do, as a durable quorum queue.
const QUORUM = process.env.TUTORIAL_QUEUE_TYPE === 'quorum';
setTimeout(() => { console.error(' [!] timed out'); process.exit(3); },
  1000 * Number(process.env.TUTORIAL_TIMEOUT || 60)).unref();

amqp.connect(url, (error0, connection) => {
  if (error0) throw error0;
  connection.createChannel((error1, channel) => {
    if (error1) throw error1;

    const queue = 'task_queue';
    const msg = process.argv.slice(2).join(' ') || 'Hello World!';

    channel.assertQueue(queue, QUORUM ? { durable: true, arguments: { 'x-queue-type': 'quorum' } } : { durable: true });
    channel.sendToQueue(queue, Buffer.from(msg), { persistent: true });
    console.log(" [x] Sent '%s'", msg);

    channel.close(() => connection.close());
  });
});
