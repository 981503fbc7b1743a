"""x-consistent-hash and x-local-random with real clients (aio-pika, pika)."""

import asyncio
from collections import Counter

import aio_pika
import pika
import pytest
from aio_pika.exceptions import ChannelPreconditionFailed

from amqpbroker.embed import run_in_thread


async def _depths(ch, names):
    return {n: (await ch.declare_queue(n, passive=True)).declaration_result.message_count
            for n in names}


async def test_consistent_hash_weights_and_same_key_same_queue(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        ex = await ch.declare_exchange("chx", "x-consistent-hash")
        weights = {"h1": 1, "h2": 1, "h3": 2}
        for name, w in weights.items():
            q = await ch.declare_queue(name)
            await q.bind(ex, routing_key=str(w))
        n = 4000
        for i in range(n):
            await ex.publish(aio_pika.Message(b"x"), routing_key=f"order-{i}")
        for i in range(50):  # the same key always lands in the same queue
            await ex.publish(aio_pika.Message(b"same"), routing_key="order-7")
        depths = await _depths(ch, weights)
        assert sum(depths.values()) == n + 50
        # Loose bounds here (4,000 keys); the model test checks 5 % over 100,000.
        assert 0.20 * n < depths["h1"] < 0.30 * n + 50
        assert 0.20 * n < depths["h2"] < 0.30 * n + 50
        assert 0.44 * n < depths["h3"] < 0.56 * n + 50
        with pytest.raises(ChannelPreconditionFailed, match="must be an integer"):
            await (await ch.get_queue("h1")).bind(ex, routing_key="heavy")


async def test_consistent_hash_on_header_and_property(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        hx = await ch.declare_exchange("chx-h", "x-consistent-hash",
                                       arguments={"hash-header": "tenant"})
        px = await ch.declare_exchange("chx-p", "x-consistent-hash",
                                       arguments={"hash-property": "correlation_id"})
        names = [f"t{i}" for i in range(3)]
        for name in names:
            q = await ch.declare_queue(name)
            await q.bind(hx, routing_key="1")
            await q.bind(px, routing_key="1")
        for i in range(30):
            await hx.publish(aio_pika.Message(b"a", headers={"tenant": "acme"}),
                             routing_key=f"rk{i}")
            await px.publish(aio_pika.Message(b"b", correlation_id="c-42"), routing_key=f"rk{i}")
        depths = await _depths(ch, names)
        # 30 by header + 30 by property; each group in exactly one queue.
        assert sorted(depths.values()) in ([0, 0, 60], [0, 30, 30])
        with pytest.raises(ChannelPreconditionFailed, match="mutually exclusive"):
            await ch.declare_exchange("bad", "x-consistent-hash",
                                      arguments={"hash-header": "a", "hash-property": "message_id"})


def test_local_random_with_pika_rpc_fan_in():
    with run_in_thread() as broker:
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        ch = conn.channel()
        ch.exchange_declare("rpc", "x-local-random")
        servers = []
        for _ in range(3):
            q = ch.queue_declare("", exclusive=True).method.queue
            ch.queue_bind(q, "rpc", "")
            servers.append(q)
        for i in range(300):
            ch.basic_publish("rpc", "", b"%d" % i)
        counts = {q: ch.queue_declare(q, passive=True).method.message_count for q in servers}
        assert sum(counts.values()) == 300  # each request went to exactly one server
        assert all(c > 40 for c in counts.values()), counts
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as err:
            ch.queue_bind(servers[0], "rpc", "key")
        assert err.value.reply_code == 406
        assert "Non empty binding 'key' key not permitted" in err.value.reply_text
        conn.close()
