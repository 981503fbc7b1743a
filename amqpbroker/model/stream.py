"""Stream queues (issue 11): RabbitMQ's declare and consume rules, and the queue object.

Plain synchronous Python: no files, no paths, no logging (issue 14). A `StreamQueue` reads
its log (a `store.stream_store` log: cursors, counts, stored offsets, `flush` so cursors
see what was appended) and makes every durable change - append, tracked offset, retention,
deletion - through a `StreamChanges` sink by its queue key: the core's change stream
(broker/changes.py), which applies it to the stream store and lets replication ship it
(cluster/leader.py), or the store itself when there is no core. For the integrator:

Declare (queue.declare with x-queue-type=stream, YAML topology, recovery replay)::

    validate_stream_arguments(name, vhost, durable, exclusive, auto_delete, arguments)
    q = amqpbroker.streams.open_in(stream_store, vhost, name, arguments, changes)

`validate_stream_arguments` raises `errors.PreconditionFailed` worded as RabbitMQ 4.x
(rabbit_amqqueue:check_declare_arguments, then rabbit_stream_queue:declare):
argument values first (x-max-length-bytes, x-max-age, x-stream-max-segment-size-bytes,
x-initial-cluster-size, x-queue-leader-locator), then arguments other queue types own
("invalid arg 'x-max-priority' for queue 'q' in vhost '/' of queue type
rabbit_stream_queue"), then the properties ("invalid property 'auto-delete' | 'exclusive-
owner' | 'non-durable' for queue 'q' in vhost '/'"), then the segment size and filter size
limits. x-initial-cluster-size and x-queue-leader-locator are checked and ignored (one node).
A stream is never server-named (RabbitMQ: capability server_named=false).

Consume (basic.consume on a StreamQueue)::

    check_stream_consume(name, vhost, no_ack=..., prefetch=..., global_prefetch=...)
    opts = parse_consumer_arguments(arguments, name, vhost)   # ConsumerOptions
    q.add_consumer(consumer, opts.offset, opts.filters, opts.match_unfiltered,
                   tracking_name=None)

RabbitMQ requires a per-consumer basic.qos prefetch (406 if 0), manual acks (540 for
no_ack) and no global qos (540). The consumer is the same duck type `model.queue.Queue`
uses (`can_take()`, `deliver(queue, msg, redelivered)`, `tag`); its prefetch is its
credit: acks only give credit back (`settle`, `reject`, `return_unacked` remove nothing,
requeue redelivers nothing, as in RabbitMQ). Each delivery is a fresh `Message` whose
headers carry `x-stream-offset` (a long), redelivered=false. `tracking_name` (LavinMQ's
server-side offset tracking) makes acked offsets persist under that name, and a consumer
that gives no offset resumes after the stored one ("first" if none).

Publish: `q.publish(msg) -> offset` appends (`stream_append`) and dispatches (the filter
value is the publisher's `x-stream-filter-value` header if a string: `filter_value_of`).
Confirms: it is durable once a sync of its log returned a `committed_offset` above its
offset (group commit: once per batch, `StreamStore.sync_logs`, as the server's sync round
does). Retention: `q.enforce_retention(now)` (`stream_retain`) from a timer (the log also
applies it on every segment roll). Other queue-like attributes the
session uses exist with stream values: durable, auto_delete, exclusive_owner, features
(None), consumers, consumer_count, message_count, deleted, unacked, consumer_timeout_ms
(None), flow_waiters / over_flow_limit() / release_flow() (publishers are never paused),
declared(). `get()` raises RabbitMQ's 540 (no basic.get on streams), as does `purge()`. `delete()`
drops the stream (`stream_delete`), `close()` syncs and closes its log.

Integration (done by `amqpbroker.streams.StreamRegistry`, which opens every stream of the
broker): with a `scheduler` set, a publish does not dispatch at once but once per event
loop iteration (one write and one read of the log per batch of publishes, not per
message); `on_tracking` is called when an ack moved a tracked offset (so that a group
commit makes it durable). A stream built with `log=None` (and no sink) is "detached": it
only exists for declarations that change nothing (config checks, offline definition tools).
"""

