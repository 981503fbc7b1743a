"""Requeued messages go back to their original position (pure model, no sockets).

RabbitMQ: "when a message is requeued, it will be placed in its original position in its
queue, if possible" (https://www.rabbitmq.com/docs/confirms). Classic and priority queues
number their messages; quorum queues deliver returns first, in the order they came back
(rabbit_fifo). The wire paths (reject, nack, recover, cancel, close, timeout) are proven
with aio-pika in tests/e2e/test_requeue_order.py (aio-pika).
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from pamqp import commands

from amqpbroker.model.message import Message
from amqpbroker.model.queue import Queue
from amqpbroker.model.ready import PriorityReady, merge_returned
from amqpbroker.protocol.properties import scan_properties


class Taker:
    """A consumer with a prefetch window; returns what it holds on request."""

    def __init__(self, tag: str = "c", prefetch: int = 0) -> None:
        self.tag, self.priority, self.exclusive, self.prefetch = tag, 0, False, prefetch
        self.no_ack = False
        self.held: list[Message] = []
        self.active = True

    def can_take(self) -> bool:
        return self.active and (not self.prefetch or len(self.held) < self.prefetch)

    def deliver(self, queue: Queue, msg: Message, redelivered: bool) -> None:
        self.held.append(msg)

    def queue_deleted(self, queue: Queue) -> None:
        pass


def message(body: bytes, **props: Any) -> Message:
    raw = commands.Basic.Properties(**props).marshal()
    delivery_mode, priority, expiration = scan_properties(raw)
    return Message("", "q", raw, body, len(body), delivery_mode == 2, priority, expiration)


def drain(q: Queue) -> list[bytes]:
    out = []
    while (got := q.get()) is not None:
        q.settle(got[0])
        out.append(got[0].body)  # type: ignore[arg-type]
    return out


def fill(q: Queue, n: int, **props: Any) -> list[bytes]:
    bodies = [str(i).encode() for i in range(1, n + 1)]
    for body in bodies:
        q.publish(message(body, **props))
    return bodies


QUEUES = {
    "plain": lambda: Queue("/", "q"),
    "ttl": lambda: Queue("/", "q", arguments={"x-message-ttl": 3_600_000}),
    "priority": lambda: Queue("/", "q", arguments={"x-max-priority": 5}),
}


@pytest.mark.parametrize("kind", sorted(QUEUES))
def test_one_by_one_in_publish_order_and_in_reverse(kind: str) -> None:
    for order in (lambda held: held, lambda held: held[::-1]):
        q = QUEUES[kind]()
        bodies = fill(q, 5)
        c = Taker(prefetch=5)
        q.add_consumer(c)
        assert [m.body for m in c.held] == bodies
        q.remove_consumer(c)
        for msg in order(list(c.held)):
            q.return_unacked([(msg, True)])
        assert drain(q) == bodies


@pytest.mark.parametrize("kind", sorted(QUEUES))
def test_two_consumers_returned_interleaved(kind: str) -> None:
    q = QUEUES[kind]()
    bodies = fill(q, 8)
    a, b = Taker("a", prefetch=4), Taker("b", prefetch=4)
    q.add_consumer(a)
    q.add_consumer(b)  # round-robin: a holds 1..4 (took them all first), b 5..8
    q.remove_consumer(a)
    q.remove_consumer(b)
    q.return_unacked([(m, True) for m in b.held])
    q.return_unacked([(m, True) for m in a.held])
    assert drain(q) == bodies


@pytest.mark.parametrize("kind", sorted(QUEUES))
def test_random_returns_with_new_messages_and_gets(kind: str) -> None:
    """Returns in random batches, interleaved with gets and new publishes: the queue is
    always in publish order minus what is out."""
    rng = random.Random(15)
    q = QUEUES[kind]()
    published: list[bytes] = []
    out: list[Message] = []
    gone: set[bytes] = set()
    n = 0
    for _ in range(300):
        action = rng.random()
        if action < 0.35:
            n += 1
            body = str(n).encode()
            q.publish(message(body))
            published.append(body)
        elif action < 0.7:
            got = q.get()
            if got is not None:
                if rng.random() < 0.2:
                    q.settle(got[0])
                    gone.add(got[0].body)  # type: ignore[arg-type]
                else:
                    out.append(got[0])
        elif out:
            rng.shuffle(out)
            k = rng.randint(1, len(out))
            batch, out = out[:k], out[k:]
            q.return_unacked([(m, True) for m in batch])
    q.return_unacked([(m, True) for m in out])
    assert drain(q) == [b for b in published if b not in gone]


def test_priority_queue_keeps_each_level_in_order() -> None:
    q = QUEUES["priority"]()
    for i in range(6):
        q.publish(message(f"p{i % 3}-{i}".encode(), priority=i % 3))
    c = Taker(prefetch=6)
    q.add_consumer(c)
    q.remove_consumer(c)
    for msg in reversed(c.held):
        q.return_unacked([(msg, True)])
    assert drain(q) == [b"p2-2", b"p2-5", b"p1-1", b"p1-4", b"p0-0", b"p0-3"]


def test_returns_go_before_messages_never_delivered_and_redelivered_flag() -> None:
    q = Queue("/", "q")
    fill(q, 3)
    c = Taker(prefetch=2)
    q.add_consumer(c)
    q.remove_consumer(c)
    q.publish(message(b"4"))
    q.return_unacked([(c.held[1], True)])
    q.return_unacked([(c.held[0], True)])
    got = []
    while (item := q.get()) is not None:
        got.append((item[0].body, item[1]))
    assert got == [(b"1", True), (b"2", True), (b"3", False), (b"4", False)]


def test_plain_queue_switching_to_message_expiry_keeps_positions() -> None:
    q = Queue("/", "q")
    fill(q, 4)
    c = Taker(prefetch=3)
    q.add_consumer(c)
    q.remove_consumer(c)
    q.return_unacked([(c.held[2], True)])
    q.enable_message_expiry()  # a message with an expiration arrived: featured from now on
    q.return_unacked([(c.held[0], True), (c.held[1], True)])
    assert drain(q) == [b"1", b"2", b"3", b"4"]


def test_quorum_returns_first_in_the_order_returned() -> None:
    q = Queue("/", "q", durable=True, quorum=True)
    bodies = fill(q, 5)
    c = Taker(prefetch=4)
    q.add_consumer(c)
    assert [m.body for m in c.held] == bodies[:4]
    q.remove_consumer(c)
    held = list(c.held)
    q.return_unacked([(held[2], True)])
    q.return_unacked([(held[0], True), (held[3], True)])
    q.return_unacked([(held[1], True)])
    assert drain(q) == [b"3", b"1", b"4", b"2", b"5"]


def test_merge_returned_touches_only_what_it_must() -> None:
    fifo: Any = __import__("collections").deque([("a", True, 2), ("b", True, 5),
                                                  ("c", False, 0)])
    merge_returned(fifo, [("x", True, 3), ("y", True, 1)])
    assert [e[0] for e in fifo] == ["y", "a", "x", "b", "c"]
    ready = PriorityReady(2)
    ready.append((message(b"n", priority=1), False, 0))
    ready.put_back([(message(b"hi", priority=2), True, 2), (message(b"lo", priority=1), True, 1)])
    assert [e[0].body for e in ready] == [b"hi", b"lo", b"n"] and len(ready) == 3
