"""A deleted queue is freed by reference counting, whatever its features: `serve` freezes
the queues it recovered (collector.py), and the cyclic collector never walks a frozen
object, so a queue in a reference cycle would stay allocated after its deletion."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest

from amqpbroker.clock import ManualScheduler
from amqpbroker.model.queue import Queue
from amqpbroker.model.vhost import VirtualHost
from tests.model.test_queue_features_model import FakeConsumer, publish

FEATURES: dict[str, dict[str, Any]] = {
    "plain": {},
    "message-ttl": {"x-message-ttl": 60_000},
    "expires": {"x-expires": 60_000},
    "dead-letter": {"x-dead-letter-exchange": "amq.fanout", "x-max-length": 1},
    "priority": {"x-max-priority": 5},
    "single-active": {"x-single-active-consumer": True},
    "quorum": {"x-queue-type": "quorum", "x-delivery-limit": 3},
}


@pytest.fixture
def no_collector():
    """Only reference counting frees anything while the test runs."""
    gc.collect()
    gc.disable()
    yield
    gc.enable()


@pytest.mark.parametrize("feature", list(FEATURES))
def test_a_deleted_queue_leaves_no_cycle(feature, no_collector):
    vh = VirtualHost("/", scheduler=ManualScheduler())
    args = FEATURES[feature]
    deleted = []
    for i in range(20):
        q = vh.declare_queue(f"q{i}", durable=True, arguments=dict(args))
        vh.bind(q, "amq.topic", f"a.{i}.#", {})
        publish(vh, f"q{i}", b"one")
        publish(vh, f"q{i}", b"two", expiration="30000")
        consumer = FakeConsumer(f"c{i}", prefetch=1)
        q.add_consumer(consumer)  # takes "one": an unacked message of a deleted queue
        q.remove_consumer(consumer) if i % 2 else None  # x-expires arms its lease timer
        vh.delete_queue(f"q{i}")
        deleted.append(weakref.ref(q))
    del q, consumer
    assert [ref for ref in deleted if ref() is not None] == []


def test_the_check_sees_a_queue_kept_by_a_cycle(no_collector):
    vh = VirtualHost("/", scheduler=ManualScheduler())
    q = vh.declare_queue("q")
    q.loop_back = q  # type: ignore[attr-defined]  # a cycle the queue does not break
    vh.delete_queue("q")
    ref = weakref.ref(q)
    del q
    assert ref() is not None
    gc.collect()  # only the cyclic collector frees it
    assert ref() is None


def test_a_deleted_queue_cancels_its_timers():
    clock = ManualScheduler()
    vh = VirtualHost("/", scheduler=clock)
    q = vh.declare_queue("q", arguments={"x-expires": 1000, "x-message-ttl": 500})
    publish(vh, "q", b"m")
    assert q._lease_timer is not None and q._ttl_timer is not None
    vh.delete_queue("q")
    assert q._lease_timer is None and q._ttl_timer is None
    clock.advance(5)  # nothing fires on a queue that is gone