from __future__ import annotations

import datetime
import struct
from dataclasses import dataclass
from typing import Any, Callable, Mapping, NamedTuple, Protocol

from amqpbroker import errors
from amqpbroker.message import Message
from amqpbroker.model.destination import Destination
from amqpbroker.model.queue import queue_key
from amqpbroker.model.arguments import Atom, amqp_type_name, as_int, as_text, term
from amqpbroker.model.quorum import check_properties
from amqpbroker.protocol import tables
from amqpbroker.durations import parse_interval

__all__ = ["StreamQueue", "StreamConfig", "ConsumerOptions", "validate_stream_arguments",
           "parse_stream_arguments", "parse_consumer_arguments", "parse_offset_spec",
           "check_stream_consume", "StreamChanges"]

DEFAULT_SEGMENT_BYTES = 500_000_000  # RabbitMQ's default x-stream-max-segment-size-bytes
MAX_SEGMENT_SIZE_BYTES = 3_000_000_000  # RabbitMQ's ?MAX_STREAM_MAX_SEGMENT_SIZE (3 GB)
LEADER_LOCATORS = ("client-local", "balanced", "random", "least-leaders", "min-masters")
OFFSET_HEADER = "x-stream-offset"
FILTER_HEADER = "x-stream-filter-value"
# Queue arguments that only other queue types take (RabbitMQ 4.x capabilities(): classic
# and quorum queue_arguments minus the stream's); refused by name, in the client's order.
OTHER_TYPES_ONLY = frozenset((
    "x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key",
    "x-max-length", "x-max-priority", "x-overflow", "x-queue-mode", "x-queue-version",
    "x-single-active-consumer", "x-queue-master-locator", "x-dead-letter-strategy",
    "x-max-in-memory-length", "x-max-in-memory-bytes", "x-quorum-initial-group-size",
    "x-delivery-limit",
))
CONSUMER_ARGS_OTHER_TYPES_ONLY = frozenset(("x-priority",))


def _where(queue: str, vhost: str) -> str:
    return f"queue '{queue}' in vhost '{vhost}'"


def _non_neg(value: Any) -> Any:
    err = as_int(value)
    return err if err is not None or value >= 0 else (Atom("value_negative"), value)


def _cluster_size(value: Any) -> Any:
    err = _non_neg(value)
    return err if err is not None or value != 0 else (Atom("value_zero"), value)


def _max_age(value: Any) -> Any:
    text = value if isinstance(value, str) else None
    if text is None:
        return (Atom("unacceptable_type"), Atom(amqp_type_name(value)))
    return None if parse_interval(text) is not None else Atom("invalid_max_age")


def _locator(value: Any) -> Any:
    text = as_text(value)
    if text is None:
        return (Atom("unacceptable_type"), Atom(amqp_type_name(value)))
    return None if text in LEADER_LOCATORS else Atom("invalid_queue_locator_arg")


def _queue_type(value: Any) -> Any:
    text = as_text(value)
    if text is None:
        return (Atom("unacceptable_type"), Atom(amqp_type_name(value)))
    return None if text == "stream" else f"unsupported queue type '{text}'"


# rabbit_amqqueue:declare_args/0 order, restricted to the stream's queue_arguments
VALIDATORS: tuple[tuple[str, Callable[[Any], Any]], ...] = (
    ("x-max-length-bytes", _non_neg),
    ("x-queue-type", _queue_type),
    ("x-max-age", _max_age),
    ("x-stream-max-segment-size-bytes", _non_neg),
    ("x-initial-cluster-size", _cluster_size),
    ("x-queue-leader-locator", _locator),
)


