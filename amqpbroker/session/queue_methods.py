"""Handlers for the queue class (spec 1.7)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pamqp import commands as c

from amqpbroker import errors
from amqpbroker.model.names import server_named
from amqpbroker.protocol.methods import build
from amqpbroker.session import direct_reply

if TYPE_CHECKING:
    from amqpbroker.session.channel import Channel


def resolve_queue_name(ch: "Channel", name: str) -> str:
    """Spec 1.7.2: an empty queue name means the channel's most recently declared queue."""
    if name:
        return name
    if not ch.last_queue:
        raise errors.NotFound("no previously declared queue")
    return ch.last_queue


def queue_declare(ch: "Channel", m: c.Queue.Declare) -> None:
    name = m.queue
    if m.passive and not name:
        name = resolve_queue_name(ch, name)
    if m.passive and name.startswith(direct_reply.PSEUDO_QUEUE):
        reply = direct_reply.declare_ok(ch, name)
        if reply is not None:
            if not m.nowait:
                ch.conn.send_method(ch.id, reply)
            return
    generated = not m.passive and not name
    q = ch.session.declare_queue(
        name or server_named(),  # RabbitMQ checks permissions on the generated name
        passive=m.passive, durable=m.durable, exclusive=m.exclusive,
        auto_delete=m.auto_delete, arguments=m.arguments or {}, server_named=generated)
    ch.last_queue = q.name
    if not m.nowait:
        ch.conn.send_method(ch.id, build(
            c.Queue.DeclareOk, queue=q.name, message_count=q.message_count,
            consumer_count=q.consumer_count))


def queue_bind(ch: "Channel", m: c.Queue.Bind) -> None:
    ch.session.bind_queue(resolve_queue_name(ch, m.queue), m.exchange, m.routing_key,
                          m.arguments or {})
    if not m.nowait:
        ch.conn.send_method(ch.id, c.Queue.BindOk())


def queue_unbind(ch: "Channel", m: c.Queue.Unbind) -> None:
    ch.session.unbind_queue(resolve_queue_name(ch, m.queue), m.exchange, m.routing_key,
                            m.arguments or {})
    ch.conn.send_method(ch.id, c.Queue.UnbindOk())


def queue_purge(ch: "Channel", m: c.Queue.Purge) -> None:
    count = ch.session.purge(resolve_queue_name(ch, m.queue))
    if not m.nowait:
        ch.conn.send_method(ch.id, c.Queue.PurgeOk(message_count=count))


def queue_delete(ch: "Channel", m: c.Queue.Delete) -> None:
    with ch.conn.replies_first():  # DeleteOk, then the consumers' Basic.Cancel
        count = ch.session.delete_queue(resolve_queue_name(ch, m.queue),
                                        if_unused=m.if_unused, if_empty=m.if_empty)
        if not m.nowait:
            ch.conn.send_method(ch.id, c.Queue.DeleteOk(message_count=count))


HANDLERS = {
    c.Queue.Declare: queue_declare,
    c.Queue.Bind: queue_bind,
    c.Queue.Unbind: queue_unbind,
    c.Queue.Purge: queue_purge,
    c.Queue.Delete: queue_delete,
}
