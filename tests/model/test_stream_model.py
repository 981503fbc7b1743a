"""Stream queues in the model (issue 11): RabbitMQ's declare and consume refusals, and a
`StreamQueue` feeding duck-typed consumers by credit, with x-stream-offset headers, every
offset spec, filters, server-side offset tracking and recovery."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from pamqp import commands

from amqpbroker import errors
from amqpbroker.message import Message
from amqpbroker.model.queue import queue_key
from amqpbroker.store.stream_store import stream_directory
from amqpbroker.streams import open_stream
from amqpbroker.model.stream import (
    ConsumerOptions, StreamConfig, StreamQueue, check_stream_consume, filter_value_of,
    parse_consumer_arguments, parse_offset_spec, parse_stream_arguments,
    validate_stream_arguments,
)
from amqpbroker.protocol import tables
from amqpbroker.protocol.properties import decode_properties, encode_properties

T0 = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


class FakeConsumer:
    """The consumer interface `Queue` uses; `outstanding` is its unacked count."""

    def __init__(self, tag: str = "c", prefetch: int = 10) -> None:
        self.tag, self.priority, self.exclusive, self.prefetch = tag, 0, False, prefetch
        self.no_ack = False
        self.got: list[tuple[Message, bool]] = []
        self.outstanding = 0

    def can_take(self) -> bool:
        return self.outstanding < self.prefetch

    def deliver(self, queue: Any, msg: Message, redelivered: bool) -> None:
        self.got.append((msg, redelivered))
        self.outstanding += 1

    def ack_all(self, q: StreamQueue) -> None:
        """What the channel does on basic.ack multiple."""
        for msg, _ in self.got[len(self.got) - self.outstanding:]:
            q.settle(msg)
        self.outstanding = 0
        q.dispatch()

    def offsets(self) -> list[int]:
        return [offset_of(m) for m, _ in self.got]


def offset_of(msg: Message) -> int:
    (raw,) = [raw for k, raw in tables.headers_of(msg.properties) if k == "x-stream-offset"]
    assert raw[:1] == b"l"  # a long, as RabbitMQ sends it
    return tables.read_int(raw)  # type: ignore[return-value]


def message(body: bytes, headers: dict[str, Any] | None = None, rk: str = "s") -> Message:
    props = encode_properties(commands.Basic.Properties(
        content_type="text/plain", delivery_mode=2, headers=headers))
    return Message("amq.direct", rk, props, body, len(body), True)


def stream(tmp_path: Path, clock: Clock | None = None, args: dict[str, Any] | None = None,
           name: str = "s") -> StreamQueue:
    return open_stream(tmp_path, "/", name, args or {"x-queue-type": "stream"},
                            sync=False, clock=clock or Clock())


def publish(q: StreamQueue, n: int, start: int = 0, **kw: Any) -> list[int]:
    return [q.publish(message(b"m%d" % i, **kw)) for i in range(start, start + n)]


def refused(exc: type[errors.AMQPError], fn: Any, *args: Any, **kw: Any) -> str:
    with pytest.raises(exc) as info:
        fn(*args, **kw)
    return info.value.text


# -- declare --------------------------------------------------------------------------------

def test_valid_declarations_pass() -> None:
    validate_stream_arguments("s", "/", True, False, False, {"x-queue-type": "stream"})
    validate_stream_arguments("s", "/", True, False, False, {
        "x-queue-type": "stream", "x-max-length-bytes": 20_000_000_000, "x-max-age": "7D",
        "x-stream-max-segment-size-bytes": 100_000_000, "x-initial-cluster-size": 3,
        "x-queue-leader-locator": "balanced", "x-stream-filter-size-bytes": 32,
        "x-custom-thing": "ignored"})
    for age in ("7D", "12h", "30m", "10s", "1Y", "1M"):
        validate_stream_arguments("s", "/", True, False, False, {"x-max-age": age})


def test_properties_streams_do_not_have() -> None:
    args = {"x-queue-type": "stream"}
    pf = errors.PreconditionFailed
    assert refused(pf, validate_stream_arguments, "s", "/", True, False, True, args) == \
        "invalid property 'auto-delete' for queue 's' in vhost '/'"
    assert refused(pf, validate_stream_arguments, "s", "v", True, True, False, args) == \
        "invalid property 'exclusive-owner' for queue 's' in vhost 'v'"
    assert refused(pf, validate_stream_arguments, "s", "/", False, False, False, args) == \
        "invalid property 'non-durable' for queue 's' in vhost '/'"
    # RabbitMQ's order: auto-delete, then exclusive, then durability
    assert "auto-delete" in refused(pf, validate_stream_arguments, "s", "/", False, True, True, args)
    assert "exclusive" in refused(pf, validate_stream_arguments, "s", "/", False, True, False, args)


def test_arguments_of_other_queue_types_are_refused_by_name() -> None:
    for key, value in (("x-max-priority", 10), ("x-dead-letter-exchange", "dlx"),
                       ("x-message-ttl", 1000), ("x-overflow", "reject-publish"),
                       ("x-max-length", 10), ("x-expires", 1000), ("x-delivery-limit", 3),
                       ("x-single-active-consumer", True), ("x-queue-mode", "lazy")):
        e = refused(errors.PreconditionFailed, validate_stream_arguments, "s", "/", True,
                    False, False, {"x-queue-type": "stream", key: value})
        assert e == f"invalid arg '{key}' for queue 's' in vhost '/' of queue type rabbit_stream_queue"
    # the first one in the client's order; values are checked before names, names before
    # properties
    e = refused(errors.PreconditionFailed, validate_stream_arguments, "s", "/", False, True,
                True, {"x-overflow": "drop-head", "x-max-priority": 1})
    assert "'x-overflow'" in e
    e = refused(errors.PreconditionFailed, validate_stream_arguments, "s", "/", True, False,
                False, {"x-max-priority": 1, "x-max-age": "soon"})
    assert e == "invalid arg 'x-max-age' for queue 's' in vhost '/': invalid_max_age"


@pytest.mark.parametrize("key, value, term", [
    ("x-max-length-bytes", -1, "{value_negative,-1}"),
    ("x-max-length-bytes", "10", '"expected integer, got longstr"'),
    ("x-max-age", 3600, "{unacceptable_type,long}"),
    ("x-max-age", "1w", "invalid_max_age"),
    ("x-max-age", "0D", "invalid_max_age"),
    ("x-max-age", "1.5h", "invalid_max_age"),
    ("x-stream-max-segment-size-bytes", -5, "{value_negative,-5}"),
    ("x-initial-cluster-size", 0, "{value_zero,0}"),
    ("x-initial-cluster-size", -2, "{value_negative,-2}"),
    ("x-queue-leader-locator", "nearest", "invalid_queue_locator_arg"),
    ("x-queue-type", "quorum", '"unsupported queue type \'quorum\'"'),
])
def test_invalid_argument_values(key: str, value: Any, term: str) -> None:
    e = refused(errors.PreconditionFailed, validate_stream_arguments, "s", "/", True, False,
                False, {key: value})
    assert e == f"invalid arg '{key}' for queue 's' in vhost '/': {term}"


def test_segment_and_filter_size_limits() -> None:
    pf = errors.PreconditionFailed
    exc = refused(pf, validate_stream_arguments, "s", "/", True, False, False,
                  {"x-stream-max-segment-size-bytes": 3_000_000_001})
    assert exc == "Exceeded max value for x-stream-max-segment-size-bytes"
    validate_stream_arguments("s", "/", True, False, False,
                              {"x-stream-max-segment-size-bytes": 3_000_000_000})
    for size in (15, 256):
        exc = refused(pf, validate_stream_arguments, "s", "/", True, False, False,
                      {"x-stream-filter-size-bytes": size})
        assert exc == "Invalid value for  x-stream-filter-size-bytes"  # sic, two spaces


def test_reply_code_and_text() -> None:
    with pytest.raises(errors.PreconditionFailed) as info:
        validate_stream_arguments("s", "/", True, False, False, {"x-max-priority": 5})
    assert info.value.reply_code == 406 and not info.value.hard
    assert info.value.reply_text.startswith("PRECONDITION_FAILED - invalid arg 'x-max-priority'")


def test_parse_stream_arguments() -> None:
    assert parse_stream_arguments(None) == StreamConfig(None, None, 500_000_000)
    assert parse_stream_arguments({"x-max-length-bytes": 1000, "x-max-age": "12h",
                                   "x-stream-max-segment-size-bytes": 4096}) == \
        StreamConfig(1000, 12 * 3_600_000, 4096)


# -- consume --------------------------------------------------------------------------------

def test_consume_refusals_in_rabbitmq_order() -> None:
    assert refused(errors.PreconditionFailed, check_stream_consume, "s", "/", no_ack=True,
                   prefetch=0) == "consumer prefetch count is not set for stream queue 's' in vhost '/'"
    with pytest.raises(errors.NotImplemented_) as info:
        check_stream_consume("s", "/", no_ack=True, prefetch=10)
    assert info.value.text == "automatic acknowledgement not supported by stream queue 's' in vhost '/'"
    assert info.value.reply_code == 540 and info.value.hard
    assert refused(errors.NotImplemented_, check_stream_consume, "s", "/", no_ack=False,
                   prefetch=10, global_prefetch=50) == "queue 's' in vhost '/' does not support global qos"
    check_stream_consume("s", "/", no_ack=False, prefetch=10)


def test_consumer_arguments() -> None:
    assert parse_consumer_arguments(None, "s", "/") == ConsumerOptions("next", None, False)
    ts = datetime.datetime(2024, 1, 2, tzinfo=datetime.timezone.utc)
    assert parse_consumer_arguments({"x-stream-offset": ts}, "s", "/").offset == ts
    assert parse_consumer_arguments({"x-stream-offset": 42}, "s", "/").offset == 42
    assert parse_consumer_arguments({"x-stream-offset": "1h"}, "s", "/").offset == "1h"
    opts = parse_consumer_arguments({"x-stream-filter": "ca"}, "s", "/")
    assert opts == ConsumerOptions("next", ["ca"], False)
    opts = parse_consumer_arguments({"x-stream-filter": ["ca", 5, "ny"],
                                     "x-stream-match-unfiltered": True}, "s", "/")
    assert opts == ConsumerOptions("next", ["ca", "ny"], True)
    # match-unfiltered means nothing without a filter, and only as a bool
    assert parse_consumer_arguments({"x-stream-match-unfiltered": True}, "s", "/").match_unfiltered is False
    assert parse_consumer_arguments({"x-stream-filter": "a", "x-stream-match-unfiltered": 1},
                                    "s", "/").match_unfiltered is False
    assert refused(errors.PreconditionFailed, parse_consumer_arguments, {"x-priority": 5}, "s",
                   "/") == "invalid arg 'x-priority' for queue 's' in vhost '/' of queue type rabbit_stream_queue"


def test_invalid_offset_specs_are_worded_like_rabbitmq() -> None:
    pf = errors.PreconditionFailed
    assert refused(pf, parse_offset_spec, "foo", "s", "/") == \
        "invalid arg 'x-stream-offset' for queue 's' in vhost '/': " \
        '{invalid_stream_offset_arg,{longstr,<<"foo">>}}'
    assert refused(pf, parse_offset_spec, 1.5, "s", "/").endswith("{invalid_stream_offset_arg,{double,1.5}}")
    assert refused(pf, parse_offset_spec, True, "s", "/").endswith("{invalid_stream_offset_arg,{bool,true}}")
    assert parse_offset_spec(None, "s", "/") == "next"


# -- the queue -------------------------------------------------------------------------------

def test_publish_returns_offsets_and_deliveries_carry_them(tmp_path: Path) -> None:
    q = stream(tmp_path)
    c = FakeConsumer(prefetch=100)
    q.add_consumer(c, "first")
    assert publish(q, 3, headers={"app": "x", "n": 7}) == [0, 1, 2]
    assert c.offsets() == [0, 1, 2]
    msg, redelivered = c.got[1]
    assert not redelivered and msg.body == b"m1" and msg.routing_key == "s"
    assert msg.exchange == "amq.direct"
    props = decode_properties(msg.properties)
    assert props.headers == {"app": "x", "n": 7, "x-stream-offset": 1}
    assert props.content_type == "text/plain" and props.delivery_mode == 2
    # the publisher's own header entries are kept byte for byte
    original = tables.headers_of(message(b"", headers={"app": "x", "n": 7}).properties)
    assert tables.headers_of(msg.properties)[:2] == original
    bare = Message("", "s", b"\x00\x00", b"raw", 3)
    q.publish(bare)
    assert decode_properties(c.got[-1][0].properties).headers == {"x-stream-offset": 3}


def test_credit_is_the_prefetch_and_acks_give_it_back(tmp_path: Path) -> None:
    q = stream(tmp_path)
    publish(q, 10)
    c = FakeConsumer(prefetch=3)
    q.add_consumer(c, "first")
    assert c.offsets() == [0, 1, 2] and q.unacked == 3
    c.ack_all(q)
    assert c.offsets() == [0, 1, 2, 3, 4, 5]
    assert q.message_count == 10  # reading removes nothing
    # nack/requeue: credit back, nothing redelivered
    entries = [(m, True) for m, _ in c.got[3:]]
    c.outstanding = 0
    q.return_unacked(entries)
    assert c.offsets() == list(range(9)) and q.unacked == 3
    c.outstanding -= 1
    q.reject(c.got[-1][0])
    q.dispatch()
    assert c.offsets() == list(range(10)) and c.outstanding == 3
    publish(q, 1, 10)
    assert c.offsets()[-1] == 9  # no credit
    c.ack_all(q)
    assert c.offsets()[-1] == 10
    publish(q, 1, 11)  # a caught-up consumer with credit gets new messages at once
    assert c.offsets()[-1] == 11 and q.unacked == 2


def test_offset_specs_through_add_consumer(tmp_path: Path) -> None:
    clock = Clock()
    q = stream(tmp_path, clock)
    for i in range(10):
        q.publish(message(b"%d" % i))
        clock.t += 60
    q.log.flush()
    specs: dict[str, Any] = {
        "first": "first", "offset": 7, "before": -3, "past": 99,
        "ts": datetime.datetime.fromtimestamp(T0 + 4 * 60, datetime.timezone.utc),
        "interval": "3m", "next": None, "last": "last",
    }
    consumers = {k: FakeConsumer(k, prefetch=100) for k in specs}
    for k, spec in specs.items():
        q.add_consumer(consumers[k], spec)
    got = {k: c.offsets() for k, c in consumers.items()}
    assert got["first"] == got["before"] == list(range(10))
    assert got["offset"] == [7, 8, 9]
    assert got["ts"] == [4, 5, 6, 7, 8, 9]
    assert got["interval"] == [7, 8, 9]  # now is T0 + 10 min
    assert got["past"] == got["next"] == []
    assert got["last"] == list(range(10))  # published in one burst: one chunk
    q.publish(message(b"new"))
    assert all(c.offsets()[-1] == 10 for c in consumers.values())
    # with consumers attached every publish is flushed at once: chunks of one
    late = FakeConsumer("late", prefetch=100)
    q.add_consumer(late, "last")
    assert late.offsets() == [10]
    with pytest.raises(errors.PreconditionFailed):
        q.add_consumer(FakeConsumer("bad"), "sometime")
    assert q.consumer_count == len(specs) + 1  # the refused one was not added


def test_filters_and_match_unfiltered(tmp_path: Path) -> None:
    q = stream(tmp_path)
    for region in ("california", None, "texas", "california", None):
        q.publish(message(b"x", headers=None if region is None else {"x-stream-filter-value": region}))
    q.publish(message(b"x", headers={"x-stream-filter-value": 5}))  # not a string: unfiltered
    ca, both, ca_un = FakeConsumer("a", 100), FakeConsumer("b", 100), FakeConsumer("c", 100)
    q.add_consumer(ca, "first", ["california"])
    q.add_consumer(both, "first", ["california", "texas"])
    q.add_consumer(ca_un, "first", ["california"], True)
    assert ca.offsets() == [0, 3]
    assert both.offsets() == [0, 2, 3]
    assert ca_un.offsets() == [0, 1, 3, 4, 5]
    assert filter_value_of(message(b"", headers={"x-stream-filter-value": "ny"}).properties) == "ny"


def test_consumers_are_independent_and_removal_never_auto_deletes(tmp_path: Path) -> None:
    q = stream(tmp_path)
    publish(q, 5)
    a, b = FakeConsumer("a", 2), FakeConsumer("b", 100)
    q.add_consumer(a, "first")
    q.add_consumer(b, 3)
    assert a.offsets() == [0, 1] and b.offsets() == [3, 4]
    assert q.remove_consumer(a) is False and q.remove_consumer(a) is False
    assert q.consumer_count == 1 and q.message_count == 5
    publish(q, 1, 5)
    assert a.offsets() == [0, 1] and b.offsets() == [3, 4, 5]


def test_basic_get_is_refused(tmp_path: Path) -> None:
    q = stream(tmp_path)
    assert refused(errors.NotImplemented_, q.get) == \
        "basic.get not supported by stream queues queue 's' in vhost '/'"


def test_server_side_offset_tracking_across_a_restart(tmp_path: Path) -> None:
    q = stream(tmp_path)
    publish(q, 10)
    c = FakeConsumer("worker", prefetch=4)
    q.add_consumer(c, tracking_name="worker")  # nothing stored yet: from the first
    assert c.offsets() == [0, 1, 2, 3]
    for msg, _ in c.got[:3]:
        q.settle(msg)  # offsets 0..2 acked, 3 still out
    assert q.stored_offset("worker") == 2
    q.close()
    q = stream(tmp_path)
    assert q.stored_offset("worker") == 2
    again = FakeConsumer("worker", prefetch=100)
    q.add_consumer(again, tracking_name="worker")
    assert again.offsets() == list(range(3, 10))
    explicit = FakeConsumer("other", prefetch=100)
    q.add_consumer(explicit, 8, tracking_name="worker")  # an explicit offset wins
    assert explicit.offsets() == [8, 9]
    q.store_offset("manual", 5)
    assert q.stored_offset("manual") == 5


def test_recovery_and_retention_through_the_queue(tmp_path: Path) -> None:
    clock = Clock()
    args = {"x-queue-type": "stream", "x-max-age": "1h", "x-stream-max-segment-size-bytes": 600}
    q = stream(tmp_path, clock, args)
    for i in range(40):
        q.publish(message(b"%d" % i))
        clock.t += 120  # 80 minutes
    q.close()
    q = stream(tmp_path, clock, args)  # opening enforces retention
    assert 0 < q.log.first_offset and q.log.next_offset == 40
    c = FakeConsumer(prefetch=100)
    q.add_consumer(c, "first")
    assert c.offsets() == list(range(q.log.first_offset, 40))
    clock.t += 7200
    q.enforce_retention()
    assert q.message_count >= 1  # the newest segment stays


def test_delete_removes_the_files(tmp_path: Path) -> None:
    q = stream(tmp_path)
    publish(q, 3)
    c = FakeConsumer()
    q.add_consumer(c, "first")
    assert q.delete() == 3
    assert q.deleted and q.consumers == []
    assert not stream_directory(tmp_path, queue_key("/", "s")).exists()
    q.dispatch()  # harmless


def test_stream_directories() -> None:
    a = stream_directory("/data", queue_key("/", "orders"))
    assert a == stream_directory(Path("/data"), queue_key("/", "orders"))
    assert a.parent == Path("/data/streams")
    assert len({a, stream_directory("/data", queue_key("v", "orders")), stream_directory("/data", queue_key("/", "orders2")),
                stream_directory("/data", queue_key("/", "../../etc"))}) == 4


def test_queue_like_attributes(tmp_path: Path) -> None:
    q = stream(tmp_path)
    assert q.durable and not q.auto_delete and q.exclusive_owner is None
    assert q.features is None and q.consumer_timeout_ms is None and not q.over_flow_limit()
    assert q.key == "/\x00s" and q.is_stream
    q.declared()
    q.release_flow()
