"""What the MQTT session needs from the broker core, and nothing more.

The session is a translator: MQTT packets in, these operations out; the core's events
(deliveries, "your publish is safe") in, MQTT packets out. Routing, permissions, queues,
flow control, the group commit that makes a publish safe and every durable change belong
to the core (`amqpbroker/broker/`); `mqtt/core_port.py` binds this interface to it. Tests
drive the session through an in-memory twin (`tests/mqtt/fake_core.py`).

Messages cross this boundary as AMQP 0-9-1 basic properties by name (`content_type`,
`correlation_id`, `reply_to`, `expiration`, `headers`, ...), which is how RabbitMQ's MQTT
plugin presents an MQTT message to AMQP consumers (see `convert.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol


class Refused(Exception):
    """The core refused an operation: `kind` is "login", "vhost", "access" or "not_found"."""

    def __init__(self, kind: str, text: str) -> None:
        super().__init__(text)
        self.kind = kind
        self.text = text


@dataclass
class Delivery:
    """One message the core hands to a consumer; `settle(ack)` gives the answer back."""

    routing_key: str
    body: bytes
    properties: dict[str, Any]
    redelivered: bool
    settle: Callable[[bool], None]  # True = ack, False = reject without requeue
    exchange: str = ""


@dataclass
class OutgoingMessage:
    exchange: str
    routing_key: str
    body: bytes
    persistent: bool
    properties: dict[str, Any] = field(default_factory=dict)


class VhostPort(Protocol):
    """One authenticated user's view of one virtual host (a core session)."""

    name: str

    def check(self, permission: str, resource: str, name: str,
              routing_key: str | None = None) -> None:
        """configure/write/read on a queue or exchange; with `routing_key`, the topic
        permission too (https://www.rabbitmq.com/docs/access-control#topic-authorisation).
        Raises Refused("access")."""

    def declare_queue(self, name: str, *, durable: bool, auto_delete: bool,
                      arguments: dict[str, Any]) -> bool:
        """Declare (or find) a queue; True if it existed before."""

    def queue_exists(self, name: str) -> bool: ...

    def delete_queue(self, name: str) -> None:
        """Delete a queue if it exists."""

    def bind(self, queue: str, exchange: str, key: str, arguments: dict[str, Any]) -> None: ...

    def unbind(self, queue: str, exchange: str, key: str, arguments: dict[str, Any]) -> None: ...

    def bindings(self, queue: str) -> list[tuple[str, str, dict[str, Any]]]:
        """(exchange, binding key, arguments) of a queue: a persistent session's
        subscriptions."""

    def publish(self, msg: OutgoingMessage, on_safe: Callable[[bool], None]) -> None:
        """Route and enqueue; `on_safe(True)` once routed (and fsynced if it reached a
        durable queue) — the core's publisher confirm; `on_safe(False)` if refused."""

    def consume(self, queue: str, prefetch: int, on_delivery: Callable[[Delivery], None],
                no_ack: bool = False) -> Any:
        """Start a consumer with `prefetch` unsettled deliveries at most (no limit and
        settled at once with `no_ack`); returns a handle."""

    def cancel(self, handle: Any) -> None: ...

    def close(self) -> None:
        """The connection ended: unsettled deliveries go back to their queues."""

    def set_client_id(self, client_id: str) -> None:
        """The MQTT client id, for `{client_id}` in topic permission patterns."""

    def set_protocol(self, label: str) -> None:
        """The client's MQTT version as a metrics label (mqtt310, mqtt311, mqtt50)."""

    def after_read(self) -> None:
        """A read was processed (the core blocks a publisher during a resource alarm)."""

    def resume(self) -> None:
        """Our output drained: deliveries skipped while it was full resume."""

    def store_retained(self, topic: str, retained: Any) -> None:
        """Make a retained message (or its removal, None) durable."""

    def load_retained(self) -> list[Any]:
        """The vhost's durable retained messages (after a restart)."""

    # Set by the session: the core's events for this connection.
    on_reading: Callable[[bool], None]      # pause (True) / resume reading (flow control)
    on_force_close: Callable[[str], None]   # the broker closes the connection
    write_blocked: Callable[[], bool]       # our output is over its high-water mark


class CorePort(Protocol):
    def authenticate(self, username: str, password: str, loopback: bool) -> Any:
        """A user, or Refused("login")."""

    def certificate_login(self, username: str, loopback: bool) -> Any:
        """The user a verified client certificate names (no password), or Refused("login")."""

    def open(self, user: Any, vhost: str) -> VhostPort:
        """Refused("vhost") when the vhost does not exist or the user may not use it."""

    def vhost_exists(self, name: str) -> bool: ...
