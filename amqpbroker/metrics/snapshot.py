"""One scrape's figures, read from the admin facade in the event loop.

Reading is the only part that touches the broker; it runs in the broker's event loop, a
slice of queues at a time (`SLICE`), yielding to client traffic in between, so that
100,000 queues never stall the loop for the whole read. What it produces is plain data
(`Snapshot`): turning it into text (`collector.py`) needs no broker and may run in a
worker thread.

Three endpoints, as RabbitMQ's plugin (https://www.rabbitmq.com/docs/prometheus):
aggregated (`/metrics`: one sample per metric, summed over objects), per-object
(`/metrics/per-object`: a sample per queue, channel, connection, exchange) and detailed
(`/metrics/detailed?family=...&vhost=...&queue=...`: the chosen groups only, per object,
with the `rabbitmq_detailed_` prefix).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from amqpbroker.metrics.families import NODE_GROUPS, OBJECT_GROUPS

SLICE = 500  # queues read between two yields to the event loop


@dataclass
class Snapshot:
    endpoint: str  # "aggregated" | "per-object" | "detailed" (rabbitmq_endpoint label)
    groups: set[str]  # the metric groups to export
    identity: dict[str, str]
    node: dict[str, Any] = field(default_factory=dict)  # NODE_GROUPS' row keys
    # kind -> rows (per object) or kind -> key -> sum (aggregated)
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    sums: dict[str, dict[str, float]] = field(default_factory=dict)
    # the node-wide families (not in the detailed endpoint)
    totals: dict[str, int] | None = None
    global_counters: dict[str, dict[str, int]] | None = None
    sizes: dict[str, tuple[list[int], int]] | None = None
    alarms: dict[str, int] | None = None
    version: str = ""

    @property
    def per_object(self) -> bool:
        return self.endpoint != "aggregated"

    @property
    def prefix(self) -> str:
        return "rabbitmq_detailed_" if self.endpoint == "detailed" else "rabbitmq_"


async def read(admin: Any, endpoint: str, version: str, families: Iterable[str] | None = None,
               vhosts: Iterable[str] | None = None, queue: "re.Pattern[str] | None" = None
               ) -> Snapshot:
    """Everything one scrape of `endpoint` exports. For "detailed": only `families`, and
    queues and exchanges of `vhosts` (all when None) whose name `queue` matches."""
    if endpoint == "detailed":
        groups = set(families or ())
    else:
        groups = {g for kind in OBJECT_GROUPS.values() for g in kind} | set(NODE_GROUPS)
    snap = Snapshot(endpoint, groups, admin.identity(), version=version)
    if groups & set(NODE_GROUPS):
        snap.node = {**admin.node_resources(), **admin.auth_attempts(), **admin.churn()}
    names = list(vhosts) if vhosts is not None else None
    await _read_queues(admin, snap, names, queue)
    for kind, rows in (("channel", admin.channel_rows), ("connection", admin.connection_rows),
                       ("exchange", admin.exchange_rows)):
        if _wanted(snap, kind):
            _keep(snap, kind, [r for r in rows()  # the vhost filter: exchanges only
                               if names is None or r.get("vhost") in (None, *names)])
    if endpoint != "detailed":
        snap.totals = admin.client_counts()
        snap.totals["queues"] = int(snap.sums.get("queue_count", {}).get("n", 0))
        snap.totals["consumers"] = int(snap.sums.get("queue_count", {}).get("consumers", 0))
        snap.global_counters = admin.global_counters()
        snap.sizes = admin.message_sizes()
        resources = snap.node or admin.node_resources()
        snap.alarms = {"memory": resources["memory_alarm"], "disk": resources["disk_alarm"]}
    return snap


def _wanted(snap: Snapshot, kind: str) -> bool:
    return bool(snap.groups & set(OBJECT_GROUPS[kind]))


async def _read_queues(admin: Any, snap: Snapshot, vhosts: list[str] | None,
                       queue: "re.Pattern[str] | None") -> None:
    if not _wanted(snap, "queue"):
        return
    rows: list[dict[str, Any]] = []
    count = consumers = 0
    sources = [admin.queue_rows(v) for v in vhosts] if vhosts is not None else [
        admin.queue_rows()]
    for source in sources:
        for row in source:
            if queue is None or queue.search(row["queue"]):
                rows.append(row)
                count += 1
                consumers += row["consumers"]
            if len(rows) >= SLICE:
                _keep(snap, "queue", rows)
                rows = []
                await asyncio.sleep(0)  # let client traffic in between slices
    _keep(snap, "queue", rows)
    snap.sums["queue_count"] = {"n": count, "consumers": consumers}


def _keep(snap: Snapshot, kind: str, rows: list[dict[str, Any]]) -> None:
    if snap.per_object:
        snap.rows.setdefault(kind, []).extend(rows)
        return
    sums = snap.sums.setdefault(kind, {})
    keys = {m[3] for group in OBJECT_GROUPS[kind].values() for m in group}
    for row in rows:
        for key in keys:
            sums[key] = sums.get(key, 0) + row.get(key, 0)
