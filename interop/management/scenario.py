"""The calls the management-API compatibility check makes, the same against RabbitMQ (to
record fixtures, record_rabbitmq.py) and against amqpbroker (test_compat.py).

Each call records its HTTP status and the *shape* of its JSON body: the key sets at every
level (lists merged over their items), not the values. Maps that hold data rather than
structure (arguments, client properties, policy definitions, ...) are opaque.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from typing import Any, Callable
from urllib.parse import quote

import pika

V = "fx-vhost"
OPAQUE = {"arguments", "client_properties", "definition", "value", "properties", "headers",
          "cluster_state", "effective_policy_definition", "backing_queue_status",
          "garbage_collection", "socket_opts", "limits", "sample_retention_policies",
          "capabilities", "metadata_store", "config_files", "log_files", "enabled_plugins",
          "applications", "auth_mechanisms", "exchange_types", "contexts", "churn_rates",
          "message_stats", "partitions", "cluster_links", "metrics_gc_queue_length",
          "persister_stats", "io_stats", "memory", "ra_open_file_metrics", "alarms"}


def shape(value: Any, key: str = "") -> Any:
    if key in OPAQUE:
        return "*"
    if isinstance(value, dict):
        return {k: shape(v, k) for k, v in sorted(value.items())}
    if isinstance(value, list):
        merged: Any = None
        for item in value:
            merged = merge(merged, shape(item))
        return [merged] if merged is not None else []
    return "*"


def merge(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(out.get(k), v)
        return out
    if isinstance(a, list) and isinstance(b, list):
        return [merge(a[0] if a else None, b[0] if b else None)] if (a or b) else []
    return a if a != "*" else b


def key_paths(s: Any, prefix: str = "") -> set[str]:
    """{"a": {"b": "*"}, "c": [{"d": "*"}]} -> {"a", "a.b", "c", "c[].d"}"""
    out: set[str] = set()
    if isinstance(s, dict):
        for k, v in s.items():
            path = f"{prefix}.{k}" if prefix else k
            out.add(path)
            out |= key_paths(v, path)
    elif isinstance(s, list) and s:
        out |= key_paths(s[0], prefix + "[]")
    return out


class Http:
    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")

    def call(self, method: str, path: str, body: Any = None, auth: tuple[str, str] | None =
             ("guest", "guest"), raw: bytes | None = None, headers: dict | None = None
             ) -> tuple[int, Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if auth is not None:
            hdrs["Authorization"] = "Basic " + base64.b64encode(
                f"{auth[0]}:{auth[1]}".encode()).decode()
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, text = r.status, r.read()
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read()
        try:
            doc = json.loads(text) if text else None
        except ValueError:
            doc = None
        return status, doc


Step = tuple  # (id, method, path, body, extra kwargs)


def settle(http: Http, timeout: float = 60.0) -> None:
    """Wait until the broker's statistics show the consumer's connection, the queue's
    counts and the node's figures (RabbitMQ collects them asynchronously)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, conns = http.call("GET", "/api/connections")
        _, queue = http.call("GET", f"/api/queues/{V}/fx-q")
        _, chans = http.call("GET", "/api/channels")
        _, nodes = http.call("GET", "/api/nodes")
        if (conns and chans and isinstance(queue, dict) and "messages" in queue
                and queue.get("consumers") and nodes and "mem_used" in nodes[0]
                and "recv_oct" in conns[0]):
            time.sleep(1.0)  # one more statistics round: rates and message_stats
            return
        time.sleep(0.5)
    raise AssertionError("statistics did not appear within the timeout")


