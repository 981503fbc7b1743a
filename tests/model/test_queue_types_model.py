"""Queue types in the model (issues 10 and 11): which class a declaration builds, the
quorum queue's two-priority ready list, TTL on it, equivalence by type (a missing
x-queue-type is classic), detached streams for store-less vhosts, and YAML topology."""

from __future__ import annotations

from typing import Any

import pytest
from pamqp import commands

from amqpbroker import errors
from amqpbroker.clock import ManualScheduler
from amqpbroker.config import ConfigError, load_config
from amqpbroker.message import Message
from amqpbroker.model.quorum import QuorumReady, quorum_config
from amqpbroker.model.stream import StreamQueue
from amqpbroker.model.vhost import VirtualHost
from amqpbroker.protocol.properties import scan_properties
from amqpbroker.broker.changes import ChangeStream
from amqpbroker.store.memory import MemoryMessageStore

QUORUM = {"x-queue-type": "quorum"}


def message(body: bytes, **props: Any) -> Message:
    raw = commands.Basic.Properties(**props).marshal()
    delivery_mode, priority, expiration = scan_properties(raw)
    return Message("", "q", raw, body, len(body), delivery_mode == 2, priority, expiration)


@pytest.fixture
def clock() -> ManualScheduler:
    return ManualScheduler()


@pytest.fixture
def vh(clock: ManualScheduler) -> VirtualHost:
    return VirtualHost("/", ChangeStream(MemoryMessageStore(), None), scheduler=clock)


def test_quorum_ready_returns_first_then_high_two_to_one():
    ready = QuorumReady()
    store_id = iter(range(1, 100))

    def entry(body: bytes, priority: int = 0) -> tuple:
        msg = message(body, priority=priority)
        msg.store_id = next(store_id)
        return (msg, False, None, 0, 0)

    for e in (entry(b"n0"), entry(b"n1"), entry(b"h0", 5), entry(b"h1", 6), entry(b"h2", 9)):
        ready.append(e)
    ready.put_back([entry(b"r0")])
    assert len(ready) == 6 and [e[0].body for e in ready][:1] == [b"r0"]
    got = []
    while ready:
        head = ready[0]
        popped = ready.popleft()
        assert popped is head
        got.append(popped[0].body)
    assert got == [b"r0", b"h0", b"h1", b"n0", b"h2", b"n1"]
    with pytest.raises(IndexError):
        ready.popleft()


def test_quorum_queue_config_defaults_and_fallbacks():
    config = quorum_config({})
    assert config.delivery_limit == 20 and config.two_priorities
    assert quorum_config({"x-delivery-limit": -1}).delivery_limit is None
    assert quorum_config({"x-delivery-limit": 0}).delivery_limit == 0
    assert quorum_config({"x-overflow": "reject-publish-dlx", "x-max-length": 1}).overflow == \
        "drop-head"
    assert quorum_config({"x-overflow": "reject-publish", "x-max-length": 1}).overflow == \
        "reject-publish"


def test_quorum_queue_stores_every_message_and_expires_heads(vh, clock):
    q = vh.declare_queue("qq", durable=True, arguments={**QUORUM, "x-message-ttl": 100})
    assert q.is_quorum and q.persist_all and q.features is not None
    q.publish(message(b"transient", delivery_mode=1))
    assert vh.changes.store.recover()["/\x00qq"][0][0].body == b"transient"
    got = q.get()
    assert got is not None and not got[0].persistent  # delivered as published
    q.settle(got[0])
    assert "/\x00qq" not in vh.changes.store.recover()
    q.publish(message(b"old", priority=9))
    clock.advance(0.2)
    assert q.message_count == 0 and q.get() is None


def test_queue_types_and_equivalence(vh):
    assert not vh.declare_queue("c").is_quorum
    vh.declare_queue("c", arguments={"x-queue-type": "classic"})
    vh.declare_queue("typed", arguments={"x-queue-type": "classic"})
    vh.declare_queue("typed")
    vh.declare_queue("qq", durable=True, arguments=QUORUM)
    vh.declare_queue("qq", durable=True, arguments={**QUORUM, "x-max-priority": 5})  # not compared
    with pytest.raises(errors.PreconditionFailed) as exc:
        vh.declare_queue("qq", durable=True, arguments={**QUORUM, "x-delivery-limit": 5})
    assert "inequivalent arg 'x-delivery-limit' for queue 'qq'" in exc.value.text
    with pytest.raises(errors.PreconditionFailed) as exc:
        vh.declare_queue("c", arguments=QUORUM)
    assert "inequivalent arg 'x-queue-type'" in exc.value.text
    with pytest.raises(errors.NotImplemented_):
        vh.delete_queue("qq", if_empty=True)
    assert vh.delete_queue("qq") == 0


def test_streams_without_files_for_store_less_vhosts():
    vh = VirtualHost("/")  # config checks and offline tools: no StreamRegistry
    q = vh.declare_queue("s", durable=True, arguments={"x-queue-type": "stream"})
    assert isinstance(q, StreamQueue) and q.log is None and q.message_count == 0
    vh.declare_queue("s", durable=True, arguments={"x-queue-type": "stream"})
    assert vh.delete_queue("s") == 0 and q.deleted


def test_yaml_topology_takes_rabbitmq_queue_types():
    config = load_config("queues:\n"
                         "  - {name: qq, type: quorum}\n"
                         "  - {name: s, type: stream, arguments: {x-max-age: 1D}}\n"
                         "  - {name: c, arguments: {x-queue-type: classic}}\n")
    args = {q.name: q.arguments for q in config.queues}
    assert args == {"qq": {"x-queue-type": "quorum"},
                    "s": {"x-max-age": "1D", "x-queue-type": "stream"},
                    "c": {"x-queue-type": "classic"}}
    with pytest.raises(ConfigError) as exc:
        load_config("queues: [{name: f, type: fifo}]\n")
    assert "must be one of: classic, quorum, stream" in str(exc.value)


def test_one_argument_table_per_queue_type():
    """model/arguments.py is the one public way to each type's argument checks."""
    from amqpbroker.model.arguments import table

    classic, quorum, stream = (dict(table(t)) for t in ("classic", "quorum", "stream"))
    assert "x-max-priority" in classic and "x-max-priority" not in quorum
    assert "x-delivery-limit" in quorum and "x-max-age" in stream
    assert stream["x-max-age"]("7D", {}) is None and stream["x-max-age"]("7W", {}) is not None
    assert classic["x-max-length"](-1, {}) is not None and classic["x-max-length"](1, {}) is None
    with pytest.raises(KeyError):
        table("mqtt")
