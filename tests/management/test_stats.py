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


async def test_message_stats_counters_and_rates(mgmt, api) -> None:
    """publish N, deliver and ack M, get K, return/drop unroutable: every level counts."""
    stats = mgmt.management.stats
    conn = await aio_pika.connect(mgmt.url)
    ch = await conn.channel(publisher_confirms=True)
    x = await ch.declare_exchange("stats-x", aio_pika.ExchangeType.DIRECT)
    q = await ch.declare_queue("stats-q")
    await q.bind(x, "k")
    stats.sample()
    for i in range(10):
        await x.publish(aio_pika.Message(b"m%d" % i), "k")
    await x.publish(aio_pika.Message(b"lost"), "nowhere", mandatory=False)  # dropped
    got = []
    for _ in range(3):  # basic.get with ack
        m = await q.get(no_ack=False)
        await m.ack()
        got.append(m)
    m = await q.get(no_ack=False)
    await m.reject(requeue=True)  # comes back redelivered
    acked = asyncio.Event()
    count = 0

    async def consume(message) -> None:
        nonlocal count
        await message.ack()
        count += 1
        if count == 7:
            acked.set()

    await q.consume(consume)
    await asyncio.wait_for(acked.wait(), 10)
    await asyncio.sleep(0.1)
    stats.sample()
    _, info = await api.get("/api/queues/%2F/stats-q")
    s = info["message_stats"]
    assert (s["publish"], s["get"], s["deliver"], s["ack"], s["redeliver"]) == (10, 4, 7, 10, 1)
    assert s["deliver_get"] == 11 and s["publish_details"]["rate"] > 0
    _, ex = await api.get("/api/exchanges/%2F/stats-x")
    assert ex["message_stats"]["publish_in"] == 11 and ex["message_stats"]["publish_out"] == 10
    _, chans = await api.get("/api/channels")
    c = [c for c in chans if c["message_stats"]["publish"]][0]["message_stats"]
    assert (c["publish"], c["confirm"], c["drop_unroutable"], c["ack"]) == (11, 11, 1, 10)
    assert c["get"] == 4 and c["deliver"] == 7 and c["redeliver"] == 1
    _, vhost = await api.get("/api/vhosts/%2F")
    assert vhost["message_stats"]["publish"] == 11 and vhost["message_stats"]["ack"] == 10
    _, overview = await api.get("/api/overview")
    assert overview["message_stats"]["deliver_get"] == 11
    assert overview["message_stats"]["confirm"] == 11
    _, conns = await api.get("/api/connections")
    assert conns[0]["message_stats"]["publish"] == 11
    # a deleted queue's counts stay in its vhost's totals
    await q.delete(if_unused=False, if_empty=False)
    _, vhost = await api.get("/api/vhosts/%2F")
    assert vhost["message_stats"]["ack"] == 10
    await conn.close()


async def test_queue_bytes_and_persistent_totals(mgmt, api) -> None:
    """message_bytes_ready / _unacknowledged and messages_persistent from running totals:
    persistent and transient messages in a durable queue, some held unacked by a consumer
    (aio-pika), then acked."""
    conn = await aio_pika.connect(mgmt.url)
    ch = await conn.channel()
    queue = await ch.declare_queue("totals", durable=True)
    for i in range(6):  # 3 persistent x 100 B, 3 transient x 10 B
        persistent = i % 2 == 0
        await ch.default_exchange.publish(aio_pika.Message(
            b"p" * 100 if persistent else b"t" * 10,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT if persistent
            else aio_pika.DeliveryMode.NOT_PERSISTENT), "totals")
    await asyncio.sleep(0.05)
    _, q = await api.get("/api/queues/%2F/totals")
    assert (q["messages_ready"], q["message_bytes_ready"]) == (6, 330)
    assert (q["messages_unacknowledged"], q["message_bytes_unacknowledged"]) == (0, 0)
    assert (q["messages_persistent"], q["message_bytes_persistent"]) == (3, 300)
    assert q["message_bytes"] == q["message_bytes_ram"] == 330

    consumer_ch = await conn.channel()
    await consumer_ch.set_qos(prefetch_count=2)  # holds the first two: 100 B + 10 B
    held: list[aio_pika.abc.AbstractIncomingMessage] = []
    held_q = await consumer_ch.get_queue("totals")
    await held_q.consume(held.append)
    for _ in range(100):
        if len(held) == 2:
            break
        await asyncio.sleep(0.02)
    _, q = await api.get("/api/queues/%2F/totals")
    assert (q["messages_ready"], q["message_bytes_ready"]) == (4, 220)
    assert (q["messages_unacknowledged"], q["message_bytes_unacknowledged"]) == (2, 110)
    assert q["message_bytes"] == 330
    assert (q["messages_persistent"], q["message_bytes_persistent"]) == (3, 300)

    for m in held:
        await m.ack()
    await asyncio.sleep(0.1)
    await consumer_ch.close()
    await asyncio.sleep(0.05)
    _, q = await api.get("/api/queues/%2F/totals")
    # 2 acked; the consumer took 2 more before its channel closed, which came back
    assert q["messages"] == 4 and q["message_bytes"] == 220
    assert q["message_bytes_unacknowledged"] == 0
    assert (q["messages_persistent"], q["message_bytes_persistent"]) == (2, 200)
    await queue.purge()
    _, q = await api.get("/api/queues/%2F/totals")
    assert q["message_bytes"] == 0 and q["messages_persistent"] == 0
    await conn.close()


