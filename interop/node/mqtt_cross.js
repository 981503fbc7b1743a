// amqplib side of the MQTT cross-protocol tests (interop/test_mqtt_cross.py).
//   node mqtt_cross.js publish <routing key> <body>   publish to amq.topic with headers
//   node mqtt_cross.js consume <binding key>          print READY, then the first message
const amqp = require('amqplib');

const url = process.env.AMQP_URL;
setTimeout(() => { console.error('timeout'); process.exit(2); }, 20000).unref();

async function main() {
  const [mode, key, body] = process.argv.slice(2);
  const conn = await amqp.connect(url);
  const ch = await conn.createChannel();
  if (mode === 'publish') {
    await ch.close();
    const cch = await conn.createConfirmChannel();
    cch.publish('amq.topic', key, Buffer.from(body),
      { headers: { origin: 'amqplib', count: '3' }, contentType: 'text/plain',
        correlationId: 'c-42', replyTo: 'replies.node' });
    await cch.waitForConfirms();
  } else {
    const { queue } = await ch.assertQueue('', { exclusive: true });
    await ch.bindQueue(queue, 'amq.topic', key);
    console.log('READY');
    await new Promise((resolve) => {
      ch.consume(queue, (msg) => {
        console.log(JSON.stringify({ routingKey: msg.fields.routingKey,
          body: msg.content.toString(), headers: msg.properties.headers,
          contentType: msg.properties.contentType, correlationId: msg.properties.correlationId,
          replyTo: msg.properties.replyTo, deliveryMode: msg.properties.deliveryMode }));
        resolve();
      }, { noAck: true });
    });
  }
  await conn.close();
}
main().catch((err) => { console.error(err.message); process.exit(1); });
