"""Declarations are answered after the in-sync replicas have them, below the processes: a
real `ReplicationSource` whose ISR holds one follower link that the test acknowledges by
hand, an embedded broker using it as its commit gate, aio-pika and the management API; the
gate's ordering and laggard rule; the cluster view; ctl cluster_status's text."""

from __future__ import annotations

import asyncio
import base64
import queue
import time

import aio_pika
import aiohttp
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from amqpbroker.cluster.leader import Link, ReplicationSource
from amqpbroker.cluster.view import ClusterView
from amqpbroker.ctl_cluster import cluster_status, status_lines
from amqpbroker.embed import Broker


class _Sink:
    transport = None

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    def close(self) -> None:
        pass


def _source() -> tuple[ReplicationSource, Link]:
    async def set_isr(_: set[str]) -> bool:
        return True

    source = ReplicationSource(None, term=9, set_isr=set_isr)  # type: ignore[arg-type]
    source.lease_deadline = time.monotonic() + 3600
    link = Link("n2", _Sink())  # type: ignore[arg-type]
    source.links["n2"] = link
    source.isr = {"n2"}
    return source, link


async def test_the_gate_releases_in_position_order_and_drops_a_laggard():
    source, link = _source()
    released: list[int] = []
    source.wait(5, lambda failed: released.append(5))
    source.wait(3, lambda failed: released.append(3))  # a group commit that began earlier
    source.acked(link, 3)
    assert released == [3]
    source.acked(link, 5)
    assert released == [3, 5]
    source.lease_deadline = time.monotonic() - 1  # fenced: nothing more goes out
    source.wait(6, lambda failed: released.append(6))
    source.acked(link, 6)
    assert released == [3, 5]
    source.lease_deadline = time.monotonic() + 3600
    source.check()
    assert released == [3, 5, 6]
    # A follower that has not acknowledged a wait older than lag_timeout leaves the ISR
    # (in etcd first); then the wait is released without it.
    source.lag_timeout = 0.0
    source.wait(8, lambda failed: released.append(8))
    source.drop_laggards()
    for _ in range(50):
        if 8 in released:
            break
        await asyncio.sleep(0.01)
    assert released == [3, 5, 6, 8] and source.isr == set() and link.closed


async def test_declare_ok_and_api_replies_wait_for_the_in_sync_replicas():
    source, link = _source()
    broker = Broker(management=True)

    def prepare(core):
        source.core = core
        core.changes.tap(source.observe)

    broker.prepare = prepare
    broker.commit_gate = source
    broker.cluster = view = ClusterView("n1", "amqpbroker", source,
                                        {"started": int(time.time() * 1000) - 5000,
                                         "version": "9.9", "processors": 2})
    view.members["n2"] = {"started": int(time.time() * 1000), "amqp": "10.0.0.2:5672"}
    view.members["n3"] = {"amqp": "10.0.0.3:5672"}
    await broker.start()
    try:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        declare = asyncio.ensure_future(ch.declare_queue("held", durable=True))
        await asyncio.sleep(0.3)
        assert not declare.done(), "declare-ok went out before the follower had the queue"
        other = await aio_pika.connect(broker.url)  # nothing durable: answered at once
        await asyncio.wait_for((await other.channel()).declare_queue(exclusive=True), 5)
        await other.close()
        source.acked(link, source.definition_seq)
        await asyncio.wait_for(declare, 5)
        await conn.close()

        auth = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}
        async with aiohttp.ClientSession(headers=auth) as http:
            async def put_queue() -> int:
                async with http.put(broker.management_url + "/api/queues/%2F/api-held",
                                    json={"durable": True}) as resp:
                    return resp.status

            put = asyncio.ensure_future(put_queue())
            await asyncio.sleep(0.3)
            assert not put.done(), "the API answered before the follower had the queue"
            async with http.get(broker.management_url + "/api/nodes") as resp:  # not held
                nodes = {n["name"]: n for n in await resp.json()}
            source.acked(link, source.definition_seq)
            assert await asyncio.wait_for(put, 5) == 201
            async with http.get(broker.management_url + "/api/overview") as resp:
                overview = await resp.json()
            async with http.get(broker.management_url + "/api/nodes/n3") as resp:
                n3 = await resp.json()
            async with http.get(broker.management_url + "/api/queues/%2F/held") as resp:
                assert (await resp.json())["node"] == "n1"
    finally:
        await broker.stop()
    assert sorted(nodes) == ["n1", "n2", "n3"]
    n1, n2 = nodes["n1"], nodes["n2"]
    assert n1["running"] and n1["uptime"] >= 5000 and "mem_used" in n1
    assert n1["replication"]["role"] == "leader" and n1["replication"]["lag"] == 0
    assert n2["running"] and n2["replication"] == {
        **n2["replication"], "role": "follower", "in_sync": True, "connected": True}
    assert n2["replication"]["lag"] > 0  # the PUT's definition, not yet acknowledged
    assert not n3["running"] and "uptime" not in n3
    assert n3["replication"]["in_sync"] is False and n3["replication"]["lag"] is None
    assert (overview["cluster_name"], overview["node"]) == ("amqpbroker", "n1")


