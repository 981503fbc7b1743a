"""A durable queue deleted, then a restart: the broker starts (the replayed deletion used to
touch the message store before its recovery and crash the start), and a queue deleted and
declared again keeps the messages of its new life."""

import aio_pika

from amqpbroker.embed import Broker


async def test_restart_after_deleting_a_durable_queue(tmp_path):
    async with Broker(data_dir=str(tmp_path)) as b:
        async with await aio_pika.connect(b.url) as conn:
            ch = await conn.channel()
            q = await ch.declare_queue("gone", durable=True)
            await ch.default_exchange.publish(
                aio_pika.Message(b"old", delivery_mode=aio_pika.DeliveryMode.PERSISTENT), "gone")
            await q.delete(if_unused=False, if_empty=False)
            q = await ch.declare_queue("gone", durable=True)
            await ch.default_exchange.publish(
                aio_pika.Message(b"new", delivery_mode=aio_pika.DeliveryMode.PERSISTENT), "gone")
    async with Broker(data_dir=str(tmp_path)) as b:
        async with await aio_pika.connect(b.url) as conn:
            ch = await conn.channel()
            q = await ch.declare_queue("gone", durable=True)
            m = await q.get(timeout=5)
            assert m.body == b"new"
            assert await q.get(fail=False) is None
