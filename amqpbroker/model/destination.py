"""What an exchange can route a message to: the one `Destination` interface (issue 14).

Four classes implement it: the classic queue (`model.queue.Queue`), the quorum queue (a
`Queue` with `is_quorum`), the stream (`model.stream.StreamQueue`) and the direct reply-to
pseudo-queue (`model.reply_queue.ReplyQueue`). The virtual host routes to destinations and
to exchanges (exchange-to-exchange bindings); it tells them apart by `is_exchange`, never
by a destination's concrete class. Before this interface existed, routing tested
`type(d) is Queue`, so a stream bound to an exchange was taken for an exchange and the
publish crashed (`'StreamQueue' object has no attribute 'route'`).

The tests in `tests/model/test_destination_contract.py` run every destination type through
every route; a new destination type joins them by subclassing this class and being listed
there.

Consumers are the `ConsumerLike` duck type of `model.queue`: `tag`, `priority`,
`exclusive`, `can_take()`, `deliver(destination, msg, redelivered)`,
`queue_deleted(destination)`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Sized

from amqpbroker.message import Message


# The counters above, by name: what a deleted queue leaves to its vhost's totals.
COUNTERS = ("published", "delivered", "delivered_no_ack", "redelivered", "fetched",
            "fetched_no_ack", "fetched_empty", "acked")


# An empty set of flow waiters every destination without any shares (a set is 216 bytes).
NO_WAITERS: frozenset[Any] = frozenset()

class Destination(ABC):
    """A queue-like target of routing. Attributes every destination has:

    name, vhost (its name), key (the store's name for it), durable, auto_delete,
    exclusive_owner (the session object owning an exclusive queue, else None), arguments,
    deleted, consumers (list), unacked (count), features (None unless the classic/quorum
    queue has optional features), consumer_timeout_ms, flow_waiters (set), ready (a
    sized collection of ready entries; empty for destinations without a backlog)."""

    is_exchange = False  # the vhost's routing loop tells queues from exchanges by this
    is_stream = False
    is_quorum = False
    # True when every message is stored whatever its delivery mode (quorum, stream): its
    # publisher confirm then waits for the group commit.
    persist_all = False
    queue_type = "classic"
    ready: Sized
    # Message counters for the management API's message_stats (class defaults; an
    # instance gets its own on the first increment). Bumped where the work happens: the
    # core session (published, fetched, fetched_empty, acked) and the protocol translator
    # (delivered, delivered_no_ack, redelivered, fetched_no_ack).
    published = delivered = delivered_no_ack = redelivered = 0
    fetched = fetched_no_ack = fetched_empty = acked = 0
    # Running totals of what the destination holds (see `model.queue.Queue.__init__`);
    # zero for destinations that keep none.
    ready_bytes = unacked_bytes = persistent_count = persistent_bytes = 0

    # -- messages in ----------------------------------------------------------------------
    @abstractmethod
    def publish(self, msg: Message) -> Any:
        """Take a freshly routed message (raises `model.deadletter.Rejected` when an
        x-overflow=reject-publish limit refuses it)."""

    def enable_message_expiry(self) -> None:
        """A message with a per-message TTL was routed here (default: TTL does not apply)."""

    # -- messages out ---------------------------------------------------------------------
    @abstractmethod
    def dispatch(self) -> None:
        """Hand messages to consumers that have credit."""

    @abstractmethod
    def get(self) -> tuple[Message, bool] | None:
        """basic.get: the head message and its redelivered flag, or None."""

    @abstractmethod
    def settle(self, msg: Message) -> None:
        """A delivery is done with (ack, no-ack delivery)."""

    @abstractmethod
    def reject(self, msg: Message) -> None:
        """A delivery rejected without requeue (dead-lettered where configured)."""

    @abstractmethod
    def return_unacked(self, entries: list[tuple[Message, bool]]) -> None:
        """Deliveries given back (requeue, recover, the consumer's session closed)."""

    @abstractmethod
    def purge(self) -> int:
        """queue.purge: drop the ready messages, return how many."""

    # -- consumers ------------------------------------------------------------------------
    @abstractmethod
    def add_consumer(self, consumer: Any) -> None:
        """Attach a consumer (and start delivering to it)."""

    @abstractmethod
    def remove_consumer(self, consumer: Any) -> bool:
        """Detach a consumer; True when the destination should now be auto-deleted."""

    # -- flow control and lifecycle -------------------------------------------------------
    def over_flow_limit(self) -> bool:
        """True while publishers to this destination should be paused (credit flow)."""
        return False

    def deep(self) -> bool:
        """The publish path saw more than FLOW_HIGH ready messages here: a queue may page
        (model.paged); True while publishers should be paused (`over_flow_limit`)."""
        return self.over_flow_limit()

    def wait_for_flow(self, waiter: Any) -> None:
        """A publisher paused until `release_flow`."""
        if not self.flow_waiters:  # type: ignore[has-type]
            self.flow_waiters = set()  # the shared empty one (NO_WAITERS) cannot grow
        self.flow_waiters.add(waiter)

    def stop_waiting(self, waiter: Any) -> None:
        if waiter in self.flow_waiters:  # type: ignore[has-type]
            self.flow_waiters.discard(waiter)

    def release_flow(self) -> None:
        waiters, self.flow_waiters = self.flow_waiters, NO_WAITERS  # type: ignore[has-type]
        for waiter in waiters:
            waiter.flow_released(self)

    def declared(self) -> None:
        """queue.declare of an existing destination (renews an x-expires lease)."""

    @property
    @abstractmethod
    def message_count(self) -> int: ...

    @property
    def consumer_count(self) -> int:
        return len(self.consumers)  # type: ignore[attr-defined]


def is_destination(target: Any) -> bool:
    """True for a destination, False for an exchange (bindings hold both)."""
    return not target.is_exchange
