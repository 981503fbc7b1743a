"""A queue: ready messages, consumers, and the rules for handing messages out.

Plain synchronous Python. Consumers are duck-typed objects owned by the session layer (see
`session.consumer.Consumer`): the queue only asks `can_take()` and `no_ack`, and calls
`deliver(queue, msg, redelivered)`, which must not call back into the queue. The caller of
`deliver` settles a no-ack consumer's delivery (it never comes back): a plain queue does so
as it hands the message out, without counting it out at all.

Delivery order: FIFO; a requeued message goes back to its original position (RabbitMQ: "when
a message is requeued, it will be placed in its original position in its queue, if
possible", https://www.rabbitmq.com/docs/confirms), whichever way it comes back: reject or
nack (one by one or multiple, in any order), recover, a cancelled consumer, a closed channel
or connection, a consumer timeout. As RabbitMQ's classic queues do, the queue numbers its
messages: ready entries are `(message, redelivered, seq)`, where `seq` is 0 until the message
is first handed out and then the count of first hand-outs so far (a FIFO hands messages out
in enqueue order, so that is the enqueue order); while the message is out its seq waits in
`_out`, and a returned entry is merged back by it (`model.ready.merge_returned`). Numbering
at the first hand-out costs queued messages nothing (a 3-tuple takes the memory of a
2-tuple) and the per-message path one counter and one dict item per outstanding delivery.
Quorum queues follow rabbit_fifo instead: returns first, in the order they were returned
(`model.quorum.QuorumReady`). The figures the management API lists (bytes ready and
unacknowledged, persistent messages) are running totals bumped on the same paths, so a
listing never scans the messages (tests/model/test_queue_counters_model.py recounts them). Among consumers: highest `x-priority` first, round-robin
within a priority, skipping consumers without prefetch credit or whose socket is not
writable (https://www.rabbitmq.com/docs/consumer-priority).

Optional features (x-message-ttl and per-message expiration, x-expires, dead lettering,
x-max-length / -bytes with x-overflow, x-max-priority, x-single-active-consumer,
x-delivery-limit) live in a part the queue owns, `self.featured` (`QueueFeatures`,
`model/queue_features.py`). A queue
declared without any of them has `features = None` and every per-message method pays one
attribute test for them; a featured queue takes that part's `_f` methods instead:

* ready entries are compact tuples `(message, redelivered, expires_at, returns, seq)`:
  `expires_at` is a monotonic deadline or None, `returns` how often the message came back
  (for x-delivery-limit), `seq` as above (always last); the ready list is a deque, or a `PriorityReady` (one FIFO per
  priority) for priority queues;
* while a message is out with a consumer its deadline and return count wait in `_held`
  (RabbitMQ keeps the original expiry of a requeued message);
* expiry is RabbitMQ's classic-queue rule: only heads expire (an expired message behind a
  live one goes when it reaches the head), never delivered once expired; one timer per
  queue is armed at the head's deadline, through the core's scheduler (`clock.py`), so
  the model never sees an event loop.

Quorum queues (`quorum=True`, rules in `model.quorum`) are featured queues that store
every message whatever its delivery mode (`persist_all`) and keep a two-priority ready
list (`model.quorum.QuorumReady`); stream queues are another class (`model.stream`).
"""

from __future__ import annotations

from collections import deque
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Iterable, Protocol

from amqpbroker.model.report import log
from amqpbroker.clock import Scheduler
from amqpbroker.model.deadletter import REJECTED, Rejected
from amqpbroker.model.destination import NO_WAITERS, Destination
from amqpbroker.message import Message
from amqpbroker.model.quorum import quorum_config
from amqpbroker.model.ready import merge_returned
from amqpbroker.model.paged import PAGE_AFTER, PagedReady, read_back
from amqpbroker.model.queue_args import (
    QueueConfig,
    consumer_timeout_of,
    parse_queue_arguments,
)
from amqpbroker.model.queue_features import FLOW_HIGH, FLOW_LOW, QueueFeatures

if TYPE_CHECKING:
    from amqpbroker.model.vhost import VirtualHost
    from amqpbroker.model.changes import DurableChanges


__all__ = ["Queue", "Rejected", "queue_key", "FLOW_HIGH", "FLOW_LOW"]


