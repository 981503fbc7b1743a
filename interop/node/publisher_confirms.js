#!/usr/bin/env node
// Tutorial 7 (Publisher Confirms): three strategies for publishing with
// confirms -- one message at a time, in batches, and asynchronously.
// Uses the promise API (require('amqplib')).
// Interop changes: AMQP_URL; MESSAGE_COUNT (default 50,000 as in the tutorial);
// exits with status 3 after TUTORIAL_TIMEOUT seconds. Each strategy also
// reports how many messages its queue holds afterwards.
const amqp = require('amqplib');

const url = process.env.AMQP_URL || 'amqp://guest:guest@localhost:5672/';
const MESSAGE_COUNT = Number(process.env.MESSAGE_COUNT || 50000);
const BATCH_SIZE = 100;
setTimeout(() => { console.error(' [!] timed out'); process.exit(3); },
  1000 * Number(process.env.TUTORIAL_TIMEOUT || 60)).unref();

function report(what, start, acked, nacked, depth) {
  console.log('Published %d messages %s in %d ms (%d acked, %d nacked, %d in queue)',
    MESSAGE_COUNT, what, Date.now() - start, acked, nacked, depth);
}

// Track every confirm through the publish callback.
function tracker() {
  const t = { acked: 0, nacked: 0 };
  t.callback = (err) => { if (err) t.nacked += 1; else t.acked += 1; };
  return t;
}

async function publishMessagesIndividually(connection) {
  const channel = await connection.createConfirmChannel();
  const { queue } = await channel.assertQueue('', { exclusive: true });
  const t = tracker();
  const start = Date.now();
  for (let i = 0; i < MESSAGE_COUNT; i++) {
    channel.sendToQueue(queue, Buffer.from(i.toString()), {}, t.callback);
    await channel.waitForConfirms();
  }
  const { messageCount } = await channel.checkQueue(queue);
  report('individually', start, t.acked, t.nacked, messageCount);
  await channel.deleteQueue(queue);
  await channel.close();
}

async function publishMessagesInBatch(connection) {
  const channel = await connection.createConfirmChannel();
  const { queue } = await channel.assertQueue('', { exclusive: true });
  const t = tracker();
  const start = Date.now();
  let outstanding = 0;
  for (let i = 0; i < MESSAGE_COUNT; i++) {
    channel.sendToQueue(queue, Buffer.from(i.toString()), {}, t.callback);
    outstanding += 1;
    if (outstanding === BATCH_SIZE) {
      await channel.waitForConfirms();
      outstanding = 0;
    }
  }
  if (outstanding > 0) await channel.waitForConfirms();
  const { messageCount } = await channel.checkQueue(queue);
  report('in batch', start, t.acked, t.nacked, messageCount);
  await channel.deleteQueue(queue);
  await channel.close();
}

async function handlePublishConfirmsAsynchronously(connection) {
  const channel = await connection.createConfirmChannel();
  const { queue } = await channel.assertQueue('', { exclusive: true });
  const start = Date.now();
  const outstanding = new Map(); // sequence number -> body
  let acked = 0;
  let nacked = 0;
  const allConfirmed = new Promise((resolve) => {
    for (let i = 0; i < MESSAGE_COUNT; i++) {
      const body = i.toString();
      outstanding.set(i, body);
      channel.sendToQueue(queue, Buffer.from(body), {}, (err) => {
        if (err) {
          nacked += 1;
          console.error('Message with body %s has been nack-ed', body);
        } else {
          acked += 1;
        }
        outstanding.delete(i);
        if (outstanding.size === 0) resolve();
      });
    }
  });
  await allConfirmed;
  const { messageCount } = await channel.checkQueue(queue);
  report('and handled confirms asynchronously', start, acked, nacked, messageCount);
  await channel.deleteQueue(queue);
  await channel.close();
}

async function main() {
  const connection = await amqp.connect(url);
  try {
    await publishMessagesIndividually(connection);
    await publishMessagesInBatch(connection);
    await handlePublishConfirmsAsynchronously(connection);
  } finally {
    await connection.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
