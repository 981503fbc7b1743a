"""A publisher handle: the confirm bookkeeping of one stream of publishes.

A protocol session opens one per publishing context (an AMQP channel, an MQTT client) with
`Session.publisher(events)`, and passes it to every `Session.publish`. The publisher numbers
confirmable publishes (`seq`, from 1, as AMQP's delivery tags of publisher confirms), and
releases them in order: a message that needs the disk waits for the group commit
(`Persister` ticket), and a later message that does not must not overtake it
(https://www.rabbitmq.com/docs/confirms: confirms may be multiple, so they are in order).

`upto` is the highest seq confirmed positively with everything before it settled; the
translator reads it to send one multiple-ack (AMQP `Basic.Ack`, MQTT one PUBACK per packet
id it mapped to a seq) and keeps its own "sent" mark (`sent`). Negative confirms go out
through `events.nacked(seq)` at once, in order.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from amqpbroker.broker.global_counters import ProtocolCounters
    from amqpbroker.broker.persister import Persister
    from amqpbroker.message import Message


class PublisherEvents(Protocol):
    """What a protocol translator hears about its publishes."""

    def returned(self, msg: "Message", code: int, text: str) -> None:
        """A mandatory message could not be routed (AMQP Basic.Return, 312 NO_ROUTE)."""

    def nacked(self, seq: int) -> None:
        """Publish `seq` was not taken (overflow reject-publish, failed fsync): tell the
        publisher now; every seq before it is already settled (`upto`)."""

    def confirms_ready(self) -> None:
        """`upto` moved after a group commit: send the confirms."""


class Publisher:
    __slots__ = ("events", "persister", "confirm", "seq", "upto", "sent", "pending", "closed",
                 "published", "returned_unroutable", "dropped_unroutable", "counters")

    def __init__(self, events: PublisherEvents, persister: "Persister",
                 counters: "ProtocolCounters | None" = None) -> None:
        self.events = events
        self.persister = persister
        self.confirm = False  # confirm mode (AMQP confirm.select, MQTT QoS 1)
        self.seq = 0
        self.upto = 0
        self.sent = 0  # the translator's mark: confirms up to here are on the wire
        # (seq, sync generation, ack) of confirms that wait: an empty tuple until the first
        # does (10,000 idle channels would hold 760 bytes each of empty deques).
        self.pending: deque[tuple[int, int, bool]] | tuple[()] = ()
        self.closed = False
        # Management API counters (message_stats of a channel): publishes, and unroutable
        # ones returned (mandatory) or dropped. Confirms are `upto`.
        self.published = self.returned_unroutable = self.dropped_unroutable = 0
        # The protocol's global counters read these figures while it is open and keep
        # them when it closes (broker/global_counters.py).
        self.counters = counters
        if counters is not None:
            counters.publishers.add(self)

    def count_in(self, counters: "ProtocolCounters") -> None:
        """Count this publisher under another protocol's global counters (MQTT learns its
        client's version after opening); its figures so far go with it."""
        if self.counters is not None:
            self.counters.publishers.discard(self)
        self.counters = counters
        counters.publishers.add(self)

    def settle(self, seq: int, needs_sync: bool, ack: bool = True) -> None:
        """Publish `seq` was routed: confirm it now, or after the next sync."""
        if needs_sync:
            pending = self.pending
            if pending.__class__ is tuple:
                pending = self.pending = deque()
            pending.append((seq, self.persister.target(self), ack))  # type: ignore[union-attr]
        elif self.pending:
            self.pending.append((seq, 0, ack))  # type: ignore[union-attr]
        elif ack:
            self.upto = seq
        else:
            self.events.nacked(seq)

    def release(self, generation: int, failed: bool = False) -> bool:
        """Sync `generation` finished: confirm what waited for it. True if more still
        waits for a later sync."""
        if self.closed:
            return False
        pending = self.pending
        while pending and pending[0][1] <= generation:
            seq, gen, ack = pending.popleft()  # type: ignore[union-attr]
            if ack and not (failed and gen):
                self.upto = seq
            else:
                self.events.nacked(seq)
        self.events.confirms_ready()
        return any(gen for _, gen, _ in pending)

    def close(self) -> None:
        self.closed = True
        self.persister.forget(self)
        if self.counters is not None:
            self.counters.retire(self)
