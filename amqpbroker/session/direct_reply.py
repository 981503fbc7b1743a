"""Direct reply-to (https://www.rabbitmq.com/docs/direct-reply-to).

An RPC client consumes, in no-ack mode, from the pseudo-queue `amq.rabbitmq.reply-to` and
publishes requests with `reply_to = amq.rabbitmq.reply-to`. The broker rewrites that
reply_to to `amq.rabbitmq.reply-to.<token>`, a name unique to the consuming channel; a
server's reply published to the default exchange with that routing key goes straight to
the waiting consumer, without any queue. If the consumer has gone, the reply is
unroutable (returned when mandatory, else dropped), as in RabbitMQ.

`ReplyQueue` is the routing destination behind one such consumer: it has just enough of
the `model.queue.Queue` surface for the publish path, and delivers at once.
"""

from __future__ import annotations

import base64
import os
from typing import TYPE_CHECKING, Any

from pamqp import commands as c

from amqpbroker import errors
from amqpbroker.protocol.properties import decode_properties, replace_reply_to

if TYPE_CHECKING:
    from amqpbroker.model.message import Message
    from amqpbroker.session.channel import Channel
    from amqpbroker.session.consumer import Consumer

PSEUDO_QUEUE = "amq.rabbitmq.reply-to"
PREFIX = PSEUDO_QUEUE + "."
_MARKER = PSEUDO_QUEUE.encode()


class ReplyQueue:
    durable = False
    auto_delete = False
    exclusive_owner = None
    features = None
    deleted = False
    ready: tuple[()] = ()
    unacked = 0
    consumer_timeout_ms = None

    def __init__(self, channel: "Channel", name: str) -> None:
        self.channel = channel
        self.name = name
        self.consumer: "Consumer | None" = None
        self.consumers: list["Consumer"] = []

    # -- the publish path -----------------------------------------------------------------
    def publish(self, msg: "Message") -> None:
        if self.consumer is not None and not self.channel.closed:
            self.channel.deliver(self.consumer, self, msg, False)  # type: ignore[arg-type]

    def settle(self, msg: "Message") -> None:
        """No-ack deliveries are settled at once: nothing to track."""

    def over_flow_limit(self) -> bool:
        return False

    def enable_message_expiry(self) -> None:
        """Replies are delivered at once: a TTL never applies."""

    @property
    def message_count(self) -> int:
        return 0

    @property
    def consumer_count(self) -> int:
        return len(self.consumers)

    # -- consumers ------------------------------------------------------------------------
    def add_consumer(self, consumer: "Consumer") -> None:
        self.consumer = consumer
        self.consumers = [consumer]

    def remove_consumer(self, consumer: "Consumer") -> bool:
        if consumer is self.consumer:
            self.consumer = None
            self.consumers = []
            self.channel.vhost.reply_queues.pop(self.name, None)
            self.channel.reply_queue = None
        return False  # never auto-deleted: there is no queue


def consume(ch: "Channel", m: c.Basic.Consume, tag: str) -> None:
    """basic.consume on amq.rabbitmq.reply-to."""
    from amqpbroker.session.consumer import Consumer

    if not m.no_ack:
        raise errors.PreconditionFailed("reply consumer cannot acknowledge")
    if ch.reply_queue is not None:
        raise errors.PreconditionFailed("reply consumer already set")
    token = base64.urlsafe_b64encode(os.urandom(18)).decode()
    queue = ReplyQueue(ch, PREFIX + token)
    consumer = Consumer(ch, queue, tag, no_ack=True, exclusive=False, priority=0,  # type: ignore[arg-type]
                        prefetch=0, arguments={})
    ch.reply_queue = queue
    ch.vhost.reply_queues[queue.name] = queue
    ch.consumers[tag] = consumer
    if not m.nowait:
        ch.conn.send_method(ch.id, c.Basic.ConsumeOk(consumer_tag=tag))
    queue.add_consumer(consumer)


def rewrite_reply_to(ch: "Channel", props: bytes) -> bytes:
    """A publish whose reply_to is the pseudo-queue gets this channel's reply address."""
    if _MARKER not in props:  # the common case: one substring test, no decoding
        return props
    if decode_properties(props).reply_to != PSEUDO_QUEUE:
        return props
    if ch.reply_queue is None:
        raise errors.PreconditionFailed("fast reply consumer does not exist")
    return replace_reply_to(props, ch.reply_queue.name)


def declare_ok(ch: "Channel", name: str) -> Any:
    """queue.declare (passive) of the pseudo-queue or of a live reply address."""
    if name == PSEUDO_QUEUE or name in ch.vhost.reply_queues:
        return c.Queue.DeclareOk(queue=name, message_count=0, consumer_count=0)
    return None
