"""A queue: ready messages, consumers, and the rules for handing messages out.

Plain synchronous Python. Consumers are duck-typed objects owned by the session layer (see
`session.consumer.Consumer`): the queue only asks `can_take()` and calls
`deliver(queue, msg, redelivered)`, which must not call back into the queue.

Delivery order: FIFO; requeued messages go back to the head in their original order (as
RabbitMQ's classic queues do). Among consumers: highest `x-priority` first, round-robin
within a priority, skipping consumers without prefetch credit or whose socket is not
writable (https://www.rabbitmq.com/docs/consumer-priority).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Iterable, Protocol

from amqpbroker.model.message import Message

if TYPE_CHECKING:
    from amqpbroker.store.base import MessageStore


class ConsumerLike(Protocol):
    tag: str
    priority: int
    exclusive: bool

    def can_take(self) -> bool: ...

    def deliver(self, queue: "Queue", msg: Message, redelivered: bool) -> None: ...


Entry = tuple  # (Message, redelivered: bool)

# Flow control: while a queue that has consumers holds more than FLOW_HIGH ready messages,
# connections that only publish to it are not read from, until it drains below FLOW_LOW.
# This is the effect of RabbitMQ's credit flow (https://www.rabbitmq.com/docs/flow-control)
# in a broker where enqueueing is synchronous: a publisher cannot outrun its consumers
# without bound. Queues without consumers just accumulate (the memory alarm bounds them).
FLOW_HIGH = 4096
FLOW_LOW = 1024


class FlowWaiter(Protocol):
    def flow_released(self, queue: "Queue") -> None: ...


class Queue:
    def __init__(
        self,
        vhost: str,
        name: str,
        *,
        durable: bool = False,
        exclusive_owner: Any = None,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
        store: "MessageStore | None" = None,
    ) -> None:
        self.vhost = vhost
        self.name = name
        self.key = queue_key(vhost, name)
        self.durable = durable
        self.exclusive_owner = exclusive_owner
        self.auto_delete = auto_delete
        self.arguments = arguments or {}
        # Only durable queues write persistent messages to the store (spec 1.4.2 / RabbitMQ
        # "persistence": a persistent message in a transient queue is not persisted).
        self.store = store if durable else None
        self.ready: deque[Entry] = deque()
        self.consumers: list[ConsumerLike] = []
        self.exclusive_consumer: ConsumerLike | None = None
        self.had_consumer = False
        self.deleted = False
        self.unacked = 0
        self.flow_waiters: set[FlowWaiter] = set()

    # -- counts -------------------------------------------------------------------------
    @property
    def message_count(self) -> int:
        return len(self.ready)

    @property
    def consumer_count(self) -> int:
        return len(self.consumers)

    # -- messages in ----------------------------------------------------------------------
    def publish(self, msg: Message) -> None:
        """Enqueue a freshly routed message (the per-message hot path)."""
        store = self.store
        if store is not None and msg.persistent:
            store.add(self.key, msg)
        if not self.ready and self.consumers:
            consumer = self._next_consumer()
            if consumer is not None:
                self._hand_out(consumer, msg, False)
                return
        self.ready.append((msg, False))

    def requeue(self, entries: Iterable[Entry]) -> None:
        """Put messages back at the head, keeping their relative order."""
        self.ready.extendleft(reversed([(m, True) for m, _ in entries]))
        self.dispatch()

    def restore(self, msg: Message, redelivered: bool) -> None:
        """Append a message recovered from the store at startup (not written again)."""
        self.ready.append((msg, redelivered))

    # -- messages out ----------------------------------------------------------------------
    def dispatch(self) -> None:
        """Hand ready messages to consumers while someone can take one."""
        ready = self.ready
        while ready and self.consumers:
            consumer = self._next_consumer()
            if consumer is None:
                break
            msg, redelivered = ready.popleft()
            self._hand_out(consumer, msg, redelivered)
        if self.flow_waiters and len(ready) <= FLOW_LOW:
            self.release_flow()

    def over_flow_limit(self) -> bool:
        return len(self.ready) > FLOW_HIGH and bool(self.consumers) and not self.deleted

    def release_flow(self) -> None:
        waiters, self.flow_waiters = self.flow_waiters, set()
        for waiter in waiters:
            waiter.flow_released(self)

    def _hand_out(self, consumer: ConsumerLike, msg: Message, redelivered: bool) -> None:
        self.unacked += 1
        if self.store is not None and msg.persistent:
            self.store.mark_delivered(self.key, msg)
        consumer.deliver(self, msg, redelivered)

    def get(self) -> tuple[Message, bool] | None:
        """Basic.Get: the head message, now unacked by the caller (or settled at once)."""
        if not self.ready:
            return None
        msg, redelivered = self.ready.popleft()
        self.unacked += 1
        if self.store is not None and msg.persistent:
            self.store.mark_delivered(self.key, msg)
        return msg, redelivered

    def settle(self, msg: Message) -> None:
        """An outstanding delivery is done with for good (ack, no-ack delivery, reject)."""
        self.unacked -= 1
        if self.store is not None and msg.persistent and not self.deleted:
            self.store.remove(self.key, msg)

    def return_unacked(self, entries: list[Entry]) -> None:
        """Deliveries that were not acked come back (reject/nack requeue, channel close)."""
        self.unacked -= len(entries)
        if not self.deleted:
            self.requeue(entries)

    def purge(self) -> int:
        count = len(self.ready)
        if self.store is not None:
            for msg, _ in self.ready:
                if msg.persistent:
                    self.store.remove(self.key, msg)
        self.ready.clear()
        if self.flow_waiters:
            self.release_flow()
        return count

    # -- consumers ------------------------------------------------------------------------
    def add_consumer(self, consumer: ConsumerLike) -> None:
        self.had_consumer = True
        if consumer.exclusive:
            self.exclusive_consumer = consumer
        consumers = self.consumers
        if not consumers or consumers[-1].priority >= consumer.priority:
            consumers.append(consumer)
        else:  # ordered by priority, highest first; newest last within its priority
            idx = next(i for i, c in enumerate(consumers) if c.priority < consumer.priority)
            consumers.insert(idx, consumer)
        self.dispatch()

    def remove_consumer(self, consumer: ConsumerLike) -> bool:
        """Remove a consumer; True when the queue should now be auto-deleted."""
        try:
            self.consumers.remove(consumer)
        except ValueError:
            return False
        if self.exclusive_consumer is consumer:
            self.exclusive_consumer = None
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