def validate_stream_arguments(name: str, vhost: str, durable: bool, exclusive: bool,
                              auto_delete: bool, arguments: Mapping[str, Any] | None) -> None:
    """Raise PreconditionFailed (RabbitMQ's wording) unless this declares a valid stream."""
    arguments = arguments or {}
    where = _where(name, vhost)
    for key, check in VALIDATORS:
        if key in arguments:
            err = check(arguments[key])
            if err is not None:
                raise errors.PreconditionFailed(f"invalid arg '{key}' for {where}: {term(err)}")
    for key in arguments:
        if key in OTHER_TYPES_ONLY:
            raise errors.PreconditionFailed(
                f"invalid arg '{key}' for {where} of queue type rabbit_stream_queue")
    check_properties(name, vhost, durable, exclusive, auto_delete)
    segment = arguments.get("x-stream-max-segment-size-bytes")
    if isinstance(segment, int) and segment > MAX_SEGMENT_SIZE_BYTES:
        raise errors.PreconditionFailed("Exceeded max value for x-stream-max-segment-size-bytes")
    fsize = arguments.get("x-stream-filter-size-bytes")
    if isinstance(fsize, int) and not 16 <= fsize <= 255:
        raise errors.PreconditionFailed("Invalid value for  x-stream-filter-size-bytes")


@dataclass(frozen=True, slots=True)
class StreamConfig:
    max_length_bytes: int | None = None
    max_age_ms: int | None = None
    max_segment_size_bytes: int = DEFAULT_SEGMENT_BYTES


def parse_stream_arguments(arguments: Mapping[str, Any] | None) -> StreamConfig:
    """The retention settings of (already validated) declare arguments."""
    arguments = arguments or {}
    size = arguments.get("x-max-length-bytes")
    age = arguments.get("x-max-age")
    seg = arguments.get("x-stream-max-segment-size-bytes")
    return StreamConfig(
        max_length_bytes=size if isinstance(size, int) and not isinstance(size, bool) else None,
        max_age_ms=parse_interval(age) if isinstance(age, str) else None,
        max_segment_size_bytes=(seg if isinstance(seg, int) and not isinstance(seg, bool)
                                else DEFAULT_SEGMENT_BYTES))


def _erl(value: Any) -> str:
    """A table value as RabbitMQ prints it inside {invalid_stream_offset_arg,{Type,Value}}."""
    if isinstance(value, bool):
        v = "true" if value else "false"
    elif isinstance(value, str):
        v = '<<"' + value.replace("\\", "\\\\").replace('"', '\\"') + '">>'
    elif value is None:
        v = "undefined"
    else:
        v = str(value)
    return "{invalid_stream_offset_arg,{" + amqp_type_name(value) + "," + v + "}}"


def parse_offset_spec(value: Any, queue: str, vhost: str) -> Any:
    """A consumer's x-stream-offset as a `StreamLog.open_cursor` spec, or RabbitMQ's 406."""
    if value is None:
        return "next"
    if isinstance(value, (str, bytes)):
        text = as_text(value)
        if text in ("first", "last", "next") or parse_interval(text or "") is not None:
            return text
    elif isinstance(value, datetime.datetime):
        return value
    elif isinstance(value, int) and not isinstance(value, bool):
        return value  # clamped into the stream, as RabbitMQ does
    raise errors.PreconditionFailed(
        f"invalid arg 'x-stream-offset' for {_where(queue, vhost)}: {_erl(value)}")


class ConsumerOptions(NamedTuple):
    offset: Any
    filters: list[str] | None
    match_unfiltered: bool


