"""A stream bound to each exchange type receives what is routed to it, with aio-pika
(issue 14: before the broker core had one Destination interface, publishing through a
binding to a stream closed the publisher's connection with 541). Also across a restart:
the binding is durable and points at a queue."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest

from amqpbroker.embed import Broker

STREAM = {"x-queue-type": "stream"}
ROUTES = [  # exchange type, binding key, binding arguments, publish key, headers
    ("direct", "k", None, "k", None),
    ("fanout", "", None, "whatever", None),
    ("topic", "orders.*", None, "orders.eu", None),
    ("headers", "", {"x-match": "all", "region": "eu"}, "", {"region": "eu"}),
]


async def _read_stream(ch, name: str, count: int) -> list[bytes]:
    await ch.set_qos(prefetch_count=count + 10)
    q = await ch.get_queue(name)
    got: list[bytes] = []
    async with q.iterator(arguments={"x-stream-offset": "first"}) as it:
        async for m in it:
            got.append(m.body)
            await m.ack()
            if len(got) == count:
                break
    return got


@pytest.mark.parametrize("kind,key,args,rk,headers", ROUTES, ids=[r[0] for r in ROUTES])
async def test_stream_bound_to_exchange_type(tmp_path, kind, key, args, rk, headers):
    async with Broker(data_dir=str(tmp_path)) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()  # publisher confirms on
        ex = await ch.declare_exchange(f"ex.{kind}", kind, durable=True)
        s = await ch.declare_queue(f"s.{kind}", durable=True, arguments=STREAM)
        await s.bind(ex, key, arguments=args)
        for i in range(3):  # each publish is confirmed: routed and on disk
            await ex.publish(aio_pika.Message(b"m%d" % i, headers=headers), rk)
        assert await asyncio.wait_for(_read_stream(await conn.channel(), s.name, 3), 10) \
            == [b"m0", b"m1", b"m2"]
        await conn.close()
    async with Broker(data_dir=str(tmp_path)) as broker:  # the binding survives a restart
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        ex = await ch.get_exchange(f"ex.{kind}")
        await ex.publish(aio_pika.Message(b"after", headers=headers), rk)
        got = await asyncio.wait_for(_read_stream(await conn.channel(), f"s.{kind}", 4), 10)
        assert got == [b"m0", b"m1", b"m2", b"after"]
        await conn.close()
