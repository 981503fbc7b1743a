"""The queues' running totals match a brute-force recount (pure model, no sockets).

The management API lists queues from totals each queue keeps where messages enter and
leave it (`ready_bytes`, `unacked_bytes`, `persistent_count`, `persistent_bytes`, next to
the ready list and the `unacked` count), so a listing costs O(queues), never a scan of
the messages. Here random sequences of publish, deliver (ack and no-ack consumers), get,
ack, reject, nack/requeue, consumer cancel, purge, TTL expiry, dead lettering, max-length
drops, reject-publish overflow and delivery limits run on classic, featured, priority and
quorum queues, and after every step each total is recomputed from scratch: ready bytes
from the ready entries, unacked bytes from what the test's consumers hold, persistent
figures from the store-side record of the durable changes. Property-style, bounded:
fixed seeds, a few hundred steps each.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from pamqp import commands

from amqpbroker.clock import ManualScheduler
from amqpbroker.message import Message
from amqpbroker.model.deadletter import Rejected
from amqpbroker.model.queue import Queue
from amqpbroker.model.vhost import VirtualHost
from amqpbroker.protocol.properties import scan_properties


class Changes:
    """The store's view of durable message changes: which messages each queue keeps."""

    def __init__(self) -> None:
        self.kept: dict[str, dict[int, Message]] = {}
        self.next_id = 0

    def add(self, queue_key: str, msg: Message) -> None:
        if not msg.store_id:  # as a store does; copies (x-delivery-count) keep the id
            self.next_id += 1
            msg.store_id = self.next_id
        held = self.kept.setdefault(queue_key, {})
        assert msg.store_id not in held, "a message stored twice for one queue"
        held[msg.store_id] = msg

    def remove(self, queue_key: str, msg: Message) -> None:
        held = self.kept.get(queue_key, {})
        assert held.pop(msg.store_id, None) is not None, "removed a message never stored"

    def mark_delivered(self, queue_key: str, msg: Message) -> None:
        pass

    def delete_queue(self, queue_key: str) -> None:
        self.kept.pop(queue_key, None)

    def definition(self, op: dict[str, Any]) -> None:
        pass


class Holder:
    """A consumer: the queue settles a no-ack one's deliveries as it hands them out; the
    others hold their deliveries until the test acks, rejects or returns them."""

    def __init__(self, tag: str, no_ack: bool, prefetch: int) -> None:
        self.tag, self.priority, self.exclusive = tag, 0, False
        self.no_ack, self.prefetch = no_ack, prefetch
        self.held: list[Message] = []

    def can_take(self) -> bool:
        return not self.prefetch or len(self.held) < self.prefetch

    def deliver(self, queue: Queue, msg: Message, redelivered: bool) -> None:
        if not self.no_ack:
            self.held.append(msg)

    def queue_deleted(self, queue: Queue) -> None:
        pass


QUEUES: dict[str, tuple[bool, dict[str, Any]]] = {
    "plain": (True, {}),
    "transient": (False, {}),
    "ttl": (True, {"x-message-ttl": 200, "x-dead-letter-exchange": "",
                   "x-dead-letter-routing-key": "dead"}),
    "maxlen": (True, {"x-max-length": 4, "x-dead-letter-exchange": "",
                      "x-dead-letter-routing-key": "dead"}),
    "maxbytes": (True, {"x-max-length-bytes": 300, "x-overflow": "reject-publish"}),
    "priority": (True, {"x-max-priority": 3}),
    "quorum": (True, {"x-queue-type": "quorum", "x-delivery-limit": 2,
                      "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dead"}),
    "dead": (True, {}),
}


def message(rng: random.Random, routing_key: str) -> Message:
    body = bytes(rng.randrange(0, 120))
    props: dict[str, Any] = {}
    if rng.random() < 0.5:
        props["delivery_mode"] = 2
    if rng.random() < 0.2:
        props["priority"] = rng.randrange(0, 4)
    if rng.random() < 0.1:
        props["expiration"] = str(rng.choice((0, 50, 500)))
    raw = commands.Basic.Properties(**props).marshal()
    delivery_mode, priority, expiration = scan_properties(raw)
    return Message("", routing_key, raw, body, len(body), delivery_mode == 2, priority,
                   expiration)


