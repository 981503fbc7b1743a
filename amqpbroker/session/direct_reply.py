"""Direct reply-to in AMQP 0-9-1 (https://www.rabbitmq.com/docs/direct-reply-to).

The pseudo-queue itself is a model `Destination` (`model/reply_queue.py`); this module is
the AMQP side: basic.consume on `amq.rabbitmq.reply-to` (no-ack only, one per channel),
rewriting a request's `reply_to` to the channel's address, and passive queue.declare of
the pseudo-queue or of a live address.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pamqp import commands as c

from amqpbroker import errors
from amqpbroker.model.reply_queue import PREFIX, PSEUDO_QUEUE, ReplyQueue, new_address
from amqpbroker.protocol.properties import decode_properties, replace_reply_to

if TYPE_CHECKING:
    from amqpbroker.session.channel import Channel

__all__ = ["PSEUDO_QUEUE", "PREFIX", "ReplyQueue", "consume", "rewrite_reply_to", "declare_ok"]
_MARKER = PSEUDO_QUEUE.encode()


def consume(ch: "Channel", m: c.Basic.Consume, tag: str) -> None:
    """basic.consume on amq.rabbitmq.reply-to."""
    from amqpbroker.session.consumer import Consumer

    if not m.no_ack:
        raise errors.PreconditionFailed("reply consumer cannot acknowledge")
    if ch.reply_queue is not None:
        raise errors.PreconditionFailed("reply consumer already set")
    vhost = ch.vhost

    def gone(queue: ReplyQueue) -> None:
        vhost.reply_queues.pop(queue.name, None)
        ch.reply_queue = None

    queue = ReplyQueue(vhost.name, new_address(), gone)
    consumer = Consumer(ch, queue, tag, no_ack=True, exclusive=False, priority=0,
                        prefetch=0, arguments={})
    ch.reply_queue = queue
    vhost.reply_queues[queue.name] = queue
    ch.consumers[tag] = consumer
    if not m.nowait:
        ch.conn.send_method(ch.id, c.Basic.ConsumeOk(consumer_tag=tag))
    ch.session.attach_reply_consumer(queue, consumer)


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
