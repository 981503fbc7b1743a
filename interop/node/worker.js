#!/usr/bin/env node
// Tutorial 2 (Work queues): a worker. Each dot in the body is a second of work.
// Interop changes: AMQP_URL; exits after TUTORIAL_COUNT tasks (if set), on
// SIGINT, or with status 3 after TUTORIAL_TIMEOUT seconds.
const amqp = require('amqplib/callback_api');

const url = process.env.AMQP_URL || 'amqp://guest:guest@localhost:5672/';
// Interop addition: TUTORIAL_QUEUE_TYPE=quorum declares the queue as RabbitMQ's current
// tutorials do, as a durable quorum queue.
const QUORUM = process.env.TUTORIAL_QUEUE_TYPE === 'quorum';
const count = Number(process.env.TUTORIAL_COUNT || 0);
setTimeout(() => { console.error(' [!] timed out'); process.exit(3); },
  1000 * Number(process.env.TUTORIAL_TIMEOUT || 60)).unref();

amqp.connect(url, (error0, connection) => {
  if (error0) throw error0;
  process.once('SIGINT', () => connection.close(() => process.exit(0)));
  connection.createChannel((error1, channel) => {
    if (error1) throw error1;

    const queue = 'task_queue';
    let done = 0;

    channel.assertQueue(queue, QUORUM ? { durable: true, arguments: { 'x-queue-type': 'quorum' } } : { durable: true });
    channel.prefetch(1);

    channel.consume(queue, (msg) => {
      const secs = msg.content.toString().split('.').length - 1;
      console.log(" [x] Received '%s'", msg.content.toString());
      setTimeout(() => {
        console.log(' [x] Done');
        channel.ack(msg);
        done += 1;
        if (count && done === count) channel.close(() => connection.close());
      }, secs * 1000);
    }, { noAck: false }, (error2) => {
      if (error2) throw error2;
      console.log(' [*] Waiting for messages in %s. To exit press CTRL+C', queue);
    });
  });
});
