"""basic.publish to an exchange that delays (x-delayed-message, model/delayed.py).

Mandatory: the plugin returns every mandatory delayed message at once with 312 NO_ROUTE,
since it cannot know whether a binding will match later. Here a mandatory delayed
publish is checked against the bindings that exist now: if none of them (nor an
alternate exchange) would take the message, it is returned with 312 NO_ROUTE and not
kept -- the same outcome as an unroutable mandatory message on any other exchange;
otherwise it is kept and routed when due by the bindings of that time.

Confirms: a delayed message of a durable exchange is written to the message store; its
confirm waits for the group commit that makes it durable, like a persistent message
routed to a durable queue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from amqpbroker.model.exchange_base import Exchange
from amqpbroker.model.message import Message

if TYPE_CHECKING:
    from amqpbroker.session.channel import Channel


def publish_delayed(ch: "Channel", ex: Exchange, msg: Message, mandatory: bool,
                    delay_ms: int) -> None:
    vhost = ch.vhost
    if ch.confirm:
        ch.confirm_seq += 1
    if mandatory and not vhost.route(ex, msg):
        ch._return(msg, 312, "NO_ROUTE")
        if ch.confirm:
            ch._confirm(ch.confirm_seq, False)
        return
    needs_sync = vhost.delayed.hold(ex, msg, delay_ms) and ch.core.store_needs_sync
    if ch.confirm:
        ch._confirm(ch.confirm_seq, needs_sync)
    elif needs_sync:
        ch.core.persister.dirty = True
