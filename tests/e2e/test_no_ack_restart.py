"""Persistent messages of a durable queue delivered to a no-ack consumer (aio-pika,
`no_ack=True`) are gone for good: the queue settles them as it hands them out, and the store
forgets them, so that a restart brings back only those never delivered. A consumer that
acknowledges, on the same queue, still gets back what it had not acked."""

import asyncio

import aio_pika

from amqpbroker.embed import Broker

PERSISTENT = aio_pika.DeliveryMode.PERSISTENT


async def _consume(queue: aio_pika.abc.AbstractQueue, count: int, *, no_ack: bool) -> list[bytes]:
    got: list[bytes] = []
    done = asyncio.Event()

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        got.append(message.body)  # never acked: the manual-ack ones stay unacked
        if len(got) == count:
            done.set()

    tag = await queue.consume(on_message, no_ack=no_ack)
    await asyncio.wait_for(done.wait(), 10)
    await queue.cancel(tag)
    return got


async def test_no_ack_deliveries_do_not_come_back_after_a_restart(tmp_path):
    async with Broker(data_dir=str(tmp_path)) as b:
        async with await aio_pika.connect(b.url) as conn:
            ch = await conn.channel()
            await ch.set_qos(prefetch_count=3)
            q = await ch.declare_queue("jobs", durable=True)
            for i in range(10):
                if i == 4:  # a no-ack consumer takes all it can: m0-m3 are what there is
                    assert await _consume(q, 4, no_ack=True) == [b"m0", b"m1", b"m2", b"m3"]
                await ch.default_exchange.publish(
                    aio_pika.Message(b"m%d" % i, delivery_mode=PERSISTENT), "jobs")
            # prefetch 3, never acked: m4-m6 are out with this consumer when the broker stops
            assert await _consume(q, 3, no_ack=False) == [b"m4", b"m5", b"m6"]
            declared = await ch.declare_queue("jobs", durable=True, passive=True)
            assert declared.declaration_result.message_count == 3  # m7-m9 ready
    async with Broker(data_dir=str(tmp_path)) as b:
        async with await aio_pika.connect(b.url) as conn:
            ch = await conn.channel()
            q = await ch.declare_queue("jobs", durable=True)
            assert q.declaration_result.message_count == 6
            got = []
            while (m := await q.get(fail=False, no_ack=True)) is not None:
                got.append((m.body, m.redelivered))
            assert got == [(b"m4", True), (b"m5", True), (b"m6", True),
                           (b"m7", False), (b"m8", False), (b"m9", False)]
