"""RabbitMQ's global counters: message totals per protocol that never go down.

RabbitMQ's Prometheus plugin exports them as `rabbitmq_global_messages_*_total{protocol}`
(deps/rabbitmq_prometheus/metrics.md, "Global Counters"). They exist because sums over
live channels shrink when a channel closes, and a Prometheus counter must not.

Here no message pays for them: publishers and channels already count what they do (the
management API's message_stats). Each protocol's `ProtocolCounters` keeps

- the open publishers (a `Publisher` registers itself when created; `retire` moves its
  figures into the running totals when it closes), and
- the retired totals of closed publishers and AMQP channels (`retire_deliveries`, called
  once when a channel is released).

A total is then the retired part plus the open publishers' and channels' current figures:
monotonic, read in O(open publishers + channels) at scrape time.

The one figure nothing counted before is the size of received messages, RabbitMQ's
`rabbitmq_message_size_bytes` histogram: on the publish path (`Session.publish`) a message of
at most 100 bytes costs one comparison and two integer adds, a larger one `MessageSizes.observe`
(one bisect).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

# The protocols' labels, as RabbitMQ names them: amqp091 here, mqtt310 / mqtt311 / mqtt50
# set by the MQTT translator (mqtt/session.py).
AMQP091 = "amqp091"

# Publisher side, read from `broker.publisher.Publisher`.
PUBLISH_COUNTERS = ("messages_received_total", "messages_received_confirm_total",
                    "messages_routed_total", "messages_unroutable_dropped_total",
                    "messages_unroutable_returned_total", "messages_confirmed_total")
# Delivery side, read from AMQP channels (`session/channel.py` counters).
DELIVERY_COUNTERS = ("messages_delivered_consume_manual_ack_total",
                     "messages_delivered_consume_auto_ack_total",
                     "messages_delivered_get_manual_ack_total",
                     "messages_delivered_get_auto_ack_total", "messages_get_empty_total",
                     "messages_redelivered_total", "messages_acknowledged_total")
# channel attribute per delivery counter
CHANNEL_FIELDS = ("delivered", "delivered_no_ack", "fetched", "fetched_no_ack",
                  "fetched_empty", "redelivered", "acked")

# rabbit_msg_size_metrics' buckets (upper bounds, bytes); the last one is +Inf.
SIZE_BOUNDS = (100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 50_000_000, 100_000_000)


def publisher_figures(pub: Any) -> tuple[int, ...]:
    """A publisher's PUBLISH_COUNTERS. Confirms: `upto`, the highest publish confirmed
    with all before it settled (a nack among them counts, see docs/metrics.md)."""
    unroutable = pub.returned_unroutable + pub.dropped_unroutable
    return (pub.published, pub.seq, pub.published - unroutable, pub.dropped_unroutable,
            pub.returned_unroutable, pub.upto if pub.confirm else 0)


def channel_figures(ch: Any) -> tuple[int, ...]:
    return tuple(getattr(ch, name) for name in CHANNEL_FIELDS)


class MessageSizes:
    """Counts of received message sizes per bucket, and their sum (bytes)."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(SIZE_BOUNDS) + 1)
        self.total = 0

    def observe(self, size: int) -> None:
        self.total += size
        # the first bound >= size (bucket upper bounds are inclusive); past the last: +Inf
        self.counts[bisect_left(SIZE_BOUNDS, size)] += 1


class ProtocolCounters:
    """One protocol's global counters (see the module docstring)."""

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self.publishers: set[Any] = set()  # open `Publisher`s of this protocol
        self.retired_publish = [0] * len(PUBLISH_COUNTERS)
        self.retired_delivery = [0] * len(DELIVERY_COUNTERS)
        self.sizes = MessageSizes()

    def retire(self, pub: Any) -> None:
        """A publisher closed: its figures join the totals (once)."""
        if pub in self.publishers:
            self.publishers.discard(pub)
            for i, value in enumerate(publisher_figures(pub)):
                self.retired_publish[i] += value

    def retire_deliveries(self, ch: Any) -> None:
        """An AMQP channel was released: its delivery figures join the totals (once; the
        caller's `closed` flag says so)."""
        for i, value in enumerate(channel_figures(ch)):
            self.retired_delivery[i] += value

    def publish_totals(self) -> dict[str, int]:
        out = list(self.retired_publish)
        for pub in list(self.publishers):
            for i, value in enumerate(publisher_figures(pub)):
                out[i] += value
        return dict(zip(PUBLISH_COUNTERS, out))

    def publishing(self) -> int:
        """RabbitMQ's `rabbitmq_global_publishers`: open publishers that have published."""
        return sum(1 for pub in list(self.publishers) if pub.published)


class GlobalCounters:
    """Every protocol's counters, created on first use (AMQP 0-9-1 from the start)."""

    def __init__(self) -> None:
        self.by_protocol: dict[str, ProtocolCounters] = {AMQP091: ProtocolCounters(AMQP091)}

    def of(self, protocol: str) -> ProtocolCounters:
        counters = self.by_protocol.get(protocol)
        if counters is None:
            counters = self.by_protocol[protocol] = ProtocolCounters(protocol)
        return counters
