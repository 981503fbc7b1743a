"""A published message as the broker keeps it.

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