async def test_a_persistent_mqtt_subscription_is_acknowledged_after_the_isr():
    source, link = _source()
    broker = Broker(mqtt_port=0)

    def prepare(core):
        source.core = core
        core.changes.tap(source.observe)

    broker.prepare = prepare
    broker.commit_gate = source
    await broker.start()
    loop = asyncio.get_running_loop()
    connacks: "queue.Queue[object]" = queue.Queue()
    subacks: "queue.Queue[object]" = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="kept", clean_session=False)
    client.username_pw_set("guest", "guest")
    client.on_connect = lambda c, u, flags, rc, p: connacks.put(rc)
    client.on_subscribe = lambda c, u, mid, codes, p: subacks.put(codes)
    try:
        await loop.run_in_executor(None, client.connect, "127.0.0.1", broker.mqtt_port)
        client.loop_start()
        for _ in range(100):  # whatever CONNECT made durable: acknowledged at once
            source.acked(link, source.definition_seq)
            if not connacks.empty():
                break
            await asyncio.sleep(0.05)
        assert not connacks.get_nowait().is_failure
        before = source.definition_seq
        client.subscribe("sensors/+/temp", qos=1)  # a durable queue and its binding
        await asyncio.sleep(0.5)
        assert source.definition_seq > before and subacks.empty(), \
            "SUBACK went out before the follower had the subscription's queue"
        source.acked(link, source.definition_seq)
        codes = await loop.run_in_executor(None, subacks.get, True, 5)
        assert [int(getattr(c, "value", c)) for c in codes] == [1]
    finally:
        client.disconnect()
        client.loop_stop()
        await broker.stop()


def test_cluster_status_text_and_json():
    overview = {"node": "n1", "cluster_name": "amqpbroker", "product_name": "amqpbroker",
                "product_version": "1.0", "listeners": [
                    {"ip_address": "::", "port": 5672, "protocol": "amqp"}]}
    nodes = [
        {"name": "n1", "running": True, "processors": 4, "mem_alarm": True, "partitions": [],
         "replication": {"role": "leader", "in_sync": True, "lag": 0, "term": 45,
                         "version": "1.0"}},
        {"name": "n2", "running": True, "processors": 2, "partitions": [],
         "replication": {"role": "follower", "in_sync": True, "lag": 3, "term": 45}},
        {"name": "n3", "running": False, "partitions": [],
         "replication": {"role": "follower", "in_sync": False, "lag": None, "term": 45}},
    ]
    status = cluster_status(overview, nodes)
    assert status["disk_nodes"] == ["n1", "n2", "n3"]
    assert status["running_nodes"] == ["n1", "n2"]
    assert (status["leader"], status["term"], status["in_sync_replicas"]) == (
        "n1", 45, ["n1", "n2"])
    assert status["alarms"] == [{"node": "n1", "resource": "memory"}]
    text = "\n".join(status_lines(status))
    assert text.startswith("Basics\n\nCluster name: amqpbroker\n"
                           "Total CPU cores available cluster-wide: 6\n")
    assert "\nRunning Nodes\n\nn1\nn2\n" in text
    assert "\nLeader\n\nn1 (term 45)\n" in text
    assert "\nIn-sync replicas\n\nn1\nn2\n" in text
    assert "Node: n3, role: follower, not in sync, not connected" in text
    assert "Memory alarm on node n1" in text and "\nNetwork Partitions\n\n(none)\n" in text
    # A single node: no replication state, and the output says so.
    single = cluster_status({"node": "amqpbroker@localhost", "cluster_name": "c"},
                            [{"name": "amqpbroker@localhost", "running": True}])
    assert single["leader"] is None and single["running_nodes"] == ["amqpbroker@localhost"]
    assert "(not clustered: a single node)" in "\n".join(status_lines(single))
