"""The local random exchange (`x-local-random`, RabbitMQ 4.0,
https://www.rabbitmq.com/docs/local-random-exchange): each message goes to ONE of the
bound queues, picked at random, for request-reply fan-in to competing RPC servers.

RabbitMQ's rules (rabbit_exchange_type_local_random.erl): the binding key must be empty,
the destination must be a classic queue (exchanges, quorum queues and streams are
refused with 406), and only queues local to the publisher's node are candidates -- on a
single node that is every bound queue.
"""

from __future__ import annotations

import random
from collections.abc import Hashable
from typing import Any

from amqpbroker.model.exchange_base import _EMPTY, BindingKey, Exchange, _decr, _incr

_QUEUE_TYPE_MODULES = {"quorum": "rabbit_quorum_queue", "stream": "rabbit_stream_queue"}


class LocalRandomExchange(Exchange):
    type = "x-local-random"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._counts: dict[Hashable, int] = {}
        self._dests: tuple = _EMPTY
        self._random = random.Random()

    def validate_destination(self, dest: Hashable, routing_key: str) -> None:
        if routing_key:
            raise ValueError(f"Non empty binding '{routing_key}' key not permitted")
        if not hasattr(dest, "is_stream"):  # an exchange: only queues can be picked
            raise ValueError("Destination not found")
        kind = "stream" if dest.is_stream else ("quorum" if getattr(dest, "is_quorum", False)
                                                 else "classic")
        if kind != "classic":
            raise ValueError(f"Queue type {_QUEUE_TYPE_MODULES[kind]} not valid for this "
                             "exchange type")

    def route(self, routing_key: str, headers: Any = None) -> tuple:
        dests = self._dests
        if len(dests) < 2:
            return dests
        return (dests[self._random.randrange(len(dests))],)

    def _add_route(self, key: BindingKey, args: dict[str, Any]) -> None:
        if _incr(self._counts, key[0]):
            self._dests = tuple(self._counts)

    def _remove_route(self, key: BindingKey, args: dict[str, Any]) -> None:
        if _decr(self._counts, key[0]):
            self._dests = tuple(self._counts)
