// MQTT.js over WebSocket, as a browser would use it: subscribe, publish, receive.
// Usage: node mqtt_ws_check.js ws://host:port/ws 4|5   (run by interop/test_mqtt_tools.py)
const mqtt = require('mqtt');
const url = process.argv[2];
const opts = {username: 'guest', password: 'guest', protocolVersion: Number(process.argv[3]),
              clientId: 'mqttjs-' + process.argv[3], wsOptions: {}};
const client = mqtt.connect(url, opts);
const timer = setTimeout(() => { console.error('timeout'); process.exit(2); }, 10000);
client.on('error', (e) => { console.error(e.message); process.exit(1); });
client.on('connect', () => {
  client.subscribe('browser/+/events', {qos: 1}, (err) => {
    if (err) { console.error(err.message); process.exit(1); }
    client.publish('browser/1/events', 'from mqtt.js', {qos: 1,
      properties: opts.protocolVersion === 5 ? {userProperties: {origin: 'node'}} : undefined});
  });
});
client.on('message', (topic, payload, packet) => {
  const props = packet.properties || {};
  console.log(JSON.stringify({topic, payload: payload.toString(), qos: packet.qos,
                              user: props.userProperties || null}));
  clearTimeout(timer);
  client.end(false, () => process.exit(0));
});
