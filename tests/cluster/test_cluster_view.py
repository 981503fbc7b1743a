"""A three-node cluster used and watched through any node (etcd and three broker
processes on loopback):

- a follower forwards the management API and MQTT to the leader: `/api/nodes`,
  `/api/overview` and `amqpbroker ctl cluster_status` show every member (role, ISR, lag),
  a paho client of a follower publishes and receives;
- a declaration (AMQP queue/exchange declare and bind; vhost, user, policy and queue PUTs
  through the API) is answered only once every in-sync follower has it: while one is
  frozen, no reply comes; and a failover right after the replies keeps all of it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import queue
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import aio_pika
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from .harness import Node

pytestmark = [pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
              pytest.mark.filterwarnings("ignore::ResourceWarning")]
AUTH = "Basic " + base64.b64encode(b"guest:guest").decode()


def http(node: Node, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{node.mgmt_port}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": AUTH, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, None


def ctl(node: Node, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "amqpbroker", "ctl", "--url",
                          f"http://127.0.0.1:{node.mgmt_port}", *args],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def mqtt_round_trip(port: int) -> bytes:
    """A paho client (MQTT 3.1.1) subscribes and publishes at QoS 1 on `port`."""
    got: "queue.Queue[bytes]" = queue.Queue()
    connected: "queue.Queue[Any]" = queue.Queue()
    subacks: "queue.Queue[Any]" = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="via-follower")
    client.username_pw_set("guest", "guest")
    client.on_connect = lambda c, u, flags, rc, p: connected.put(rc)
    client.on_subscribe = lambda c, u, mid, codes, p: subacks.put(codes)
    client.on_message = lambda c, u, m: got.put(m.payload)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert not connected.get(timeout=20).is_failure
        client.subscribe("cluster/+/temp", qos=1)
        assert [int(getattr(c, "value", c)) for c in subacks.get(timeout=20)] == [1]
        info = client.publish("cluster/n/temp", b"21.5", qos=1)
        info.wait_for_publish(20)
        return got.get(timeout=20)
    finally:
        client.disconnect()
        client.loop_stop()


def members_connected(node: Node) -> list[dict[str, Any]] | None:
    status, nodes = http(node, "GET", "/api/nodes")
    # (every follower linked, and the leader's member list read from etcd: uptimes known)
    if status == 200 and len(nodes) == 3 and all(n["running"] and "uptime" in n
                                                 for n in nodes):
        return nodes
    return None


async def test_any_node_shows_and_serves_the_cluster(cluster):
    loop = asyncio.get_running_loop()
    run = loop.run_in_executor
    await run(None, cluster.wait_isr, 3, 90)
    leader = cluster.node(await run(None, cluster.wait_leader, 30))
    via, frozen = [n for n in cluster.nodes if n is not leader]

    # The management API of a follower answers for the cluster (forwarded to the leader).
    nodes = await run(None, cluster.wait_for, lambda: members_connected(via), 30,
                      "every member connected in /api/nodes")
    by_name = {n["name"]: n for n in nodes}
    assert sorted(by_name) == ["n1", "n2", "n3"]
    for n in nodes:
        assert n["type"] == "disc" and n["partitions"] == [] and n["uptime"] > 0
        r = n["replication"]
        assert r["in_sync"] and r["lag"] >= 0
        assert r["role"] == ("leader" if n["name"] == leader.name else "follower")
    assert "mem_used" in by_name[leader.name]  # the leader's own statistics
    status, one = await run(None, http, via, "GET", f"/api/nodes/{frozen.name}")
    assert status == 200 and one["replication"]["role"] == "follower"
    assert (await run(None, http, via, "GET", "/api/nodes/nobody"))[0] == 404
    status, overview = await run(None, http, via, "GET", "/api/overview")
    assert (overview["cluster_name"], overview["node"]) == ("amqpbroker", leader.name)

    text = await run(None, ctl, via, "cluster_status")
    for heading in ("Basics", "Disk Nodes", "Running Nodes", "Leader", "In-sync replicas"):
        assert f"\n{heading}\n\n" in "\n" + text, text
    assert "Cluster name: amqpbroker" in text
    assert f"Leader\n\n{leader.name} (term " in text
    doc = json.loads(await run(None, ctl, via, "--formatter", "json", "cluster_status"))
    assert doc["running_nodes"] == doc["disk_nodes"] == ["n1", "n2", "n3"]
    assert doc["leader"] == leader.name and doc["in_sync_replicas"] == ["n1", "n2", "n3"]

    # MQTT through the follower.
    assert await run(None, mqtt_round_trip, via.mqtt_port) == b"21.5"

    # Declarations wait for every in-sync follower: none is answered while one is frozen.
    conn = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{via.port}/")
    ch = await conn.channel()

    async def declare_over_amqp() -> float:
        ex = await ch.declare_exchange("c-ex", aio_pika.ExchangeType.DIRECT, durable=True)
        answered = time.monotonic()
        q = await ch.declare_queue("c-q", durable=True)
        await q.bind(ex, "rk")
        return answered

    def put(path: str, body: Any) -> float:
        status, _ = http(via, "PUT", path, body)
        assert status in (201, 204), (path, status)
        return time.monotonic()

    frozen.kill(signal.SIGSTOP)
    try:
        replies = [asyncio.ensure_future(declare_over_amqp()),
                   run(None, put, "/api/vhosts/c-vhost", {}),
                   run(None, put, "/api/users/c-user", {"password": "s3cret", "tags": ""}),
                   run(None, put, "/api/policies/%2F/c-policy",
                       {"pattern": "^c-q$", "definition": {"max-length": 1000}}),
                   run(None, put, "/api/queues/%2F/c-http-q", {"durable": True})]
        await asyncio.sleep(1.5)
        assert not any(r.done() for r in replies), "a declaration was answered too early"
        # Reads are not held; the frozen follower is still in sync, behind.
        status, lagging = await run(None, http, via, "GET", f"/api/nodes/{frozen.name}")
        assert status == 200 and lagging["replication"]["in_sync"]
        assert lagging["replication"]["lag"] > 0
        resumed_at = time.monotonic()
    finally:
        frozen.kill(signal.SIGCONT)
    answered = await asyncio.wait_for(asyncio.gather(*replies), 60)
    assert all(t > resumed_at for t in answered), (answered, resumed_at)
    await conn.close()

    # A failover right after the replies keeps every declaration.
    term = (cluster.leader() or ("", 0))[1]
    leader.kill(signal.SIGKILL)
    new = cluster.node(await run(None, cluster.wait_leader, 30, term))
    conn = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{new.port}/")
    ch = await conn.channel()
    ex = await ch.declare_exchange("c-ex", passive=True)
    q = await ch.declare_queue("c-q", passive=True)
    await ex.publish(aio_pika.Message(b"routed", delivery_mode=2), "rk")  # the binding
    got = await q.get(timeout=10)
    assert got.body == b"routed"
    await conn.close()
    for path in ("/api/vhosts/c-vhost", "/api/users/c-user", "/api/policies/%2F/c-policy",
                 "/api/queues/%2F/c-http-q"):
        assert (await run(None, http, new, "GET", path))[0] == 200, path
