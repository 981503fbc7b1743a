"""Delayed messages: the `x-delayed-message` exchange type of RabbitMQ's
rabbitmq-delayed-message-exchange plugin, and LavinMQ's `x-delayed-exchange: true`
argument on any exchange (https://lavinmq.com/documentation/delayed-message-exchange).

A message published to such an exchange with an `x-delay` header of 1 .. 2**32-1
milliseconds is held and routed when the delay ends, by the routing rules of the
exchange's `x-delayed-type` (direct, fanout, topic, headers, ...) and the bindings that
exist *then*. Any other x-delay (none, 0, negative, not a number) routes at once. As in
the plugin (rabbit_delayed_message_utils), an integer header is the delay, a float is
truncated, a string is parsed; once routed, the header is set to -delay so the message
is not delayed again by a later delayed exchange.

The timer index is one binary heap per exchange of plain ints, `due_ms << 64 | handle`:
no per-message Python objects, so a million pending messages cost a few tens of MB
here; bodies live in a `DelayedStore` (store/delayed.py) -- RAM for transient exchanges,
the message store's segment log for durable ones. One scheduler timer per exchange is
armed for the head of its heap; when it fires, every message that is due is routed (in
batches, so a burst does not stall the event loop), in due order, ties in publish order.
"""

from __future__ import annotations

import functools
import heapq
from typing import TYPE_CHECKING, Any, Callable, Mapping

from amqpbroker.model.report import log
from amqpbroker import errors
from amqpbroker.model.deadletter import Rejected
from amqpbroker.model.queue_features import FLOW_HIGH
from amqpbroker.model.exchange_base import Exchange
from amqpbroker.message import Message
from amqpbroker.protocol import header_field
from amqpbroker.model.delayed_store import (
    DelayedStore,
    MemoryDelayedStore,
    ChangesDelayed,
    delayed_key,
)

if TYPE_CHECKING:
    from amqpbroker.model.vhost import VirtualHost


DELAYED_TYPE = "x-delayed-message"
MAX_DELAY_MS = 2**32 - 1  # the plugin's limit (Erlang's maximum timer)
BATCH = 512  # messages routed per timer callback before yielding to the loop
# Messages due within this many ms keep their body in RAM (within the store's memory
# budget, which pages them out like any other): no disk read when they fire. Later ones
# are read back from the store, so a million far-future delays cost RAM for ints only.
KEEP_BODY_MS = 10_000
_M64 = (1 << 64) - 1


def exchange_class(type_name: str, arguments: Mapping[str, Any],
                   types: Mapping[str, type[Exchange]]) -> type[Exchange]:
    """The class a declare of `type_name` builds; 406 for an unknown type."""
    if type_name != DELAYED_TYPE:
        cls = types.get(type_name)
        if cls is None:  # RabbitMQ 4.x closes the channel with 406 for an unknown type
            raise errors.PreconditionFailed(f"invalid exchange type '{type_name}'")
        return cls
    inner = arguments.get("x-delayed-type")
    if isinstance(inner, bytes):
        inner = inner.decode("utf-8", "replace")
    if not isinstance(inner, str):
        # The plugin's wording (rabbit_exchange_type_delayed_message:validate/1).
        raise errors.PreconditionFailed(
            "Invalid argument, 'x-delayed-type' must bean existing exchnage type")
    cls = types.get(inner)
    if cls is None:
        raise errors.PreconditionFailed(f"invalid exchange type '{inner}'")
    return delayed_class(cls)


@functools.cache
def delayed_class(inner: type[Exchange]) -> type[Exchange]:
    """The inner type's routing, under the type name x-delayed-message."""
    return type(f"Delayed{inner.__name__}", (inner,),
                {"type": DELAYED_TYPE, "delays": True, "__module__": __name__})


def lavinmq_delayed(arguments: Mapping[str, Any]) -> bool:
    """LavinMQ's `x-delayed-exchange: true` on a normal exchange."""
    return arguments.get("x-delayed-exchange") is True


