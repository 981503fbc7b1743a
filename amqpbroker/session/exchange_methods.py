"""Handlers for the exchange class (spec 1.6) and channel housekeeping methods.

Translators only: the broker core's session (`broker/session.py`) checks permissions and
applies RabbitMQ's rules; a handler maps the method to one session call and the answer to
a frame."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pamqp import commands as c

from amqpbroker import errors

if TYPE_CHECKING:
    from amqpbroker.session.channel import Channel


def channel_close(ch: "Channel", m: c.Channel.Close) -> None:
    ch.release()
    ch.conn.channels.pop(ch.id, None)
    ch.conn.send_method(ch.id, c.Channel.CloseOk())


def channel_close_ok(ch: "Channel", m: c.Channel.CloseOk) -> None:
    # Only meaningful while closing (handled before dispatch); otherwise ignore, as RabbitMQ.
    return


def channel_flow(ch: "Channel", m: c.Channel.Flow) -> None:
    # RabbitMQ does not implement client-requested flow control: active=false is refused
    # (https://www.rabbitmq.com/docs/specification#method-status-channel.flow).
    if not m.active:
        raise errors.NotImplemented_("active=false")
    ch.conn.send_method(ch.id, c.Channel.FlowOk(active=True))


def channel_open(ch: "Channel", m: c.Channel.Open) -> None:
    # Spec: opening an already open channel is a connection error.
    raise errors.ChannelErrorHard(f"second 'channel.open' seen on channel {ch.id}")


def exchange_declare(ch: "Channel", m: c.Exchange.Declare) -> None:
    ch.session.declare_exchange(
        m.exchange, m.exchange_type, passive=m.passive, durable=m.durable,
        auto_delete=m.auto_delete, internal=m.internal, arguments=m.arguments or {})
    if not m.nowait:
        ch.conn.send_method(ch.id, c.Exchange.DeclareOk())


def exchange_delete(ch: "Channel", m: c.Exchange.Delete) -> None:
    ch.session.delete_exchange(m.exchange, if_unused=m.if_unused)
    if not m.nowait:
        ch.conn.send_method(ch.id, c.Exchange.DeleteOk())


def exchange_bind(ch: "Channel", m: c.Exchange.Bind) -> None:
    ch.session.bind_exchange(m.destination, m.source, m.routing_key, m.arguments or {})
    if not m.nowait:
        ch.conn.send_method(ch.id, c.Exchange.BindOk())


def exchange_unbind(ch: "Channel", m: c.Exchange.Unbind) -> None:
    ch.session.unbind_exchange(m.destination, m.source, m.routing_key, m.arguments or {})
    if not m.nowait:
        ch.conn.send_method(ch.id, c.Exchange.UnbindOk())


HANDLERS = {
    c.Channel.Close: channel_close,
    c.Channel.CloseOk: channel_close_ok,
    c.Channel.Flow: channel_flow,
    c.Channel.Open: channel_open,
    c.Exchange.Declare: exchange_declare,
    c.Exchange.Delete: exchange_delete,
    c.Exchange.Bind: exchange_bind,
    c.Exchange.Unbind: exchange_unbind,
}
