"""MQTT listener settings: CLI flags, the YAML `listeners:` entries and `mqtt:` section,
and the embedded Broker (no MQTT listener unless asked)."""

from __future__ import annotations

import asyncio

import pytest

import argparse

from amqpbroker.cli import _serve_parser, build_settings
from amqpbroker.config import ConfigError, load_config
from amqpbroker.embed import Broker
from amqpbroker.mqtt.codec import encode_packet
from amqpbroker.mqtt.packets import Connect


def _serve_args(*argv: str):
    parser = argparse.ArgumentParser()
    _serve_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["serve", *argv])


def test_serve_defaults_and_flags():
    s = build_settings(_serve_args())
    assert (s.mqtt_port, s.mqtt_ws_port, s.mqtt_ws_path) == (1883, 15675, "/ws")
    s = build_settings(_serve_args("--mqtt-port", "0", "--mqtt-ws-port", "18675"))
    assert (s.mqtt_port, s.mqtt_ws_port) == (None, 18675)


def test_yaml_listeners_and_mqtt_section():
    c = load_config("""
listeners:
  - port: 5673
  - protocol: mqtt
    port: 11883
  - protocol: web-mqtt
    port: 0
mqtt:
  exchange: iot
  vhost: devices
  allow_anonymous: true
  prefetch: 50
  max_packet_size_authenticated: 1MiB
""")
    v = c.setting_values
    assert (v["port"], v["mqtt_port"], v["mqtt_ws_port"]) == (5673, 11883, None)
    m = v["mqtt"]
    assert (m.exchange, m.vhost, m.allow_anonymous, m.prefetch, m.max_packet_size) == (
        "iot", "devices", True, 50, 1024 * 1024)


@pytest.mark.parametrize("text,problem", [
    ("listeners:\n  - protocol: stomp\n", "must be one of"),
    ("listeners:\n  - protocol: mqtt\n    path: /x\n", "only a web-mqtt listener has a path"),
    ("mqtt:\n  prefetch: 0\n", "prefetch"),
    ("mqtt:\n  colour: blue\n", "unknown key 'colour'"),
])
def test_yaml_errors(text, problem):
    with pytest.raises(ConfigError) as info:
        load_config(text)
    assert problem in str(info.value)


async def test_embedded_broker_has_no_mqtt_listener_unless_asked():
    async with Broker() as b:
        assert b.mqtt_port is None and b.mqtt_ws_port is None
    async with Broker(mqtt_port=0, mqtt_ws_port=0) as b:
        assert b.mqtt_port and b.mqtt_ws_port
        reader, writer = await asyncio.open_connection("127.0.0.1", b.mqtt_port)
        # a 3.1.1 CONNECT with a bad password: CONNACK return code 4, then closed
        writer.write(encode_packet(Connect(client_id="x", username="guest", password=b"no")))
        assert await asyncio.wait_for(reader.read(), 10) == b"\x20\x02\x00\x04"
        writer.close()
        await writer.wait_closed()
