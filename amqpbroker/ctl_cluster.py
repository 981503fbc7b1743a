"""`amqpbroker ctl cluster_status`: rabbitmqctl's cluster_status through the management API
(https://www.rabbitmq.com/docs/clustering), with two sections of ours: who leads, and the
in-sync replicas (docs/clustering.md).

    Cluster status of node n1 ...
    Basics

    Cluster name: amqpbroker
    Total CPU cores available cluster-wide: 6

    Disk Nodes

    n1
    n2
    n3
    ...
    Leader

    n1 (term 45)

    In-sync replicas

    n1
    n2

    Replication

    Node: n1, role: leader, in sync, lag 0 changes
    Node: n2, role: follower, in sync, lag 3 changes
    Node: n3, role: follower, not in sync, not connected

`--formatter json` prints rabbitmqctl's JSON keys (cluster_name, disk_nodes, running_nodes,
versions, alarms, partitions, listeners ...) plus `leader`, `term`, `in_sync_replicas` and
`replication` (each node's role, in-sync flag and lag). Registered into ctl's command table
by `register`; this module does not import ctl.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

EX_OK = 0
ALARM_NAMES = {"memory": "Memory", "disk": "Free disk space"}
ctl: Any = None  # amqpbroker.ctl, set by register()


def cluster_status(overview: dict[str, Any], nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """rabbitmqctl's cluster_status document from GET /api/overview and GET /api/nodes."""
    names = sorted(n["name"] for n in nodes)
    replication = {n["name"]: n["replication"] for n in nodes if "replication" in n}
    leader = next((name for name, r in replication.items() if r.get("role") == "leader"),
                  None)
    alarms = []
    for n in nodes:
        for key, resource in (("mem_alarm", "memory"), ("disk_free_alarm", "disk")):
            if n.get(key):
                alarms.append({"node": n["name"], "resource": resource})
    versions = {}
    for n in nodes:
        version = (n.get("replication") or {}).get("version")
        if version is None and n["name"] == overview.get("node"):
            version = overview.get("product_version")
        if version is not None:
            versions[n["name"]] = {"rabbitmq_name": overview.get("product_name", "amqpbroker"),
                                   "rabbitmq_version": version}
    return {
        "cluster_name": overview.get("cluster_name"),
        "disk_nodes": names,
        "ram_nodes": [],
        "running_nodes": sorted(n["name"] for n in nodes if n.get("running")),
        "versions": versions,
        "cpu_cores": {n["name"]: n["processors"] for n in nodes if n.get("processors")},
        "maintenance_status": {n["name"]: ("marked for maintenance" if n.get("being_drained")
                                           else "not under maintenance") for n in nodes},
        "alarms": alarms,
        "partitions": {n["name"]: n["partitions"] for n in nodes if n.get("partitions")},
        "listeners": {overview.get("node"): [
            {"interface": lst.get("ip_address"), "port": lst.get("port"),
             "protocol": lst.get("protocol")} for lst in overview.get("listeners", [])]},
        "leader": leader,
        "term": replication[leader].get("term") if leader else None,
        "in_sync_replicas": sorted(name for name, r in replication.items() if r.get("in_sync")),
        "replication": replication,
    }


def status_lines(status: dict[str, Any]) -> list[str]:
    """The text rabbitmqctl prints: one section per heading, a blank line around it."""
    def section(title: str, lines: list[str]) -> list[str]:
        return ["", title, "", *(lines or ["(none)"])]

    cores = sum(status["cpu_cores"].values())
    out = ["Basics", "", f"Cluster name: {status['cluster_name']}",
           f"Total CPU cores available cluster-wide: {cores}"]
    out += section("Disk Nodes", status["disk_nodes"])
    out += section("Running Nodes", status["running_nodes"])
    out += section("Versions", [f"{node}: {v['rabbitmq_name']} {v['rabbitmq_version']}"
                                for node, v in sorted(status["versions"].items())])
    out += section("CPU Cores", [f"Node: {node}, available CPU cores: {n}"
                                 for node, n in sorted(status["cpu_cores"].items())])
    out += section("Maintenance status", [f"Node: {node}, status: {s}" for node, s
                                          in sorted(status["maintenance_status"].items())])
    out += section("Alarms", [f"{ALARM_NAMES[a['resource']]} alarm on node {a['node']}"
                              for a in status["alarms"]])
    out += section("Network Partitions", [
        f"Node {node} cannot communicate with {', '.join(peers)}"
        for node, peers in sorted(status["partitions"].items())])
    out += section("Listeners", [
        f"Node: {node}, interface: {lst['interface']}, port: {lst['port']}, "
        f"protocol: {lst['protocol']}"
        for node, lsts in status["listeners"].items() for lst in lsts])
    replication = status["replication"]
    if not replication:
        out += section("Leader", ["(not clustered: a single node)"])
        return out
    leader = status["leader"]
    out += section("Leader", [f"{leader} (term {status['term']})"] if leader else [])
    out += section("In-sync replicas", status["in_sync_replicas"])
    lines = []
    for node, r in sorted(replication.items()):
        lag = r.get("lag")
        state = ("in sync" if r.get("in_sync") else "not in sync") + (
            f", lag {lag} changes" if lag is not None else ", not connected")
        lines.append(f"Node: {node}, role: {r.get('role')}, {state}")
    out += section("Replication", lines)
    return out


def cmd_cluster_status(c: Any, o: argparse.Namespace, a: list[str]) -> int:
    ctl._args(a, 0, "cluster_status")
    overview = c.expect("GET", "/api/overview")
    nodes = c.expect("GET", "/api/nodes")
    status = cluster_status(overview, nodes)
    if o.formatter == "json":
        print(json.dumps(status))
        return EX_OK
    ctl.say(o, f"Cluster status of node {overview.get('node')} ...")
    print("\n".join(status_lines(status)))
    return EX_OK


COMMANDS = {"cluster_status": cmd_cluster_status}


def register(ctl_module: Any, commands: dict[str, Any]) -> None:
    global ctl
    ctl = ctl_module
    commands.update(COMMANDS)
