"""The direct reply-to pseudo-queue (https://www.rabbitmq.com/docs/direct-reply-to).

An RPC client consumes, in no-ack mode, from `amq.rabbitmq.reply-to`; the broker gives its
requests the address `amq.rabbitmq.reply-to.<token>`. `ReplyQueue` is the `Destination`
behind one such address: the default exchange routes a reply whose routing key is the
address straight to the waiting consumer (`VirtualHost.route`, via `reply_queues`),
without storing it. If the consumer has gone, the reply is unroutable (returned when
mandatory, else dropped), as in RabbitMQ. RabbitMQ does not let it be bound (404: the
address is not a queue) or read with basic.get; a message dead-lettered to the default
exchange with the address as routing key is delivered to the waiting consumer (checked
against RabbitMQ 3.10.8). The destination contract test asserts both.
"""

from __future__ import annotations

import base64
import os
from typing import Any, Callable

from amqpbroker.message import Message
from amqpbroker.model.destination import Destination

PSEUDO_QUEUE = "amq.rabbitmq.reply-to"
PREFIX = PSEUDO_QUEUE + "."


def new_address() -> str:
    return PREFIX + base64.urlsafe_b64encode(os.urandom(18)).decode()


class ReplyQueue(Destination):
    queue_type = "reply-to"
    durable = False
    auto_delete = False
    exclusive_owner = None
    exclusive_consumer = None
    features = None
    deleted = False
    ready: tuple[()] = ()
    unacked = 0
    consumer_timeout_ms = None
    key = ""
    changes = None

    def __init__(self, vhost: str, name: str, on_gone: Callable[["ReplyQueue"], None]) -> None:
        self.vhost = vhost
        self.name = name
        self.arguments: dict[str, Any] = {}
        self.consumer: Any = None
        self.consumers: list[Any] = []
        self.flow_waiters: set[Any] = set()
        self._on_gone = on_gone

    # -- the publish path -----------------------------------------------------------------
    def publish(self, msg: Message) -> None:
        if self.consumer is not None:
            self.consumer.deliver(self, msg, False)

    def settle(self, msg: Message) -> None:
        """Reply consumers are no-ack, and nothing is tracked: nothing to settle."""

    def reject(self, msg: Message) -> None:
        """Never called: reply consumers do not acknowledge."""

    def return_unacked(self, entries: list[tuple[Message, bool]]) -> None:
        """Never called: nothing is outstanding."""

    def dispatch(self) -> None:
        """Replies are delivered as they are routed: nothing waits."""

    def get(self) -> None:
        return None

    def purge(self) -> int:
        return 0

    @property
    def message_count(self) -> int:
        return 0

    # -- consumers ------------------------------------------------------------------------
    def add_consumer(self, consumer: Any) -> None:
        self.consumer = consumer
        self.consumers = [consumer]

    def remove_consumer(self, consumer: Any) -> bool:
        if consumer is self.consumer:
            self.consumer = None
            self.consumers = []
            self._on_gone(self)
        return False  # never auto-deleted: there is no queue
