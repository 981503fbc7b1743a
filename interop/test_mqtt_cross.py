"""Cross-protocol: an AMQP publish to amq.topic with routing key `sensors.1.temp` reaches an
MQTT subscriber of `sensors/+/temp`, and the reverse, with payload and headers preserved
(aio-pika and Node's amqplib on the AMQP side, paho-mqtt 3.1.1/5 on the MQTT side)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import aio_pika
import pytest

from .harness import require_node
from .mqtt_clients import collect_garbage, V5, V311, Paho, mqtt_broker, props

pytestmark = pytest.mark.interop


@pytest.fixture(autouse=True)
def _no_leaked_sockets():
    yield
    collect_garbage()
NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture(scope="module")
def broker():
    with mqtt_broker() as b:
        yield b


async def test_amqp_publish_reaches_mqtt_subscriber_with_headers(broker):
    sub = Paho(broker.mqtt_port, "x-sub", V5)
    sub.subscribe("sensors/+/temp", 1)
    old = Paho(broker.mqtt_port, "x-sub-311", V311)
    old.subscribe("sensors/+/temp", 0)
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        ex = await ch.get_exchange("amq.topic")
        await ex.publish(aio_pika.Message(
            b"21.5", headers={"unit": "C", "site": "lyon"}, content_type="text/plain",
            correlation_id="corr-7", reply_to="replies.sensor",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key="sensors.1.temp")
    m = sub.get()
    assert (m.topic, m.payload, m.qos) == ("sensors/1/temp", b"21.5", 1)
    p = m.properties
    assert ("unit", "C") in p.UserProperty and ("site", "lyon") in p.UserProperty
    assert p.ContentType == "text/plain"
    assert p.CorrelationData == b"corr-7"
    assert p.ResponseTopic == "replies/sensor"
    m311 = old.get()
    assert (m311.topic, m311.payload, m311.qos) == ("sensors/1/temp", b"21.5", 0)
    sub.disconnect()
    old.disconnect()


async def test_mqtt_publish_reaches_amqp_consumer_with_headers(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue("", exclusive=True)
        await q.bind("amq.topic", "sensors.*.temp")
        pub = Paho(broker.mqtt_port, "x-pub", V5)
        pub.publish("sensors/2/temp", b"19.0", 1, properties=props(
            UserProperty=[("unit", "C")], ContentType="text/plain",
            CorrelationData=b"c-1", ResponseTopic="replies/x"))
        pub.disconnect()
        m = await q.get(timeout=10)
        assert (m.routing_key, m.body) == ("sensors.2.temp", b"19.0")
        assert m.headers["unit"] == "C"
        assert m.content_type == "text/plain"
        assert m.correlation_id == "c-1"
        assert m.reply_to == "replies.x"
        assert m.delivery_mode == aio_pika.DeliveryMode.PERSISTENT  # QoS 1
        pub0 = Paho(broker.mqtt_port, "x-pub0", V311)
        pub0.publish("sensors/3/temp", b"0", 0)
        pub0.disconnect()
        m0 = await q.get(timeout=10)
        assert m0.routing_key == "sensors.3.temp" and m0.delivery_mode != aio_pika.DeliveryMode.PERSISTENT


def _node(*args: str, url: str, **kw):
    require_node()
    return subprocess.Popen(["node", "mqtt_cross.js", *args], cwd=NODE_DIR,
                            env={**os.environ, "AMQP_URL": url}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_amqplib_publish_reaches_mqtt(broker):
    sub = Paho(broker.mqtt_port, "node-x-sub", V5)
    sub.subscribe("sensors/+/temp", 1)
    proc = _node("publish", "sensors.9.temp", "from node", url=broker.url)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    m = sub.get()
    assert (m.topic, m.payload) == ("sensors/9/temp", b"from node")
    assert ("origin", "amqplib") in m.properties.UserProperty
    assert m.properties.CorrelationData == b"c-42"
    sub.disconnect()


def test_mqtt_publish_reaches_amqplib(broker):
    proc = _node("consume", "sensors.*.temp", url=broker.url)
    try:
        assert proc.stdout.readline().strip() == "READY", proc.stderr.read()
        pub = Paho(broker.mqtt_port, "node-x-pub", V5)
        pub.publish("sensors/4/temp", b"to node", 1, properties=props(UserProperty=[("k", "v")]))
        pub.disconnect()
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    got = json.loads(out.strip().splitlines()[-1])
    assert (got["routingKey"], got["body"]) == ("sensors.4.temp", "to node")
    assert got["headers"]["k"] == "v" and got["deliveryMode"] == 2