class ConsumerLike(Protocol):
    tag: str
    priority: int
    exclusive: bool
    no_ack: bool  # its deliveries are settled by the queue as they are handed out

    def can_take(self) -> bool: ...

    def deliver(self, queue: "Queue", msg: Message, redelivered: bool) -> None: ...


Entry = tuple  # (Message, redelivered: bool, seq: int); featured queues: see the docstring
NO_READY: Any = ()  # the ready list of a plain queue no message ever waited in
NO_HELD: Any = MappingProxyType({})  # `_held` of a queue without optional features
NO_CONSUMERS: Any = ()  # the consumers of a queue no one ever consumed from (a list: 56 bytes)
_NEVER = float("inf")
_fallback_scheduler = Scheduler()  # for queues built without a vhost (bare model tests)


class FlowWaiter(Protocol):
    def flow_released(self, queue: "Queue") -> None: ...


class _PartMadePerUse:
    """`Queue.featured` once the queue has left its vhost (`Queue.removed`): a
    QueueFeatures made for each use instead of one the queue holds. A live queue keeps its
    part in its own attributes (found first: the fast path); a held part would be a cycle
    (queue -> part -> queue), leaving a deleted queue to the cyclic collector, which never
    walks the queues `serve` froze at start (collector.py). A channel may still return or
    settle a deleted queue's messages, so the part must keep working."""

    def __get__(self, queue: "Queue | None", owner: type | None = None) -> Any:
        return self if queue is None else QueueFeatures(queue)


