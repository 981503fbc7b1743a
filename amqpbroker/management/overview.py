"""Endpoints about the node as a whole: overview, nodes, whoami, extensions, health checks,
aliveness test."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

from amqpbroker import __version__
from amqpbroker.management import auth, listing
from amqpbroker.management.errors import not_found
from amqpbroker.management.router import Context, Reply, route

EXCHANGE_TYPES = [
    {"name": "direct", "description": "AMQP direct exchange, as per the AMQP specification",
     "enabled": True},
    {"name": "fanout", "description": "AMQP fanout exchange, as per the AMQP specification",
     "enabled": True},
    {"name": "headers", "description": "AMQP headers exchange, as per the AMQP specification",
     "enabled": True},
    {"name": "topic", "description": "AMQP topic exchange, as per the AMQP specification",
     "enabled": True},
]


def listeners(ctx: Context) -> list[dict[str, Any]]:
    return [{"node": ctx.admin.node_name, "protocol": lst["protocol"],
             "ip_address": lst.get("ip", "::"), "port": lst["port"], "socket_opts": {}}
            for lst in ctx.admin.listeners]


@route("GET", "/api/overview")
def get_overview(ctx: Context) -> Any:
    facts = ctx.admin.overview()
    out: dict[str, Any] = {
        "management_version": __version__, "rates_mode": "basic",
        "sample_retention_policies": {"global": [600, 3600, 28800, 86400],
                                      "basic": [600, 3600], "detailed": [600]},
        "exchange_types": EXCHANGE_TYPES, "product_version": __version__,
        "product_name": "amqpbroker", "rabbitmq_version": __version__,
        "cluster_name": ctx.admin.cluster_name, "python_version": platform.python_version(),
        "disable_stats": False, "enable_queue_totals": False,
        "message_stats": {}, "churn_rates": {},
        "queue_totals": facts["queue_totals"], "object_totals": facts["object_totals"],
        "statistics_db_event_queue": 0, "node": ctx.admin.node_name,
        "listeners": listeners(ctx), "contexts": _contexts(ctx),
    }
    if not auth.sees_all_vhosts(ctx.user):  # management users: their vhosts' totals only
        for key in ("listeners", "contexts", "node"):
            del out[key]
        vhosts = set(auth.visible_vhosts(ctx.admin, ctx.user))
        queues = [q for q in ctx.admin.queues() if q["vhost"] in vhosts]
        out["object_totals"] = {
            "connections": len([c for c in ctx.admin.connections()
                                if c["user"] == ctx.user.name]),
            "channels": len([c for c in ctx.admin.channels() if c["user"] == ctx.user.name]),
            "queues": len(queues),
            "exchanges": len([e for e in ctx.admin.exchanges() if e["vhost"] in vhosts])}
        ready = sum(q["messages_ready"] for q in queues)
        unacked = sum(q["messages_unacknowledged"] for q in queues)
        out["queue_totals"] = {"messages": ready + unacked, "messages_ready": ready,
                               "messages_unacknowledged": unacked}
    if ctx.stats is not None:
        ctx.stats.decorate_overview(out)
    else:
        out["message_stats"] = ctx.admin.overview_counters()
        out["churn_rates"] = _churn(ctx)
    return listing.one(out, ctx.query)


def _churn(ctx: Context) -> dict[str, Any]:
    """Churn totals with their rates (`<name>_details`), as RabbitMQ's overview
    `churn_rates` and node objects show them; rates 0 without the sampler."""
    if ctx.stats is not None:
        return ctx.stats.churn()
    out: dict[str, Any] = {}
    for key, value in ctx.admin.churn().items():
        out[key] = value
        out[key + "_details"] = {"rate": 0.0}
    return out


def _contexts(ctx: Context) -> list[dict[str, Any]]:
    return [{"node": ctx.admin.node_name, "description": "RabbitMQ Management", "path": "/",
             "cowboy_opts": "[{sendfile,false}]", "port": str(lst["port"])}
            for lst in ctx.admin.listeners if lst["protocol"] == "http"]


def _node(ctx: Context) -> dict[str, Any]:
    core = ctx.admin.core
    res = ctx.admin.node_resources()  # the same figures Prometheus reads
    total = res["fd_total"]
    uptime_ms = int(res["uptime"] * 1000)
    rss = res["rss"]
    return {
        "name": ctx.admin.node_name, "type": "disc", "running": True, "being_drained": False,
        "os_pid": str(os.getpid()), "processors": os.cpu_count() or 1,
        "uptime": uptime_ms, "run_queue": 0,
        "mem_used": rss, "mem_limit": core.memory_limit(), "mem_alarm": "memory" in core.alarms,
        "disk_free": res["disk_free"],
        "disk_free_limit": core.settings.disk_free_limit, "disk_free_alarm": "disk" in core.alarms,
        "fd_used": res["fd_used"], "fd_total": total, "sockets_used": len(core.connections),
        "sockets_total": total, "proc_used": 0, "proc_total": 0,
        "partitions": [], "net_ticktime": 60, "rates_mode": "basic",
        "exchange_types": EXCHANGE_TYPES,
        "auth_mechanisms": [{"name": "PLAIN", "description": "SASL PLAIN authentication "
                             "mechanism", "enabled": True},
                            {"name": "AMQPLAIN", "description": "QPid AMQPLAIN mechanism",
                             "enabled": True}],
        "applications": [{"name": "amqpbroker", "description": "AMQP 0-9-1 broker in Python",
                          "version": __version__},
                         {"name": "python", "description": sys.version.split()[0],
                          "version": platform.python_version()}],
        "contexts": _contexts(ctx),
        "enabled_plugins": ["rabbitmq_management"],
        "config_files": [], "log_files": [],
        "db_dir": core.settings.data_dir or "",
        **_churn(ctx),
    }


def _nodes(ctx: Context) -> list[dict[str, Any]]:
    """Every node: this one with its own statistics; in a cluster, every member as etcd
    and replication see it (cluster/view.py), its `replication` state included."""
    cluster = ctx.admin.cluster
    if cluster is None:
        return [_node(ctx)]
    return [{**_node(ctx), **m} if m["name"] == cluster.node else m for m in cluster.nodes()]


@route("GET", "/api/nodes", access="monitoring")
def get_nodes(ctx: Context) -> Any:
    return listing.apply(_nodes(ctx), ctx.query)


@route("GET", "/api/nodes/{node}", access="monitoring")
def get_node(ctx: Context) -> Any:
    found = [n for n in _nodes(ctx) if n["name"] == ctx.params["node"]]
    if not found:
        raise not_found()
    return listing.one(found[0], ctx.query)


@route("GET", "/api/cluster-name")
def get_cluster_name(ctx: Context) -> Any:
    return {"name": ctx.admin.cluster_name}


@route("GET", "/api/whoami")
def get_whoami(ctx: Context) -> Any:
    return {"name": ctx.user.name, "tags": list(ctx.user.tags)}


@route("GET", "/api/extensions")
def get_extensions(ctx: Context) -> Any:
    return []  # no UI plugins


@route("GET", "/api/auth")
def get_auth(ctx: Context) -> Any:
    return {"oauth_enabled": False}


def _ok(**extra: Any) -> dict[str, Any]:
    return {"status": "ok", **extra}


def _alarms(ctx: Context) -> Any:
    alarms = ctx.admin.alarms()
    if not alarms:
        return _ok()
    # RabbitMQ answers a failed health check with 503 and this body.
    return Reply(503, {"status": "failed", "reason": "resource alarm(s) in effect in the cluster",
                       "alarms": [{"node": ctx.admin.node_name, "resource": a}
                                  for a in alarms]})


@route("GET", "/api/health/checks/alarms", access="monitoring")
def get_health_alarms(ctx: Context) -> Any:
    return _alarms(ctx)


@route("GET", "/api/health/checks/local-alarms", access="monitoring")
def get_health_local_alarms(ctx: Context) -> Any:
    return _alarms(ctx)


@route("GET", "/api/health/checks/port-listener/{port}", access="monitoring")
def get_health_port_listener(ctx: Context) -> Any:
    raw = ctx.params["port"]
    ports = [lst["port"] for lst in ctx.admin.listeners]
    if not raw.isdigit():
        return Reply(400, {"error": "bad_request", "reason": f"invalid port '{raw}'"})
    port = int(raw)
    if port in ports:
        return _ok(port=port)
    return Reply(503, {"status": "failed", "reason": f"No active listener on port {port}",
                       "missing": port, "ports": ports})


@route("GET", "/api/health/checks/protocol-listener/{protocol}", access="monitoring")
def get_health_protocol_listener(ctx: Context) -> Any:
    wanted = ctx.params["protocol"].lower().replace("-", "").replace("0.9.1", "amqp")
    protocols = [lst["protocol"] for lst in ctx.admin.listeners]
    if wanted in protocols:
        return _ok(protocol=wanted)
    return Reply(503, {"status": "failed", "reason": f"No active listener for {wanted}",
                       "missing": wanted, "protocols": protocols})


@route("GET", "/api/health/checks/virtual-hosts", access="monitoring")
def get_health_virtual_hosts(ctx: Context) -> Any:
    return _ok()


@route("GET", "/api/health/checks/node-is-quorum-critical", access="monitoring")
def get_health_quorum_critical(ctx: Context) -> Any:
    return _ok()  # a single node: no quorum queue depends on another node


@route("GET", "/api/health/checks/certificate-expiration/{within}/{unit}", access="monitoring")
def get_health_certificates(ctx: Context) -> Any:
    return _ok()  # no TLS listener here has a certificate to expire


@route("GET", "/api/aliveness-test/{vhost}", vhost=True)
def get_aliveness(ctx: Context) -> Any:
    """RabbitMQ's check: declare `aliveness-test`, publish to it, get the message back."""
    admin = ctx.admin
    vhost = ctx.vhost
    admin.declare_queue(None, vhost, "aliveness-test", durable=False)
    admin.publish(None, vhost, "", "aliveness-test", {}, b"test_message")
    got = admin.get_messages(None, vhost, "aliveness-test", count=1,
                             ackmode="ack_requeue_false")
    if got and got[0]["payload"] == "test_message":
        return _ok()
    return Reply(503, {"status": "failed", "reason": "the test message did not come back"})
