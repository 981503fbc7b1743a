const amqp = require('amqplib');
const url = process.env.AMQP_URL;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
(async () => {
  const con = await amqp.connect(url);
  const pub = await amqp.connect(url);
  con.on('error', (e) => console.log('consumer conn error', e.message));
  pub.on('error', (e) => console.log('publisher conn error', e.message));
  const q = 'probe.close.' + Date.now();
  const cch = await con.createChannel();
  await cch.assertQueue(q, { autoDelete: true, durable: false });
  let n = 0;
  await cch.consume(q, (m) => { n++; }, { noAck: true });
  const pch = await pub.createChannel();
  const body = Buffer.alloc(32 * 1024, 1);
  for (let i = 0; i < Number(process.env.N || 1500); i++) {
    if (!pch.publish('', q, body)) await new Promise((r) => pch.once('drain', r));
  }
  console.log('published; received so far', n);
  await pub.close();
  console.log('publisher closed; received so far', n);
  const t = Date.now();
  const r = await Promise.race([con.close().then(() => 'closed'), sleep(20000).then(() => 'TIMEOUT')]);
  console.log(r, Date.now() - t, 'ms; received', n);
  process.exit(0);
})();
