"""`amqpbroker cluster status --cluster etcd://...`: the cluster as etcd sees it.

Prints the members, who leads in which term, the ISR, and each follower's lag in changes as
the leader last reported it (the leader refreshes its `status` key with every keep-alive).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import sys

from amqpbroker.cluster.etcd import Etcd, EtcdError, parse_endpoints


async def read_status(url: str, cluster_name: str = "amqpbroker") -> dict[str, Any]:
    etcd = Etcd(parse_endpoints(url))
    prefix = f"/amqpbroker/{cluster_name}/"
    try:
        leader = await etcd.get(prefix + "leader")
        isr = await etcd.get(prefix + "isr")
        status = await etcd.get(prefix + "status")
        members = await etcd.get_prefix(prefix + "members/")
    finally:
        await etcd.close()
    report = status.json() if status is not None else {}
    followers = report.get("followers", {})
    in_sync = isr.json() if isr is not None else []
    leader_name = leader.json()["node"] if leader is not None else None
    nodes = []
    for kv in members:
        name = kv.key.rsplit("/", 1)[1]
        info = kv.json()
        role = "leader" if name == leader_name else "follower"
        entry = {"name": name, "role": role, "in_sync": name in in_sync,
                 "amqp": info.get("amqp"), "replication": info.get("replication")}
        if name in followers:
            entry["lag"] = followers[name]["lag"]
            entry["connected"] = True
        elif role == "follower":
            entry["connected"] = False
        nodes.append(entry)
    return {"leader": leader_name, "term": leader.create_revision if leader else None,
            "isr": in_sync, "seq": report.get("seq"), "nodes": nodes}


def print_status(url: str, cluster_name: str, as_json: bool) -> int:
    try:
        status = asyncio.run(read_status(url, cluster_name))
    except EtcdError as exc:
        print(f"amqpbroker: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(status, indent=2))
        return 0
    print(f"Leader: {status['leader'] or '(none: election in progress)'}  term {status['term']}")
    print(f"In-sync replicas: {', '.join(status['isr']) or '-'}")
    print(f"{'node':<12} {'role':<9} {'in sync':<8} {'lag':>8}  amqp")
    for n in status["nodes"]:
        lag = n.get("lag", "-" if n["role"] == "leader" else "down")
        print(f"{n['name']:<12} {n['role']:<9} {'yes' if n['in_sync'] else 'no':<8} "
              f"{lag!s:>8}  {n['amqp']}")
    return 0
