"""A published message as the broker keeps it: protocol-neutral, below model and store.

Every protocol builds one (`Message(...)` from AMQP's raw content header, `Message.create`
from plain values for MQTT, shovels, the management API's publish) and every ring uses it:
the model queues it, the store writes it, sessions deliver it. The representation of its
properties is AMQP 0-9-1's property list bytes, kept as an optimisation behind accessors:
an AMQP delivery forwards them untouched, other protocols read `headers`, `get_property()` or
`decoded_properties()`.

The content header's property bytes are kept exactly as the publisher sent them and are
forwarded unparsed on delivery (issue 7: decoding and re-encoding properties per message is
what makes a naive broker slow). Only the few properties that routing and queue features need
are read out at publish time (delivery_mode, priority, expiration); headers are decoded
lazily, only when a headers exchange or a queue feature asks for them.
"""

from __future__ import annotations

from typing import Any


class Message:
    __slots__ = (
        "exchange",
        "routing_key",
        "properties",
        "body",
        "body_size",
        "persistent",
        "priority",
        "expiration",
        "store_id",
        "enqueued_ms",
        "_headers",
    )

    def __init__(
        self,
        exchange: str,
        routing_key: str,
        properties: bytes,
        body: bytes | None,
        body_size: int,
        persistent: bool = False,
        priority: int = 0,
        expiration: str | None = None,
    ) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        # Raw property flags + property list, i.e. the content header payload after its
        # 12-byte class-id/weight/body-size prefix (spec 4.2.6.1).
        self.properties = properties
        # None once the store has paged the body out to disk (see store.base).
        self.body = body
        self.body_size = body_size
        self.persistent = persistent
        self.priority = priority
        self.expiration = expiration
        # Assigned by a MessageStore when the message is first written; 0 = not stored.
        self.store_id = 0
        # Wall-clock enqueue time (ms) of a message recovered from the store, so that TTL
        # deadlines survive a restart; 0 for a message published in this run.
        self.enqueued_ms = 0
        self._headers: dict[str, Any] | None | bool = False  # False = not decoded yet

    @classmethod
    def create(cls, exchange: str, routing_key: str, body: bytes, *,
               persistent: bool = False, priority: int = 0, expiration: str | None = None,
               headers: dict[str, Any] | None = None, **properties: Any) -> "Message":
        """A message from plain values (a protocol other than AMQP 0-9-1, or a tool).

        `properties` are AMQP basic properties by their pamqp names (content_type,
        correlation_id, reply_to, message_id, timestamp, user_id, app_id, ...)."""
        from amqpbroker.protocol.properties import encode_properties
        from pamqp.commands import Basic

        props = Basic.Properties(
            delivery_mode=2 if persistent else None, priority=priority or None,
            expiration=expiration, headers=headers, **properties)
        return cls(exchange, routing_key, encode_properties(props) or b"\x00\x00", body,
                   len(body), persistent, priority, expiration)

    def decoded_properties(self) -> Any:
        """Every property, decoded (a pamqp `Basic.Properties`): not for the hot path."""
        from amqpbroker.protocol.properties import decode_properties

        return decode_properties(self.properties)

    def get_property(self, name: str) -> Any:
        """One property by its pamqp name (content_type, reply_to, ...), or None."""
        if name == "headers":
            return self.headers
        return getattr(self.decoded_properties(), name, None)

    @property
    def headers(self) -> dict[str, Any] | None:
        """The message's `headers` table, decoded on first use."""
        if self._headers is False:
            from amqpbroker.protocol.properties import decode_properties

            self._headers = decode_properties(self.properties).headers
        return self._headers  # type: ignore[return-value]

    def __repr__(self) -> str:
        return (
            f"Message(exchange={self.exchange!r}, routing_key={self.routing_key!r}, "
            f"size={self.body_size}, persistent={self.persistent})"
        )