def delay_of(msg: Message) -> int:
    """The message's x-delay in ms if it is to be delayed, else 0."""
    try:  # a short scan of the property bytes, no pamqp decode (protocol/header_field.py)
        value = header_field.read(msg.properties, "x-delay")
    except ValueError:
        return 0
    if value is None or isinstance(value, bool):
        return 0
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("ascii", "replace")
    try:
        delay = int(value)  # str: parsed; float / Decimal: truncated
    except (TypeError, ValueError, OverflowError):
        return 0
    return delay if 0 < delay <= MAX_DELAY_MS else 0


class _Pending:
    """One exchange's delayed messages: a heap of due_ms << 64 | handle."""

    __slots__ = ("exchange", "key", "store", "heap", "timer", "armed_for", "legacy",
                 "legacy_key")

    def __init__(self, exchange: Exchange, key: str, store: DelayedStore) -> None:
        self.exchange = exchange
        self.key = key
        self.store = store
        self.heap: list[int] = []
        self.timer: Any = None
        self.armed_for = -1
        # Handles recovered from a data dir of the first format (delayed_store.py), filed
        # under legacy_key: removed from there when routed.
        self.legacy: set[int] = set()
        self.legacy_key: str | None = None


class DelayedMessages:
    """The delayed messages of one virtual host."""

    def __init__(self, vhost: "VirtualHost") -> None:
        self.vhost = vhost
        self.scheduler = vhost.scheduler
        self.memory = MemoryDelayedStore()
        self._durable: DelayedStore | None = None
        self._pending: dict[int, _Pending] = {}  # id(exchange) -> its heap
        # Set by the core: routed messages were written to the store (sync them).
        self.on_dirty: Callable[[], None] = _nothing
        self.fired = 0
        # Lateness of fired messages (ms), for benchmarks; None = not recorded.
        self.lateness: list[float] | None = None

    def _store_for(self, ex: Exchange) -> DelayedStore:
        changes = self.vhost.changes  # None: no message store (memory-only core)
        if not ex.durable or changes is None:
            return self.memory
        if self._durable is None:
            self._durable = ChangesDelayed(changes)
        return self._durable

    def _entry(self, ex: Exchange) -> _Pending:
        p = self._pending.get(id(ex))
        if p is None:
            p = self._pending[id(ex)] = _Pending(ex, delayed_key(self.vhost.name, ex.name),
                                                 self._store_for(ex))
        return p

    # -- publishing ------------------------------------------------------------------------
    def hold(self, ex: Exchange, msg: Message, delay_ms: int) -> bool:
        """Keep `msg` until `delay_ms` from now. True if it was written to the durable
        store (a confirm then waits for the next group commit)."""
        p = self._entry(ex)
        due_ms = int(self.scheduler.wall() * 1000) + delay_ms
        msg.enqueued_ms = due_ms  # written with the record: what recovery indexes
        handle = p.store.add(p.key, msg, keep_body=delay_ms <= KEEP_BODY_MS)
        self._push(p, (due_ms << 64) | handle)
        return p.store.durable

    def _push(self, p: _Pending, key: int) -> None:
        heapq.heappush(p.heap, key)
        if p.heap[0] == key:
            self._arm(p)

    def _arm(self, p: _Pending) -> None:
        if not p.heap:
            if p.timer is not None:
                p.timer.cancel()
                p.timer = None
            return
        due_ms = p.heap[0] >> 64
        if p.timer is not None:
            if p.armed_for <= due_ms:
                return
            p.timer.cancel()
        wait = (due_ms - self.scheduler.wall() * 1000) / 1000
        p.armed_for = due_ms
        p.timer = self.scheduler.call_at(self.scheduler.now() + max(wait, 0.0),
                                         functools.partial(self._fire, p))

    # -- firing ----------------------------------------------------------------------------
    def _fire(self, p: _Pending) -> None:
        """Route every due message (up to BATCH per call): bodies read in one batch, in
        position order (store.load_messages), then routed in due order."""
        p.timer = None
        if self._pending.get(id(p.exchange)) is not p:
            return  # the exchange was deleted
        heap = p.heap
        now_ms = self.scheduler.wall() * 1000
        limit = int(now_ms) + 1  # the loop may wake a fraction of a ms early
        keys = []
        pop = heapq.heappop
        while heap and heap[0] >> 64 <= limit and len(keys) < BATCH:
            keys.append(pop(heap))
        if self.lateness is not None:
            self.lateness.extend(now_ms - (key >> 64) for key in keys)
        handles = [key & _M64 for key in keys]
        wrote = False
        for handle, msg in zip(handles, p.store.load_batch(handles)):
            if isinstance(msg, Message):
                wrote |= self._route(p, handle, msg)
            else:  # a damaged record must not stop the others
                log.error("delayed.load_failed", exchange=p.exchange.name, error=str(msg))
        self.fired += len(keys)
        if wrote:
            self.on_dirty()
        if heap and heap[0] >> 64 <= limit:  # more due: continue after other work
            p.armed_for = heap[0] >> 64
            p.timer = self.scheduler.call_at(self.scheduler.now(),
                                             functools.partial(self._fire, p))
        else:
            self._arm(p)

    def _route(self, p: _Pending, handle: int, msg: Message) -> bool:
        """Route a due message through its exchange's bindings; True if the store was
        written (it always is for a durable exchange: the delayed record is removed)."""
        delay = delay_of(msg)
        if delay:
            # The plugin's swap_delay_header: -delay marks "already delayed".
            msg.properties = header_field.replace_int(msg.properties, "x-delay", -delay)
            msg._headers = False  # decoded again if a headers exchange needs them
        msg.enqueued_ms = 0  # TTL in the queues counts from now
        ex = p.exchange
        durable = False
        for q in self.vhost.route(ex, msg):
            if msg.expiration is not None and q.features is None:
                q.enable_message_expiry()
            try:
                q.publish(msg)
            except Rejected:
                continue
            if len(q.ready) > FLOW_HIGH:
                q.deep()  # a deep durable queue pages (model/paged.py); no publisher to pause
            if q.durable and (msg.persistent or q.persist_all):
                durable = True
        # After the queues wrote it: a crash in between fires it again (at least once).
        if p.legacy and handle in p.legacy:
            p.legacy.discard(handle)
            p.store.remove(p.legacy_key, handle, msg)  # type: ignore[arg-type]
        else:
            p.store.remove(p.key, handle, msg)
        return durable or p.store.durable

    # -- bookkeeping -----------------------------------------------------------------------
    def count(self, ex: Exchange) -> int:
        """Messages waiting in `ex` (the management API's per-exchange figure)."""
        p = self._pending.get(id(ex))
        return len(p.heap) if p is not None else 0

    def counts(self) -> dict[str, int]:
        return {p.exchange.name: len(p.heap) for p in self._pending.values()}

    def total(self) -> int:
        return sum(len(p.heap) for p in self._pending.values())

    def forget(self, ex: Exchange) -> None:
        """The exchange was deleted: its delayed messages go with it (as in the plugin)."""
        p = self._pending.pop(id(ex), None)
        if p is None:
            return
        if p.timer is not None:
            p.timer.cancel()
        p.store.drop(p.key)
        if p.legacy_key is not None:
            p.store.drop(p.legacy_key)
        p.heap.clear()

    def restore_index(self, ex: Exchange, entries: list[int]) -> None:
        """Startup: the timer index of a durable exchange as the store recovered it
        (due_ms << 64 | handle per message, any order; MessageStore.recovered_index)."""
        p = self._entry(ex)
        if p.heap:
            p.heap.extend(entries)
        else:
            p.heap = entries  # the store's list, adopted: no copy of a million ints
        heapq.heapify(p.heap)
        self._arm(p)
        log.info("delayed.recovered", exchange=ex.name, vhost=self.vhost.name,
                 messages=len(entries))

    def restore(self, ex: Exchange, key: str, legacy: bool, messages: list[Message]) -> None:
        """Startup: messages a durable exchange held, recovered as Message objects (a
        store without index keys, or a key of the first format: due = publish time +
        x-delay)."""
        p = self._entry(ex)
        heap = p.heap
        for msg in messages:
            due = msg.enqueued_ms + delay_of(msg) if legacy else msg.enqueued_ms
            heap.append((due << 64) | msg.store_id)
        if legacy:
            p.legacy.update(msg.store_id for msg in messages)
            p.legacy_key = key
        heapq.heapify(heap)
        self._arm(p)
        log.info("delayed.recovered", exchange=ex.name, vhost=self.vhost.name,
                 messages=len(messages), format="legacy" if legacy else "current")


def _nothing() -> None:
    pass
