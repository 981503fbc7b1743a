"""The amqps listener and `tls:` in the YAML file."""

from __future__ import annotations

import aio_pika
import pytest

from amqpbroker.config import ConfigError, load_config
from amqpbroker.embed import Broker


def yaml_for(certs, listeners: str, extra: str = "") -> str:
    return f"""
listeners:
{listeners}
tls:
  certfile: {certs.server_cert}
  keyfile: {certs.server_key}
  cacertfile: {certs.ca}
  verify: verify_peer
  fail_if_no_peer_cert: false
{extra}"""


def test_amqps_listener_from_yaml(certs):
    s = load_config(yaml_for(certs, "  - port: 5672\n  - {protocol: amqps, port: 5671}")).settings
    assert (s.port, s.tls_port) == (5672, 5671)
    assert s.tls.verify == "verify_peer" and s.tls.cafile == certs.ca
    s = load_config(yaml_for(certs, "  - {protocol: amqps}",
                             "ssl_cert_login_from: common_name")).settings
    assert (s.port, s.tls_port, s.ssl_cert_login_from) == (None, 5671, "common_name")


def test_tls_problems_are_reported(certs, tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config("listeners: [{protocol: amqps, port: 5671}]\n")
    assert "a TLS listener (amqps, management-tls, mqtts, web-mqtts) needs the `tls` " \
        "section" in str(e.value)
    for protocol in ("management-tls", "mqtts", "web-mqtts"):
        with pytest.raises(ConfigError) as e:
            load_config(f"listeners: [{{protocol: {protocol}}}]\n")
        assert "needs the `tls` section" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_config(f"tls: {{certfile: {tmp_path}/none.pem}}\n")
    assert "not found" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_config(yaml_for(certs, "  - {protocol: amqps}", "ssl_cert_login_from: cn"))
    assert "ssl_cert_login_from: must be one of" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_config(yaml_for(certs, "  - {protocol: stomp}"))
    assert ("protocol: must be one of: amqp, amqps, management, management-tls, mqtt, "
            "mqtts, web-mqtt, web-mqtts") in str(e.value)


def test_tls_listeners_from_yaml_with_rabbitmq_default_ports(certs):
    listeners = ("  - {protocol: amqp}\n  - {protocol: management-tls}\n"
                 "  - {protocol: mqtts}\n  - {protocol: web-mqtts, path: /mqtt}")
    s = load_config(yaml_for(certs, listeners)).settings
    assert (s.management_tls_port, s.mqtt_tls_port, s.mqtt_wss_port) == (15671, 8883, 15676)
    assert (s.mqtt_port, s.mqtt_ws_port, s.mqtt_ws_path) == (None, None, "/mqtt")
    s = load_config(yaml_for(certs, "  - {protocol: mqtts, port: 0}")).settings
    assert s.mqtt_tls_port is None  # port 0 turns it off, as for mqtt
    s = load_config(yaml_for(certs, "  - {protocol: amqp}", "mqtt: {ssl_cert_login: true}"))
    assert s.settings.mqtt.ssl_cert_login is True


def test_cli_tls_listener_flags(certs):
    import argparse

    from amqpbroker.cli import _serve_parser, build_settings

    parser = argparse.ArgumentParser()
    _serve_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", "--tls-cert", certs.server_cert, "--tls-key",
                              certs.server_key, "--management-tls-port", "15671",
                              "--mqtts-port", "8883", "--mqtt-wss-port", "15676"])
    s = build_settings(args)
    assert (s.management_tls_port, s.mqtt_tls_port, s.mqtt_wss_port) == (15671, 8883, 15676)
    s = build_settings(parser.parse_args(["serve"]))
    assert (s.management_tls_port, s.mqtt_tls_port, s.mqtt_wss_port) == (None, None, None)
    with pytest.raises(SystemExit):
        build_settings(parser.parse_args(["serve", "--mqtts-port", "8883"]))


async def test_embedded_broker_with_yaml_amqps_only(certs):
    import ssl

    text = yaml_for(certs, "  - {protocol: amqps, port: 0}")
    async with Broker(config=text) as broker:
        assert broker.server.port == 0  # no plain listener
        ctx = ssl.create_default_context(cafile=certs.ca)
        conn = await aio_pika.connect(broker.amqps_url, ssl_context=ctx)
        await conn.close()
