"""Handlers for the queue class (spec 1.7)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pamqp import commands as c

from amqpbroker import errors
from amqpbroker.model.names import server_named
from amqpbroker.protocol.methods import build
from amqpbroker.session import direct_reply
from amqpbroker.session.exchange_methods import allow

if TYPE_CHECKING:
    from amqpbroker.model.queue import Queue
    from amqpbroker.session.channel import Channel


def resolve_queue_name(ch: "Channel", name: str) -> str:
    """Spec 1.7.2: an empty queue name means the channel's most recently declared queue."""
    if name:
        return name
    if not ch.last_queue:
        raise errors.NotFound("no previously declared queue")
    return ch.last_queue


def queue_declare(ch: "Channel", m: c.Queue.Declare) -> None:
    vhost, conn = ch.vhost, ch.conn
    name = m.queue
    if m.passive and not name:
        name = resolve_queue_name(ch, name)
    if m.passive and name.startswith(direct_reply.PSEUDO_QUEUE):
        reply = direct_reply.declare_ok(ch, name)
        if reply is not None:
            if not m.nowait:
                conn.send_method(ch.id, reply)
            return
    generated = not m.passive and not name
    if not m.passive:
        name = name or server_named()  # RabbitMQ checks the generated name
        allow(ch, "configure", "queue", name)
        dlx = (m.arguments or {}).get("x-dead-letter-exchange")
        if isinstance(dlx, (str, bytes)) and name not in vhost.queues:
            allow(ch, "read", "queue", name)
            allow(ch, "write", "exchange", dlx.decode("utf-8", "replace") if isinstance(dlx, bytes) else dlx)
    existed = name in vhost.queues
    q = vhost.declare_queue(
        name, passive=m.passive, durable=m.durable, exclusive=m.exclusive,
        auto_delete=m.auto_delete, arguments=m.arguments or {}, owner=conn,
        server_named_=generated)
    if not existed and q.exclusive_owner is conn:
        conn.exclusive_queues.append(q)
    ch.last_queue = q.name
    if not m.nowait:
        conn.send_method(ch.id, build(
            c.Queue.DeclareOk, queue=q.name, message_count=q.message_count,
            consumer_count=q.consumer_count))


def queue_bind(ch: "Channel", m: c.Queue.Bind) -> None:
    allow(ch, "write", "queue", resolve_queue_name(ch, m.queue))
    allow(ch, "read", "exchange", m.exchange)
    q = _queue(ch, m.queue)
    ch.vhost.bind(q, m.exchange, m.routing_key, m.arguments or {})
    if not m.nowait:
        ch.conn.send_method(ch.id, c.Queue.BindOk())


def queue_unbind(ch: "Channel", m: c.Queue.Unbind) -> None:
    name = resolve_queue_name(ch, m.queue)
    allow(ch, "write", "queue", name)
    allow(ch, "read", "exchange", m.exchange)
    # RabbitMQ answers UnbindOk when the queue or the exchange no longer exists.
    q = ch.vhost.queues.get(name)
    if q is not None and m.exchange in ch.vhost.exchanges:
        ch.vhost._check_exclusive(q, ch.conn)
        ch.vhost.unbind(q, m.exchange, m.routing_key, m.arguments or {})
    ch.conn.send_method(ch.id, c.Queue.UnbindOk())


def queue_purge(ch: "Channel", m: c.Queue.Purge) -> None:
    name = resolve_queue_name(ch, m.queue)
    allow(ch, "read", "queue", name)
    count = ch.vhost.purge_queue(name, owner=ch.conn)
    if not m.nowait:
        ch.conn.send_method(ch.id, c.Queue.PurgeOk(message_count=count))


def queue_delete(ch: "Channel", m: c.Queue.Delete) -> None:
    name = resolve_queue_name(ch, m.queue)
    allow(ch, "configure", "queue", name)
    q = ch.vhost.queues.get(name)
    count = ch.vhost.delete_queue(name, if_unused=m.if_unused, if_empty=m.if_empty,
                                  owner=ch.conn)
    if q is not None and q in ch.conn.exclusive_queues:
        ch.conn.exclusive_queues.remove(q)
    if not m.nowait:
        ch.conn.send_method(ch.id, c.Queue.DeleteOk(message_count=count))


def _queue(ch: "Channel", name: str) -> "Queue":
    q = ch.vhost.queue(resolve_queue_name(ch, name))
    ch.vhost._check_exclusive(q, ch.conn)
    return q


HANDLERS = {
    c.Queue.Declare: queue_declare,
    c.Queue.Bind: queue_bind,
    c.Queue.Unbind: queue_unbind,
    c.Queue.Purge: queue_purge,
    c.Queue.Delete: queue_delete,
}
