"""A consumer (basic.consume) as a queue sees it: credit checks and delivery."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from amqpbroker.model.queue_args import consumer_timeout_of

if TYPE_CHECKING:
    from amqpbroker.message import Message
    from amqpbroker.model.queue import Queue
    from amqpbroker.session.channel import Channel


class Consumer:
    __slots__ = ("tag", "queue", "channel", "no_ack", "exclusive", "priority", "prefetch",
                 "unacked", "arguments", "timeout_ms", "deliver")

    def __init__(self, channel: "Channel", queue: "Queue", tag: str, *, no_ack: bool,
                 exclusive: bool, priority: int, prefetch: int,
                 arguments: dict[str, Any]) -> None:
        self.channel = channel
        # deliver(queue, msg, redelivered), as a queue calls it: the channel's own deliver
        # with this consumer bound (a partial is called in C; a method would add a frame).
        self.deliver = partial(channel.deliver, self)
        self.queue = queue
        self.tag = tag
        self.no_ack = no_ack
        self.exclusive = exclusive
        self.priority = priority
        # basic.qos global=false: a limit per consumer, fixed when it starts
        # (https://www.rabbitmq.com/docs/consumer-prefetch).
        self.prefetch = prefetch
        self.unacked = 0
        self.arguments = arguments
        # x-consumer-timeout as a consumer argument overrides the queue's and the broker's
        # (https://www.rabbitmq.com/docs/consumers#acknowledgement-timeout).
        self.timeout_ms = consumer_timeout_of(arguments)
        for timeout in (self.timeout_ms, queue.consumer_timeout_ms):
            if timeout is not None:
                channel.timeouts.note_timeout(timeout)

    def can_take(self) -> bool:
        ch = self.channel
        conn = ch.conn
        if conn.paused or conn.out_bytes >= conn.write_high_water:
            conn.starved = True
            return False
        if self.no_ack:
            return True
        if self.prefetch and self.unacked >= self.prefetch:
            return False
        return not ch.global_prefetch or ch.unacked_count < ch.global_prefetch

    def queue_deleted(self, queue: "Queue") -> None:
        self.channel.server_cancel(self)
