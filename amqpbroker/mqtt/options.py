"""Options of the MQTT translator, with RabbitMQ's `mqtt.*` key each one mirrors
(https://www.rabbitmq.com/docs/mqtt#config). YAML: the `mqtt:` section (docs/mqtt.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class MQTTSettings:
    """Options of the MQTT translator (RabbitMQ's `mqtt.*` keys where one exists)."""

    exchange: str = "amq.topic"                  # mqtt.exchange
    vhost: str = "/"                              # mqtt.vhost (the default vhost)
    allow_anonymous: bool = False                 # mqtt.allow_anonymous (off unless configured)
    default_user: str = "guest"                   # mqtt.default_user, for anonymous clients
    default_password: str = "guest"               # mqtt.default_pass
    prefetch: int = 10                            # mqtt.prefetch
    max_session_expiry: int = 86400               # mqtt.max_session_expiry_interval_seconds
    max_packet_size: int = 16 * 1024 * 1024       # mqtt.max_packet_size_authenticated
    max_packet_size_unauthenticated: int = 65536  # mqtt.max_packet_size_unauthenticated
    topic_alias_maximum: int = 16                 # mqtt.topic_alias_maximum
    # mqtt.ssl_cert_login: over TLS, a client that sends no user name and password logs in
    # as the user its verified certificate names (ssl_cert_login_from), without a password
    ssl_cert_login: bool = False
    receive_maximum: int = 65535                  # QoS 1/2 PUBLISHes a client may have unacked
