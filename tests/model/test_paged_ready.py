"""A deep durable queue keeps store ids, not messages (model/paged.py), and nothing about
its behaviour changes: order, bodies, redelivered flags, counters, requeue, purge,
restart, a switch to the featured path. Pure model over the disk store (no sockets), with
the paging thresholds made small; tests/e2e/test_deep_queue.py does it with aio-pika at the
real thresholds."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from pamqp.commands import Basic

from amqpbroker.core import BrokerCore
from amqpbroker.message import Message
from amqpbroker.model import paged, queue as queue_module
from amqpbroker.model.paged import PagedReady
from amqpbroker.protocol.properties import encode_properties
from amqpbroker.settings import Settings
from amqpbroker.store.disk import DiskDefinitionStore, DiskMessageStore
from amqpbroker.store.memory import MemoryMessageStore

PERSISTENT = encode_properties(Basic.Properties(delivery_mode=2))
TRANSIENT = encode_properties(Basic.Properties(content_type="text/plain"))


@pytest.fixture(autouse=True)
def small_pages(monkeypatch):
    monkeypatch.setattr(paged, "PAGE_AFTER", 100)
    monkeypatch.setattr(queue_module, "PAGE_AFTER", 100)
    monkeypatch.setattr(paged, "CHUNK", 32)
    monkeypatch.setattr(paged, "RUN_BYTES", 600)


def _open(data_dir: Path, store=None):
    store = store or DiskMessageStore(data_dir / "messages", sync=False, memory_budget=2048)
    core = BrokerCore(Settings(data_dir=None), store, DiskDefinitionStore(data_dir / "definitions"))
    core.recover()
    vhost = core.vhosts["/"]
    q = vhost.queues.get("deep") or vhost.declare_queue("deep", durable=True)
    return core, q


def _publish(core, q, n: int, start: int = 0, transient_every: int = 0) -> None:
    for i in range(start, start + n):
        transient = transient_every and i % transient_every == 0
        body = b"m%05d" % i + b"." * 30
        msg = Message("", "deep", TRANSIENT if transient else PERSISTENT, body, len(body),
                      not transient)
        q.publish(msg)
        if len(q.ready) > 50:  # the session's flow check: past FLOW_HIGH it asks deep()
            q.deep()
        if i % 50 == 0:
            core.store.sync()  # the group commit (pages bodies out past the budget)
    core.store.sync()


def _body(core, msg: Message) -> bytes:
    return msg.body if msg.body is not None else core.store.load_body(msg)


def _drain(core, q) -> list[bytes]:
    out = []
    while (got := q.get()) is not None:
        out.append(_body(core, got[0]))
        q.settle(got[0])
    return out


def _expected(n: int, start: int = 0) -> list[bytes]:
    return [b"m%05d" % i + b"." * 30 for i in range(start, start + n)]


def test_a_deep_queue_pages_and_delivers_in_order(tmp_path):
    core, q = _open(tmp_path)
    _publish(core, q, 1000)
    ready = q.ready
    assert isinstance(ready, PagedReady)
    assert len(ready) == q.message_count == 1000
    assert ready.paged > 700  # all but the resident head and the open tail
    assert q.ready_bytes == 1000 * 36 and q.persistent_count == 1000
    gc.collect()
    # the paged messages are gone from RAM: only ids and sizes are left
    assert sum(isinstance(o, Message) for o in gc.get_objects()) < 300
    assert _drain(core, q) == _expected(1000)
    assert q.ready_bytes == 0 and q.unacked_bytes == 0 and q.persistent_count == 0
    assert core.store.stats()["messages"] == 0
    core.close()


def test_publishes_while_paged_and_transients_keep_their_places(tmp_path):
    core, q = _open(tmp_path)
    _publish(core, q, 400, transient_every=7)
    first = []
    for _ in range(150):
        msg = q.get()[0]
        first.append(_body(core, msg))
        q.settle(msg)
    _publish(core, q, 400, start=400, transient_every=7)
    assert first + _drain(core, q) == _expected(800)
    core.close()


def test_requeued_messages_go_back_to_the_head_in_order(tmp_path):
    class Taker:
        tag, priority, exclusive, no_ack = "c", 0, False, False

        def __init__(self) -> None:
            self.held: list[Message] = []

        def can_take(self) -> bool:
            return len(self.held) < 60

        def deliver(self, queue, msg, redelivered) -> None:
            self.held.append(msg)

    core, q = _open(tmp_path)
    _publish(core, q, 500)
    taker = Taker()
    q.add_consumer(taker)
    assert len(taker.held) == 60 and q.message_count == 440
    q.remove_consumer(taker)
    q.return_unacked([(m, False, 0) for m in reversed(taker.held)])  # in any order
    got = []
    while (one := q.get()) is not None:
        got.append((_body(core, one[0]), one[1]))
        q.settle(one[0])
    assert [b for b, _ in got] == _expected(500)
    assert [r for _, r in got] == [True] * 60 + [False] * 440
    core.close()


def test_purge_removes_paged_messages_from_the_store(tmp_path):
    core, q = _open(tmp_path)
    _publish(core, q, 600, transient_every=11)
    assert isinstance(q.ready, PagedReady)
    assert q.purge() == 600
    assert q.message_count == 0 and q.ready_bytes == 0 and q.persistent_count == 0
    assert core.store.stats()["messages"] == 0
    _publish(core, q, 10)
    assert _drain(core, q) == _expected(10)
    core.close()


def test_a_restart_pages_the_recovered_backlog(tmp_path):
    core, q = _open(tmp_path)
    _publish(core, q, 700)
    out = [q.get() for _ in range(5)]  # marked delivered: redelivered after the restart
    core.store.sync()
    core.close()
    core, q = _open(tmp_path)
    assert isinstance(q.ready, PagedReady) and q.ready.paged > 400
    assert q.message_count == 700
    got = []
    while (one := q.get()) is not None:
        got.append((_body(core, one[0]), one[1]))
        q.settle(one[0])
    assert [b for b, _ in got] == _expected(700)
    assert [r for _, r in got] == [True] * 5 + [False] * 695
    assert out
    core.close()


def test_switching_to_the_featured_path_reads_every_message_back(tmp_path):
    core, q = _open(tmp_path)
    _publish(core, q, 500)
    assert isinstance(q.ready, PagedReady)
    q.enable_message_expiry()  # a message with an expiration reached the queue
    assert not isinstance(q.ready, PagedReady) and q.message_count == 500
    assert q.ready_bytes == 500 * 36
    assert _drain(core, q) == _expected(500)
    core.close()


def test_a_drained_queue_lets_its_paged_list_go(tmp_path):
    class Everything:
        tag, priority, exclusive, no_ack = "c", 0, False, False
        got: list[Message] = []

        def can_take(self) -> bool:
            return True

        def deliver(self, queue, msg, redelivered) -> None:
            self.got.append(msg)

    core, q = _open(tmp_path)
    _publish(core, q, 300)
    assert isinstance(q.ready, PagedReady)
    c = Everything()
    q.add_consumer(c)
    assert [_body(core, m) for m in c.got] == _expected(300)
    assert q.ready == ()  # the shared empty ready list of a queue without messages
    core.close()


def test_an_unreadable_paged_message_fails_like_a_paged_out_body(tmp_path):
    store = MemoryMessageStore()
    core, q = _open(tmp_path, store)
    _publish(core, q, 300)
    assert isinstance(q.ready, PagedReady)
    lost = q.ready.runs[0][0][0]
    store._msgs.pop(lost)  # the store cannot read it any more
    got = [q.get()[0] for _ in range(300)]
    gone = [m for m in got if m.store_id == lost]
    assert len(gone) == 1 and gone[0].body is None and gone[0].body_size == 36
    at = got.index(gone[0])
    assert [m.body for i, m in enumerate(got) if i != at] == [
        b for i, b in enumerate(_expected(300)) if i != at]
    core.close()
