"""Every default of the broker in one place (the YAML config overrides these)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field


def default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "amqpbroker")


@dataclass
class Settings:
    # Listeners: RabbitMQ listens on every IPv4 and IPv6 address on 5672.
    host: str | list[str] | None = None
    port: int = 5672
    # None = in-memory mode (embedding): nothing is written anywhere.
    data_dir: str | None = field(default_factory=default_data_dir)
    # fsync before confirming persistent messages (group commit); False = --no-sync.
    sync: bool = True
    # Tune values offered to clients (RabbitMQ's defaults).
    channel_max: int = 2047
    frame_max: int = 131072
    heartbeat: int = 60
    # RabbitMQ 4.x's default max_message_size is 16 MiB; the issue asks for 128 MiB.
    max_message_size: int = 128 * 1024 * 1024
    max_connections: int = 0  # 0 = unlimited
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
