"""The cluster as the management API shows it (on the leader, which answers every node's
API: followers forward HTTP to it).

`GET /api/nodes` lists every member with RabbitMQ's fields (name, type, running, uptime,
partitions; https://www.rabbitmq.com/docs/management) and ours under `replication`: role,
in-sync, lag. Membership comes from etcd (`members/<node>`, refreshed by the leader with
every lease keep-alive); liveness, ISR and lag from the replication source itself, which
knows which followers are connected and what each has acknowledged.

It is also the management API's way to hold a reply until the in-sync replicas have the
definitions the request made (`mark` / `replicated`), as AMQP replies are held in the
server (`ReplicationSource.hold_output`).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from amqpbroker.cluster.leader import ReplicationSource


class ClusterView:
    def __init__(self, node: str, cluster_name: str, source: "ReplicationSource",
                 own: dict[str, Any]) -> None:
        self.node = node
        self.cluster_name = cluster_name
        self.source = source
        # name -> what the member registered in etcd (addresses, started, pid, version)
        self.members: dict[str, dict[str, Any]] = {node: own}

    # -- the members ------------------------------------------------------------------------
    def names(self) -> list[str]:
        return sorted(set(self.members) | set(self.source.links) | {self.node})

    def in_sync(self) -> list[str]:
        return sorted(self.source.isr | {self.node})

    def member(self, name: str) -> dict[str, Any] | None:
        """One member's entry, None if `name` is not a member."""
        if name not in self.members and name not in self.source.links and name != self.node:
            return None
        source = self.source
        info = self.members.get(name, {})
        leader = name == self.node
        link = source.links.get(name)
        # A follower's one job is to follow the leader's stream: it runs when linked.
        running = leader or (link is not None and not link.closed)
        entry: dict[str, Any] = {"name": name, "type": "disc", "running": running,
                                 "partitions": [], "being_drained": False}
        if running and info.get("started"):
            entry["uptime"] = max(0, int(time.time() * 1000) - int(info["started"]))
        if info.get("pid"):
            entry["os_pid"] = str(info["pid"])
        if info.get("processors"):
            entry["processors"] = info["processors"]
        acked = source.seq if leader else (link.acked if link is not None else None)
        entry["replication"] = {
            "role": "leader" if leader else "follower",
            "in_sync": leader or name in source.isr,
            "connected": running,
            "acknowledged": acked,
            "lag": None if acked is None else source.seq - acked,  # changes not yet acked
            "term": source.term,
            "version": info.get("version"),
            "addresses": {k: v for k, v in info.items()
                          if k in ("amqp", "amqps", "mqtt", "mqtt_ws", "http", "replication")},
        }
        return entry

    def nodes(self) -> list[dict[str, Any]]:
        return [m for m in (self.member(n) for n in self.names()) if m is not None]

    # -- replies after the ISR has the definitions --------------------------------------------
    def mark(self) -> int:
        return self.source.definition_seq

    async def replicated(self, mark: int) -> None:
        """Return once every in-sync follower has the definitions made since `mark`
        (at once if none was made)."""
        source = self.source
        position = source.definition_seq
        if position == mark:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        source.wait(position, lambda failed: done.done() or done.set_result(None))
        await done
