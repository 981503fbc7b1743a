"""A backlog deeper than PAGE_AFTER, through aio-pika at the real thresholds: the queue
pages (model/paged.py) and a consumer still gets every message, in order, with its body
and properties, before and after a restart."""

import asyncio

import aio_pika

from amqpbroker.embed import Broker
from amqpbroker.model.paged import CHUNK, PAGE_AFTER, PagedReady

N = PAGE_AFTER + 3 * CHUNK + 123


def _message(i: int) -> aio_pika.Message:
    return aio_pika.Message(b"%06d" % i + b"x" * (i % 300), message_id=str(i),
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT)


async def _consume(queue: aio_pika.abc.AbstractQueue, n: int) -> list[tuple[bytes, str, bool]]:
    got: list[tuple[bytes, str, bool]] = []
    async with queue.iterator() as it:
        async for m in it:
            got.append((m.body, m.message_id, m.redelivered))
            await m.ack()
            if len(got) == n:
                break
    return got


def _expected(start: int, stop: int) -> list[tuple[bytes, str]]:
    return [(b"%06d" % i + b"x" * (i % 300), str(i)) for i in range(start, stop)]


async def test_a_deep_backlog_is_paged_and_delivered_in_order(tmp_path):
    first = 2000
    async with Broker(data_dir=str(tmp_path), store_memory_budget=1 << 20) as b:
        async with await aio_pika.connect(b.url) as conn:
            ch = await conn.channel(publisher_confirms=False)
            q = await ch.declare_queue("deep", durable=True)
            for i in range(N):
                await ch.default_exchange.publish(_message(i), "deep")
            ready = b.core.vhosts["/"].queues["deep"].ready
            for _ in range(100):  # the publishes are on their way
                if len(ready) == N:
                    break
                await asyncio.sleep(0.05)
                ready = b.core.vhosts["/"].queues["deep"].ready
            assert isinstance(ready, PagedReady) and len(ready) == N
            assert ready.paged > N - PAGE_AFTER - 2 * CHUNK  # all but the head and tail
            ch2 = await conn.channel()
            await ch2.set_qos(prefetch_count=200)
            q2 = await ch2.get_queue("deep")
            got = await _consume(q2, first)
            assert [(b, m) for b, m, _ in got] == _expected(0, first)
            assert (await ch.declare_queue("deep", durable=True)).declaration_result \
                .message_count == N - first
            del q
    async with Broker(data_dir=str(tmp_path), store_memory_budget=1 << 20) as b:
        assert isinstance(b.core.vhosts["/"].queues["deep"].ready, PagedReady)
        async with await aio_pika.connect(b.url) as conn:
            ch = await conn.channel()
            await ch.set_qos(prefetch_count=500)
            q = await ch.declare_queue("deep", durable=True)
            assert q.declaration_result.message_count == N - first
            got = await _consume(q, N - first)
            assert [(b, m) for b, m, _ in got] == _expected(first, N)
            # those delivered within the prefetch window before the restart, unacked, come
            # back first, redelivered; no message after them is
            flags = [r for _, _, r in got]
            k = flags.count(True)
            assert k <= 200 and flags == [True] * k + [False] * (len(flags) - k)
            assert await q.get(fail=False) is None
