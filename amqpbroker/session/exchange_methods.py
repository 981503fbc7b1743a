"""Handlers for the exchange class (spec 1.6) and channel housekeeping methods."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pamqp import commands as c

from amqpbroker import errors
from amqpbroker.model import permissions

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


def allow(ch: "Channel", kind: permissions.Kind, resource: permissions.ResourceKind,
          name: str) -> None:
    """Access control (https://www.rabbitmq.com/docs/access-control); see permissions.py."""
    permissions.check(ch.conn.user, ch.vhost.name, kind, resource, name, ch.conn.perm_cache)


def exchange_declare(ch: "Channel", m: c.Exchange.Declare) -> None:
    if not m.passive and m.exchange:
        allow(ch, "configure", "exchange", m.exchange)
        alternate = (m.arguments or {}).get("alternate-exchange")
        if isinstance(alternate, (str, bytes)) and m.exchange not in ch.vhost.exchanges:
            allow(ch, "read", "exchange", m.exchange)
            allow(ch, "write", "exchange",
                  alternate.decode("utf-8", "replace") if isinstance(alternate, bytes) else alternate)
    ch.vhost.declare_exchange(
        m.exchange, m.exchange_type, passive=m.passive, durable=m.durable,
        auto_delete=m.auto_delete, internal=m.internal, arguments=m.arguments or {})
    if not m.nowait:
        ch.conn.send_method(ch.id, c.Exchange.DeclareOk())


def exchange_delete(ch: "Channel", m: c.Exchange.Delete) -> None:
    if m.exchange and not m.exchange.startswith("amq."):
        allow(ch, "configure", "exchange", m.exchange)
    ch.vhost.delete_exchange(m.exchange, if_unused=m.if_unused)
    if not m.nowait:
        ch.conn.send_method(ch.id, c.Exchange.DeleteOk())


def exchange_bind(ch: "Channel", m: c.Exchange.Bind) -> None:
    allow(ch, "write", "exchange", m.destination)
    allow(ch, "read", "exchange", m.source)
    destination = ch.vhost.exchange(m.destination)
    ch.vhost.bind(destination, m.source, m.routing_key, m.arguments or {})
    if not m.nowait:
        ch.conn.send_method(ch.id, c.Exchange.BindOk())


def exchange_unbind(ch: "Channel", m: c.Exchange.Unbind) -> None:
    allow(ch, "write", "exchange", m.destination)
    allow(ch, "read", "exchange", m.source)
    destination = ch.vhost.exchanges.get(m.destination)
    if destination is not None and m.source in ch.vhost.exchanges:
        ch.vhost.unbind(destination, m.source, m.routing_key, m.arguments or {})
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
