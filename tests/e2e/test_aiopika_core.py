"""End to end with aio-pika over a real socket against an embedded broker."""

import asyncio

import aio_pika
import pytest
from aio_pika.exceptions import ChannelClosed, ChannelNotFoundEntity, DeliveryError


async def _collect(queue, n, timeout=5.0, ack=True):
    got = []
    done = asyncio.Event()

    async def on_message(message):
        got.append(message)
        if ack:
            await message.ack()
        if len(got) >= n:
            done.set()

    tag = await queue.consume(on_message)
    await asyncio.wait_for(done.wait(), timeout)
    await queue.cancel(tag)
    return got


async def test_work_queue_round_robin_and_prefetch(broker):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel()
        q = await ch.declare_queue("tasks", durable=True)
        workers = []
        for _ in range(2):
            wch = await conn.channel()
            await wch.set_qos(prefetch_count=1)
            workers.append(await wch.get_queue("tasks"))
        seen = {0: [], 1: []}
        done = asyncio.Event()

        def handler(i):
            async def on_message(m):
                async with m.process():
                    seen[i].append(m.body)
                    if len(seen[0]) + len(seen[1]) == 10:
                        done.set()
            return on_message

        for i, wq in enumerate(workers):
            await wq.consume(handler(i))
        for n in range(10):
            await ch.default_exchange.publish(
                aio_pika.Message(b"%d" % n, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key="tasks")
        await asyncio.wait_for(done.wait(), 5)
        assert len(seen[0]) == 5 and len(seen[1]) == 5
        assert q.name == "tasks"


async def test_fanout_direct_topic_headers_routing(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        fan = await ch.declare_exchange("f", aio_pika.ExchangeType.FANOUT)
        direct = await ch.declare_exchange("d", aio_pika.ExchangeType.DIRECT)
        topic = await ch.declare_exchange("t", aio_pika.ExchangeType.TOPIC)
        headers = await ch.declare_exchange("h", aio_pika.ExchangeType.HEADERS)
        qs = [await ch.declare_queue(exclusive=True) for _ in range(4)]
        await qs[0].bind(fan)
        await qs[1].bind(fan)
        await qs[1].bind(direct, "error")
        await qs[2].bind(topic, "*.orange.*")
        await qs[3].bind(headers, arguments={"x-match": "any", "a": 1, "b": "x"})
        await fan.publish(aio_pika.Message(b"all"), "")
        await direct.publish(aio_pika.Message(b"err"), "error")
        await direct.publish(aio_pika.Message(b"info"), "info")
        await topic.publish(aio_pika.Message(b"fox"), "quick.orange.fox")
        await topic.publish(aio_pika.Message(b"no"), "lazy.brown.fox")
        await headers.publish(aio_pika.Message(b"hdr", headers={"b": "x"}), "")
        await headers.publish(aio_pika.Message(b"nohdr", headers={"b": "y"}), "")
        bodies = []
        for q in qs:
            items = []
            while (m := await q.get(no_ack=True, fail=False)) is not None:
                items.append(m.body)
            bodies.append(items)
        assert bodies == [[b"all"], [b"all", b"err"], [b"fox"], [b"hdr"]]


async def test_mandatory_unroutable_raises_delivery_error(broker):
    async with await aio_pika.connect(broker.url) as conn:
        # aio-pika's default channel has publisher confirms on; it raises on a return
        # when asked to (on_return_raises), else the publish resolves to the returned message.
        ch = await conn.channel(on_return_raises=True)
        with pytest.raises(DeliveryError) as exc:
            await ch.default_exchange.publish(aio_pika.Message(b"x"), "no-such-queue",
                                              mandatory=True)
        assert exc.value.frame.reply_code == 312
        plain = await conn.channel()
        returned = await plain.default_exchange.publish(aio_pika.Message(b"y"), "nowhere",
                                                        mandatory=True)
        assert returned.body == b"y"
        # Not mandatory: confirmed (ack) although unroutable.
        await ch.default_exchange.publish(aio_pika.Message(b"x"), "no-such-queue",
                                          mandatory=False)


async def test_alternate_exchange_takes_unroutable(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        ae = await ch.declare_exchange("ae", aio_pika.ExchangeType.FANOUT)
        main = await ch.declare_exchange("main", aio_pika.ExchangeType.DIRECT,
                                         arguments={"alternate-exchange": "ae"})
        unrouted = await ch.declare_queue(exclusive=True)
        await unrouted.bind(ae)
        await main.publish(aio_pika.Message(b"lost?"), "nobody", mandatory=True)
        m = await unrouted.get(no_ack=True, timeout=2)
        assert m.body == b"lost?"


async def test_exchange_to_exchange_binding_without_loops(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        a = await ch.declare_exchange("a", aio_pika.ExchangeType.FANOUT)
        b = await ch.declare_exchange("b", aio_pika.ExchangeType.FANOUT)
        await b.bind(a)
        await a.bind(b)  # a loop: each message must still arrive once
        q = await ch.declare_queue(exclusive=True)
        await q.bind(b)
        await a.publish(aio_pika.Message(b"once"), "")
        assert (await q.get(no_ack=True, timeout=2)).body == b"once"
        assert await q.get(no_ack=True, fail=False) is None


async def test_passive_declare_missing_queue_is_404(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        with pytest.raises(ChannelNotFoundEntity):
            await ch.declare_queue("missing", passive=True)


async def test_exclusive_queue_locked_to_its_connection_and_deleted_with_it(broker):
    c1 = await aio_pika.connect(broker.url)
    c2 = await aio_pika.connect(broker.url)
    ch1 = await c1.channel()
    q = await ch1.declare_queue("mine", exclusive=True)
    ch2 = await c2.channel()
    with pytest.raises(ChannelClosed) as exc:
        await ch2.declare_queue("mine", exclusive=True)
    assert "RESOURCE_LOCKED" in str(exc.value)
    assert q.name == "mine"
    await c1.close()
    ch2 = await c2.channel()
    await ch2.declare_queue("mine", exclusive=True)  # free again
    await c2.close()


async def test_nack_requeue_keeps_order_and_sets_redelivered(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue("order", auto_delete=False)
        for i in range(3):
            await ch.default_exchange.publish(aio_pika.Message(b"%d" % i), "order")
        ms = [await q.get(timeout=2) for _ in range(3)]
        for m in reversed(ms):
            await m.nack(requeue=True)
        again = [await q.get(no_ack=True, timeout=2) for _ in range(3)]
        assert [m.body for m in again] == [b"0", b"1", b"2"]
        assert all(m.redelivered for m in again)


async def test_unacked_return_when_connection_closes(broker):
    c1 = await aio_pika.connect(broker.url)
    ch = await c1.channel()
    q = await ch.declare_queue("back")
    await ch.default_exchange.publish(aio_pika.Message(b"x"), "back")
    got = await _collect(q, 1, ack=False)
    assert got[0].body == b"x"
    await c1.close()
    async with await aio_pika.connect(broker.url) as c2:
        ch2 = await c2.channel()
        q2 = await ch2.declare_queue("back")
        m = await q2.get(no_ack=True, timeout=2)
        assert m.redelivered


async def test_transactions_commit_and_rollback(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel(publisher_confirms=False)
        q = await ch.declare_queue("txq")
        tx = ch.transaction()
        await tx.select()
        await ch.default_exchange.publish(aio_pika.Message(b"a"), "txq")
        await tx.rollback()
        await ch.default_exchange.publish(aio_pika.Message(b"b"), "txq")
        await tx.commit()
        m = await q.get(no_ack=True, timeout=2)
        assert m.body == b"b"
        assert await q.get(no_ack=True, fail=False) is None


async def test_consumer_priority_gets_messages_first(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=10)
        q = await ch.declare_queue("prio")
        high, low = [], []
        all_in = asyncio.Event()

        async def to_low(m):
            low.append(m.body)
            if len(high) + len(low) == 5:
                all_in.set()

        async def to_high(m):
            high.append(m.body)
            if len(high) + len(low) == 5:
                all_in.set()

        await q.consume(to_low, no_ack=True)
        await q.consume(to_high, no_ack=True, arguments={"x-priority": 10})
        for i in range(5):
            await ch.default_exchange.publish(aio_pika.Message(b"%d" % i), "prio")
        await asyncio.wait_for(all_in.wait(), 10)
        assert high == [b"%d" % i for i in range(5)] and not low


async def test_large_message_roundtrip(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue(exclusive=True)
        body = bytes(range(256)) * 8000  # 2 MB, many frames
        await ch.default_exchange.publish(aio_pika.Message(body), q.name)
        m = await q.get(no_ack=True, timeout=5)
        assert m.body == body