def parse_consumer_arguments(arguments: Mapping[str, Any] | None, queue: str,
                             vhost: str) -> ConsumerOptions:
    """basic.consume arguments of a stream consumer (rabbit_stream_queue:filter_spec):
    x-stream-filter is a string or an array (its non-strings ignored); x-stream-match-
    unfiltered counts only with a filter and only as a bool."""
    arguments = arguments or {}
    for key in arguments:
        if key in CONSUMER_ARGS_OTHER_TYPES_ONLY:
            raise errors.PreconditionFailed(
                f"invalid arg '{key}' for {_where(queue, vhost)} of queue type rabbit_stream_queue")
    offset = parse_offset_spec(arguments.get(OFFSET_HEADER), queue, vhost)
    raw = arguments.get("x-stream-filter")
    filters: list[str] | None = None
    if isinstance(raw, str):
        filters = [raw]
    elif isinstance(raw, (list, tuple)):
        filters = [v for v in raw if isinstance(v, str)]
    match = arguments.get("x-stream-match-unfiltered")
    return ConsumerOptions(offset, filters, filters is not None and match is True)


def check_stream_consume(queue: str, vhost: str, *, no_ack: bool, prefetch: int,
                         global_prefetch: int = 0) -> None:
    """rabbit_stream_queue:consume/3's refusals, in its order."""
    where = _where(queue, vhost)
    if not prefetch:
        raise errors.PreconditionFailed(f"consumer prefetch count is not set for stream {where}")
    if no_ack:
        raise errors.NotImplemented_(f"automatic acknowledgement not supported by stream {where}")
    if global_prefetch:
        raise errors.NotImplemented_(f"{where} does not support global qos")


def filter_value_of(properties: bytes) -> str | None:
    """The publisher's x-stream-filter-value header if it is a string (RabbitMQ ignores
    other types). Read from the raw table: 3-4x cheaper than decoding the properties."""
    for key, raw in tables.headers_of(properties):
        if key == FILTER_HEADER:
            return tables.read_text(raw)
    return None


_I64 = struct.Struct(">q")
_SENTINELS = (0x5A5A5A5A5A5A5A5A, 0x3C3C3C3C3C3C3C3C)
_offset_splices: dict[bytes, tuple[bytes, bytes]] = {}


def with_offset_header(properties: bytes, offset: int) -> bytes:
    """`properties` with the `x-stream-offset` header (a long) set to `offset`.

    Deliveries of a stream mostly repeat a few property layouts: the layout is edited once
    (through `protocol.tables`, keeping every other header byte for byte) and cached as the
    bytes before and after the 8-byte value, so each delivery costs one concatenation."""
    splice = _offset_splices.get(properties)
    if splice is None:
        built = []
        for sentinel in _SENTINELS:
            items = tables.headers_of(properties)
            tables.set_header(items, OFFSET_HEADER, tables.long(sentinel))
            built.append(tables.with_header_items(properties, items))
        a, b = built
        i = next(i for i in range(len(a)) if a[i] != b[i])
        splice = (a[:i], a[i + 8:])
        if len(_offset_splices) >= 1024:
            _offset_splices.clear()
        _offset_splices[properties] = splice
    head, tail = splice
    return head + _I64.pack(offset) + tail


class StreamChanges(Protocol):
    """Where a stream's durable changes go (the core's `ChangeStream`, or a
    `store.stream_store.StreamStore` itself when there is no core): by queue key, in order."""

    def stream_append(self, queue_key: str, exchange: str, routing_key: str,
                      properties: bytes, body: bytes, filter_value: str | None) -> int:
        """Append a message; its offset."""

    def stream_offset(self, queue_key: str, name: str, offset: int) -> None:
        """A tracked consumer's offset moved."""

    def stream_retain(self, queue_key: str, now: float | None) -> int:
        """Apply retention at wall time `now`; how many segments went."""

    def stream_delete(self, queue_key: str) -> None:
        """The stream was deleted: its log goes."""


class _Reader:
    __slots__ = ("cursor", "tracking")

    def __init__(self, cursor: Any, tracking: str | None) -> None:
        self.cursor = cursor
        self.tracking = tracking


