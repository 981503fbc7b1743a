"""The store contract, run against the memory store and the disk store alike.

`reopen(store)` is a clean restart: for the disk store a new instance over the same
directory, for the memory store the very same object. Each test then calls `recover()`
once on what `reopen` returned, so the same test body holds both stores to one contract.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from amqpbroker.message import Message
from amqpbroker.store.base import DefinitionStore, MessageStore
from amqpbroker.store.disk import DiskDefinitionStore, DiskMessageStore
from amqpbroker.store.memory import MemoryDefinitionStore, MemoryMessageStore
from amqpbroker.store.records import RecoveredRefs, StoreError, scan


class Harness:
    def __init__(self, kind: str, directory: Path, **options: Any) -> None:
        self.kind = kind
        self.directory = directory
        self.options = {"sync": False, **options}

    def open(self) -> MessageStore:
        store = self._new()
        assert store.recover() == {}
        return store

    def _new(self) -> MessageStore:
        if self.kind == "memory":
            return MemoryMessageStore()
        return DiskMessageStore(self.directory, **self.options)

    def reopen(self, store: MessageStore) -> MessageStore:
        store.close()
        if self.kind == "memory":
            return store
        return self._new()


@pytest.fixture(params=["memory", "disk"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    return Harness(request.param, tmp_path / "msgs")


def make(body: bytes, rk: str = "rk", **kw: Any) -> Message:
    return Message(
        kw.pop("exchange", "amq.direct"), rk, kw.pop("properties", b"\x80\x00\x02"), body,
        len(body), kw.pop("persistent", True), kw.pop("priority", 0), kw.pop("expiration", None),
    )


def body_of(store: MessageStore, msg: Message) -> bytes:
    return msg.body if msg.body is not None else store.load_body(msg)


def bodies(store: MessageStore, state: dict[str, list[tuple[Message, bool]]]) -> dict[str, list[tuple[bytes, bool]]]:
    return {q: [(body_of(store, m), r) for m, r in lst] for q, lst in state.items() if lst}


def test_add_sync_recover_keeps_order_and_fields(harness: Harness) -> None:
    store = harness.open()
    msgs = [make(b"m%d" % i, rk=f"key.{i}", priority=i % 10, expiration=str(i) if i % 2 else None,
                 properties=bytes([i]) * (i % 7), persistent=i % 3 != 0) for i in range(50)]
    for m in msgs:
        store.add("/\x00q", m)
        assert m.store_id
    store.sync()
    store = harness.reopen(store)
    got = store.recover()["/\x00q"]
    assert [body_of(store, m) for m, _ in got] == [m.body for m in msgs]
    for (r, redelivered), m in zip(got, msgs):
        assert not redelivered
        assert (r.exchange, r.routing_key, r.properties, r.body_size, r.persistent, r.priority,
                r.expiration, r.store_id) == (m.exchange, m.routing_key, m.properties, m.body_size,
                                              m.persistent, m.priority, m.expiration, m.store_id)
    store.close()


def test_removed_messages_never_come_back(harness: Harness) -> None:
    store = harness.open()
    msgs = [make(b"x%d" % i) for i in range(20)]
    for m in msgs:
        store.add("q", m)
    store.sync()
    for m in msgs[::2]:
        store.remove("q", m)
    store.remove("q", msgs[0])  # twice: no-op
    store.remove("other", msgs[1])  # not there: no-op
    store.sync()
    store = harness.reopen(store)
    assert bodies(store, store.recover()) == {"q": [(m.body, False) for m in msgs[1::2]]}
    store.close()


def test_delivered_marks(harness: Harness) -> None:
    store = harness.open()
    a, b, c = make(b"a"), make(b"b"), make(b"c")
    for m in (a, b, c):
        store.add("q", m)
    store.mark_delivered("q", a)
    store.mark_delivered("q", b)
    store.mark_delivered("q", b)
    store.remove("q", b)
    store.mark_delivered("nope", c)
    store.sync()
    store = harness.reopen(store)
    state = store.recover()
    assert bodies(store, state) == {"q": [(b"a", True), (b"c", False)]}
    # marks and removes keep working on recovered messages, across another restart
    (ra, _), (rc, _) = state["q"]
    store.mark_delivered("q", rc)
    store.remove("q", ra)
    store.sync()
    store = harness.reopen(store)
    assert bodies(store, store.recover()) == {"q": [(b"c", True)]}
    store.close()


def test_fanout_removed_from_two_recovered_in_one(harness: Harness) -> None:
    store = harness.open()
    m = make(b"fan" * 100)
    for q in ("q1", "q2", "q3"):
        store.add(q, m)
    store.add("q2", m)  # same queue again: no-op
    sid = m.store_id
    store.sync()
    store.remove("q1", m)
    store.mark_delivered("q3", m)
    store.remove("q3", m)
    store.sync()
    store = harness.reopen(store)
    state = store.recover()
    assert bodies(store, state) == {"q2": [(m.body, False)]}
    assert state["q2"][0][0].store_id == sid
    store.remove("q2", state["q2"][0][0])
    store.sync()
    store = harness.reopen(store)
    assert bodies(store, store.recover()) == {}
    store.close()


def test_delete_queue(harness: Harness) -> None:
    store = harness.open()
    shared = make(b"shared")
    store.add("gone", shared)
    store.add("kept", shared)
    for i in range(10):
        m = make(b"g%d" % i)
        store.add("gone", m)
        if i == 3:
            store.mark_delivered("gone", m)
    store.sync()
    store.delete_queue("gone")
    store.delete_queue("never-existed")
    store.add("gone", make(b"reborn"))  # same name declared again
    store.sync()
    store = harness.reopen(store)
    assert bodies(store, store.recover()) == {"kept": [(b"shared", False)], "gone": [(b"reborn", False)]}
    store.close()


def test_message_added_to_another_queue_after_restart(harness: Harness) -> None:
    """Dead-lettering a recovered (paged-out) message: add to the new queue, then remove."""
    store = harness.open()
    store.add("q", make(b"dlx me"))
    store.sync()
    store = harness.reopen(store)
    (m, _), = store.recover()["q"]
    store.add("dlq", m)
    store.remove("q", m)
    store.sync()
    store = harness.reopen(store)
    assert bodies(store, store.recover()) == {"dlq": [(b"dlx me", False)]}
    store.close()


def test_queue_keys_are_opaque(harness: Harness) -> None:
    keys = ["/", "vhost/with/slashes\x00queue", "", "ünïcødé ✓ 🐇", "lone\udcffsurrogate", "a" * 3000]
    store = harness.open()
    for i, k in enumerate(keys):
        store.add(k, make(b"%d" % i))
    store.sync()
    store = harness.reopen(store)
    assert bodies(store, store.recover()) == {k: [(b"%d" % i, False)] for i, k in enumerate(keys)}
    store.close()


def test_bodies_of_any_size(harness: Harness) -> None:
    big = os.urandom(3 << 20)
    store = harness.open()
    for b in (b"", big, b"\xa7" * 1000):
        store.add("q", make(b))
    store.sync()
    store = harness.reopen(store)
    assert [b for b, _ in bodies(store, store.recover())["q"]] == [b"", big, b"\xa7" * 1000]
    store.close()


def test_load_body_after_page_out(harness: Harness) -> None:
    harness.options["memory_budget"] = 0
    store = harness.open()
    msgs = [make(os.urandom(100)) for _ in range(10)]
    expected = [m.body for m in msgs]
    for m in msgs:
        store.add("q", m)
    store.sync()
    assert [body_of(store, m) for m in msgs] == expected
    store = harness.reopen(store)
    assert [b for b, _ in bodies(store, store.recover())["q"]] == expected
    store.close()


def test_unsynced_operations_are_readable(harness: Harness) -> None:
    store = harness.open()
    m = make(b"not yet synced")
    store.add("q", m)
    body, m.body = m.body, None
    if harness.kind == "memory":
        m.body = body  # the memory store never pages out
    assert store.load_body(m) == b"not yet synced"
    store.close()


def test_sync_runs_concurrently_with_adds(harness: Harness) -> None:
    store = harness.open()
    stop = threading.Event()
    errors: list[BaseException] = []

    def syncer() -> None:
        try:
            while not stop.is_set():
                store.sync()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=syncer)
    t.start()
    kept = []
    try:
        for i in range(3000):
            m = make(b"c%d" % i)
            store.add("q", m)
            if i % 3:
                store.remove("q", m)
            else:
                kept.append(m.body)
    finally:
        stop.set()
        t.join()
    assert not errors
    store.sync()
    store = harness.reopen(store)
    assert [b for b, _ in bodies(store, store.recover())["q"]] == kept
    store.close()


def test_real_fsync(harness: Harness) -> None:
    harness.options["sync"] = True
    store = harness.open()
    for i in range(5):
        store.add("q", make(b"%d" % i))
        store.sync()
    store = harness.reopen(store)
    assert len(store.recover()["q"]) == 5
    store.close()


# -- random operations against a model, with restarts ---------------------------------


class StoreMachine(RuleBasedStateMachine):
    """Random add/fanout/remove/mark/delete_queue/sync/restart, compared to a plain model.

    The disk store runs with tiny segments so that rolling, garbage collection and
    compaction all happen; after each restart its bookkeeping must equal a fresh scan."""

    harness: Harness
    QUEUES = ["a", "b", "c/d"]

    def __init__(self) -> None:
        super().__init__()
        self.store = self.harness.open()
        self.model: dict[str, list[list[Any]]] = {q: [] for q in self.QUEUES}  # [body, marked]
        self.live: dict[bytes, Message] = {}
        self.n = 0

    def teardown(self) -> None:
        self.store.close()
        if self.harness.kind == "disk":
            for p in self.harness.directory.glob("*.seg"):
                p.unlink()

    def _entry(self, q: str, body: bytes) -> list[Any] | None:
        return next((e for e in self.model[q] if e[0] == body), None)

    @rule(queues=st.sets(st.sampled_from(QUEUES), min_size=1), size=st.integers(0, 600),
          kind=st.sampled_from(["persistent", "transient", "expiring"]))
    def publish(self, queues: set[str], size: int, kind: str = "persistent") -> None:
        self.n += 1
        m = make(b"%06d" % self.n + b"." * size, persistent=kind != "transient",
                 expiration="60000" if kind == "expiring" else None)
        for q in sorted(queues):
            self.store.add(q, m)
            self.model[q].append([m.body, False])
        self.live[m.body] = m

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def fanout_existing(self, data: st.DataObject) -> None:
        body = data.draw(st.sampled_from(sorted(self.live)))
        q = data.draw(st.sampled_from(self.QUEUES))
        if self._entry(q, body) is None:
            self.store.add(q, self.live[body])
            self.model[q].append([body, False])

    @precondition(lambda self: any(self.model.values()))
    @rule(data=st.data(), mark=st.booleans(), ack=st.booleans())
    def deliver(self, data: st.DataObject, mark: bool, ack: bool) -> None:
        q = data.draw(st.sampled_from([q for q in self.QUEUES if self.model[q]]))
        entry = data.draw(st.sampled_from(self.model[q]))
        msg = self.live[entry[0]]
        if mark:
            self.store.mark_delivered(q, msg)
            entry[1] = True
        if ack:
            self.store.remove(q, msg)
            self.model[q].remove(entry)
            if not any(self._entry(qq, entry[0]) for qq in self.QUEUES):
                del self.live[entry[0]]

    @rule(q=st.sampled_from(QUEUES))
    def delete_queue(self, q: str) -> None:
        self.store.delete_queue(q)
        for body, _ in self.model[q]:
            if not any(self._entry(qq, body) for qq in self.QUEUES if qq != q):
                del self.live[body]
        self.model[q] = []

    @rule()
    def sync(self) -> None:
        self.store.sync()

    @rule()
    def restart(self) -> None:
        self.store.sync()
        self.store = self.harness.reopen(self.store)
        state = self.store.recover()
        assert bodies(self.store, state) == {q: [tuple(e) for e in lst] for q, lst in self.model.items() if lst}
        self.live = {}
        for lst in state.values():
            for m, _ in lst:
                self.live[body_of(self.store, m)] = m
        if self.harness.kind == "disk":
            assert_consistent(self.store)

    @invariant()
    def bodies_readable(self) -> None:
        for body, m in list(self.live.items())[:5]:
            assert body_of(self.store, m) == body


def assert_consistent(store: Any) -> None:
    """The disk store's RAM bookkeeping equals what a fresh scan of its files rebuilds."""
    store.sync()
    fresh = scan(store._dir)
    with store._lock:
        on_disk = set(fresh.segments)
        assert {s: n for s, n in store._live_n.items() if s in on_disk} == fresh.live_n
        assert {s: n for s, n in store._live_b.items() if s in on_disk} == fresh.live_b
        assert store._msgs == fresh.msgs
        assert store._queues == {q: d for q, d in fresh.queues.items()}
    assert_lean_scan_agrees(store._dir, fresh)