def run(base: str, amqp_url: str, amqp_port: int, pause: Callable[[], None] | None = None
        ) -> list[dict[str, Any]]:
    """Make every call against the broker at `base`."""
    http = Http(base)
    records: list[dict[str, Any]] = []
    ctx: dict[str, Any] = {}

    def call(cid: str, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        status, doc = http.call(method, path, body, **kw)
        records.append({"id": cid, "method": method, "status": status, "shape": shape(doc)})
        return doc

    call("whoami", "GET", "/api/whoami")
    call("extensions", "GET", "/api/extensions")
    # vhosts, users, permissions
    call("vhost.put", "PUT", f"/api/vhosts/{V}", {"description": "fixtures"})
    call("vhost.put.again", "PUT", f"/api/vhosts/{V}", {"description": "fixtures"})
    call("vhost.get", "GET", f"/api/vhosts/{V}")
    call("vhosts", "GET", "/api/vhosts")
    call("user.put", "PUT", "/api/users/fx-user", {"password": "pw", "tags": "management"})
    call("user.put.hash", "PUT", "/api/users/fx-user2", {
        "password_hash": "ZnhmeIxWKM0ZUcn5RteUvdZcPTy0LpeVaX7ZbqLJ64t2tqUv", "tags": ""})
    call("user.get", "GET", "/api/users/fx-user")
    call("users", "GET", "/api/users")
    call("users.without-permissions", "GET", "/api/users/without-permissions")
    call("permission.put", "PUT", f"/api/permissions/{V}/fx-user",
         {"configure": ".*", "write": ".*", "read": ".*"})
    call("permission.get", "GET", f"/api/permissions/{V}/fx-user")
    call("permissions", "GET", "/api/permissions")
    call("user.permissions", "GET", "/api/users/fx-user/permissions")
    call("vhost.permissions", "GET", f"/api/vhosts/{V}/permissions")
    call("topic-permission.put", "PUT", f"/api/topic-permissions/{V}/fx-user",
         {"exchange": "amq.topic", "write": ".*", "read": ".*"})
    call("topic-permissions", "GET", "/api/topic-permissions")
    call("topic-permission.get", "GET", f"/api/topic-permissions/{V}/fx-user")
    # exchanges, queues, bindings
    call("exchange.put", "PUT", f"/api/exchanges/{V}/fx-x", {"type": "topic", "durable": True})
    call("exchange.put.again", "PUT", f"/api/exchanges/{V}/fx-x", {"type": "topic",
                                                                     "durable": True})
    call("exchange.put.bad-type", "PUT", f"/api/exchanges/{V}/fx-bad", {"type": "nonsense"})
    call("queue.put", "PUT", f"/api/queues/{V}/fx-q", {"durable": True})
    call("queue.put.inequivalent", "PUT", f"/api/queues/{V}/fx-q", {"durable": False})
    call("queue.put.bad-json", "PUT", f"/api/queues/{V}/fx-q", raw=b"{not json")
    call("binding.post", "POST", f"/api/bindings/{V}/e/fx-x/q/fx-q", {"routing_key": "a.*"})
    call("binding.between", "GET", f"/api/bindings/{V}/e/fx-x/q/fx-q")
    call("binding.get", "GET", f"/api/bindings/{V}/e/fx-x/q/fx-q/a.%252A")
    call("exchange.put.2", "PUT", f"/api/exchanges/{V}/fx-x2", {"type": "fanout"})
    call("binding.e2e.post", "POST", f"/api/bindings/{V}/e/fx-x/e/fx-x2", {"routing_key": "k"})
    call("binding.e2e.between", "GET", f"/api/bindings/{V}/e/fx-x/e/fx-x2")
    call("exchange.bindings.destination", "GET",
         f"/api/exchanges/{V}/fx-x2/bindings/destination")
    call("binding.e2e.delete", "DELETE", f"/api/bindings/{V}/e/fx-x/e/fx-x2/k")
    call("publish", "POST", f"/api/exchanges/{V}/fx-x/publish", {
        "properties": {"delivery_mode": 2}, "routing_key": "a.b", "payload": "m1",
        "payload_encoding": "string"})
    call("publish.unroutable", "POST", f"/api/exchanges/{V}/fx-x/publish", {
        "properties": {}, "routing_key": "zzz", "payload": "m", "payload_encoding": "string"})
    call("publish.missing-exchange", "POST", f"/api/exchanges/{V}/fx-none/publish", {
        "properties": {}, "routing_key": "zzz", "payload": "m", "payload_encoding": "string"})
    call("queue.get", "POST", f"/api/queues/{V}/fx-q/get",
         {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"})
    call("queue.delete.if-empty", "DELETE", f"/api/queues/{V}/fx-q?if-empty=true")
    # a consumer, so connections, channels and consumers have something to show
    conn = pika.BlockingConnection(pika.URLParameters(
        amqp_url.rstrip("/") + "/" + quote(V, safe="")))
    ch = conn.channel()
    ch.basic_qos(prefetch_count=10)
    ch.basic_consume("fx-q", lambda *a: None)
    conn.process_data_events(0.5)
    settle(http)
    conn.process_data_events(0.1)
    call("overview", "GET", "/api/overview")
    call("nodes", "GET", "/api/nodes")
    call("exchange.get", "GET", f"/api/exchanges/{V}/fx-x")
    call("exchanges.vhost", "GET", f"/api/exchanges/{V}")
    call("exchanges", "GET", "/api/exchanges")
    call("exchange.bindings.source", "GET", f"/api/exchanges/{V}/fx-x/bindings/source")
    call("queue.get.one", "GET", f"/api/queues/{V}/fx-q")
    call("queues.vhost", "GET", f"/api/queues/{V}")
    call("queues", "GET", "/api/queues")
    call("queue.bindings", "GET", f"/api/queues/{V}/fx-q/bindings")
    call("bindings.vhost", "GET", f"/api/bindings/{V}")
    call("bindings", "GET", "/api/bindings")
    conns = call("connections", "GET", "/api/connections") or [{}]
    name = quote(conns[0].get("name", "none"), safe="")
    call("connection.get", "GET", f"/api/connections/{name}")
    call("connection.channels", "GET", f"/api/connections/{name}/channels")
    chans = call("channels", "GET", "/api/channels") or [{}]
    call("channel.get", "GET", f"/api/channels/{quote(chans[0].get('name', 'none'), safe='')}")
    call("vhost.connections", "GET", f"/api/vhosts/{V}/connections")
    call("vhost.channels", "GET", f"/api/vhosts/{V}/channels")
    call("consumers", "GET", "/api/consumers")
    call("consumers.vhost", "GET", f"/api/consumers/{V}")
    call("connection.delete", "DELETE", f"/api/connections/{name}",
         headers={"X-Reason": "fixture recording"})
    try:
        conn.process_data_events(1)
        conn.close()
    except pika.exceptions.AMQPError:
        pass
    call("queue.purge", "DELETE", f"/api/queues/{V}/fx-q/contents")
    # listing parameters
    call("queues.page", "GET", "/api/queues?page=1&page_size=10")
    call("queues.columns", "GET", "/api/queues?columns=name,messages&sort=name&sort_reverse=true")
    call("queues.page.name-regex", "GET", "/api/queues?page=1&name=%5Efx&use_regex=true")
    # policies, parameters, limits
    call("policy.put", "PUT", f"/api/policies/{V}/fx-p", {
        "pattern": "^fx", "definition": {"max-length": 10}, "priority": 1,
        "apply-to": "queues"})
    call("policies", "GET", "/api/policies")
    call("policies.vhost", "GET", f"/api/policies/{V}")
    call("policy.get", "GET", f"/api/policies/{V}/fx-p")
    call("policy.delete", "DELETE", f"/api/policies/{V}/fx-p")
    call("operator-policy.put", "PUT", f"/api/operator-policies/{V}/fx-op", {
        "pattern": "^fx", "definition": {"max-length": 100}, "apply-to": "queues"})
    call("operator-policies", "GET", "/api/operator-policies")
    call("operator-policy.get", "GET", f"/api/operator-policies/{V}/fx-op")
    call("operator-policy.delete", "DELETE", f"/api/operator-policies/{V}/fx-op")
    call("parameters", "GET", "/api/parameters")
    call("global-parameters", "GET", "/api/global-parameters")
    call("vhost-limit.put", "PUT", f"/api/vhost-limits/{V}/max-connections", {"value": 10})
    call("vhost-limits", "GET", "/api/vhost-limits")
    call("vhost-limits.vhost", "GET", f"/api/vhost-limits/{V}")
    call("vhost-limit.delete", "DELETE", f"/api/vhost-limits/{V}/max-connections")
    call("user-limit.put", "PUT", "/api/user-limits/fx-user/max-channels", {"value": 5})
    call("user-limits", "GET", "/api/user-limits")
    call("user-limits.user", "GET", "/api/user-limits/fx-user")
    call("user-limit.delete", "DELETE", "/api/user-limits/fx-user/max-channels")
    # definitions
    call("definitions", "GET", "/api/definitions")
    vdefs = call("definitions.vhost", "GET", f"/api/definitions/{V}")
    call("definitions.vhost.post", "POST", f"/api/definitions/{V}", vdefs)
    # health checks
    call("health.alarms", "GET", "/api/health/checks/alarms")
    call("health.local-alarms", "GET", "/api/health/checks/local-alarms")
    call("health.port-listener", "GET", f"/api/health/checks/port-listener/{amqp_port}")
    call("health.port-listener.missing", "GET", "/api/health/checks/port-listener/1")
    call("health.virtual-hosts", "GET", "/api/health/checks/virtual-hosts")
    call("aliveness-test", "GET", f"/api/aliveness-test/{V}")
    # authentication and authorisation
    call("auth.none", "GET", "/api/overview", auth=None)
    call("auth.wrong-password", "GET", "/api/overview", auth=("guest", "wrong"))
    call("auth.management-user.users", "GET", "/api/users", auth=("fx-user", "pw"))
    call("auth.management-user.other-vhost", "GET", "/api/queues/%2F", auth=("fx-user", "pw"))
    call("auth.management-user.overview", "GET", "/api/overview", auth=("fx-user", "pw"))
    call("auth.plain-user", "GET", "/api/overview", auth=("fx-user2", "guest"))
    call("missing.queue", "GET", f"/api/queues/{V}/no-such-queue")
    call("missing.vhost", "GET", "/api/queues/no-such-vhost")
    call("missing.path", "GET", "/api/no-such-endpoint")
    # clean up
    call("queue.delete", "DELETE", f"/api/queues/{V}/fx-q")
    call("exchange.delete", "DELETE", f"/api/exchanges/{V}/fx-x")
    call("exchange.delete.missing", "DELETE", f"/api/exchanges/{V}/fx-x")
    call("permission.delete", "DELETE", f"/api/permissions/{V}/fx-user")
    call("users.bulk-delete", "POST", "/api/users/bulk-delete", {"users": ["fx-user",
                                                                            "fx-user2"]})
    call("vhost.delete", "DELETE", f"/api/vhosts/{V}")
    call("vhost.delete.missing", "DELETE", f"/api/vhosts/{V}")
    return records