class StreamQueue(Destination):
    """A stream queue: a `StreamLog` plus consumers reading it at their own offsets."""

    is_stream = True
    queue_type = "stream"
    is_quorum = False
    persist_all = True  # every message is in the log: confirms wait for its sync
    ready: tuple = ()  # no ready list (the session's flow-control check reads its length)
    durable = True
    auto_delete = False
    exclusive_owner = None
    exclusive_consumer = None
    features = None
    changes = None  # its log is its durable state (the core syncs it)
    consumer_timeout_ms = None
    policy: str | None = None
    operator_policy: str | None = None
    effective_policy_definition: dict = {}

    def __init__(self, vhost: str, name: str, log: Any, *,
                 stream_changes: StreamChanges | None = None,
                 arguments: dict[str, Any] | None = None) -> None:
        self.vhost = vhost
        self.name = name
        self.key = queue_key(vhost, name)
        self.arguments = arguments or {}
        self.log = log  # read only: cursors, counts, stored offsets
        self.stream_changes = stream_changes  # every write (None: detached)
        self.consumers: list[Any] = []
        self._readers: dict[Any, _Reader] = {}
        self._tracked: dict[Message, tuple[str, int]] = {}
        self.had_consumer = False
        self.deleted = False
        self.unacked = 0
        self.flow_waiters: set[Any] = set()
        self.scheduler: Any = None  # see the module docstring (deferred dispatch)
        self.on_tracking: Callable[[], None] | None = None
        self._dispatch_pending = False

    # -- counts ---------------------------------------------------------------------------
    @property
    def message_count(self) -> int:
        return 0 if self.log is None else self.log.message_count

    @property
    def consumer_count(self) -> int:
        return len(self.consumers)

    # -- messages in ----------------------------------------------------------------------
    def publish(self, msg: Message) -> int:
        """Append a routed message; returns its offset."""
        assert msg.body is not None, "stream messages arrive with their body"
        offset = self.stream_changes.stream_append(  # type: ignore[union-attr]
            self.key, msg.exchange, msg.routing_key, msg.properties, msg.body,
            filter_value_of(msg.properties))
        if self.consumers:
            scheduler = self.scheduler
            if scheduler is None or not scheduler.attached:  # no loop yet: deliver now
                self.dispatch()
            elif not self._dispatch_pending:
                self._dispatch_pending = True
                scheduler.call_at(scheduler.now(), self._deferred_dispatch)
        return offset

    def _deferred_dispatch(self) -> None:
        self._dispatch_pending = False
        self.dispatch()

    def enable_message_expiry(self) -> None:
        """Streams ignore the `expiration` property (retention is by size and age)."""

    # -- messages out ---------------------------------------------------------------------
    def dispatch(self) -> None:
        """Hand records to every consumer while it has credit."""
        if not self.consumers or self.deleted:
            return
        self.log.flush()
        for consumer in self.consumers:
            reader = self._readers[consumer]
            cursor = reader.cursor
            while consumer.can_take():
                rec = cursor.next()
                if rec is None:
                    break
                msg = Message(rec.exchange, rec.routing_key,
                              with_offset_header(rec.properties, rec.offset), rec.body,
                              len(rec.body), True)
                self.unacked += 1
                if reader.tracking is not None:
                    self._tracked[msg] = (reader.tracking, rec.offset)
                consumer.deliver(self, msg, False)  # never no-ack: check_stream_consume

    def settle(self, msg: Message) -> None:
        """An ack (or a no-ack delivery): credit only; a tracked consumer's offset is kept."""
        self.unacked -= 1
        tracked = self._tracked.pop(msg, None) if self._tracked else None
        if tracked is not None:
            name, offset = tracked
            stored = self.log.stored_offset(name)
            if stored is None or offset > stored:
                self.stream_changes.stream_offset(self.key, name, offset)  # type: ignore[union-attr]
                if self.on_tracking is not None:
                    self.on_tracking()

    def reject(self, msg: Message) -> None:
        """basic.reject / nack without requeue: nothing leaves a stream."""
        self.unacked -= 1
        if self._tracked:
            self._tracked.pop(msg, None)

    def return_unacked(self, entries: list[tuple[Message, bool]]) -> None:
        """nack/reject with requeue, channel closed: credit back, nothing redelivered."""
        self.unacked -= len(entries)
        if self._tracked:
            for entry in entries:
                self._tracked.pop(entry[0], None)
        self.dispatch()

    def get(self) -> None:
        raise errors.NotImplemented_(
            f"basic.get not supported by stream queues {_where(self.name, self.vhost)}")

    def purge(self) -> int:
        raise errors.NotImplemented_(
            f"queue.purge not supported by stream queues {_where(self.name, self.vhost)}")

    # -- consumers ------------------------------------------------------------------------
    def add_consumer(self, consumer: Any, offset_spec: Any = None, filters: list[str] | None = None,
                     match_unfiltered: bool = False, *, tracking_name: str | None = None) -> None:
        """Start a consumer at `offset_spec` (see `parse_offset_spec`; None = "next", or
        after the offset stored for `tracking_name`)."""
        if offset_spec is None and tracking_name is not None:
            stored = self.log.stored_offset(tracking_name)
            offset_spec = "first" if stored is None else stored + 1
        try:
            cursor = self.log.open_cursor(offset_spec, filters=filters,
                                          match_unfiltered=match_unfiltered)
        except ValueError:
            parse_offset_spec(offset_spec, self.name, self.vhost)  # raises RabbitMQ's 406
            raise
        self._readers[consumer] = _Reader(cursor, tracking_name)
        self.consumers.append(consumer)
        self.had_consumer = True
        self.dispatch()

    def remove_consumer(self, consumer: Any) -> bool:
        """Stop a consumer. Always False: streams are never auto-deleted."""
        reader = self._readers.pop(consumer, None)
        if reader is None:
            return False
        reader.cursor.close()
        self.consumers.remove(consumer)
        return False

    # -- retention, tracking, lifecycle ---------------------------------------------------
    def apply_policy(self, effective: Any) -> None:
        """Retention from a policy (model/policy.py: for streams the policy wins over the
        arguments); applied to the log at once."""
        self.policy = effective.policy
        self.operator_policy = effective.operator_policy
        self.effective_policy_definition = effective.definition
        args = effective.arguments if effective.policy or effective.operator_policy \
            else self.arguments
        config = parse_stream_arguments(args)
        if self.log is not None:
            self.log.configure(max_bytes=config.max_length_bytes, max_age_ms=config.max_age_ms,
                               max_segment_bytes=config.max_segment_size_bytes)
            self.enforce_retention()

    @property
    def has_retention(self) -> bool:
        log = self.log
        return log is not None and (log.max_bytes is not None or log.max_age_ms is not None)

    def enforce_retention(self, now: float | None = None) -> int:
        return self.stream_changes.stream_retain(self.key, now)  # type: ignore[union-attr]

    def store_offset(self, name: str, offset: int) -> None:
        self.stream_changes.stream_offset(self.key, name, offset)  # type: ignore[union-attr]

    def stored_offset(self, name: str) -> int | None:
        return self.log.stored_offset(name)

    def over_flow_limit(self) -> bool:
        return False


    def declared(self) -> None:
        pass

    def delete(self) -> int:
        """queue.delete: the files go; returns the message count RabbitMQ reports."""
        count = self.message_count
        self.deleted = True
        for reader in self._readers.values():
            reader.cursor.close()
        self._readers.clear()
        self.consumers.clear()
        self._tracked.clear()
        if self.stream_changes is not None:
            self.stream_changes.stream_delete(self.key)
        return count

    def close(self) -> None:
        """Broker shutdown: sync and close the files (the stream stays)."""
        if self.log is not None:
            self.log.close()

    def __repr__(self) -> str:
        return f"StreamQueue({self.vhost!r}, {self.name!r})"