class Queue(Destination):
    """A classic queue, or a quorum queue (`quorum=True`): see the module docstring."""

    featured = _PartMadePerUse()

    # Defaults kept on the class, set on an instance only when they differ: CPython shares
    # one key table among instances whose __dict__ holds at most 30 names (3.11), and a
    # queue's __dict__ then takes ~300 bytes instead of ~1,600 (100,000 idle queues:
    # ~130 MB less). Hot-path attributes stay on the instance.
    exclusive_owner: Any = None
    auto_delete = False
    exclusive_consumer: "ConsumerLike | None" = None
    had_consumer = False
    active: "ConsumerLike | None" = None  # x-single-active-consumer
    _timed = False  # some ready entry may carry a deadline
    _ttl_timer: Any = None
    _ttl_when = _NEVER
    _lease_timer: Any = None

    def __init__(
        self,
        vhost: str,
        name: str,
        *,
        durable: bool = False,
        exclusive_owner: Any = None,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
        changes: "DurableChanges | None" = None,
        host: "VirtualHost | None" = None,
        quorum: bool = False,
    ) -> None:
        self.vhost = vhost
        self.name = name
        self.key = queue_key(vhost, name)
        self.durable = durable
        if exclusive_owner is not None:
            self.exclusive_owner = exclusive_owner
        if auto_delete:
            self.auto_delete = auto_delete
        self.arguments = arguments or {}
        # Only durable queues produce durable changes for persistent messages (spec 1.4.2 /
        # RabbitMQ "persistence": a persistent message in a transient queue is not persisted).
        # The core applies them to the store (model/changes.py): the model does no IO.
        self.changes = changes if durable else None
        # An idle queue shares these empty ones (a deque is 760 bytes, a set 216): `ready`
        # is the empty tuple until a message waits in it, `_held` is made by the featured
        # path, `flow_waiters` by `wait_for_flow`. They are set here all the same, so that
        # every queue's __dict__ has the same keys in the same order (CPython shares one
        # key table among them, and attribute reads stay on the fast path).
        self.ready: deque[Entry] = NO_READY
        self._seq = 0  # messages handed out for the first time so far (see the docstring)
        self._out: dict[Message, int] = {}  # seq of each message out with a consumer
        self.consumers: list[ConsumerLike] = NO_CONSUMERS  # a list from the first consumer on
        self.deleted = False
        self.unacked = 0
        # Running totals for the management API (O(queues) listings, never a scan of the
        # messages): body bytes of the ready and of the unacknowledged messages, and how
        # many messages this durable queue holds in the store (ready and unacked) and their
        # bytes (RabbitMQ's messages_persistent: 0 for transient queues). Each is bumped
        # where the message's state changes already: an integer add on this object.
        self.ready_bytes = 0
        self.unacked_bytes = 0
        self.persistent_count = 0
        self.persistent_bytes = 0
        self.flow_waiters: Any = NO_WAITERS
        # -- optional features (None: a plain queue, the fast path) --
        self.host = host  # dead lettering, x-expires and the clock go through the vhost
        self.consumer_timeout_ms = consumer_timeout_of(self.arguments)
        self.features: QueueConfig | None = None
        self._held: Any = NO_HELD
        self.clock: Scheduler = host.scheduler if host is not None else _fallback_scheduler
        # The optional features' behaviour, a part of this queue (model/queue_features.py).
        self.featured = QueueFeatures(self)
        # A quorum queue stores (and confirms after the fsync) every message it gets, while
        # deliveries keep the publisher's delivery_mode (RabbitMQ: quorum queues are
        # always persistent).
        if quorum:
            self.is_quorum = self.persist_all = True
            self.queue_type = "quorum"
        if quorum:
            self.featured._enable(quorum_config(self.arguments, name, vhost))
        elif self.arguments:
            config = parse_queue_arguments(self.arguments)
            if config is not None:
                self.featured._enable(config)

    def enable_message_expiry(self) -> None:
        """A message with an `expiration` property reached this queue (see QueueFeatures)."""
        self.featured.enable_message_expiry()

    # Set by a matching policy (VirtualHost.apply_policy); what the management API shows.
    policy: str | None = None
    operator_policy: str | None = None
    effective_policy_definition: dict[str, Any] = {}

    def apply_policy(self, effective: Any) -> None:
        """A policy was set, changed or cleared (see QueueFeatures.apply_policy)."""
        self.featured.apply_policy(effective)

    def declared(self) -> None:
        """queue.declare of this queue (renews an x-expires lease)."""
        self.featured.declared()

    # -- counts -------------------------------------------------------------------------
    @property
    def message_count(self) -> int:
        return len(self.ready)

    @property
    def consumer_count(self) -> int:
        return len(self.consumers)

    # -- messages in ----------------------------------------------------------------------
    def publish(self, msg: Message) -> None:
        """Enqueue a freshly routed message (the per-message hot path).

        Raises `Rejected` when x-overflow=reject-publish(-dlx) refuses it."""
        if self.features:
            return self.featured._publish_f(msg)
        changes = self.changes
        if changes is not None and msg.persistent:
            changes.add(self.key, msg)
            self.persistent_count += 1
            self.persistent_bytes += msg.body_size
        ready = self.ready
        if not ready:
            consumers = self.consumers
            if consumers:
                if len(consumers) == 1:  # the common case, without _next_consumer's call
                    consumer = consumers[0]
                    if not consumer.can_take():
                        consumer = None
                else:
                    consumer = self._next_consumer()
                if consumer is not None:
                    if consumer.no_ack:  # _hand_out's first case, without its call
                        consumer.deliver(self, msg, False)
                        if changes is not None and msg.persistent:
                            self._unstore(msg)
                        return
                    self._hand_out(consumer, msg, False, 0)
                    return
            if ready is NO_READY:
                ready = self.ready = deque()
        ready.append((msg, False, 0))
        self.ready_bytes += msg.body_size

    def requeue(self, entries: Iterable[Entry]) -> None:
        """Put messages that were handed out back at their original positions."""
        if self.features:
            self.featured._return_f(entries)
            return
        out = self._out
        back = []
        size = was_out = 0
        for m, *_ in entries:
            seq = out.pop(m, None)
            if seq is not None:
                was_out += m.body_size
            size += m.body_size
            back.append((m, True, seq or 0))
        if back:
            if self.ready is NO_READY:
                self.ready = deque()
            merge_returned(self.ready, back)
            self.ready_bytes += size
            self.unacked_bytes -= was_out
        self.dispatch()

    def restore(self, msg: Message, redelivered: bool) -> None:
        """Append a message recovered from the store at startup (not written again).

        The store records when the message was enqueued (wall clock), so its TTL deadline
        is where it was before the restart: the time spent down counts."""
        if self.changes is not None and (msg.persistent or self.persist_all):
            self.persistent_count += 1
            self.persistent_bytes += msg.body_size
        if msg.expiration is not None and self.features is None:
            self.enable_message_expiry()
        if self.features:
            deadline = self.featured._deadline(msg, self.clock.now())
            if deadline is not None and msg.enqueued_ms:
                deadline -= max(0.0, self.clock.wall() - msg.enqueued_ms / 1000.0)
            self.featured._restore_f((msg, redelivered, deadline, 0, 0))
            self.featured._schedule_expiry()
            return
        ready = self.ready
        if ready is NO_READY:
            ready = self.ready = deque()
        ready.append((msg, redelivered, 0))
        self.ready_bytes += msg.body_size
        if len(ready) > PAGE_AFTER and ready.__class__ is deque:
            self.deep()  # a deep backlog comes back paged, as it went

    def restore_refs(self, ids: Any, sizes: Any, expiring: bool, transient: bool) -> None:
        """Messages recovered as store ids and body sizes (bit 63 of an id: redelivered),
        in queue order: a deep plain queue keeps them paged (model/paged.py); any other
        reads them back and restores each."""
        changes = self.changes
        if changes is None:
            return
        if (self.features or expiring or transient or len(ids) <= PAGE_AFTER
                or self.ready):
            for msg, redelivered, _ in read_back(changes, self.key, ids, sizes):
                self.restore(msg, redelivered)
            return
        total = sum(sizes)
        self.persistent_count += len(ids)
        self.persistent_bytes += total
        self.ready_bytes += total
        self.ready = PagedReady.from_refs(ids, sizes, changes, self.key)  # type: ignore[assignment]

    # -- messages out ----------------------------------------------------------------------
    def dispatch(self) -> None:
        """Hand ready messages to consumers while someone can take one."""
        if self.features:
            self.featured._dispatch_f()
            return
        ready = self.ready
        if ready and self.consumers:
            taken = 0  # bytes leaving the ready list: one update per dispatch round
            try:
                while ready and self.consumers:
                    consumer = self._next_consumer()
                    if consumer is None:
                        break
                    msg, redelivered, seq = ready.popleft()
                    taken += msg.body_size
                    self._hand_out(consumer, msg, redelivered, seq)
            finally:
                self.ready_bytes -= taken
            if not ready and ready.__class__ is PagedReady:
                self.ready = NO_READY  # drained: no paged list any more (model/paged.py)
        if self.flow_waiters and len(ready) <= FLOW_LOW:
            self.release_flow()

    def over_flow_limit(self) -> bool:
        return len(self.ready) > FLOW_HIGH and bool(self.consumers) and not self.deleted

    def deep(self) -> bool:
        """More than FLOW_HIGH ready messages: past PAGE_AFTER, a plain durable queue keeps
        the store ids of messages far from the head instead of the messages
        (model/paged.py); True while publishers should be paused."""
        ready = self.ready
        if (self.changes is not None and ready.__class__ is deque and len(ready) > PAGE_AFTER
                and self.features is None and not self.deleted):
            self.ready = PagedReady(ready, self.changes, self.key)  # type: ignore[assignment]
            ready.clear()
        return len(ready) > FLOW_HIGH and bool(self.consumers) and not self.deleted

    def _hand_out(self, consumer: ConsumerLike, msg: Message, redelivered: bool,
                  seq: int) -> None:
        if consumer.no_ack:
            # Settled as it goes (https://www.rabbitmq.com/docs/confirms, automatic
            # acknowledgement): never counted out, never numbered, no dict item.
            consumer.deliver(self, msg, redelivered)
            if self.changes is not None and msg.persistent:
                self._unstore(msg)
            return
        self.unacked += 1
        if self.changes is not None and msg.persistent:
            self.changes.mark_delivered(self.key, msg)
        consumer.deliver(self, msg, redelivered)
        if not seq:
            self._seq = seq = self._seq + 1
        self._out[msg] = seq
        self.unacked_bytes += msg.body_size

    def get(self) -> tuple[Message, bool] | None:
        """Basic.Get: the head message, now unacked by the caller (or settled at once)."""
        if self.features:
            return self.featured._get_f()
        if not self.ready:
            return None
        msg, redelivered, seq = self.ready.popleft()
        self.ready_bytes -= msg.body_size
        self.unacked += 1
        if not seq:
            self._seq = seq = self._seq + 1
        self._out[msg] = seq
        self.unacked_bytes += msg.body_size
        if self.changes is not None and msg.persistent:
            self.changes.mark_delivered(self.key, msg)
        return msg, redelivered

    def settle(self, msg: Message) -> None:
        """An outstanding delivery is done with for good: an ack, a reject, a no-ack get or
        a featured queue's no-ack delivery (a plain queue settles its no-ack deliveries in
        `_hand_out`, without counting them out)."""
        self.unacked -= 1
        if self._out.pop(msg, None) is not None:
            self.unacked_bytes -= msg.body_size
        if self.features:
            self._held.pop(msg, None)
        if self.changes is not None and (msg.persistent or self.persist_all):
            self._unstore(msg)

    def _unstore(self, msg: Message) -> None:
        """A stored message is done with: removed from the store (a deleted queue's
        messages went with it)."""
        if not self.deleted:
            self.changes.remove(self.key, msg)  # type: ignore[union-attr]
            self.persistent_count -= 1
            self.persistent_bytes -= msg.body_size

    def reject(self, msg: Message) -> None:
        """A delivery rejected without requeue: dead-lettered if the queue has a dead
        letter exchange, then gone for good."""
        features = self.features
        if features and features.dead_letter_exchange is not None and not self.deleted:
            self.featured._dead_letter(msg, REJECTED)
        self.settle(msg)

    def return_unacked(self, entries: list[Entry]) -> None:
        """Deliveries that were not acked come back (reject/nack requeue, channel close)."""
        self.unacked -= len(entries)
        if self.features:
            self.featured._return_f(entries)
        elif not self.deleted:
            self.requeue(entries)

    def removed(self) -> None:
        """It left its vhost: no timer may fire for it, and nothing holds it in a cycle."""
        if self.features:
            self.ready.clear()  # a featured path may still take returns: keep its kind
        else:
            self.ready = NO_READY  # type: ignore[assignment]
        self.featured.removed()
        del self.featured  # from now on, _PartMadePerUse

    def purge(self) -> int:
        ready = self.ready
        count = len(ready)
        if self.changes is not None:
            paged = ready.__class__ is PagedReady
            for msg in ready.messages() if paged else (e[0] for e in ready):  # type: ignore[union-attr]
                if msg.persistent or self.persist_all:
                    self.changes.remove(self.key, msg)
                    self.persistent_count -= 1
                    self.persistent_bytes -= msg.body_size
        if ready.__class__ is PagedReady:
            self.ready = NO_READY  # type: ignore[assignment]
        elif ready:
            ready.clear()  # a featured queue's ready list stays its kind
        self.ready_bytes = 0
        if self.flow_waiters:
            self.release_flow()
        return count

    # -- consumers ------------------------------------------------------------------------
    def add_consumer(self, consumer: ConsumerLike) -> None:
        self.had_consumer = True
        if consumer.exclusive:
            self.exclusive_consumer = consumer
        consumers = self.consumers
        if consumers is NO_CONSUMERS:
            consumers = self.consumers = []
        if not consumers or consumers[-1].priority >= consumer.priority:
            consumers.append(consumer)
        else:  # ordered by priority, highest first; newest last within its priority
            idx = next(i for i, c in enumerate(consumers) if c.priority < consumer.priority)
            consumers.insert(idx, consumer)
        if self.features:
            self.featured._consumer_added(consumer)
        self.dispatch()

    def remove_consumer(self, consumer: ConsumerLike) -> bool:
        """Remove a consumer; True when the queue should now be auto-deleted.

        Never dispatches: with a single active consumer the next one takes over, and the
        caller dispatches once the leaving consumer's unacked messages are back."""
        try:
            self.consumers.remove(consumer)
        except (ValueError, AttributeError):  # not there; NO_CONSUMERS has no remove()
            return False
        if self.exclusive_consumer is consumer:
            self.exclusive_consumer = None
        if self.features:
            self.featured._consumer_removed(consumer)
        if not self.consumers and self.flow_waiters:
            self.release_flow()
        return self.auto_delete and not self.consumers

    def _next_consumer(self) -> ConsumerLike | None:
        consumers = self.consumers
        if len(consumers) == 1:
            c = consumers[0]
            return c if c.can_take() else None
        for i, c in enumerate(consumers):
            if c.can_take():
                # Round-robin within the same priority: move the chosen consumer behind the
                # others of its priority (consumers are ordered by priority, highest first).
                j = i + 1
                n = len(consumers)
                while j < n and consumers[j].priority == c.priority:
                    j += 1
                if j - 1 != i:
                    consumers.insert(j - 1, consumers.pop(i))
                return c
        return None

    def __repr__(self) -> str:
        return f"Queue({self.vhost!r}, {self.name!r})"


def queue_key(vhost: str, name: str) -> str:
    """The store's name for a queue: unique across vhosts (NUL cannot occur in either)."""
    return f"{vhost}\x00{name}"
