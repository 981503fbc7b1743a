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

from typing import TYPE_CHECKING

import structlog

from amqpbroker import errors

if TYPE_CHECKING:
    from amqpbroker.model.queue import Queue
    from amqpbroker.session.consumer import Consumer

log = structlog.get_logger("amqpbroker")
_NO_TIMEOUT = object()  # _ct_timer when no consumer timeout applies on this channel


class ConsumerTimeouts:
    """Mixed into `session.channel.Channel` (uses its unacked ledger, core and fail())."""

    def note_timeout(self, timeout_ms: int) -> None:
        """A consumer or queue on this channel has its own timeout: check often enough."""
        interval = _check_interval(timeout_ms)
        if self._ct_interval is None or (interval is not None and interval < self._ct_interval):
            self._ct_interval = interval
        if self._ct_timer is _NO_TIMEOUT and not self.closed:
            self._ct_timer = None

    def _watch_unacked(self, tag: int) -> None:
        """The first unacked delivery since the channel had none: start checking."""
        scheduler = self.core.scheduler
        now = scheduler.now()
        self._ct_marks.clear()
        self._ct_marks.append((tag + 1, now))  # tag was delivered just now
        self._ct_timer = scheduler.call_at(now + self._ct_interval, self._check_timeout)  # type: ignore[operator]

    def _check_timeout(self) -> None:
        self._ct_timer = None
        unacked, marks = self.unacked, self._ct_marks
        if self.closed or not unacked:
            marks.clear()  # the next delivery starts over
            return
        scheduler = self.core.scheduler
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
        if not marks or marks[-1][0] < self.next_tag:
            marks.append((self.next_tag, now))
        self._ct_timer = scheduler.call_at(now + self._ct_interval, self._check_timeout)  # type: ignore[operator]

    def _timeout_of(self, queue: "Queue", consumer: "Consumer | None") -> int | None:
        if consumer is not None and consumer.timeout_ms is not None:
            return consumer.timeout_ms
        if queue.consumer_timeout_ms is not None:
            return queue.consumer_timeout_ms
        default = self.core.settings.consumer_timeout_ms
        return default if default and default > 0 else None

    def _timed_out(self, timeout_ms: int) -> None:
        log.warning("consumer.timeout", peer=self.conn.peer, channel=self.id,
                    timeout_ms=timeout_ms, unacked=len(self.unacked),
                    action="channel closed, unacked messages requeued")
        self.fail(errors.PreconditionFailed(
            f"delivery acknowledgement on channel {self.id} timed out. Timeout value used: "
            f"{timeout_ms} ms. This timeout value can be configured, see consumers doc guide "
            "to learn more"))


def _check_interval(timeout_ms: int | None) -> float | None:
    """How often unacked deliveries are checked for a timeout (seconds; None: never)."""
    if timeout_ms is None or timeout_ms < 0:
        return None
    return min(max(timeout_ms / 20000.0, 0.005), 60.0)
