"""Every default of the broker in one place (the YAML config overrides these)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from amqpbroker.mqtt.options import MQTTSettings
from amqpbroker.tls import TLSOptions


def default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "amqpbroker")


PROMETHEUS_PORT = 15692


@dataclass
class Settings:
    # Listeners: RabbitMQ listens on every IPv4 and IPv6 address on 5672.
    host: str | list[str] | None = None
    port: int = 5672
    # MQTT (1883) and MQTT over WebSocket (15675, path /ws), on the same addresses as AMQP.
    # None = off; 0 = a free port. `serve` turns both on; the embedded Broker only if asked.
    mqtt_port: int | None = 1883
    mqtt_ws_port: int | None = 15675
    mqtt_ws_path: str = "/ws"
    mqtt: MQTTSettings = field(default_factory=MQTTSettings)
    # The management HTTP API (docs/management.md): RabbitMQ's port 15672; None = off
    # (`--management-port 0`). 0 here picks a free port (the embedded Broker's
    # `management=True`). No host: the AMQP listener's addresses.
    management_port: int | None = 15672
    management_host: str | list[str] | None = None
    # Message rates in the management API are sampled this often (seconds).
    management_rates_interval: float = 5.0
    # Prometheus metrics (docs/metrics.md): RabbitMQ's ports, 15692 and 15691 for HTTPS
    # (with the `tls` settings). None = off; 0 here picks a free port (the embedded
    # Broker's `prometheus=True`). `serve` turns 15692 on (PROMETHEUS_PORT) unless the
    # file or `--prometheus-port 0` says otherwise. No host: the AMQP listener's addresses.
    prometheus_port: int | None = None
    prometheus_tls_port: int | None = None
    prometheus_host: str | list[str] | None = None
    # None = in-memory mode (embedding): nothing is written anywhere.
    data_dir: str | None = field(default_factory=default_data_dir)
    # fsync before confirming persistent messages (group commit); False = --no-sync.
    sync: bool = True
    # Tune values offered to clients (RabbitMQ's defaults).
    channel_max: int = 2047
    frame_max: int = 131072
    heartbeat: int = 60
    # RabbitMQ 4.x's default max_message_size is 16 MiB (configurable up to 512 MiB).
    max_message_size: int = 16 * 1024 * 1024
    max_connections: int = 0  # 0 = unlimited
    # amqps listener (https://www.rabbitmq.com/docs/ssl): on when `tls` is set. The CLI
    # defaults its port to RabbitMQ's 5671; the embedded Broker to a free port (0).
    tls: TLSOptions | None = None
    tls_port: int | None = None
    tls_host: str | list[str] | None = None  # None: the same addresses as `host`
    # The other TLS listeners, with the same `tls` settings; each off (None) unless asked
    # (0 = a free port). RabbitMQ's ports: HTTPS management 15671 (management.ssl.port),
    # MQTT over TLS 8883 (mqtt.listeners.ssl), MQTT over secure WebSocket 15676
    # (web_mqtt.ssl.port). HTTPS management listens on the management listener's
    # addresses, the MQTT ones on the AMQP listener's.
    management_tls_port: int | None = None
    mqtt_tls_port: int | None = None
    mqtt_wss_port: int | None = None
    # SASL EXTERNAL (https://www.rabbitmq.com/docs/ssl#peer-verification): which part of a
    # verified client certificate names the user.
    ssl_cert_login_from: str = "distinguished_name"
    ssl_cert_login_san_type: str = "dns"
    ssl_cert_login_san_index: int = 0
    # Pre-authentication limits (RabbitMQ's handshake_timeout is 10 s): a connection that
    # has not sent connection.open by then is closed.
    handshake_timeout: float = 10.0
    # A refused login is answered after this delay (RabbitMQ waits about 3 s), so that
    # guessing passwords is slow; other connections are not held up.
    auth_failure_delay: float = 3.0
    # Nested field tables/arrays deeper than this are a 502 syntax error, checked before
    # decoding (the decoder recurses once per level).
    max_table_depth: int = 32
    # New connections accepted per second from one source address (0 = no limit); a burst
    # of `connection_rate_burst` is allowed.
    connection_rate_per_address: float = 0.0
    connection_rate_burst: int = 50
    # Input fairness: seconds one connection's large read may be handled in one event-loop
    # turn before the rest waits for the next (other connections run in between).
    input_turn: float = 0.002
    # Consumer timeout for unacked deliveries (RabbitMQ: 30 minutes).
    consumer_timeout_ms: int = 30 * 60 * 1000
    # guest/guest exists and, as in RabbitMQ, may only log in from loopback.
    default_user: str = "guest"
    default_password: str = "guest"
    loopback_users: tuple[str, ...] = ("guest",)
    default_vhost: str = "/"
    log_level: str = "info"
    log_format: str = "console"
    # Output buffered for a connection beyond which we stop delivering to its consumers
    # until the socket drains (slow-consumer protection).
    connection_write_high_water: int = 1024 * 1024
    # Bodies of stored messages kept in RAM before the store pages them out.
    store_memory_budget: int = 64 * 1024 * 1024
    shutdown_timeout: float = 5.0
    # Memory alarm: publishers are blocked while the broker's RSS is above this fraction of
    # the machine's RAM (or this many bytes, when > 1). RabbitMQ 4.x defaults to 0.6.
    memory_high_watermark: float = 0.6
    # Disk alarm: publishers are blocked while the data dir's file system has less free
    # space than this (RabbitMQ's disk_free_limit default is 50 MB).
    disk_free_limit: int = 50 * 1000 * 1000
    # High availability (issue 21, docs/clustering.md): etcd endpoints ("etcd://h1:2379,..."),
    # None = a single node, exactly as without clustering.
    cluster: str | None = None
    node_name: str | None = None
    replication_port: int = 5679  # LavinMQ's replication port
    cluster_secret: str | None = None  # shared by every member of the replication port
    cluster_name: str = "amqpbroker"  # etcd key prefix /amqpbroker/<name>/
    # Address other nodes use to reach this one's AMQP and replication listeners.
    cluster_advertise_host: str = field(default_factory=socket.gethostname)
    cluster_lease_ttl: int = 3  # seconds; the leader's etcd lease (failover takes ~ this)
    cluster_lag_timeout: float = 3.0  # an ISR follower silent this long leaves the ISR