async def test_a_pass_is_spread_over_loop_turns_and_idle_queues_cost_nothing(
        mgmt, api, monkeypatch) -> None:
    """With 300 queues and 50 objects per turn, the timer's pass takes several loop
    turns; idle queues are left out of the samples, a queue that turns busy counts from
    zero at the previous pass, and one that is emptied shows its fall."""
    from amqpbroker.management import stats as stats_module

    monkeypatch.setattr(stats_module, "SLICE", 50)
    stats = mgmt.management.stats
    conn = await aio_pika.connect(mgmt.url)
    ch = await conn.channel()
    queues = []
    for i in range(300):
        queues.append(await ch.declare_queue(f"idle-{i}"))
        await ch.default_exchange.publish(aio_pika.Message(b"x"), f"idle-{i}")
    steps = 0
    stats.stop()
    stats._tick()  # the timer's pass: one step now, the rest on later turns
    while stats._pass is not None:
        steps += 1
        await asyncio.sleep(0)
    assert steps >= 300 // 50
    assert all(("queue", ("/", f"idle-{i}")) in stats._samples for i in range(300))
    for q in queues:
        await q.purge()
    busy = await ch.declare_queue("turns-busy")
    stats.sample()
    _, q = await api.get("/api/queues/%2F/idle-7")
    assert q["messages_details"]["rate"] < 0  # emptied: the fall shows once
    stats.sample()
    assert ("queue", ("/", "idle-7")) not in stats._samples  # idle: left out
    _, q = await api.get("/api/queues/%2F/idle-7")
    assert q["messages_details"]["rate"] == 0.0
    for _ in range(5):
        await ch.default_exchange.publish(aio_pika.Message(b"y"), busy.name)
    await asyncio.sleep(0.05)
    stats.sample()  # busy now, idle at the previous pass: counts from zero since then
    _, q = await api.get("/api/queues/%2F/turns-busy")
    assert q["messages"] == 5 and q["messages_details"]["rate"] > 0
    assert q["message_stats"]["publish"] == 5 and q["message_stats"]["publish_details"]["rate"] > 0
    await conn.close()


async def test_idle_channels_are_left_out_and_connections_come_in_slices(
        mgmt, api, monkeypatch) -> None:
    """10,000 idle connections cost the sampler nothing per channel: a channel that has
    counted nothing is left out of a pass (its message_stats are zero), connections are
    taken SLICE at a time, and a channel that turns busy counts from zero at the previous
    pass."""
    from amqpbroker.management import stats as stats_module

    monkeypatch.setattr(stats_module, "SLICE", 2)
    stats = mgmt.management.stats
    conns = [await aio_pika.connect(mgmt.url) for _ in range(5)]
    chans = [await c.channel() for c in conns]
    stats.stop()
    stats.sample()
    parts = list(mgmt.admin.counter_samples(2))
    assert len(parts) >= 3 + 1  # five connections, two per part, then the totals
    assert not any(key[0] in ("channel", "connection") for part in parts for key, _ in part)
    q = await chans[0].declare_queue("", exclusive=True)
    for _ in range(3):
        await chans[0].default_exchange.publish(aio_pika.Message(b"z"), q.name)
    await asyncio.sleep(0.05)
    stats.sample()
    busy = [key for key in stats._counters if key[0] == "channel"]
    assert len(busy) == 1
    _, listed = await api.get("/api/channels")
    published = [c for c in listed if c.get("message_stats", {}).get("publish")]
    assert len(listed) == 5 and len(published) == 1
    assert published[0]["message_stats"]["publish"] == 3
    assert published[0]["message_stats"]["publish_details"]["rate"] > 0
    for c in conns:
        await c.close()