def assert_lean_scan_agrees(directory: Path, full: Any) -> None:
    """A lean scan (queues as store ids, no Message objects) rebuilds the same bookkeeping
    as a full one, and the same queues: ids in the same order, redelivered flags, sizes."""
    lean = scan(directory, lean=True)
    assert lean.msgs == full.msgs and lean.queues == full.queues
    assert lean.live_n == full.live_n and lean.live_b == full.live_b
    assert lean.pairs == full.pairs and lean.qdels == full.qdels and lean.reloc == full.reloc
    assert set(lean.result) == set(full.result)
    for q, entries in full.result.items():
        refs = lean.result[q]
        assert isinstance(refs, RecoveredRefs)
        assert refs.store_ids() == [m.store_id for m, _ in entries]
        assert [bool(i >> 63) for i in refs.ids] == [r for _, r in entries]
        assert list(refs.sizes) == [m.body_size for m, _ in entries]
        assert refs.expiring == any(m.expiration is not None for m, _ in entries)
        assert refs.transient == any(not m.persistent for m, _ in entries)


@pytest.mark.parametrize("kind", ["memory", "disk"])
def test_random_operations_with_restarts(kind: str, tmp_path: Path) -> None:
    class Machine(StoreMachine):
        harness = Harness(kind, tmp_path / "machine", segment_size=2048, memory_budget=4096)

    Machine.TestCase.settings = settings(
        max_examples=60 if kind == "disk" else 30, stateful_step_count=40, deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    Machine.TestCase().runTest()


# -- definitions ------------------------------------------------------------------------


@pytest.fixture(params=["memory", "disk"])
def defs(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], DefinitionStore]:
    if request.param == "memory":
        store = MemoryDefinitionStore()
        return lambda: store
    return lambda: DiskDefinitionStore(tmp_path / "defs")


