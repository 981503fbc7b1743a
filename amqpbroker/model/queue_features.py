"""The optional half of `model.queue.Queue`: TTL, x-expires, dead lettering, length limits,
priorities, single active consumer and delivery limits (see `model/queue.py`'s docstring
for the entry layout and the expiry rule). Only queues whose `features` is set run this
code; this part keeps the plain per-message path of `Queue` short and readable.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Iterable

from amqpbroker.model.report import log
from amqpbroker import errors
from amqpbroker.model.deadletter import (
    DELIVERY_LIMIT,
    EXPIRED,
    MAXLEN,
    Rejected,
    dead_letter,
)
from amqpbroker.message import Message
from amqpbroker.model.policy import Effective
from amqpbroker.model.quorum import QuorumReady, quorum_config
from amqpbroker.model.queue_args import (
    DROP_HEAD,
    REJECT_PUBLISH_DLX,
    QueueConfig,
    consumer_timeout_of,
    parse_expiration,
    parse_queue_arguments,
)
from amqpbroker.model.ready import PriorityReady, merge_returned
from amqpbroker.protocol import tables

if TYPE_CHECKING:
    from amqpbroker.model.queue import ConsumerLike, Entry, Queue

_NEVER = float("inf")
_PLAIN_FEATURES = QueueConfig()

# Flow control: while a queue that has consumers holds more than FLOW_HIGH ready messages,
# connections that only publish to it are not read from, until it drains below FLOW_LOW.
# This is the effect of RabbitMQ's credit flow (https://www.rabbitmq.com/docs/flow-control)
# in a broker where enqueueing is synchronous: a publisher cannot outrun its consumers
# without bound. Queues without consumers just accumulate (the memory alarm bounds them).
FLOW_HIGH = 4096
FLOW_LOW = 1024


class QueueFeatures:
    """The featured behaviour of one `Queue`, a part the queue owns (`queue.featured`),
    composed rather than mixed in. It keeps no state of its own: the entries, deadlines
    and timers it works on are the queue's (`self.q`), so the plain path of `Queue` reads
    them without an extra hop."""

    __slots__ = ("q",)

    def __init__(self, queue: "Queue") -> None:
        self.q = queue

    # == optional features ===================================================================
    # Everything below runs only for queues with `features` (see the module docstring).

    def _enable(self, config: QueueConfig) -> None:
        old = self.q.ready
        self.q.features = config
        self.q._held = {}  # deadline and return count of messages out with consumers
        if config.two_priorities:
            self.q.ready = QuorumReady()  # type: ignore[assignment]
        else:
            self.q.ready = PriorityReady(config.max_priority) if config.max_priority else deque()
        self.q.ready_bytes = 0
        for entry in old:  # only a plain queue switching on message expiry has entries
            self._push((entry[0], entry[1], None, 0, entry[2]))
        if config.expires is not None:
            self._renew_lease()

    def enable_message_expiry(self) -> None:
        """A message with an `expiration` property reached a plain queue: from now on the
        queue tracks deadlines (it stays on the featured path)."""
        if self.q.features is None:
            self._enable(_PLAIN_FEATURES)

    # -- policies: the effective-config recomputation hook ------------------------------------
    def apply_policy(self, effective: Effective) -> None:
        """Run the queue with the arguments a policy change leaves in effect
        (model/policy.py; `Queue.apply_policy` calls this).

        Called at declare and whenever a matching policy is set, changed or cleared. A
        plain queue no policy touches stays plain (the fast path); once featured, a queue
        stays on the featured path even if the policy goes (its entries carry deadlines).
        At once: a lower length limit drops or dead-letters the head overflow (drop-head;
        as RabbitMQ, reject-publish keeps what is there), a new message TTL recomputes the
        deadlines of ready messages and expires what is too old (`_restamp`), a new
        x-expires restarts the lease."""
        q = self.q
        q.policy = effective.policy
        q.operator_policy = effective.operator_policy
        q.effective_policy_definition = effective.definition
        args = effective.arguments if effective.policy or effective.operator_policy \
            else q.arguments
        q.consumer_timeout_ms = consumer_timeout_of(args)
        if q.is_quorum:
            config: QueueConfig | None = quorum_config(args, q.name, q.vhost)
        else:
            config = parse_queue_arguments(args)
        if config is None:
            if q.features is None:
                return
            config = _PLAIN_FEATURES
        old = q.features
        if old == config:
            return
        if old is None:
            self._enable(config)
            if config.message_ttl is not None:
                self._restamp(None)
        else:
            q.features = config
            if config.message_ttl != old.message_ttl:
                self._restamp(old.message_ttl)
            if config.expires != old.expires:
                if q._lease_timer is not None:
                    q._lease_timer.cancel()
                    q._lease_timer = None
                if config.expires is not None and not q.consumers:
                    self._renew_lease()
        if config.single_active_consumer and q.active is None and q.consumers:
            q.active = q.consumers[0]
        if config.has_length_limit and config.overflow == DROP_HEAD:
            self._drop_over_limit()
        self._dispatch_f()

    def _restamp(self, old_ttl: int | None) -> None:
        """Deadlines of the ready messages under the new message TTL, counted from when
        each message was enqueued; expired heads go at once. A message's enqueue time is
        its old deadline minus the TTL it had (nothing is stamped on the publish path); a
        message that had no deadline (the queue had no TTL) counts from now."""
        q = self.q
        now = q.clock.now()
        entries = []
        while q.ready:
            entries.append(self._pop())
        q._timed = False
        for msg, redelivered, expires_at, returns, seq in entries:
            start = now
            if expires_at is not None:
                had = _ttl_of(msg, old_ttl)
                if had is not None:
                    start = expires_at - had / 1000.0
            self._push((msg, redelivered, self._deadline(msg, start), returns, seq))
        if q._ttl_timer is not None:
            q._ttl_timer.cancel()
            q._ttl_timer, q._ttl_when = None, _NEVER
        if q._timed:
            self._expire_heads(now)
            self._schedule_expiry()

    def declared(self) -> None:
        """queue.declare (also passive) renews the lease of an unused x-expires queue."""
        features = self.q.features
        if features and features.expires is not None and not self.q.consumers:
            self._renew_lease()

    # -- ready list ---------------------------------------------------------------------------
    def _push(self, entry: Entry) -> None:
        self.q.ready.append(entry)
        self.q.ready_bytes += entry[0].body_size
        if entry[2] is not None:
            self.q._timed = True

    def _restore_f(self, entry: Entry) -> None:
        """A message recovered from the store. A quorum queue's messages that had been
        delivered before the restart go to its returns (rabbit_fifo returns what its
        consumers held when they went down), in store (enqueue) order."""
        if self.q.is_quorum and entry[1]:
            self.q.ready.put_back([entry])  # type: ignore[union-attr]
            self.q.ready_bytes += entry[0].body_size
            if entry[2] is not None:
                self.q._timed = True
        else:
            self._push(entry)

    def _pop(self) -> Entry:
        entry = self.q.ready.popleft()
        self.q.ready_bytes -= entry[0].body_size
        return entry

    def _deadline(self, msg: Message, now: float) -> float | None:
        ttl = _ttl_of(msg, self.q.features.message_ttl)  # type: ignore[union-attr]
        return None if ttl is None else now + ttl / 1000.0

    def _over_limit(self, extra_count: int = 0, extra_bytes: int = 0) -> bool:
        f = self.q.features
        return ((f.max_length is not None  # type: ignore[union-attr]
                 and len(self.q.ready) + extra_count > f.max_length)  # type: ignore[union-attr]
                or (f.max_length_bytes is not None  # type: ignore[union-attr]
                    and self.q.ready_bytes + extra_bytes > f.max_length_bytes))  # type: ignore[union-attr]

    def _drop_over_limit(self) -> None:
        """x-overflow=drop-head: drop (or dead-letter) from the head until within limits."""
        while self.q.ready and self._over_limit():
            self._discard(self._pop(), MAXLEN)

    # -- messages in ----------------------------------------------------------------------------
    def _publish_f(self, msg: Message) -> None:
        f = self.q.features
        assert f is not None
        if f.overflow != DROP_HEAD and f.has_length_limit and self._over_limit(1, msg.body_size):
            # https://www.rabbitmq.com/docs/maxlength#overflow-behaviour
            if f.overflow == REJECT_PUBLISH_DLX and f.dead_letter_exchange is not None:
                self._dead_letter(msg, MAXLEN)
            raise Rejected(self.q.name)
        if self.q.changes is not None and (msg.persistent or self.q.persist_all):
            self.q.changes.add(self.q.key, msg)
            self.q.persistent_count += 1
            self.q.persistent_bytes += msg.body_size
        now = self.q.clock.now()
        entry = (msg, False, self._deadline(msg, now), 0, 0)
        if not self.q.ready and self.q.consumers:
            consumer = self._pick()
            if consumer is not None:
                self._hand_out_f(consumer, entry)
                return
        self._push(entry)
        if f.has_length_limit:  # only drop-head gets here over the limit
            self._drop_over_limit()
        expires_at = entry[2]
        if expires_at is not None:
            if expires_at <= now:  # TTL 0: gone at once unless a consumer took it (RabbitMQ)
                self._expire_heads(now)
            if self.q._ttl_timer is None or expires_at < self.q._ttl_when:
                self._schedule_expiry()

    def _return_f(self, entries: Iterable[Entry]) -> None:
        """Messages back from consumers: original deadline kept, x-delivery-limit applied."""
        f = self.q.features
        assert f is not None
        held, out, limit = self.q._held, self.q._out, f.delivery_limit
        counted = limit is not None or self.q.is_quorum  # quorum queues always count returns
        back = []
        for item in entries:
            msg = item[0]
            expires_at, returns = held.pop(msg, (None, 0))
            seq = out.pop(msg, None)
            if seq is None:
                seq = 0
            else:
                self.q.unacked_bytes -= msg.body_size
            if self.q.deleted:
                continue
            if counted:
                returns += 1
                # https://www.rabbitmq.com/docs/quorum-queues#poison-message-handling
                if limit is not None and returns > limit:
                    self._discard((msg, True, expires_at, returns, seq), DELIVERY_LIMIT)
                    continue
                msg = _with_delivery_count(msg, returns)
            back.append((msg, True, expires_at, returns, seq))
        if self.q.deleted or not back:
            if not self.q.deleted:
                self._dispatch_f()
            return
        ready = self.q.ready
        for entry in back:
            self.q.ready_bytes += entry[0].body_size
            if entry[2] is not None:
                self.q._timed = True
        if type(ready) is deque:
            merge_returned(ready, back)
        else:  # PriorityReady: by level; QuorumReady: to its returns, in order
            ready.put_back(back)  # type: ignore[union-attr]
        if f.has_length_limit and f.overflow == DROP_HEAD:
            self._drop_over_limit()
        self._dispatch_f()

    # -- messages out ---------------------------------------------------------------------------
    def _pick(self) -> ConsumerLike | None:
        if self.q.features.single_active_consumer:  # type: ignore[union-attr]
            active = self.q.active
            return active if active is not None and active.can_take() else None
        return self.q._next_consumer()

    def _hand_out_f(self, consumer: ConsumerLike, entry: Entry) -> None:
        msg, redelivered, expires_at, returns, seq = entry
        self.q.unacked += 1
        if not seq:
            self.q._seq = seq = self.q._seq + 1
        self.q._out[msg] = seq
        self.q.unacked_bytes += msg.body_size
        if self.q.changes is not None and (msg.persistent or self.q.persist_all):
            self.q.changes.mark_delivered(self.q.key, msg)
        if expires_at is not None or returns or self.q.features.delivery_limit is not None:  # type: ignore[union-attr]
            self.q._held[msg] = (expires_at, returns)
        consumer.deliver(self.q, msg, redelivered)
        if consumer.no_ack:  # the caller of deliver settles a no-ack delivery
            self.q.settle(msg)

    def _dispatch_f(self) -> None:
        ready = self.q.ready
        now = self.q.clock.now()
        while ready and self.q.consumers:
            entry = ready[0]
            expires_at = entry[2]
            if expires_at is not None and expires_at <= now:  # never delivered once expired
                self._discard(self._pop(), EXPIRED)
                continue
            consumer = self._pick()
            if consumer is None:
                break
            self._pop()
            self._hand_out_f(consumer, entry)
        if self.q._timed:
            self._expire_heads(now)
            self._schedule_expiry()
        if self.q.flow_waiters and len(ready) <= FLOW_LOW:
            self.q.release_flow()

    def _get_f(self) -> tuple[Message, bool] | None:
        now = self.q.clock.now()
        if self.q.features.expires is not None and not self.q.consumers:  # type: ignore[union-attr]
            self._renew_lease(now)
        if self.q._timed:
            self._expire_heads(now)
        if not self.q.ready:
            return None
        entry = self._pop()
        msg, redelivered, expires_at, returns, seq = entry
        self.q.unacked += 1
        if not seq:
            self.q._seq = seq = self.q._seq + 1
        self.q._out[msg] = seq
        self.q.unacked_bytes += msg.body_size
        if self.q.changes is not None and (msg.persistent or self.q.persist_all):
            self.q.changes.mark_delivered(self.q.key, msg)
        if expires_at is not None or returns or self.q.features.delivery_limit is not None:  # type: ignore[union-attr]
            self.q._held[msg] = (expires_at, returns)
        if self.q._timed:  # the new head may be expired already
            self._expire_heads(now)
            self._schedule_expiry()
        if self.q.flow_waiters and len(self.q.ready) <= FLOW_LOW:
            self.q.release_flow()
        return msg, redelivered

    # -- expiry ---------------------------------------------------------------------------------
    def _expire_heads(self, now: float) -> None:
        """Remove expired messages from the head(s); those behind a live one wait their turn."""
        ready = self.q.ready
        if type(ready) is deque:
            levels: Iterable[deque[Entry]] = (ready,)
        else:
            levels = list(ready.heads())  # type: ignore[union-attr]
        for level in levels:
            while level:
                expires_at = level[0][2]
                if expires_at is None or expires_at > now:
                    break
                entry = level.popleft()
                if level is not ready:
                    ready.count -= 1  # type: ignore[union-attr]
                self.q.ready_bytes -= entry[0].body_size
                self._discard(entry, EXPIRED)
        if not ready:
            self.q._timed = False

    def _schedule_expiry(self) -> None:
        """Keep one timer armed at the earliest head deadline."""
        if not self.q._timed or self.q.deleted:
            return
        ready = self.q.ready
        if type(ready) is deque:
            first = ready[0][2] if ready else None
        else:
            deadlines = [lvl[0][2] for lvl in ready.heads() if lvl[0][2] is not None]  # type: ignore[union-attr]
            first = min(deadlines) if deadlines else None
        if first is None or (self.q._ttl_timer is not None and self.q._ttl_when <= first):
            return
        if self.q._ttl_timer is not None:
            self.q._ttl_timer.cancel()
        self.q._ttl_when = first
        self.q._ttl_timer = self.q.clock.call_at(first, self._on_ttl_timer)

    def _on_ttl_timer(self) -> None:
        when, self.q._ttl_when, self.q._ttl_timer = self.q._ttl_when, _NEVER, None
        if self.q.deleted:
            return
        # The loop may run a timer a hair early (coarse clocks): its deadline has come.
        self._expire_heads(max(self.q.clock.now(), when))
        self._schedule_expiry()
        if self.q.flow_waiters and len(self.q.ready) <= FLOW_LOW:
            self.q.release_flow()

    # -- leaving the queue: dead lettering --------------------------------------------------------
    def _discard(self, entry: Entry, reason: str) -> None:
        """A message leaves for good without being acked: dead-lettered if configured."""
        msg = entry[0]
        if self.q.features.dead_letter_exchange is not None:  # type: ignore[union-attr]
            self._dead_letter(msg, reason)
        if self.q.changes is not None and (msg.persistent or self.q.persist_all):
            self.q.changes.remove(self.q.key, msg)
            self.q.persistent_count -= 1
            self.q.persistent_bytes -= msg.body_size

    def _dead_letter(self, msg: Message, reason: str) -> None:
        if self.q.host is not None:
            dead_letter(self.q.host, self.q, msg, reason, self.q.clock.wall())

    # -- consumers: single active consumer, x-expires ---------------------------------------------
    def _consumer_added(self, consumer: ConsumerLike) -> None:
        if self.q.features.single_active_consumer and self.q.active is None:  # type: ignore[union-attr]
            self.q.active = consumer
        if self.q._lease_timer is not None:
            self.q._lease_timer.cancel()
            self.q._lease_timer = None

    def _consumer_removed(self, consumer: ConsumerLike) -> None:
        if self.q.active is consumer:
            # consumers are kept by priority, then registration order: the first one waited
            # longest among the highest priority
            self.q.active = self.q.consumers[0] if self.q.consumers else None
        if not self.q.consumers and self.q.features.expires is not None:  # type: ignore[union-attr]
            self._renew_lease()

    def removed(self) -> None:
        """The queue left its vhost: its timers must not fire (nor keep this part alive)."""
        q = self.q
        for timer in (q._ttl_timer, q._lease_timer):
            if timer is not None:
                timer.cancel()
        q._ttl_timer = q._lease_timer = None
        q._ttl_when = _NEVER

    def _renew_lease(self, now: float | None = None) -> None:
        if self.q._lease_timer is not None:
            self.q._lease_timer.cancel()
        if now is None:
            now = self.q.clock.now()
        self.q._lease_timer = self.q.clock.call_at(
            now + self.q.features.expires / 1000.0, self._lease_expired)  # type: ignore[union-attr]

    def _lease_expired(self) -> None:
        """x-expires: unused for the whole period - deleted (messages are not dead-lettered)."""
        self.q._lease_timer = None
        if self.q.deleted or self.q.consumers or self.q.host is None:
            return
        log.info("queue.expired", vhost=self.q.vhost, queue=self.q.name,
                 expires_ms=self.q.features.expires)  # type: ignore[union-attr]
        self.q.host.remove_queue(self.q)


def _ttl_of(msg: Message, queue_ttl: int | None) -> int | None:
    """The TTL (ms) a message has in a queue: the lower of the queue's and its own."""
    ttl = queue_ttl
    if msg.expiration is not None:
        try:
            per_message = parse_expiration(msg.expiration)
        except errors.PreconditionFailed:  # checked at publish; a recovered oddity
            per_message = None
        if per_message is not None and (ttl is None or per_message < ttl):
            ttl = per_message
    return ttl


def _with_delivery_count(msg: Message, count: int) -> Message:
    """The message as it is redelivered from an x-delivery-limit queue: with an
    `x-delivery-count` header (a long, as RabbitMQ's quorum queues write it). Same store
    record (store_id): only the in-memory copy carries the header."""
    items = tables.headers_of(msg.properties)
    tables.set_header(items, "x-delivery-count", tables.long(count))
    copy = Message(msg.exchange, msg.routing_key, tables.with_header_items(msg.properties, items),
                   msg.body, msg.body_size, msg.persistent, msg.priority, msg.expiration)
    copy.store_id = msg.store_id
    return copy
