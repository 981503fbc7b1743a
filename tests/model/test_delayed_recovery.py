"""Delayed messages at startup: the timer index comes back from the store as ints (no
Message per pending delay), and data dirs of the first format still recover."""

import gc
import shutil
from pathlib import Path

from pamqp.commands import Basic

from amqpbroker.clock import ManualScheduler
from amqpbroker.core import BrokerCore
from amqpbroker.message import Message
from amqpbroker.model.delayed_store import DELAYED_PREFIX, LEGACY_PREFIX
from amqpbroker.protocol.properties import encode_properties
from amqpbroker.settings import Settings
from amqpbroker.store.disk import DiskDefinitionStore, DiskMessageStore
from amqpbroker.store.records import scan

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "datadir-delayed-legacy"
WALL = 1_700_000_000.0  # the fixture's clock (tests/fixtures/make_delayed_datadir.py)


def _msg(body: bytes, delay: int, key: str = "k") -> Message:
    props = encode_properties(Basic.Properties(headers={"x-delay": delay}, delivery_mode=2))
    return Message("dx", key, props, body, len(body), True)


def _open(data_dir: Path, **store_options):
    store = DiskMessageStore(data_dir / "messages", sync=False, **store_options)
    sched = ManualScheduler(wall_start=WALL)
    core = BrokerCore(Settings(data_dir=None), store, DiskDefinitionStore(data_dir / "definitions"),
                      scheduler=sched)
    core.recover()
    return core, sched, core.vhosts["/"]


def _bodies(core, q) -> list[bytes]:
    out = []
    for e in q.ready:
        m = e[0] if isinstance(e, tuple) else e
        out.append(m.body if m.body is not None else core.store.load_body(m))
    return out


def _setup(vhost):
    ex = vhost.declare_exchange("dx", "x-delayed-message", durable=True,
                                arguments={"x-delayed-type": "direct"})
    q = vhost.declare_queue("q", durable=True)
    vhost.bind(q, "dx", "k")
    return ex, q


def test_restart_recovers_the_index_without_message_objects(tmp_path):
    core, sched, vhost = _open(tmp_path)
    ex, q = _setup(vhost)
    n = 300
    for i in range(n):  # due in a shuffled order, 20 s .. 320 s
        delay = 20_000 + (i * 7919) % n * 1000
        vhost.delayed.hold(ex, _msg(b"m%d" % i, delay), delay)
    sched.advance(25)  # the first few fire before the restart
    fired = q.message_count
    assert 0 < fired < n
    core.store.sync()
    core.close()

    store = DiskMessageStore(tmp_path / "messages", sync=False)
    store.index_keys(DELAYED_PREFIX)
    gc.collect()
    before = sum(isinstance(o, Message) for o in gc.get_objects())
    result = store.recover()
    index = store.recovered_index()
    assert sum(isinstance(o, Message) for o in gc.get_objects()) - before == fired
    assert list(index) == [DELAYED_PREFIX + "/\x00dx"]
    (entries,) = index.values()
    assert len(entries) == n - fired and all(isinstance(e, int) for e in entries)
    assert all(not k.startswith("\x01") for k in result)
    # the store's bookkeeping is what a full scan (no index keys) rebuilds
    full = scan(tmp_path / "messages")
    assert store._msgs == full.msgs and store._queues == full.queues
    assert store._live_n == full.live_n and store._live_b == full.live_b
    store.close()

    core, sched, vhost = _open(tmp_path)
    ex, q = vhost.exchanges["dx"], vhost.queues["q"]
    assert vhost.delayed.count(ex) == n - fired and q.message_count == fired
    sched.advance(400)
    assert vhost.delayed.count(ex) == 0
    expected = sorted(range(n), key=lambda i: (i * 7919) % n)
    assert _bodies(core, q) == [b"m%d" % i for i in expected]
    core.store.sync()
    core.close()
    core, sched, vhost = _open(tmp_path)  # fired ones are queue messages of their own now
    assert vhost.delayed.count(vhost.exchanges["dx"]) == 0
    assert _bodies(core, vhost.queues["q"]) == [b"m%d" % i for i in expected]
    core.close()


def test_compacted_delayed_records_recover(tmp_path):
    """Small segments: firing most messages leaves segments mostly dead, so compaction
    copies pending delayed records; a restart must find every one once, at its copy."""
    core, sched, vhost = _open(tmp_path, segment_size=4096)
    ex, q = _setup(vhost)
    for i in range(200):
        delay = 1_000 if i % 10 else 600_000 + i
        vhost.delayed.hold(ex, _msg(b"x" * 50 + b"%d" % i, delay), delay)
        if i % 20 == 19:
            core.store.sync()
    sched.advance(2)
    for _ in range(5):
        core.store.sync()
    assert core.store.stats()["compactions"] > 0
    core.close()
    core, sched, vhost = _open(tmp_path, segment_size=4096)
    full = scan(tmp_path / "messages")
    assert core.store._msgs == full.msgs and core.store._queues == full.queues
    assert vhost.delayed.count(vhost.exchanges["dx"]) == 20
    sched.advance(700)
    assert _bodies(core, vhost.queues["q"])[-20:] == [b"x" * 50 + b"%d" % i
                                                      for i in range(0, 200, 10)]
    core.close()


def test_first_format_data_dir_recovers_and_fires(tmp_path):
    """tests/fixtures/datadir-delayed-legacy was written by the first release."""
    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data)
    core, sched, vhost = _open(data)
    ex, q = vhost.exchanges["dx"], vhost.queues["q"]
    assert vhost.delayed.count(ex) == 5
    assert _bodies(core, q) == [b"early"]  # a queue reference to an old delayed record
    vhost.delayed.hold(ex, _msg(b"new", 61_500), 61_500)  # today's format, same exchange
    sched.advance(59)
    assert q.message_count == 1
    sched.advance(10)
    assert _bodies(core, q) == [b"early", b"m0", b"m1", b"new", b"m2", b"m3", b"m4"]
    fired = [e[0] if isinstance(e, tuple) else e for e in q.ready][1]
    assert fired.headers["x-delay"] == -60_000
    assert core.store.stats()["queues"] == 1  # both delayed keys are empty
    core.store.sync()
    core.close()
    core, sched, vhost = _open(data)
    assert vhost.delayed.count(vhost.exchanges["dx"]) == 0
    assert _bodies(core, vhost.queues["q"]) == [b"early", b"m0", b"m1", b"new", b"m2",
                                                b"m3", b"m4"]
    core.close()


def test_first_format_and_current_records_together_survive_a_restart(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data)
    core, sched, vhost = _open(data)
    ex = vhost.exchanges["dx"]
    vhost.delayed.hold(ex, _msg(b"new", 59_500), 59_500)
    core.store.sync()
    core.close()
    core, sched, vhost = _open(data)
    ex, q = vhost.exchanges["dx"], vhost.queues["q"]
    assert vhost.delayed.count(ex) == 6
    keys = set(core.store._queues)
    assert LEGACY_PREFIX + "/\x00dx" in keys and DELAYED_PREFIX + "/\x00dx" in keys
    sched.advance(70)
    assert _bodies(core, q) == [b"early", b"new", b"m0", b"m1", b"m2", b"m3", b"m4"]
    vhost.delete_exchange("dx")
    core.store.sync()
    assert core.store.stats()["queues"] == 1
    core.close()
