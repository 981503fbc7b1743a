#!/usr/bin/env node
// amqps with amqplib: a round trip over TLS, with PLAIN or, when TLS_EXTERNAL=1, with the
// client certificate (SASL EXTERNAL). Run by tests/security/test_tls_e2e.py.
// Env: AMQP_URL (amqps://...), TLS_CA, TLS_CERT, TLS_KEY (PEM paths), TLS_EXTERNAL.
const fs = require('fs');
const amqp = require('amqplib');

setTimeout(() => { console.error('timed out'); process.exit(3); }, 30000).unref();

async function main() {
  const opts = { ca: [fs.readFileSync(process.env.TLS_CA)], servername: 'localhost' };
  if (process.env.TLS_CERT) {
    opts.cert = fs.readFileSync(process.env.TLS_CERT);
    opts.key = fs.readFileSync(process.env.TLS_KEY);
  }
  if (process.env.TLS_EXTERNAL === '1') opts.credentials = amqp.credentials.external();
  const conn = await amqp.connect(process.env.AMQP_URL, opts);
  const ch = await conn.createChannel();
  const { queue } = await ch.assertQueue('', { exclusive: true });
  ch.sendToQueue(queue, Buffer.from('over tls'));
  let msg = false;
  for (let i = 0; i < 50 && !msg; i++) {
    msg = await ch.get(queue, { noAck: true });
    if (!msg) await new Promise((r) => setTimeout(r, 50));
  }
  console.log(msg ? `got: ${msg.content.toString()}` : 'nothing');
  await conn.close();
}

main().catch((err) => { console.error(`error: ${err.message}`); process.exit(1); });
