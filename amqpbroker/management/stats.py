"""Rates for the management API, sampled every few seconds (RabbitMQ's `*_details`).

Counters are read from the objects where the broker already keeps them (queue depths,
connection octets); nothing here runs on the message path. Every `interval` seconds a
timer takes one sample per object; a rate is the change between the last two samples per
second, as RabbitMQ's basic rates mode shows it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

# object kind -> the keys whose rate is shown as key + "_details"
RATE_KEYS = {
    "queue": ("messages", "messages_ready", "messages_unacknowledged"),
    "vhost": ("messages", "messages_ready", "messages_unacknowledged"),
    "connection": ("recv_oct", "send_oct"),
    "exchange": (),
    "channel": (),
}


class Stats:
    def __init__(self, admin: Any, interval: float = 5.0) -> None:
        self.admin = admin
        self.interval = max(0.1, float(interval))
        # (kind, identity) -> (previous (time, values), last (time, values))
        self._samples: dict[tuple[str, Any], tuple[Any, Any]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.interval, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        try:
            self.sample()
        finally:
            self._timer = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def sample(self) -> None:
        now = time.monotonic()
        seen: set[tuple[str, Any]] = set()
        for kind, items in (("queue", self.admin.queues()),
                            ("connection", self.admin.connections()),
                            ("vhost", [self.admin.vhost_info(n)
                                       for n in self.admin.vhost_names()])):
            for item in items:
                key = (kind, _identity(kind, item))
                seen.add(key)
                values = tuple(item.get(k, 0) or 0 for k in RATE_KEYS[kind])
                previous = self._samples.get(key)
                self._samples[key] = (previous[1] if previous else None, (now, values))
        for key in [k for k in self._samples if k not in seen]:
            del self._samples[key]

    def rates(self, kind: str, item: dict[str, Any]) -> dict[str, float]:
        entry = self._samples.get((kind, _identity(kind, item)))
        keys = RATE_KEYS[kind]
        if entry is None or entry[0] is None:
            return {k: 0.0 for k in keys}
        (t0, v0), (t1, v1) = entry
        span = max(t1 - t0, 1e-9)
        return {k: round((b - a) / span, 1) for k, a, b in zip(keys, v0, v1)}

    def decorate(self, kind: str, item: dict[str, Any]) -> None:
        for key, rate in self.rates(kind, item).items():
            item[key + "_details"] = {"rate": rate}

    def decorate_vhost(self, item: dict[str, Any]) -> None:
        self.decorate("vhost", item)

    def decorate_overview(self, item: dict[str, Any]) -> None:
        totals = item.get("queue_totals", {})
        ready = unacked = 0.0
        for name in self.admin.vhost_names():
            r = self.rates("vhost", {"name": name})
            ready += r.get("messages_ready", 0.0)
            unacked += r.get("messages_unacknowledged", 0.0)
        totals["messages_ready_details"] = {"rate": round(ready, 1)}
        totals["messages_unacknowledged_details"] = {"rate": round(unacked, 1)}
        totals["messages_details"] = {"rate": round(ready + unacked, 1)}


def _identity(kind: str, item: dict[str, Any]) -> Any:
    if kind in ("queue", "exchange"):
        return (item.get("vhost"), item.get("name"))
    return item.get("name")
