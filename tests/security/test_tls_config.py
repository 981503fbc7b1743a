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
    assert "an amqps listener needs the `tls` section" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_config(f"tls: {{certfile: {tmp_path}/none.pem}}\n")
    assert "not found" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_config(yaml_for(certs, "  - {protocol: amqps}", "ssl_cert_login_from: cn"))
    assert "ssl_cert_login_from: must be one of" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_config(yaml_for(certs, "  - {protocol: mqtt}"))
    assert "protocol: must be one of: amqp, amqps" in str(e.value)


async def test_embedded_broker_with_yaml_amqps_only(certs):
    import ssl

    text = yaml_for(certs, "  - {protocol: amqps, port: 0}")
    async with Broker(config=text) as broker:
        assert broker.server.port == 0  # no plain listener
        ctx = ssl.create_default_context(cafile=certs.ca)
        conn = await aio_pika.connect(broker.amqps_url, ssl_context=ctx)
        await conn.close()