def test_definitions_round_trip_and_compaction(defs: Callable[[], DefinitionStore]) -> None:
    ops = [
        {"op": "exchange.declare", "vhost": "/", "name": "ex", "type": "topic", "durable": True},
        {"op": "queue.declare", "vhost": "/", "name": "q\x00ü/", "durable": True, "arguments": {"x-max-length": 10}},
        {"op": "queue.bind", "vhost": "/", "queue": "q", "exchange": "ex", "routing_key": "#", "arguments": {}},
        {"op": "queue.delete", "vhost": "/", "name": "q"},
    ]
    store = defs()
    assert store.load() == []
    for op in ops:
        store.append(op)
    assert store.load() == ops
    store.close()
    store = defs()
    assert store.load() == ops
    store.compact(ops[:1])
    store.append(ops[1])
    store.close()
    store = defs()
    assert store.load() == ops[:2]
    with pytest.raises(TypeError):
        store.append({"op": "bad", "value": object()})
    assert store.load() == ops[:2]
    store.close()


def test_store_error_is_an_exception() -> None:
    assert issubclass(StoreError, Exception)


def test_load_message_by_store_id_before_and_after_restart(harness: Harness) -> None:
    """Delayed messages are kept as ids only (store/delayed.py): load_message must give
    back every field and the body, from RAM, from the write buffer and from disk."""
    store = harness.open()
    msgs = [make(b"body%d" % i * (i + 1), rk=f"k{i}", expiration="60000" if i % 2 else None,
                 properties=b"\x80\x00\x02", persistent=bool(i % 3), priority=i)
            for i in range(6)]
    for m in msgs:
        m.enqueued_ms = 1_700_000_000_000 + m.priority
        store.add("\x01delayed\x00/\x00dx", m)
        store.release_body(m)  # as the delayed index does
    ids = [m.store_id for m in msgs]

    def check(s: MessageStore) -> None:
        for sid, m in zip(ids, msgs):
            got = s.load_message(sid)
            assert (got.exchange, got.routing_key, got.properties, got.body, got.body_size,
                    got.persistent, got.priority, got.expiration, got.store_id,
                    got.enqueued_ms) == (m.exchange, m.routing_key, m.properties, m.body,
                                         m.body_size, m.persistent, m.priority,
                                         m.expiration, sid, m.enqueued_ms)

    check(store)  # before any sync
    store.sync()
    check(store)
    store = harness.reopen(store)
    store.recover()
    check(store)
    store.remove("\x01delayed\x00/\x00dx", msgs[0])
    with pytest.raises(StoreError):
        store.load_message(ids[0])
    store.close()


