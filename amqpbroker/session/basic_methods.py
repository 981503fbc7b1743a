"""Handlers for the basic class (spec 1.8), confirm (RabbitMQ extension) and tx (spec 1.9).

basic.publish and basic.ack are decoded on the fast path in `channel.py`; the handlers here
take pamqp method objects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pamqp import commands as c

from amqpbroker import errors
from amqpbroker.model.names import consumer_tag
from amqpbroker.protocol import fastcodec
from amqpbroker.session import direct_reply
from amqpbroker.session.consumer import Consumer
from amqpbroker.session.queue_methods import resolve_queue_name

if TYPE_CHECKING:
    from amqpbroker.session.channel import Channel


def basic_qos(ch: "Channel", m: c.Basic.Qos) -> None:
    if m.prefetch_size:  # RabbitMQ does not implement prefetch_size
        raise errors.NotImplemented_(f"prefetch_size!=0 ({m.prefetch_size})")
    # RabbitMQ's reading of global (https://www.rabbitmq.com/docs/consumer-prefetch):
    # false = per consumer (applies to consumers started after this), true = per channel.
    if m.global_:
        ch.global_prefetch = m.prefetch_count
        ch.resume_consumers()
    else:
        ch.prefetch = m.prefetch_count
    ch.conn.send_method(ch.id, c.Basic.QosOk())


def basic_consume(ch: "Channel", m: c.Basic.Consume) -> None:
    if m.queue == direct_reply.PSEUDO_QUEUE:
        tag = m.consumer_tag or consumer_tag()
        if tag in ch.consumers:
            raise errors.NotAllowed(f"attempt to reuse consumer tag '{tag}'")
        direct_reply.consume(ch, m, tag)
        return
    args = m.arguments or {}
    q = ch.session.check_consume(
        resolve_queue_name(ch, m.queue), exclusive=m.exclusive, no_ack=m.no_ack,
        prefetch=ch.prefetch, global_prefetch=ch.global_prefetch, arguments=args)
    tag = m.consumer_tag or consumer_tag()
    if tag in ch.consumers:
        raise errors.NotAllowed(f"attempt to reuse consumer tag '{tag}'")
    consumer = Consumer(ch, q, tag, no_ack=m.no_ack, exclusive=m.exclusive,
                        priority=args.get("x-priority", 0), prefetch=ch.prefetch,
                        arguments=args)
    ch.consumers[tag] = consumer
    if not m.nowait:  # ConsumeOk must precede the first Deliver
        ch.conn.send_method(ch.id, c.Basic.ConsumeOk(consumer_tag=tag))
    ch.session.consume(q, consumer)  # a stream consumer starts at its x-stream-offset


def basic_cancel(ch: "Channel", m: c.Basic.Cancel) -> None:
    consumer = ch.consumers.get(m.consumer_tag)
    if consumer is not None:
        ch.cancel_consumer(consumer)
    # An unknown tag is not an error (spec 1.8.3.5): answer CancelOk all the same.
    if not m.nowait:
        ch.conn.send_method(ch.id, c.Basic.CancelOk(consumer_tag=m.consumer_tag))


def basic_get(ch: "Channel", m: c.Basic.Get) -> None:
    conn = ch.conn
    got = ch.session.get(resolve_queue_name(ch, m.queue))
    if got is None:
        ch.fetched_empty += 1
        conn.send_method(ch.id, c.Basic.GetEmpty())
        return
    q, msg, redelivered = got
    if m.no_ack:  # counters for the management API
        ch.fetched_no_ack += 1
        q.fetched_no_ack += 1
    else:
        ch.fetched += 1
    if redelivered:
        ch.redelivered += 1
        q.redelivered += 1
    tag = ch.next_tag
    ch.next_tag += 1
    conn.send(fastcodec.encode_get_ok(
        ch.id, tag, redelivered, msg.exchange, msg.routing_key, q.message_count,
        msg.properties, ch._body_of(msg), conn.frame_max))
    if m.no_ack:
        q.settle(msg)
    else:
        ch.hold_get(tag, q, msg)


def basic_ack(ch: "Channel", m: c.Basic.Ack) -> None:
    ch.ack(m.delivery_tag, m.multiple)


def basic_reject(ch: "Channel", m: c.Basic.Reject) -> None:
    ch.reject(m.delivery_tag, False, m.requeue)


def basic_nack(ch: "Channel", m: c.Basic.Nack) -> None:
    ch.reject(m.delivery_tag, m.multiple, m.requeue)


def basic_recover(ch: "Channel", m: c.Basic.Recover) -> None:
    ch.recover()
    ch.conn.send_method(ch.id, c.Basic.RecoverOk())


def basic_recover_async(ch: "Channel", m: c.Basic.RecoverAsync) -> None:
    ch.recover()


def confirm_select(ch: "Channel", m: c.Confirm.Select) -> None:
    if ch.tx is not None:
        raise errors.PreconditionFailed("cannot switch from tx to confirm mode")
    ch.publisher.confirm = True
    if not m.nowait:
        ch.conn.send_method(ch.id, c.Confirm.SelectOk())


def tx_select(ch: "Channel", m: c.Tx.Select) -> None:
    if ch.confirm:
        raise errors.PreconditionFailed("cannot switch from confirm to tx mode")
    if ch.tx is None:
        ch.tx = []
    ch.conn.send_method(ch.id, c.Tx.SelectOk())


def tx_commit(ch: "Channel", m: c.Tx.Commit) -> None:
    """Apply the transaction's publishes and settlements in order, as one unit (spec
    1.9); Tx.CommitOk only once its persistent messages on durable queues are on disk:
    the commit takes a ticket for the next group commit, it never forces its own fsync."""
    if ch.tx is None:
        raise errors.PreconditionFailed("channel is not transactional")
    ops, ch.tx = ch.tx, None
    needs_sync = False
    try:
        for op in ops:
            if op[0] == "publish":
                needs_sync = ch.session.publish(op[1], op[2], ch.publisher) or needs_sync
            elif op[0] == "ack":
                ch.ack(op[1], op[2])
            else:
                ch.reject(op[1], op[2], op[3])
    finally:
        ch.tx = []
    if not needs_sync:
        ch.conn.send_method(ch.id, c.Tx.CommitOk())
        return

    def synced(failed: bool) -> None:
        if ch.closed:
            return
        if failed:  # the messages may not be on disk: the client must not think so
            ch.conn.fail(errors.InternalError(
                "tx.commit: the message store could not sync", 90, 20))
        else:
            ch.conn.send_method(ch.id, c.Tx.CommitOk())

    ch.core.persister.after_sync(synced)


def tx_rollback(ch: "Channel", m: c.Tx.Rollback) -> None:
    if ch.tx is None:
        raise errors.PreconditionFailed("channel is not transactional")
    ch.tx = []
    ch.conn.send_method(ch.id, c.Tx.RollbackOk())


HANDLERS = {
    c.Basic.Qos: basic_qos,
    c.Basic.Consume: basic_consume,
    c.Basic.Cancel: basic_cancel,
    c.Basic.Get: basic_get,
    c.Basic.Ack: basic_ack,
    c.Basic.Reject: basic_reject,
    c.Basic.Nack: basic_nack,
    c.Basic.Recover: basic_recover,
    c.Basic.RecoverAsync: basic_recover_async,
    c.Confirm.Select: confirm_select,
    c.Tx.Select: tx_select,
    c.Tx.Commit: tx_commit,
    c.Tx.Rollback: tx_rollback,
}
