"""Rates for the management API, sampled every few seconds (RabbitMQ's `*_details`).

Nothing here runs on the message path: every `interval` seconds (5 by default,
`management_rates_interval`) a timer reads the figures the broker already keeps (queue
depths, consumer counts, connection octets, the message counters of queues, exchanges and
channels) through the admin facade, and keeps the last two samples per object. A rate is
the change between them per second, as RabbitMQ's "basic" rates mode shows it.

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
from typing import Any

CAPACITY_WINDOW = 12

# object kind -> the keys whose rate is shown as key + "_details"
RATE_KEYS = {
    "queue": ("messages", "messages_ready", "messages_unacknowledged"),
    "vhost": ("messages", "messages_ready", "messages_unacknowledged"),
    "connection": ("recv_oct", "send_oct"),
}


class Stats:
    def __init__(self, admin: Any, interval: float = 5.0) -> None:
        self.admin = admin
        self.interval = max(0.1, float(interval))
        # (kind, identity) -> (previous (time, values) or None, last (time, values))
        self._samples: dict[tuple[str, Any], tuple[Any, Any]] = {}
        self._capacity: dict[tuple[str, str], deque[int]] = {}
        # (kind, identity) -> (previous (time, counters) or None, last (time, counters))
        self._counters: dict[tuple[str, Any], tuple[Any, Any]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        try:
            self.sample()
        finally:
            self._timer = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def _put(self, key: tuple[str, Any], now: float, values: tuple) -> None:
        previous = self._samples.get(key)
        self._samples[key] = (previous[1] if previous else None, (now, values))

    def sample(self) -> None:
        now = time.monotonic()
        fresh: dict[tuple[str, Any], tuple[Any, Any]] = {}
        vhosts: dict[str, list[int]] = {}
        capacity: dict[tuple[str, str], deque[int]] = {}
        for key, ready, unacked, consumers in self.admin.queue_samples():
            self._put(("queue", key), now, (ready + unacked, ready, unacked))
            fresh[("queue", key)] = self._samples[("queue", key)]
            totals = vhosts.setdefault(key[0], [0, 0, 0])
            totals[0] += ready + unacked
            totals[1] += ready
            totals[2] += unacked
            window = self._capacity.get(key) or deque(maxlen=CAPACITY_WINDOW)
            if consumers:
                window.append(0 if ready else 1)
            else:
                window.clear()
            capacity[key] = window
        for name, totals in vhosts.items():
            self._put(("vhost", name), now, tuple(totals))
            fresh[("vhost", name)] = self._samples[("vhost", name)]
        for name, recv, send in self.admin.connection_samples():
            self._put(("connection", name), now, (recv, send))
            fresh[("connection", name)] = self._samples[("connection", name)]
        self._samples = fresh  # objects that are gone are forgotten
        self._capacity = capacity
        counters: dict[tuple[str, Any], tuple[Any, Any]] = {}
        for key, values in self.admin.counter_samples():
            previous = self._counters.get(key)
            counters[key] = (previous[1] if previous else None, (now, values))
        self._counters = counters

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
