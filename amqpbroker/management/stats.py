"""Rates for the management API, sampled every few seconds (RabbitMQ's `*_details`).

Nothing here runs on the message path: every `interval` seconds (5 by default,
`management_rates_interval`) a timer reads the figures the broker already keeps (queue
depths, consumer counts, connection octets, the message counters of queues, exchanges and
channels) through the admin facade, and keeps the last two samples per object. A rate is
the change between them per second, as RabbitMQ's "basic" rates mode shows it.
A pass is spread over loop turns (SLICE objects each), and the admin facade leaves out
objects whose figures are all zero (of 100,000 queues most are idle): their rates are zero,
and one that becomes busy counts from zero at the previous pass.

Consumer capacity (RabbitMQ's `consumer_capacity` / `consumer_utilisation`: the share of
time the queue's consumers could take messages at once) is estimated from the samples: a
queue with consumers counts as saturated at a sample when it has ready messages (it
delivers whenever a consumer has credit, so a backlog means none had), and the figure is
the share of the last 12 samples that were not.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any, Iterator

import structlog

log = structlog.get_logger("amqpbroker")

CAPACITY_WINDOW = 12

# object kind -> the keys whose rate is shown as key + "_details"
RATE_KEYS = {
    "queue": ("messages", "messages_ready", "messages_unacknowledged"),
    "vhost": ("messages", "messages_ready", "messages_unacknowledged"),
    "connection": ("recv_oct", "send_oct"),
}


# Queues looked at per loop turn of a sampling pass: with 100,000 queues a pass is many
# short turns (other connections run in between), not one second-long callback.
SLICE = 1000


class Stats:
    def __init__(self, admin: Any, interval: float = 5.0) -> None:
        self.admin = admin
        self.interval = max(0.1, float(interval))
        # (kind, identity) -> (previous (time, values) or None, last (time, values))
        self._samples: dict[tuple[str, Any], tuple[Any, Any]] = {}
        self._capacity: dict[tuple[str, str], deque[int]] = {}
        # (kind, identity) -> (previous (time, counters) or None, last (time, counters))
        self._counters: dict[tuple[str, Any], tuple[Any, Any]] = {}
        self._timer: asyncio.Handle | None = None
        self._pass: Iterator[None] | None = None
        # When the last pass started: an object left out of it (an idle queue: the admin
        # facade skips those) counts from zero since then.
        self._last_pass: float | None = None

    def start(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pass = None

    def _tick(self) -> None:
        self._pass = self._sampling()
        self._step()

    def _step(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            if self._pass is not None:
                next(self._pass)
                self._timer = loop.call_soon(self._step)
                return
        except StopIteration:
            pass
        except Exception:  # a bug costs one pass, never the sampler
            log.exception("management.sample_failed")
        self._pass = None
        self._timer = loop.call_later(self.interval, self._tick)

    def sample(self) -> None:
        """One whole pass at once (tests; the timer spreads it over loop turns)."""
        for _ in self._sampling():
            pass

    def _sampling(self) -> Iterator[None]:
        now = started = time.monotonic()
        since = self._last_pass
        old, fresh = self._samples, {}
        old_capacity, capacity = self._capacity, {}
        vhosts: dict[str, list[int]] = {}

        def put(key: tuple[str, Any], values: tuple, absent: Any) -> None:
            previous = old.get(key)
            fresh[key] = (previous[1] if previous else absent, (now, values))

        zeros = (since, (0, 0, 0)) if since is not None else None
        for part in self.admin.queue_samples(SLICE):
            for key, ready, unacked, consumers in part:
                put(("queue", key), (ready + unacked, ready, unacked), zeros)
                totals = vhosts.setdefault(key[0], [0, 0, 0])
                totals[0] += ready + unacked
                totals[1] += ready
                totals[2] += unacked
                if consumers:
                    window = old_capacity.get(key) or deque(maxlen=CAPACITY_WINDOW)
                    window.append(0 if ready else 1)
                    capacity[key] = window
            yield
            now = time.monotonic()
        for key, (_, last) in old.items():
            # emptied since the last pass (and so left out of this one): the fall counts
            if key[0] == "queue" and key not in fresh and any(last[1]):
                fresh[key] = (last, (now, (0, 0, 0)))
        for name in self.admin.vhost_names():
            put(("vhost", name), tuple(vhosts.get(name, (0, 0, 0))), None)
        for i, (name, recv, send) in enumerate(self.admin.connection_samples(), 1):
            put(("connection", name), (recv, send), None)
            if i % SLICE == 0:  # 10,000 connections: ten turns
                yield
                now = time.monotonic()
        yield
        now = time.monotonic()
        old_counters, counters = self._counters, {}
        nothing = (since, {}) if since is not None else None
        for part in self.admin.counter_samples(SLICE):
            for key, values in part:
                previous = old_counters.get(key)
                counters[key] = (previous[1] if previous else nothing, (now, values))
            yield
            now = time.monotonic()
        # objects that are gone are forgotten
        self._samples, self._capacity, self._counters = fresh, capacity, counters
        self._last_pass = started

    def message_stats(self, kind: str, identity: Any, totals: dict[str, int]
                      ) -> dict[str, Any]:
        """RabbitMQ's message_stats: each counter and its rate (`<name>_details`)."""
        entry = self._counters.get((kind, identity))
        out: dict[str, Any] = {}
        for key, value in totals.items():
            rate = 0.0
            if entry is not None and entry[0] is not None:
                (t0, c0), (t1, c1) = entry
                rate = round((c1.get(key, 0) - c0.get(key, 0)) / max(t1 - t0, 1e-9), 1)
            out[key] = value
            out[key + "_details"] = {"rate": rate}
        return out

    def rates(self, kind: str, identity: Any) -> dict[str, float]:
        entry = self._samples.get((kind, identity))
        keys = RATE_KEYS[kind]
        if entry is None or entry[0] is None:
            return {k: 0.0 for k in keys}
        (t0, v0), (t1, v1) = entry
        span = max(t1 - t0, 1e-9)
        return {k: round((b - a) / span, 1) for k, a, b in zip(keys, v0, v1)}

    def decorate(self, kind: str, item: dict[str, Any]) -> None:
        identity = ((item.get("vhost"), item.get("name")) if kind in ("queue", "exchange")
                    else item.get("name"))
        if isinstance(item.get("message_stats"), dict):
            item["message_stats"] = self.message_stats(kind, identity, item["message_stats"])
        if kind not in RATE_KEYS:
            return
        for key, rate in self.rates(kind, identity).items():
            item[key + "_details"] = {"rate": rate}
        if kind == "queue" and item.get("consumers"):
            window = self._capacity.get(identity)  # type: ignore[arg-type]
            if window:
                share = round(sum(window) / len(window), 2)
                item["consumer_capacity"] = item["consumer_utilisation"] = share

    def decorate_vhost(self, item: dict[str, Any]) -> None:
        self.decorate("vhost", item)

    def decorate_overview(self, item: dict[str, Any]) -> None:
        totals = item.setdefault("queue_totals", {})
        sums = [0.0, 0.0, 0.0]
        for name in self.admin.vhost_names():
            for i, rate in enumerate(self.rates("vhost", name).values()):
                sums[i] += rate
        for key, rate in zip(RATE_KEYS["vhost"], sums):
            totals[key + "_details"] = {"rate": round(rate, 1)}
        item["message_stats"] = self.message_stats("overview", None,
                                                   self.admin.overview_counters())
        item["churn_rates"] = self.churn()

    def churn(self) -> dict[str, Any]:
        """RabbitMQ's churn_rates: each churn total and its rate."""
        return self.message_stats("churn", None, self.admin.churn())
