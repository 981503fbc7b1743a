"""Delayed messages in the model: a manual clock, the memory and disk stores."""

import pytest
from pamqp.commands import Basic

from amqpbroker import errors
from amqpbroker.clock import ManualScheduler
from amqpbroker.core import BrokerCore
from amqpbroker.model.delayed import delay_of
from amqpbroker.model.message import Message
from amqpbroker.protocol.properties import encode_properties
from amqpbroker.settings import Settings
from amqpbroker.store.disk import DiskDefinitionStore, DiskMessageStore
from amqpbroker.store.memory import MemoryDefinitionStore, MemoryMessageStore


def _msg(exchange, key, delay, body=b"x", headers=None, persistent=True):
    h = dict(headers or {})
    if delay is not None:
        h["x-delay"] = delay
    props = encode_properties(Basic.Properties(headers=h, delivery_mode=2 if persistent else 1))
    return Message(exchange, key, props, body, len(body), persistent)


def _core(store=None, defs=None):
    sched = ManualScheduler()
    core = BrokerCore(Settings(data_dir=None), store or MemoryMessageStore(),
                      defs or MemoryDefinitionStore(), scheduler=sched)
    core.recover()
    return core, sched, core.vhosts["/"]


@pytest.mark.parametrize("value,expected", [
    (5000, 5000), ("250", 250), (bytearray(b"250"), 250), (1.9, 1), (0, 0), (-5, 0), (True, 0),
    ("soon", 0), (2**32 - 1, 2**32 - 1), (2**32, 0), (None, 0),
])
def test_delay_header_values_as_the_plugin_reads_them(value, expected):
    assert delay_of(_msg("x", "", value)) == expected


@pytest.mark.parametrize("inner,key,bind_key,args", [
    ("direct", "k", "k", None),
    ("fanout", "whatever", "", None),
    ("topic", "a.b.c", "a.#", None),
    ("headers", "", "", {"x-match": "all", "kind": "A"}),
])
def test_each_delayed_type_routes_when_due(inner, key, bind_key, args):
    core, sched, vhost = _core()
    ex = vhost.declare_exchange("dx", "x-delayed-message", durable=True,
                                arguments={"x-delayed-type": inner})
    assert ex.type == "x-delayed-message" and ex.delays
    q = vhost.declare_queue("q", durable=True)
    vhost.bind(q, "dx", bind_key, args)
    vhost.delayed.hold(ex, _msg("dx", key, 1500, headers={"kind": "A"}), 1500)
    assert vhost.delayed.count(ex) == 1 and q.message_count == 0
    sched.advance(1.4)
    assert q.message_count == 0
    sched.advance(0.2)
    assert q.message_count == 1 and vhost.delayed.count(ex) == 0
    delivered = q.ready[0][0] if isinstance(q.ready[0], tuple) else q.ready[0]
    assert delivered.headers["x-delay"] == -1500  # the plugin's "already delayed" mark


def test_fires_in_due_order_not_publish_order():
    core, sched, vhost = _core()
    ex = vhost.declare_exchange("dx", "x-delayed-message", arguments={"x-delayed-type": "direct"})
    q = vhost.declare_queue("q")
    vhost.bind(q, "dx", "k")
    for i, delay in enumerate([3000, 1000, 2000, 1000, 500]):
        vhost.delayed.hold(ex, _msg("dx", "k", delay, body=b"%d" % i), delay)
    sched.advance(5)
    bodies = [(e[0] if isinstance(e, tuple) else e).body for e in q.ready]
    assert bodies == [b"4", b"1", b"3", b"2", b"0"]


def test_missing_or_unknown_delayed_type_is_refused():
    core, sched, vhost = _core()
    with pytest.raises(errors.PreconditionFailed, match="x-delayed-type"):
        vhost.declare_exchange("dx", "x-delayed-message")
    with pytest.raises(errors.PreconditionFailed, match="invalid exchange type 'nope'"):
        vhost.declare_exchange("dx", "x-delayed-message", arguments={"x-delayed-type": "nope"})


def test_deleting_the_exchange_drops_its_delayed_messages():
    core, sched, vhost = _core()
    ex = vhost.declare_exchange("dx", "x-delayed-message", durable=True,
                                arguments={"x-delayed-type": "fanout"})
    q = vhost.declare_queue("q", durable=True)
    vhost.bind(q, "dx", "")
    vhost.delayed.hold(ex, _msg("dx", "", 1000), 1000)
    vhost.delete_exchange("dx")
    sched.advance(2)
    assert q.message_count == 0
    assert core.store.stats()["messages"] == 0


def test_lavinmq_x_delayed_exchange_argument():
    core, sched, vhost = _core()
    ex = vhost.declare_exchange("lx", "topic", arguments={"x-delayed-exchange": True})
    assert ex.type == "topic" and ex.delays
    plain = vhost.declare_exchange("px", "topic")
    assert not plain.delays


def test_durable_delayed_messages_survive_a_restart_on_disk(tmp_path):
    def open_core():
        store = DiskMessageStore(tmp_path / "m", sync=False)
        return _core(store, DiskDefinitionStore(tmp_path / "d"))

    core, sched, vhost = open_core()
    ex = vhost.declare_exchange("dx", "x-delayed-message", durable=True,
                                arguments={"x-delayed-type": "direct"})
    q = vhost.declare_queue("q", durable=True)
    vhost.bind(q, "dx", "k")
    for i in range(5):
        vhost.delayed.hold(ex, _msg("dx", "k", 60_000 + i, body=b"m%d" % i), 60_000 + i)
    core.store.sync()
    core.close()

    core, sched, vhost = open_core()
    ex = vhost.exchanges["dx"]
    assert vhost.delayed.count(ex) == 5
    q = vhost.queues["q"]
    sched.advance(61)
    assert q.message_count == 5
    bodies = []
    for e in q.ready:
        m = e[0] if isinstance(e, tuple) else e
        bodies.append(m.body if m.body is not None else core.store.load_body(m))
    assert bodies == [b"m0", b"m1", b"m2", b"m3", b"m4"]
    core.store.sync()
    core.close()
    core, sched, vhost = open_core()  # routed: in the queue, no longer delayed
    assert vhost.delayed.count(vhost.exchanges["dx"]) == 0
    assert vhost.queues["q"].message_count == 5
    core.close()


def test_header_field_read_and_replace_keep_other_headers_byte_identical():
    from amqpbroker.protocol import header_field
    from amqpbroker.protocol.properties import decode_properties

    headers = {"a": "text", "x-delay": 1500, "n": {"nested": [1, "two"]}, "z": 3.5,
               "raw": bytearray(b"\x00\x01")}
    props = encode_properties(Basic.Properties(headers=headers, content_type="text/plain",
                                               message_id="m-1"))
    assert header_field.read(props, "x-delay") == 1500
    assert header_field.read(props, "a") == "text"
    assert header_field.read(props, "missing") is None
    for value in (-1500, -(2**32 - 1)):
        swapped = header_field.replace_int(props, "x-delay", value)
        p = decode_properties(swapped)
        assert p.headers == {**headers, "x-delay": value}
        assert (p.content_type, p.message_id) == ("text/plain", "m-1")
    assert header_field.read(encode_properties(Basic.Properties()), "x-delay") is None
    with pytest.raises(ValueError):
        header_field.find(props[:-3], "zzz")
