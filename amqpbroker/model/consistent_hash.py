"""The consistent-hash exchange (`x-consistent-hash`), as RabbitMQ's
rabbitmq_consistent_hash_exchange plugin documents it
(https://github.com/rabbitmq/rabbitmq-server/tree/main/deps/rabbitmq_consistent_hash_exchange).

* The binding key is a weight, a positive integer written as a string: a queue bound with
  "2" gets about twice the messages of one bound with "1".
* Each binding owns `weight` consecutive buckets, in binding order; a message goes to the
  owner of bucket `jump_hash(hash(value), total buckets)` (Lamping & Veach's jump
  consistent hash, the algorithm the plugin uses since 3.8). Adding a binding appends
  buckets, so only about weight/total of the keys move, all of them to the new queue.
  Removing one closes the gap by shifting later buckets down, as the plugin does.
* The value hashed is the routing key, or the header named by the exchange argument
  `hash-header`, or one of the properties `correlation_id`, `message_id`, `timestamp`
  named by `hash-property` (the two arguments are mutually exclusive). A message without
  that header or property hashes like every other such message (to one bucket).

The hash of a value is not Erlang's `phash2`, so which queue a given key lands on differs
from RabbitMQ's (docs/compatibility.md); the distribution and stability are the same.
"""

from __future__ import annotations

import datetime
from collections.abc import Hashable, Mapping
from hashlib import blake2b
from typing import Any

from amqpbroker.model.exchange_base import _EMPTY, BindingKey, Exchange

# hash-property values the plugin accepts (rabbit_exchange_type_consistent_hash:validate/1).
HASH_PROPERTIES = ("correlation_id", "message_id", "timestamp")

_M64 = (1 << 64) - 1


def jump_hash(key: int, buckets: int) -> int:
    """Bucket in [0, buckets) for a 64-bit key (Lamping & Veach 2014, arXiv:1406.2294)."""
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & _M64
        j = int((b + 1) * (2147483648.0 / ((key >> 33) + 1)))
    return b


def key_of(value: Any) -> int:
    """A stable 64-bit hash of a routing key, header or property value."""
    if isinstance(value, str):
        data = value.encode("utf-8")
    elif isinstance(value, (bytes, bytearray)):
        data = bytes(value)
    elif value is None:
        data = b""
    elif isinstance(value, datetime.datetime):  # the timestamp property, hashed as seconds
        data = str(int(value.replace(tzinfo=value.tzinfo or datetime.timezone.utc)
                       .timestamp())).encode()
    else:
        data = repr(value).encode("utf-8")
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "little")


class ConsistentHashExchange(Exchange):
    type = "x-consistent-hash"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        header = self.arguments.get("hash-header")
        prop = self.arguments.get("hash-property")
        self._header = _text(header) if header is not None else None
        self._property = _text(prop) if prop is not None else None
        # Headers are decoded only when hashing on one; properties need the message.
        self.needs_headers = self._header is not None or self._property is not None
        self.needs_message = self._property is not None
        self._weights: dict[BindingKey, int] = {}  # insertion order = bucket order
        self._buckets: list[Hashable] = []  # bucket number -> destination

    @classmethod
    def validate_arguments(cls, arguments: Mapping[str, Any]) -> None:
        header = arguments.get("hash-header")
        prop = arguments.get("hash-property")
        if header is not None and prop is not None:
            raise ValueError("hash-header and hash-property are mutually exclusive")
        if prop is not None and _text(prop) not in HASH_PROPERTIES:
            raise ValueError(f"Unsupported property: {_text(prop)}")
        if header is not None and not isinstance(header, (str, bytes)):
            raise ValueError(f"hash-header must be a string, not {type(header).__name__}")

    def validate_destination(self, dest: Hashable, routing_key: str) -> None:
        weight_of(routing_key)

    @property
    def bucket_count(self) -> int:
        return len(self._buckets)

    def route(self, routing_key: str, headers: Any = None) -> tuple:
        buckets = self._buckets
        if not buckets:
            return _EMPTY
        if self._property is not None:
            value = _property_of(headers, self._property)
        elif self._header is not None:
            value = headers.get(self._header) if headers else None
        else:
            value = routing_key
        n = len(buckets)
        return (buckets[jump_hash(key_of(value), n) if n > 1 else 0],)

    def _add_route(self, key: BindingKey, args: dict[str, Any]) -> None:
        weight = weight_of(key[1])
        self._weights[key] = weight
        self._buckets.extend([key[0]] * weight)

    def _remove_route(self, key: BindingKey, args: dict[str, Any]) -> None:
        del self._weights[key]
        self._buckets = [dest for (dest, _, _), w in self._weights.items() for _ in range(w)]


def weight_of(routing_key: str) -> int:
    """The binding key as a weight, with the plugin's errors (validate_binding/2)."""
    try:
        weight = int(routing_key.strip(), 10)
    except ValueError:
        raise ValueError(f'The binding key must be an integer: <<"{routing_key}">>') from None
    if weight < 1:
        raise ValueError("The binding key must be greater than 0")
    return weight


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value)


def _property_of(msg: Any, name: str) -> Any:
    if msg is None:
        return None
    from amqpbroker.protocol.properties import decode_properties

    try:
        props = decode_properties(msg.properties)
    except ValueError:
        return None
    return getattr(props, name, None)
