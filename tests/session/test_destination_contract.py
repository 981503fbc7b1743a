"""Every destination type through every route (issue 14's contract test).

Destination types: classic, quorum and stream queues and the direct reply-to pseudo-queue
(`model/destination.py`). Routes: the default exchange, each exchange type (direct,
fanout, topic, headers), an exchange-to-exchange binding, an alternate exchange, a
dead-letter target, a mandatory publish (routed: no return; unrouted: returned before its
confirm) and publisher confirms for persistent and transient messages (a message on a
durable destination that needs the disk is confirmed only after the group commit).

Direct reply-to cannot be bound: those cells assert RabbitMQ's refusal (404 on queue.bind,
the address is not a queue), they are not skipped. As a dead-letter target it is reached
the only way it can be, through the default exchange with its address as the dead-letter
routing key, and, as RabbitMQ 3.10.8 does (checked against Debian's rabbitmq-server), the
dead-lettered message is delivered to the reply consumer.
"""

from __future__ import annotations

import pytest
from pamqp import commands as c

from amqpbroker.core import BrokerCore
from amqpbroker.settings import Settings
from amqpbroker.store.memory import MemoryDefinitionStore, MemoryMessageStore
from wire import WireClient

TYPES = ["classic", "quorum", "stream", "reply-to"]
PERSISTENT = c.Basic.Properties(delivery_mode=2, headers={"h": "v"})
TRANSIENT = c.Basic.Properties(headers={"h": "v"})
# exchange, binding key, binding arguments, publish routing key
EXCHANGES = {
    "direct": ("amq.direct", "k", {}, "k"),
    "fanout": ("amq.fanout", "", {}, "any"),
    "topic": ("amq.topic", "a.*", {}, "a.b"),
    "headers": ("amq.headers", "", {"x-match": "all", "h": "v"}, ""),
}


class SyncingStore(MemoryMessageStore):
    needs_sync = True  # like the disk store: confirms of durable messages wait for sync()


class Harness:
    """One broker core, a consumer/declarer connection (channel 1) and a publisher with
    confirms (channel 2 of the same connection: direct reply-to needs that)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.core = BrokerCore(Settings(data_dir=None), SyncingStore(), MemoryDefinitionStore())
        self.cl = WireClient(self.core)
        self.cl.handshake()
        self.cl.open_channel(1)
        self.cl.open_channel(2)
        self.cl.send(2, c.Confirm.Select())
        self.name = self._declare()

    def _declare(self) -> str:
        if self.kind == "reply-to":
            out = self.cl.send(1, c.Basic.Consume(queue="amq.rabbitmq.reply-to", no_ack=True))
            assert isinstance(out[0][1], c.Basic.ConsumeOk)
            (address,) = self.core.vhosts["/"].reply_queues
            return address
        args = {} if self.kind == "classic" else {"x-queue-type": self.kind}
        out = self.cl.send(1, c.Queue.Declare(queue="dest", durable=True, arguments=args))
        assert isinstance(out[0][1], c.Queue.DeclareOk), out
        return "dest"

    def send(self, channel: int, method) -> list:
        return [f for _, f in self.cl.send(channel, method)]

    def publish(self, exchange: str, key: str, props=PERSISTENT, mandatory=False) -> list:
        return [f for _, f in self.cl.publish(2, exchange, key, b"payload", props, mandatory)]

    def received(self, frames: list | None = None) -> int:
        """How many messages the destination holds (or delivered, for direct reply-to)."""
        if self.kind == "reply-to":
            return sum(isinstance(f, c.Basic.Deliver) for f in frames or [])
        out = self.send(1, c.Queue.Declare(queue=self.name, passive=True))
        return out[0].message_count

    def sync(self) -> list:
        persister = self.core.persister
        if persister.dirty:
            persister.complete(persister.begin())
        return [f for _, f in self.cl.drain()]

    def bind(self, exchange: str, key: str, args: dict) -> list:
        return self.send(1, c.Queue.Bind(queue=self.name, exchange=exchange, routing_key=key,
                                         arguments=args))


def _acks(frames):
    return [(type(f).__name__, f.delivery_tag) for f in frames
            if isinstance(f, (c.Basic.Ack, c.Basic.Nack))]


def _closed(frames):
    return [f for f in frames if isinstance(f, (c.Channel.Close, c.Connection.Close))]


@pytest.fixture(params=TYPES)
def h(request) -> Harness:
    return Harness(request.param)


def test_default_exchange(h):
    frames = h.publish("", h.name)
    assert not _closed(frames)
    frames += h.sync()
    assert h.received(frames) == 1


@pytest.mark.parametrize("route", sorted(EXCHANGES))
def test_each_exchange_type(h, route):
    exchange, key, args, rk = EXCHANGES[route]
    out = h.bind(exchange, key, args)
    if h.kind == "reply-to":  # not a queue: RabbitMQ cannot bind it
        assert out[0].reply_code == 404 and isinstance(out[0], c.Channel.Close)
        return
    assert isinstance(out[0], c.Queue.BindOk)
    frames = h.publish(exchange, rk)
    assert not _closed(frames)
    assert h.received() == 1


def test_exchange_to_exchange(h):
    h.send(1, c.Exchange.Declare(exchange="inner", exchange_type="fanout"))
    h.send(1, c.Exchange.Bind(destination="inner", source="amq.topic", routing_key="#"))
    out = h.bind("inner", "", {})
    if h.kind == "reply-to":
        assert out[0].reply_code == 404
        return
    assert not _closed(h.publish("amq.topic", "x.y"))
    assert h.received() == 1


def test_alternate_exchange(h):
    h.send(1, c.Exchange.Declare(exchange="ae", exchange_type="fanout"))
    h.send(1, c.Exchange.Declare(exchange="main", exchange_type="direct",
                                 arguments={"alternate-exchange": "ae"}))
    out = h.bind("ae", "", {})
    if h.kind == "reply-to":
        assert out[0].reply_code == 404
        return
    assert not _closed(h.publish("main", "unbound-key"))
    assert h.received() == 1


def test_dead_letter_target(h):
    h.send(1, c.Queue.Declare(queue="src", arguments={
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": h.name}))
    h.publish("", "src")
    get = h.cl.send(1, c.Basic.Get(queue="src"))
    tag = [f for _, f in get if isinstance(f, c.Basic.GetOk)][0].delivery_tag
    frames = [f for _, f in h.cl.send(1, c.Basic.Reject(delivery_tag=tag, requeue=False))]
    frames += h.sync()
    assert not _closed(frames)
    assert h.received(frames) == 1


def test_mandatory_routed_is_not_returned_and_unrouted_is_returned_before_confirm(h):
    frames = h.publish("", h.name, mandatory=True) + h.sync()
    assert not [f for f in frames if isinstance(f, c.Basic.Return)]
    assert h.received(frames) == 1
    frames = h.publish("", h.name + ".missing", mandatory=True) + h.sync()
    kinds = [type(f).__name__ for f in frames if isinstance(f, (c.Basic.Return, c.Basic.Ack))]
    assert kinds == ["Return", "Ack"]


@pytest.mark.parametrize("persistent", [True, False], ids=["persistent", "transient"])
def test_confirms(h, persistent):
    frames = h.publish("", h.name, PERSISTENT if persistent else TRANSIENT)
    # Quorum queues and streams store every message; a classic queue only persistent ones;
    # a reply is never stored. What is stored is confirmed after the group commit only.
    stored = h.kind in ("quorum", "stream") or (h.kind == "classic" and persistent)
    if stored:
        assert _acks(frames) == []
        frames = h.sync()
    assert _acks(frames) == [("Ack", 1)]