def test_index_keys_recover_as_ints_and_load_in_batches(harness: Harness) -> None:
    """Index keys (the delayed messages' timer keys): `time << 64 | store_id` per message
    instead of Message objects; `load_messages` reads many by id, errors in place."""
    prefix = "\x01idx\x00"
    store = harness.open()
    msgs = []
    for i in range(6):
        m = make(b"body%d" % i * 40, rk=f"k{i}", expiration="5" if i == 2 else None)
        m.enqueued_ms = 1_700_000_000_000 + 10 * i
        store.add(prefix + ("a" if i % 2 else "b"), m)
        store.release_body(m)
        msgs.append(m)
    plain = make(b"plain")
    store.add("/\x00q", plain)
    store.remove(prefix + "a", msgs[1])
    store.sync()
    store = harness.reopen(store)
    store.index_keys(prefix)
    assert bodies(store, store.recover()) == {"/\x00q": [(b"plain", False)]}
    index = store.recovered_index()
    expect = {prefix + "b": [0, 2, 4], prefix + "a": [3, 5]}
    assert {k: sorted(v) for k, v in index.items()} == {
        k: [(msgs[i].enqueued_ms << 64) | msgs[i].store_id for i in ids]
        for k, ids in expect.items()}
    ids = [msgs[i].store_id for i in (5, 0, 4, 2, 3)]
    got = store.load_messages(ids + [msgs[1].store_id])
    assert [(m.body, m.routing_key, m.expiration, m.store_id) for m in got[:5]] == [
        (msgs[i].body, msgs[i].routing_key, msgs[i].expiration, msgs[i].store_id)
        for i in (5, 0, 4, 2, 3)]
    assert isinstance(got[5], StoreError)
    store.remove(prefix + "b", msgs[0])
    assert isinstance(store.load_messages([msgs[0].store_id])[0], StoreError)
    if harness.kind == "disk":
        assert_consistent(store)
    store.close()