class World:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.clock = ManualScheduler()
        self.changes = Changes()
        self.vh = VirtualHost("/", self.changes, self.clock)
        self.queues: dict[str, Queue] = {}
        for name, (durable, args) in QUEUES.items():
            self.queues[name] = self.vh.declare_queue(name, durable=durable,  # type: ignore[assignment]
                                                      arguments=dict(args))
        self.consumers: dict[str, list[Holder]] = {name: [] for name in QUEUES}
        self.gets: dict[str, list[Message]] = {name: [] for name in QUEUES}  # basic.get held
        self.n = 0
        self.dead_lettered = 0  # messages that reached `dead` by dead lettering
        dead = self.queues["dead"]
        publish = dead.publish

        def arrive(msg: Message) -> None:
            self.dead_lettered += 1
            publish(msg)

        dead.publish = arrive  # type: ignore[method-assign]
        self.publish_directly = publish

    # -- the operations a client (through the session layer) can cause ----------------------
    def step(self) -> None:
        rng = self.rng
        name = rng.choice(list(QUEUES))
        q = self.queues[name]
        op = rng.choices(["publish", "consume", "cancel", "ack", "reject", "requeue", "get",
                          "purge", "time"], [30, 3, 2, 12, 4, 5, 5, 1, 4])[0]
        if op == "publish":
            for _ in range(rng.randrange(1, 6)):
                msg = message(rng, name)
                if msg.expiration is not None and q.features is None:
                    q.enable_message_expiry()  # what Session.publish does for a message TTL
                try:
                    (self.publish_directly if name == "dead" else q.publish)(msg)
                except Rejected:  # x-overflow=reject-publish
                    pass
        elif op == "consume" and len(self.consumers[name]) < 2:
            self.n += 1
            c = Holder(f"c{self.n}", no_ack=rng.random() < 0.3, prefetch=rng.choice((0, 1, 3)))
            self.consumers[name].append(c)
            q.add_consumer(c)
        elif op == "cancel" and self.consumers[name]:
            c = self.consumers[name].pop(rng.randrange(len(self.consumers[name])))
            q.remove_consumer(c)
            held, c.held = c.held, []
            if held:
                q.return_unacked([(m, True) for m in held])
            q.dispatch()
        elif op in ("ack", "reject", "requeue"):
            taken = self._take(name)
            if not taken:
                return
            if op == "ack":
                for msg in taken:
                    q.settle(msg)
                q.dispatch()
            elif op == "reject":  # reject/nack requeue=false: dead-lettered where configured
                for msg in taken:
                    q.reject(msg)
                    q.dispatch()
            else:
                q.return_unacked([(m, True) for m in taken])
        elif op == "get":
            got = q.get()
            if got is not None:
                if rng.random() < 0.3:  # no_ack get: settled at once
                    q.settle(got[0])
                else:
                    self.gets[name].append(got[0])
        elif op == "purge":
            q.purge()
        elif op == "time":
            self.clock.advance(rng.choice((0.01, 0.1, 0.3)))

    def _take(self, name: str) -> list[Message]:
        """Some outstanding deliveries of one queue (from a consumer or basic.get)."""
        pools = [c.held for c in self.consumers[name] if c.held]
        if self.gets[name]:
            pools.append(self.gets[name])
        if not pools:
            return []
        pool = self.rng.choice(pools)
        k = self.rng.randrange(1, len(pool) + 1)
        taken = pool[:k]
        del pool[:k]
        return taken

    # -- the brute-force recount ---------------------------------------------------------
    def check(self) -> None:
        for name, q in self.queues.items():
            outstanding = [m for c in self.consumers[name] for m in c.held] + self.gets[name]
            ready = [entry[0] for entry in q.ready]
            assert q.ready_bytes == sum(m.body_size for m in ready), name
            assert q.unacked == len(outstanding), name
            assert q.unacked_bytes == sum(m.body_size for m in outstanding), name
            kept = list(self.changes.kept.get(q.key, {}).values())
            if not q.durable:
                assert kept == [] and q.persistent_count == q.persistent_bytes == 0
            assert q.persistent_count == len(kept), name
            assert q.persistent_bytes == sum(m.body_size for m in kept), name
            expected = [m for m in ready + outstanding if m.persistent or q.persist_all] \
                if q.durable else []
            assert q.persistent_count == len(expected), name


def test_running_totals_match_a_recount() -> None:
    dead_lettered = 0
    for seed in range(12):
        world = World(seed)
        for _ in range(400):
            world.step()
            world.check()
        dead_lettered += world.dead_lettered
    assert dead_lettered > 0  # expiry, max-length drops, rejects and delivery limits ran


def test_listing_reads_the_totals_not_the_messages() -> None:
    """The admin facade's queue figures are the totals (a queue whose ready list cannot be
    iterated still lists)."""
    from amqpbroker.broker.admin_shapes import _persistent, _ready_bytes

    world = World(99)
    q = world.queues["plain"]
    for _ in range(10):
        q.publish(message(world.rng, "plain"))

    class NoScan(list):
        def __iter__(self):  # type: ignore[override]
            raise AssertionError("listing scanned the messages")

    saved, q.ready = q.ready, NoScan(q.ready)  # type: ignore[assignment]
    try:
        assert _ready_bytes(q) == q.ready_bytes
        assert _persistent(q) == (q.persistent_count, q.persistent_bytes)
    finally:
        q.ready = saved
