"""Exchange types: direct, fanout, topic and headers.

An exchange here is just a binding table plus a ``route`` function; it does no
IO and knows nothing of queues. Destinations are opaque hashable objects (the
vhost passes queue and exchange objects). The default exchange and
exchange-to-exchange recursion belong to the vhost. The base class is in
`exchange_base.py`, the headers exchange in `headers_exchange.py`.

References:
  * AMQP 0-9-1 spec 3.1.3 (exchange types) and the ``exchange.declare`` /
    ``queue.bind`` rules in amqp0-9-1.xml.
  * https://www.rabbitmq.com/docs/exchanges (headers exchange and x-match).
  * RabbitMQ's rabbit_exchange.erl and rabbit_exchange_type_headers.erl for the
    behaviour the docs leave open (which arguments a redeclare compares, exact
    error texts, void values).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from amqpbroker.model.exchange_base import (
    EQUIVALENCE_ARGUMENTS,
    BindingKey,
    Exchange,
    _decr,
    _EMPTY,
    _incr,
)
from amqpbroker.model.consistent_hash import ConsistentHashExchange
from amqpbroker.model.headers_exchange import X_MATCH_MODES, HeadersExchange, values_equal
from amqpbroker.model.local_random import LocalRandomExchange
from amqpbroker.model.topic import TopicMatcher

__all__ = [
    "ConsistentHashExchange",
    "LocalRandomExchange",
    "EQUIVALENCE_ARGUMENTS",
    "EXCHANGE_TYPES",
    "X_MATCH_MODES",
    "DirectExchange",
    "Exchange",
    "FanoutExchange",
    "HeadersExchange",
    "TopicExchange",
    "values_equal",
]


class DirectExchange(Exchange):
    """Routes to bindings whose key equals the routing key (AMQP 3.1.3.1)."""

    type = "direct"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Bindings that differ only in arguments share a destination, so
        # count them and route to the destination while any remains.
        self._counts: dict[str, dict[Hashable, int]] = {}
        # Precomputed answers: route() is a single dict lookup.
        self._routes: dict[str, tuple] = {}

    def route(self, routing_key: str, headers: Mapping[str, Any] | None = None) -> tuple:
        return self._routes.get(routing_key, _EMPTY)

    def _add_route(self, key: BindingKey, args: dict[str, Any]) -> None:
        dest, routing_key, _ = key
        counts = self._counts.setdefault(routing_key, {})
        if _incr(counts, dest):
            self._routes[routing_key] = tuple(counts)

    def _remove_route(self, key: BindingKey, args: dict[str, Any]) -> None:
        dest, routing_key, _ = key
        counts = self._counts[routing_key]
        if not _decr(counts, dest):
            return
        if counts:
            self._routes[routing_key] = tuple(counts)
        else:
            del self._counts[routing_key]
            del self._routes[routing_key]


# --------------------------------------------------------------------- fanout


class FanoutExchange(Exchange):
    """Routes to every bound destination, ignoring the key (AMQP 3.1.3.2)."""

    type = "fanout"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._counts: dict[Hashable, int] = {}
        self._routes: tuple = _EMPTY

    def route(self, routing_key: str, headers: Mapping[str, Any] | None = None) -> tuple:
        return self._routes

    def _add_route(self, key: BindingKey, args: dict[str, Any]) -> None:
        if _incr(self._counts, key[0]):
            self._routes = tuple(self._counts)

    def _remove_route(self, key: BindingKey, args: dict[str, Any]) -> None:
        if _decr(self._counts, key[0]):
            self._routes = tuple(self._counts)


# ---------------------------------------------------------------------- topic


class TopicExchange(Exchange):
    """Routes by pattern over dot-separated words (AMQP 3.1.3.3); see topic.py."""

    type = "topic"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._matcher = TopicMatcher()
        # (pattern, dest) -> number of bindings (they may differ in arguments).
        self._counts: dict[tuple[str, Hashable], int] = {}

    def route(self, routing_key: str, headers: Mapping[str, Any] | None = None) -> tuple:
        return self._matcher.match(routing_key)

    def _add_route(self, key: BindingKey, args: dict[str, Any]) -> None:
        dest, pattern, _ = key
        if _incr(self._counts, (pattern, dest)):
            self._matcher.add(pattern, dest)

    def _remove_route(self, key: BindingKey, args: dict[str, Any]) -> None:
        dest, pattern, _ = key
        if _decr(self._counts, (pattern, dest)):
            self._matcher.remove(pattern, dest)


EXCHANGE_TYPES: dict[str, type[Exchange]] = {
    "direct": DirectExchange,
    "fanout": FanoutExchange,
    "topic": TopicExchange,
    "headers": HeadersExchange,
    # RabbitMQ's plugin types, built in (docs/exchanges.md); x-delayed-message is made
    # from these by model/delayed.py.
    "x-consistent-hash": ConsistentHashExchange,
    "x-local-random": LocalRandomExchange,
}
