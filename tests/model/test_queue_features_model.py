"""Queue features in the pure model, with a clock the tests move (issue 6).

TTL and expiry, x-expires, dead lettering (x-death), length limits, priorities, single
active consumer and delivery limits, all without sockets or an event loop: time only
passes when `clock.advance()` is called.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from pamqp import commands

from amqpbroker import errors
from amqpbroker.clock import ManualScheduler
from amqpbroker.model.deadletter import Rejected, is_cycle
from amqpbroker.message import Message
from amqpbroker.model.queue import Queue
from amqpbroker.model.ready import PriorityReady
from amqpbroker.model.vhost import VirtualHost
from amqpbroker.protocol.properties import decode_properties, scan_properties
from amqpbroker.protocol import tables


class FakeConsumer:
    def __init__(self, tag: str = "c", priority: int = 0, prefetch: int = 0) -> None:
        self.tag, self.priority, self.exclusive, self.prefetch = tag, priority, False, prefetch
        self.no_ack = False
        self.got: list[tuple[Message, bool]] = []
        self.outstanding = 0

    def can_take(self) -> bool:
        return not self.prefetch or self.outstanding < self.prefetch

    def deliver(self, queue: Queue, msg: Message, redelivered: bool) -> None:
        self.got.append((msg, redelivered))
        self.outstanding += 1

    def queue_deleted(self, queue: Queue) -> None:
        pass

    def bodies(self) -> list[bytes]:
        return [m.body for m, _ in self.got]  # type: ignore[misc]


def message(body: bytes = b"m", routing_key: str = "q", exchange: str = "",
            **props: Any) -> Message:
    raw = commands.Basic.Properties(**props).marshal()
    delivery_mode, priority, expiration = scan_properties(raw)
    return Message(exchange, routing_key, raw, body, len(body), delivery_mode == 2, priority,
                   expiration)


def publish(vh: VirtualHost, routing_key: str, body: bytes = b"m", exchange: str = "",
            **props: Any) -> bool:
    """What Channel.publish does with a message; False when a queue rejected it."""
    msg = message(body, routing_key, exchange, **props)
    accepted = True
    for q in vh.route(vh.exchange(exchange), msg):
        if msg.expiration is not None and q.features is None:
            q.enable_message_expiry()
        try:
            q.publish(msg)
        except Rejected:
            accepted = False
    return accepted


def drain(q: Queue) -> list[bytes]:
    out = []
    while (got := q.get()) is not None:
        q.settle(got[0])
        out.append(got[0].body)
    return out


def headers(msg: Message) -> dict[str, Any]:
    return decode_properties(msg.properties).headers or {}


@pytest.fixture
def clock() -> ManualScheduler:
    return ManualScheduler()


@pytest.fixture
def vh(clock: ManualScheduler) -> VirtualHost:
    return VirtualHost("/", scheduler=clock)


def dlx_setup(vh: VirtualHost, **args: Any) -> tuple[Queue, Queue]:
    vh.declare_exchange("dlx", "fanout")
    dlq = vh.declare_queue("dlq")
    vh.bind(dlq, "dlx", "")
    q = vh.declare_queue("q", arguments={"x-dead-letter-exchange": "dlx", **args})
    return q, dlq


# -- plain queues keep the fast path ------------------------------------------------------

def test_plain_queue_has_no_features(vh):
    assert vh.declare_queue("plain").features is None
    assert vh.declare_queue("t", arguments={"x-consumer-timeout": 5000}).features is None
    assert vh.declare_queue("o", arguments={"x-overflow": "reject-publish"}).features is None
    assert vh.declare_queue("ttl", arguments={"x-message-ttl": 5}).features is not None


# -- message TTL ----------------------------------------------------------------------------

def test_queue_ttl_expires_messages_at_the_head(vh, clock):
    q = vh.declare_queue("q", arguments={"x-message-ttl": 100})
    publish(vh, "q", b"a")
    clock.advance(0.05)
    publish(vh, "q", b"b")
    clock.advance(0.049)
    assert q.message_count == 2
    clock.advance(0.002)  # a is 101 ms old: the timer removed it
    assert q.message_count == 1
    clock.advance(0.05)
    assert q.message_count == 0
    assert clock.pending == []


def test_expired_message_is_never_delivered_or_got(vh, clock):
    q = vh.declare_queue("q", arguments={"x-message-ttl": 100})
    publish(vh, "q", b"a")
    clock.time += 0.2  # time passes but no timer has run yet
    assert q.get() is None
    c = FakeConsumer()
    publish(vh, "q", b"b")
    clock.time += 0.2
    q.add_consumer(c)
    assert c.got == []


def test_per_message_expiration_and_the_lower_ttl_wins(vh, clock):
    q = vh.declare_queue("q", arguments={"x-message-ttl": 1000})
    publish(vh, "q", b"short", expiration="100")
    publish(vh, "q", b"long", expiration="5000")
    clock.advance(0.101)
    assert q.message_count == 1
    clock.advance(0.9)
    assert q.message_count == 0


def test_expired_messages_behind_the_head_go_when_they_reach_it(vh, clock):
    q = vh.declare_queue("q")  # per-message TTL only
    publish(vh, "q", b"keep")
    publish(vh, "q", b"gone", expiration="10")
    publish(vh, "q", b"keep2")
    clock.advance(1.0)
    assert q.message_count == 3  # RabbitMQ: only the head is checked
    got = q.get()
    assert got is not None and got[0].body == b"keep"
    assert q.message_count == 1  # 'gone' reached the head and was removed
    assert drain(q) == [b"keep2"]


def test_ttl_zero_delivers_to_a_waiting_consumer_or_expires(vh, clock):
    q = vh.declare_queue("q", arguments={"x-message-ttl": 0})
    publish(vh, "q", b"dropped")
    assert q.message_count == 0
    c = FakeConsumer()
    q.add_consumer(c)
    publish(vh, "q", b"delivered")
    assert c.bodies() == [b"delivered"]


def test_requeued_message_keeps_its_original_expiry(vh, clock):
    q, dlq = dlx_setup(vh, **{"x-message-ttl": 100})
    c = FakeConsumer()
    q.add_consumer(c)
    publish(vh, "q", b"a")
    msg = c.got[0][0]
    clock.advance(0.5)
    q.remove_consumer(c)
    q.return_unacked([(msg, True)])  # back, but long expired: never redelivered
    assert q.message_count == 0
    assert [m.body for m in [e[0] for e in dlq.ready]] == [b"a"]
    assert headers(dlq.ready[0][0])["x-death"][0]["reason"] == "expired"


def test_unacked_message_is_not_expired(vh, clock):
    q = vh.declare_queue("q", arguments={"x-message-ttl": 100})
    c = FakeConsumer()
    q.add_consumer(c)
    publish(vh, "q", b"a")
    clock.advance(1)
    q.settle(c.got[0][0])
    assert q.unacked == 0 and q._held == {}


def test_priority_queue_expires_the_heads_of_every_level(vh, clock):
    q = vh.declare_queue("q", arguments={"x-max-priority": 5})
    publish(vh, "q", b"low", priority=1, expiration="10")
    publish(vh, "q", b"high", priority=5, expiration="1000")
    clock.advance(0.02)
    assert q.message_count == 1
    assert drain(q) == [b"high"]


# -- x-expires ------------------------------------------------------------------------------

def test_unused_queue_is_deleted_after_x_expires(vh, clock):
    vh.declare_queue("q", arguments={"x-expires": 1000})
    publish(vh, "q", b"a")  # publishing does not count as use
    clock.advance(0.999)
    assert "q" in vh.queues
    clock.advance(0.002)
    assert "q" not in vh.queues


def test_redeclare_get_and_consumers_renew_the_lease(vh, clock):
    q = vh.declare_queue("q", arguments={"x-expires": 1000})
    clock.advance(0.8)
    vh.declare_queue("q", arguments={"x-expires": 1000})
    clock.advance(0.8)
    vh.declare_queue("q", passive=True)
    clock.advance(0.8)
    q.get()
    clock.advance(0.8)
    c = FakeConsumer()
    q.add_consumer(c)
    clock.advance(10)
    assert "q" in vh.queues
    q.remove_consumer(c)
    clock.advance(0.999)
    assert "q" in vh.queues
    clock.advance(0.002)
    assert "q" not in vh.queues and q.deleted


def test_expired_queue_does_not_dead_letter_its_messages(vh, clock):
    q, dlq = dlx_setup(vh, **{"x-expires": 100})
    publish(vh, "q", b"a")
    clock.advance(0.2)
    assert q.deleted and dlq.message_count == 0


# -- dead lettering -------------------------------------------------------------------------

def test_rejected_message_gets_x_death_and_first_last_headers(vh, clock):
    q, dlq = dlx_setup(vh)
    c = FakeConsumer()
    q.add_consumer(c)
    publish(vh, "q", b"a", exchange="", expiration="60000", headers={"app": 7})
    q.reject(c.got[0][0])
    assert q.unacked == 0
    dead = dlq.get()
    assert dead is not None
    msg = dead[0]
    assert (msg.exchange, msg.routing_key, msg.expiration) == ("dlx", "q", None)
    props = decode_properties(msg.properties)
    assert props.expiration is None
    h = props.headers
    assert h["app"] == 7
    [death] = h["x-death"]
    assert death == {
        "count": 1, "reason": "rejected", "queue": "q",
        "time": datetime.datetime.fromtimestamp(int(clock.wall()), tz=datetime.UTC),
        "exchange": "", "routing-keys": ["q"], "original-expiration": "60000",
    }
    assert (h["x-first-death-queue"], h["x-first-death-reason"],
            h["x-first-death-exchange"]) == ("q", "rejected", "")
    assert (h["x-last-death-queue"], h["x-last-death-reason"],
            h["x-last-death-exchange"]) == ("q", "rejected", "")


def test_x_death_uses_rabbitmq_field_types_and_keeps_other_headers_verbatim(vh):
    q, dlq = dlx_setup(vh)
    publish(vh, "q", b"a", headers={"n": 5})
    c = FakeConsumer()
    q.add_consumer(c)
    q.reject(c.got[0][0])
    items = dict(tables.headers_of(dlq.ready[0][0].properties))
    assert items["n"] == b"b\x05"  # as the publisher encoded it (pamqp: short-short)
    [death] = tables.array_items(items["x-death"])
    fields = dict(tables.table_items(tables.table_body(death)))
    assert fields["count"][:1] == b"l" and fields["time"][:1] == b"T"
    assert fields["queue"][:1] == b"S"


def test_dead_letter_routing_key_replaces_the_key_and_drops_cc(vh):
    vh.declare_exchange("dlx", "direct")
    dlq = vh.declare_queue("dlq")
    vh.bind(dlq, "dlx", "dead")
    q = vh.declare_queue("q", arguments={"x-dead-letter-exchange": "dlx",
                                          "x-dead-letter-routing-key": "dead"})
    publish(vh, "q", b"a", headers={"CC": ["other"], "BCC": ["secret"]})
    c = FakeConsumer()
    q.add_consumer(c)
    q.reject(c.got[0][0])
    msg = dlq.ready[0][0]
    assert msg.routing_key == "dead"
    h = headers(msg)
    assert "CC" not in h and "BCC" not in h
    assert h["x-death"][0]["routing-keys"] == ["q", "other"]


def test_missing_dead_letter_exchange_drops_silently(vh):
    q = vh.declare_queue("q", arguments={"x-dead-letter-exchange": "nowhere"})
    publish(vh, "q")
    c = FakeConsumer()
    q.add_consumer(c)
    q.reject(c.got[0][0])
    assert q.unacked == 0 and q.message_count == 0


def test_x_death_count_increments_and_moves_to_the_front(vh, clock):
    """The retry loop: work rejects to a TTL queue that dead-letters back to work."""
    vh.declare_exchange("work.dlx", "fanout")
    vh.declare_exchange("retry.dlx", "fanout")
    work = vh.declare_queue("work", arguments={"x-dead-letter-exchange": "work.dlx"})
    retry = vh.declare_queue("retry", arguments={"x-dead-letter-exchange": "retry.dlx",
                                                  "x-message-ttl": 100})
    vh.bind(retry, "work.dlx", "")
    vh.bind(work, "retry.dlx", "")
    c = FakeConsumer()
    work.add_consumer(c)
    publish(vh, "work", b"job")
    for attempt in (1, 2, 3):
        msg = c.got[-1][0]
        work.reject(msg)
        assert retry.message_count == 1
        clock.advance(0.1)
        assert retry.message_count == 0 and len(c.got) == attempt + 1
    h = headers(c.got[-1][0])
    assert [(d["queue"], d["reason"], d["count"]) for d in h["x-death"]] == [
        ("retry", "expired", 3), ("work", "rejected", 3)]
    assert (h["x-first-death-queue"], h["x-first-death-reason"]) == ("work", "rejected")
    assert (h["x-last-death-queue"], h["x-last-death-reason"]) == ("retry", "expired")
    assert c.got[-1][0].exchange == "retry.dlx"


def test_automatic_dead_letter_cycle_is_dropped(vh, clock):
    # Dead-letters to the default exchange without a routing key: back into itself.
    q = vh.declare_queue("q", arguments={"x-dead-letter-exchange": "", "x-message-ttl": 10})
    publish(vh, "q", b"a")
    clock.advance(0.011)
    assert q.message_count == 0  # expired -> q again would be a cycle with no rejection
    assert clock.pending == []


def test_rejection_breaks_a_cycle(vh):
    q = vh.declare_queue("q", arguments={"x-dead-letter-exchange": ""})
    c = FakeConsumer()
    q.add_consumer(c)
    publish(vh, "q", b"a")
    q.reject(c.got[0][0])
    assert len(c.got) == 2  # back in q: the cycle contains a rejection
    assert headers(c.got[1][0])["x-death"][0]["reason"] == "rejected"


def test_is_cycle_rule():
    assert is_cycle("a", [("b", "expired"), ("a", "maxlen")])
    assert not is_cycle("a", [("b", "expired"), ("a", "rejected")])
    assert not is_cycle("a", [("b", "rejected"), ("a", "expired")])
    assert not is_cycle("a", [("b", "expired")])


# -- length limits --------------------------------------------------------------------------

def test_max_length_drop_head_dead_letters_the_oldest(vh):
    q, dlq = dlx_setup(vh, **{"x-max-length": 2})
    for body in (b"1", b"2", b"3", b"4"):
        assert publish(vh, "q", body)
    assert drain(q) == [b"3", b"4"]
    assert [e[0].body for e in dlq.ready] == [b"1", b"2"]
    assert headers(dlq.ready[0][0])["x-death"][0]["reason"] == "maxlen"


def test_max_length_bytes_counts_ready_bodies(vh):
    q = vh.declare_queue("q", arguments={"x-max-length-bytes": 10})
    for body in (b"aaaa", b"bbbb", b"cccc"):
        publish(vh, "q", body)
    assert q.ready_bytes == 8 and drain(q) == [b"bbbb", b"cccc"]
    assert q.ready_bytes == 0


def test_unacked_messages_do_not_count_towards_the_limit(vh):
    q = vh.declare_queue("q", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    c = FakeConsumer(prefetch=1)
    q.add_consumer(c)
    assert publish(vh, "q", b"out")
    assert publish(vh, "q", b"ready")
    assert not publish(vh, "q", b"refused")
    assert q.message_count == 1


def test_reject_publish_refuses_and_reject_publish_dlx_dead_letters(vh):
    r = vh.declare_queue("r", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    assert publish(vh, "r", b"1") and not publish(vh, "r", b"2")
    assert drain(r) == [b"1"]
    q, dlq = dlx_setup(vh, **{"x-max-length": 1, "x-overflow": "reject-publish-dlx"})
    assert publish(vh, "q", b"1") and not publish(vh, "q", b"2")
    assert drain(q) == [b"1"]
    assert [e[0].body for e in dlq.ready] == [b"2"]
    assert headers(dlq.ready[0][0])["x-death"][0]["reason"] == "maxlen"


# -- priorities -----------------------------------------------------------------------------

def test_higher_priority_first_fifo_within_a_priority(vh):
    q = vh.declare_queue("q", arguments={"x-max-priority": 5})
    for body, prio in ((b"a1", 1), (b"b5", 5), (b"c3", 3), (b"d5", 5), (b"e0", 0),
                       (b"f9", 9), (b"g", None)):
        publish(vh, "q", body, **({} if prio is None else {"priority": prio}))
    assert drain(q) == [b"b5", b"d5", b"f9", b"c3", b"a1", b"e0", b"g"]


def test_requeued_message_goes_back_to_the_head_of_its_priority(vh):
    q = vh.declare_queue("q", arguments={"x-max-priority": 3})
    publish(vh, "q", b"low", priority=1)
    publish(vh, "q", b"high1", priority=3)
    publish(vh, "q", b"high2", priority=3)
    got = q.get()
    assert got is not None and got[0].body == b"high1"
    q.return_unacked([(got[0], True)])
    assert drain(q) == [b"high1", b"high2", b"low"]


def test_priority_ready_list():
    r = PriorityReady(2)
    for p in (0, 2, 1, 2):
        r.append((message(priority=p), False, None, 0))
    assert len(r) == 4 and r[0][0].priority == 2
    assert [e[0].priority for e in r] == [2, 2, 1, 0]
    assert [r.popleft()[0].priority for _ in range(4)] == [2, 2, 1, 0]
    assert not r
    with pytest.raises(IndexError):
        r.popleft()


# -- single active consumer -----------------------------------------------------------------

def test_single_active_consumer_fails_over_in_order(vh):
    q = vh.declare_queue("q", arguments={"x-single-active-consumer": True})
    a, b, c = FakeConsumer("a", prefetch=1), FakeConsumer("b"), FakeConsumer("c")
    for consumer in (a, b, c):
        q.add_consumer(consumer)
    for body in (b"1", b"2", b"3"):
        publish(vh, "q", body)
    assert a.bodies() == [b"1"] and b.got == [] and c.got == []  # a is busy: others wait
    q.remove_consumer(a)
    q.return_unacked([(a.got[0][0], True)])
    assert b.bodies() == [b"1", b"2", b"3"] and c.got == []
    q.remove_consumer(b)
    publish(vh, "q", b"4")
    assert c.bodies() == [b"4"]


# -- delivery limit -------------------------------------------------------------------------

def test_delivery_limit_counts_returns_and_dead_letters(vh):
    q, dlq = dlx_setup(vh, **{"x-delivery-limit": 2})
    c = FakeConsumer()
    q.add_consumer(c)
    publish(vh, "q", b"poison", headers={"app": "x"})
    for _ in range(3):
        q.return_unacked([(c.got[-1][0], True)])
    assert len(c.got) == 3  # first delivery + 2 redeliveries
    assert [headers(m).get("x-delivery-count") for m, _ in c.got] == [None, 1, 2]
    assert [r for _, r in c.got] == [False, True, True]
    assert q.message_count == 0 and q.unacked == 0
    dead = dlq.ready[0][0]
    assert headers(dead)["x-death"][0]["reason"] == "delivery_limit"
    assert headers(dead)["app"] == "x"


def test_delivery_limit_without_dlx_drops(vh):
    q = vh.declare_queue("q", arguments={"x-delivery-limit": 0})
    c = FakeConsumer()
    q.add_consumer(c)
    publish(vh, "q")
    q.return_unacked([(c.got[0][0], True)])
    assert len(c.got) == 1 and q.message_count == 0


# -- arguments ------------------------------------------------------------------------------

@pytest.mark.parametrize("args, text", [
    ({"x-message-ttl": -1}, "invalid arg 'x-message-ttl' for queue 'q' in vhost '/': "
                            "{value_negative,-1}"),
    ({"x-message-ttl": "1000"}, "invalid arg 'x-message-ttl' for queue 'q' in vhost '/': "
                                "\"expected integer, got longstr\""),
    ({"x-message-ttl": 4294967296}, "{value_too_big,4294967296}"),
    ({"x-expires": 0}, "invalid arg 'x-expires' for queue 'q' in vhost '/': {value_zero,0}"),
    ({"x-max-length": -2}, "invalid arg 'x-max-length' for queue 'q' in vhost '/': "
                           "{value_negative,-2}"),
    ({"x-max-length-bytes": True}, "\"expected integer, got bool\""),
    ({"x-max-priority": 256}, "invalid arg 'x-max-priority' for queue 'q' in vhost '/': "
                              "{max_value_exceeded,256}"),
    ({"x-overflow": "drop-tail"}, "invalid arg 'x-overflow' for queue 'q' in vhost '/': "
                                  "invalid_overflow"),
    ({"x-dead-letter-routing-key": "k"}, "invalid arg 'x-dead-letter-routing-key' for queue "
                                         "'q' in vhost '/': routing_key_but_no_dlx_defined"),
    ({"x-dead-letter-exchange": 5}, "{unacceptable_type,long}"),
    ({"x-single-active-consumer": "yes"}, "invalid arg 'x-single-active-consumer' for queue "
                                          "'q' in vhost '/': {unacceptable_type,longstr}"),
    ({"x-queue-type": "fifo"}, "invalid arg 'x-queue-type' for queue 'q' in vhost '/': "
                               "\"unsupported queue type 'fifo'\""),
    ({"x-queue-type": "quorum"}, "invalid property 'non-durable' for queue 'q' in vhost '/'"),
    ({"x-queue-type": "stream"}, "invalid property 'non-durable' for queue 'q' in vhost '/'"),
    ({"x-max-age": "1D"}, "invalid arg 'x-max-age' for queue 'q' in vhost '/' of queue type "
                          "rabbit_classic_queue"),
])
def test_invalid_arguments_are_406_with_rabbitmq_wording(vh, args, text):
    with pytest.raises(errors.PreconditionFailed) as exc:
        vh.declare_queue("q", arguments=args)
    assert exc.value.reply_code == 406 and text in exc.value.text
    assert "q" not in vh.queues


def test_classic_queue_type_is_accepted(vh):
    assert vh.declare_queue("q", arguments={"x-queue-type": "classic"}).features is None


def test_redeclare_with_other_feature_arguments_is_inequivalent(vh):
    vh.declare_queue("q", arguments={"x-max-length": 5})
    with pytest.raises(errors.PreconditionFailed) as exc:
        vh.declare_queue("q", arguments={"x-max-length": 6})
    assert "inequivalent arg 'x-max-length'" in exc.value.text


# -- recovery -------------------------------------------------------------------------------

def test_restored_messages_get_a_fresh_deadline_and_priority_order(vh, clock):
    q = vh.declare_queue("q", durable=True, arguments={"x-message-ttl": 100,
                                                        "x-max-priority": 2})
    q.restore(message(b"low", priority=0), False)
    q.restore(message(b"high", priority=2), True)
    clock.advance(0.05)
    assert q.message_count == 2
    got = q.get()
    assert got is not None and got[0].body == b"high" and got[1] is True
    clock.advance(0.06)
    assert q.message_count == 0


def test_plain_queue_restoring_an_expiring_message_tracks_it(vh, clock):
    q = vh.declare_queue("q", durable=True)
    q.restore(message(b"x", expiration="10"), False)
    clock.advance(0.02)
    assert q.message_count == 0


def test_deleted_queue_timers_do_nothing(vh, clock):
    q = vh.declare_queue("q", arguments={"x-message-ttl": 10, "x-expires": 50})
    publish(vh, "q")
    vh.delete_queue("q")
    clock.advance(1)
    assert q.deleted and q.message_count == 0


def test_recovered_definitions_with_invalid_arguments_do_not_stop_startup(vh):
    vh.apply({"op": "queue.declare", "name": "old", "durable": True, "auto_delete": False,
              "arguments": {"x-queue-type": "quorum", "x-max-length": -1, "x-expires": 0}})
    q = vh.queues["old"]
    assert q.is_quorum  # the invalid values are ignored, the type is kept
    assert q.features is not None and q.features.max_length is None
    assert q.features.expires is None and q.features.delivery_limit == 20
    with pytest.raises(errors.PreconditionFailed):
        vh.declare_queue("new", arguments={"x-max-length": -1})
