"""Direct reply-to (issue 10): RPC replies without a reply queue, as RabbitMQ does it."""

import asyncio

import aio_pika
import pika
import pytest
from aiormq.exceptions import ChannelPreconditionFailed

REPLY_TO = "amq.rabbitmq.reply-to"


async def _rpc_server(url, stop, ready):
    conn = await aio_pika.connect(url)
    ch = await conn.channel()
    q = await ch.declare_queue("rpc_queue")

    async def on_request(msg):
        async with msg.process():
            assert msg.reply_to.startswith(REPLY_TO + ".")
            await ch.default_exchange.publish(
                aio_pika.Message(b"re:" + msg.body, correlation_id=msg.correlation_id),
                routing_key=msg.reply_to)

    await q.consume(on_request)
    ready.set()  # rpc_queue is declared and consumed: requests can come
    await stop.wait()
    await conn.close()


async def test_rpc_over_direct_reply_to(broker):
    stop, ready = asyncio.Event(), asyncio.Event()
    server = asyncio.ensure_future(_rpc_server(broker.url, stop, ready))
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        # The pseudo-queue can be declared passively (FastStream does this at start).
        reply_queue = await ch.declare_queue(REPLY_TO, passive=True)
        replies = asyncio.Queue()

        async def on_reply(msg):
            await replies.put(msg)

        await reply_queue.consume(on_reply, no_ack=True)
        await asyncio.wait_for(ready.wait(), 10)
        for i in range(3):
            await ch.default_exchange.publish(
                aio_pika.Message(b"%d" % i, reply_to=REPLY_TO, correlation_id=str(i)),
                routing_key="rpc_queue")
        got = [await asyncio.wait_for(replies.get(), 5) for _ in range(3)]
        assert sorted(m.body for m in got) == [b"re:0", b"re:1", b"re:2"]
        assert {m.correlation_id for m in got} == {"0", "1", "2"}
    stop.set()
    await server


async def test_reply_consumer_must_be_no_ack(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        q = await ch.declare_queue(REPLY_TO, passive=True)

        async def nothing(m):
            pass

        with pytest.raises(ChannelPreconditionFailed) as exc:
            await q.consume(nothing, no_ack=False)
        assert "reply consumer cannot acknowledge" in str(exc.value)


async def test_publish_with_pseudo_reply_to_needs_a_reply_consumer(broker):
    async with await aio_pika.connect(broker.url) as conn:
        ch = await conn.channel()
        await ch.declare_queue("rpc_x")
        with pytest.raises(ChannelPreconditionFailed) as exc:
            await ch.default_exchange.publish(aio_pika.Message(b"x", reply_to=REPLY_TO),
                                              routing_key="rpc_x")
        assert "fast reply consumer does not exist" in str(exc.value)


def test_reply_to_a_gone_consumer_is_unroutable(amqp_broker):
    conn = pika.BlockingConnection(pika.URLParameters(amqp_broker.url))
    client = conn.channel()
    client.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    client.queue_declare("rpc_y")
    client.basic_publish("", "rpc_y", b"req", pika.BasicProperties(reply_to=REPLY_TO))
    server = conn.channel()
    server.confirm_delivery()
    method, props, body = server.basic_get("rpc_y", auto_ack=True)
    address = props.reply_to
    assert address.startswith(REPLY_TO + ".")
    ok = server.queue_declare(address, passive=True)  # a live reply address can be checked
    assert ok.method.queue == address
    client.close()
    with pytest.raises(pika.exceptions.UnroutableError):
        server.basic_publish("", address, b"late", mandatory=True)
    conn.close()
