"""The cluster's settings: YAML `cluster:` keys and the serve command line."""

from __future__ import annotations

import pytest

from amqpbroker.cli import _serve_parser, build_settings
from amqpbroker.cluster.etcd import parse_endpoints
from amqpbroker.config import ConfigError, load_config


def test_yaml_cluster_keys(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    config = load_config(f"""
cluster:
  etcd: etcd://10.0.0.1:2379,10.0.0.2:2379
  node_name: n1
  replication_port: 5700
  advertise_host: 10.0.0.11
  secret_file: {secret}
  lease_ttl: 4
  lag_timeout: 2.5
""")
    s = config.settings
    assert (s.cluster, s.node_name, s.replication_port, s.cluster_advertise_host,
            s.cluster_secret, s.cluster_lease_ttl, s.cluster_lag_timeout) == (
        "etcd://10.0.0.1:2379,10.0.0.2:2379", "n1", 5700, "10.0.0.11", "s3cret", 4, 2.5)


def test_yaml_cluster_mistakes_are_reported_with_their_line():
    with pytest.raises(ConfigError) as info:
        load_config("cluster:\n  etcd: etcd://h:2379\n  lease_tll: 3\n  lease_ttl: 1\n")
    text = str(info.value)
    assert "unknown key 'lease_tll'" in text and "did you mean 'lease_ttl'" in text
    assert ":4:" in text  # lease_ttl below etcd's minimum of 2 s


def test_serve_flags(tmp_path, monkeypatch):
    import argparse

    parser = argparse.ArgumentParser()
    _serve_parser(parser.add_subparsers(dest="command"))
    monkeypatch.setenv("AMQPBROKER_CLUSTER_SECRET", "from-env")
    args = parser.parse_args(["serve", "--cluster", "etcd://a:2379", "--node-name", "n2",
                              "--replication-port", "6000", "--advertise-host", "b"])
    s = build_settings(args)
    assert (s.cluster, s.node_name, s.replication_port, s.cluster_advertise_host,
            s.cluster_secret) == ("etcd://a:2379", "n2", 6000, "b", "from-env")
    assert build_settings(parser.parse_args(["serve"])).cluster is None  # a single node


def test_etcd_endpoints():
    assert parse_endpoints("etcd://a:2379,b") == ["http://a:2379", "http://b:2379"]
    assert parse_endpoints("etcds://a:2379") == ["https://a:2379"]
    with pytest.raises(ValueError):
        parse_endpoints("etcd://")


def test_a_cluster_node_without_a_secret_refuses_to_start(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "AMQPBROKER_CLUSTER_SECRET"}
    out = subprocess.run([sys.executable, "-m", "amqpbroker", "serve", "--port", "0", "--prometheus-port", "0", "--mqtt-port", "0", "--mqtt-ws-port", "0",
                          "--data-dir", str(tmp_path), "--cluster", "etcd://127.0.0.1:9",
                          "--node-name", "n1"], capture_output=True, text=True, timeout=60,
                         env=env)
    assert out.returncode == 1
    assert "needs a shared secret" in out.stderr


def test_followers_forward_every_client_listener_but_the_metrics():
    """A follower forwards each client listener its settings open to the leader (TLS ones as
    bytes: the leader terminates TLS); the metrics listeners report each node's own figures."""
    from dataclasses import replace

    from amqpbroker.cluster.proxy import client_listeners
    from amqpbroker.settings import Settings, TLSOptions

    s = replace(Settings(), port=5672, mqtt_port=1883, mqtt_ws_port=15675,
                management_port=15672, prometheus_port=15692)
    assert sorted(client_listeners(s)) == ["amqp", "http", "mqtt", "mqtt_ws"]
    s = replace(s, tls=TLSOptions(certfile="c.pem", keyfile="k.pem"), tls_port=5671,
                mqtt_tls_port=8883, mqtt_wss_port=15676, management_tls_port=15671,
                prometheus_tls_port=15691)
    listeners = client_listeners(s)
    assert sorted(listeners) == ["amqp", "amqps", "http", "https", "mqtt", "mqtt_ws",
                                 "mqtt_wss", "mqtts"]
    assert (listeners["mqtts"][1], listeners["mqtt_wss"][1], listeners["https"][1]) == (
        8883, 15676, 15671)
