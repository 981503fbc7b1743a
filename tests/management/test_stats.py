"""Statistics in the management API: depths, rates from samples, consumer capacity,
connection octets."""

from __future__ import annotations

import asyncio

import aio_pika


async def test_rates_and_capacity_from_samples(mgmt, api) -> None:
    stats = mgmt.management.stats
    await api.put("/api/queues/%2F/s", {})
    stats.sample()
    for _ in range(10):
        await api.post("/api/exchanges/%2F/amq.default/publish", {
            "properties": {}, "routing_key": "s", "payload": "12345",
            "payload_encoding": "string"})
    await asyncio.sleep(0.05)
    stats.sample()
    _, q = await api.get("/api/queues/%2F/s")
    assert q["messages"] == 10 and q["message_bytes"] == 50
    assert q["messages_details"]["rate"] > 0
    _, overview = await api.get("/api/overview")
    assert overview["queue_totals"]["messages_ready"] == 10
    assert overview["queue_totals"]["messages_ready_details"]["rate"] > 0
    _, vhost = await api.get("/api/vhosts/%2F")
    assert vhost["messages_ready_details"]["rate"] > 0
    # a consumer that never acks with prefetch 1 leaves a backlog: no capacity
    conn = await aio_pika.connect(mgmt.url)
    ch = await conn.channel()
    await ch.set_qos(prefetch_count=1)
    queue = await ch.get_queue("s")

    async def hold(message) -> None:
        pass

    await queue.consume(hold)
    await asyncio.sleep(0.1)
    stats.sample()
    _, q = await api.get("/api/queues/%2F/s")
    assert q["consumers"] == 1 and q["messages_unacknowledged"] == 1
    assert q["consumer_capacity"] == 0.0
    _, conns = await api.get("/api/connections")
    assert conns[0]["recv_oct"] > 0 and conns[0]["send_oct"] > 0
    assert "recv_oct_details" in conns[0]
    await conn.close()


async def test_idle_consumer_has_full_capacity(mgmt, api) -> None:
    conn = await aio_pika.connect(mgmt.url)
    ch = await conn.channel()
    queue = await ch.declare_queue("idle")

    async def ack(message) -> None:
        await message.ack()

    await queue.consume(ack)
    stats = mgmt.management.stats
    stats.sample()
    stats.sample()
    _, q = await api.get("/api/queues/%2F/idle")
    assert q["consumer_capacity"] == 1.0 and q["consumer_utilisation"] == 1.0
    await conn.close()
