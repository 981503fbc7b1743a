"""Consumer timeout (https://www.rabbitmq.com/docs/consumers#acknowledgement-timeout): when the
oldest unacked delivery of the channel is older than its timeout (the consumer's
`x-consumer-timeout` argument, else its queue's, else `Settings.consumer_timeout_ms`), the
channel is closed with 406 and everything unacked is requeued. Deliveries are not
timestamped one by one (that would cost a clock read per message): while anything is
unacked, a check runs every `_check_interval(timeout)` and records "marks" (the next
delivery tag, the time), so every delivery is known to have happened before the first mark
above its tag. The check uses that bound: a timeout is never early and at most about two
intervals late (RabbitMQ itself checks once a minute).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import structlog

from amqpbroker import errors

if TYPE_CHECKING:
    from amqpbroker.model.queue import Queue
    from amqpbroker.session.channel import Channel
    from amqpbroker.session.consumer import Consumer

log = structlog.get_logger("amqpbroker")
NO_TIMEOUT = object()  # `timer` when no consumer timeout applies on this channel


class ConsumerTimeouts:
    """One channel's consumer-timeout watch (a part of `session.channel.Channel`: it
    reads the channel's unacked ledger and closes the channel through `fail()`).

    `timer` is the channel's hot-path test: None means "watching nothing yet, start at the
    next unacked delivery" (`watch`), NO_TIMEOUT that no timeout applies."""

    __slots__ = ("channel", "marks", "interval", "timer")

    def __init__(self, channel: "Channel", default_timeout_ms: int | None) -> None:
        self.channel = channel
        # marks: (first tag delivered after the mark, time of the mark)
        # an empty tuple until the first watch: most channels never have a delivery out
        self.marks: deque[tuple[int, float]] | tuple[()] = ()
        self.interval = _check_interval(default_timeout_ms)
        self.timer: Any = None if self.interval is not None else NO_TIMEOUT

    def note_timeout(self, timeout_ms: int) -> None:
        """A consumer or queue on this channel has its own timeout: check often enough."""
        interval = _check_interval(timeout_ms)
        if self.interval is None or (interval is not None and interval < self.interval):
            self.interval = interval
        if self.timer is NO_TIMEOUT and not self.channel.closed:
            self.timer = None

    def watch(self, tag: int) -> None:
        """The first unacked delivery since the channel had none: start checking."""
        scheduler = self.channel.core.scheduler
        now = scheduler.now()
        marks = self.marks
        if marks.__class__ is tuple:
            marks = self.marks = deque()
        marks.clear()  # type: ignore[union-attr]
        marks.append((tag + 1, now))  # type: ignore[union-attr]  # delivered just now
        self.timer = scheduler.call_at(now + self.interval, self._check)  # type: ignore[operator]

    def stop(self) -> None:
        """The channel closed."""
        if self.timer is not None and self.timer is not NO_TIMEOUT:
            self.timer.cancel()
        self.timer = NO_TIMEOUT

    def _check(self) -> None:
        self.timer = None
        ch = self.channel
        unacked, marks = ch.unacked, self.marks
        if ch.closed or not unacked:
            marks.clear()  # the next delivery starts over
            return
        scheduler = ch.core.scheduler
        now = scheduler.now()
        oldest = next(iter(unacked))  # tags only grow: the first key is the oldest
        while marks and marks[0][0] <= oldest:
            marks.popleft()
        delivered_by = marks[0][1] if marks else now
        queue, _, consumer = unacked[oldest]
        timeout_ms = self._timeout_of(queue, consumer)
        if timeout_ms is not None and (now - delivered_by) * 1000.0 >= timeout_ms:
            self._timed_out(timeout_ms)
            return
        if not marks or marks[-1][0] < ch.next_tag:
            marks.append((ch.next_tag, now))
        self.timer = scheduler.call_at(now + self.interval, self._check)  # type: ignore[operator]

    def _timeout_of(self, queue: "Queue", consumer: "Consumer | None") -> int | None:
        if consumer is not None and consumer.timeout_ms is not None:
            return consumer.timeout_ms
        if queue.consumer_timeout_ms is not None:
            return queue.consumer_timeout_ms
        default = self.channel.core.settings.consumer_timeout_ms
        return default if default and default > 0 else None

    def _timed_out(self, timeout_ms: int) -> None:
        ch = self.channel
        log.warning("consumer.timeout", peer=ch.conn.peer, channel=ch.id,
                    timeout_ms=timeout_ms, unacked=len(ch.unacked),
                    action="channel closed, unacked messages requeued")
        ch.fail(errors.PreconditionFailed(
            f"delivery acknowledgement on channel {ch.id} timed out. Timeout value used: "
            f"{timeout_ms} ms. This timeout value can be configured, see consumers doc guide "
            "to learn more"))


def _check_interval(timeout_ms: int | None) -> float | None:
    """How often unacked deliveries are checked for a timeout (seconds; None: never)."""
    if timeout_ms is None or timeout_ms < 0:
        return None
    return min(max(timeout_ms / 20000.0, 0.005), 60.0)
