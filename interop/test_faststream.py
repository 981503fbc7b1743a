"""FastStream's RabbitBroker (built on aio-pika) against the broker under test:
RPC over an explicit reply queue (reply_to + correlation_id), RPC with
``broker.request()`` (RabbitMQ's direct reply-to, ``amq.rabbitmq.reply-to``),
topic exchanges and publisher chains."""
from __future__ import annotations

import asyncio
import uuid

import pytest
from faststream.rabbit import ExchangeType, RabbitBroker, RabbitExchange, RabbitMessage, RabbitQueue

from .ecosystem import unique

pytestmark = pytest.mark.interop

TIMEOUT = 10

#: RabbitBroker.start() passively declares amq.rabbitmq.reply-to before anything else.

def make_broker(url: str) -> RabbitBroker:
    # No FastStream logging to stderr: the tests assert on what arrives instead.
    return RabbitBroker(url, logger=None)


async def test_rpc_with_reply_queue_and_correlation_id(broker_url):
    """The classic RPC: the caller names its own reply queue in reply_to and
    matches replies by correlation_id; the handler's return value goes to
    reply_to with the request's correlation_id."""
    broker = make_broker(broker_url)
    requests = RabbitQueue(unique("faststream.rpc"), auto_delete=True)
    replies = RabbitQueue(unique("faststream.replies"), auto_delete=True)
    answers: dict[str, asyncio.Future] = {}

    @broker.subscriber(requests)
    async def square(body: dict) -> dict:
        return {"n": body["n"], "square": body["n"] ** 2}

    @broker.subscriber(replies)
    async def on_reply(body: dict, message: RabbitMessage) -> None:
        future = answers.get(message.correlation_id)
        if future is not None and not future.done():
            future.set_result((body, message.raw_message.routing_key))

    async with broker:
        await broker.start()
        ids = {n: str(uuid.uuid4()) for n in range(10)}
        for n, cid in ids.items():
            answers[cid] = asyncio.get_running_loop().create_future()
        # Send all requests first: replies are told apart only by correlation_id.
        for n, cid in ids.items():
            await broker.publish({"n": n}, requests, reply_to=replies.name, correlation_id=cid)
        results = await asyncio.wait_for(
            asyncio.gather(*(answers[cid] for cid in ids.values())), TIMEOUT)
    for n, (body, routing_key) in zip(ids, results):
        assert body == {"n": n, "square": n * n}
        assert routing_key == replies.name


async def test_request_with_direct_reply_to(broker_url):
    """broker.request() publishes with reply_to=amq.rabbitmq.reply-to after
    consuming (no_ack) from that pseudo-queue (RabbitMQ's direct reply-to); the
    reply is routed back to the caller's channel."""
    broker = make_broker(broker_url)
    requests = RabbitQueue(unique("faststream.request"), auto_delete=True)

    @broker.subscriber(requests)
    async def echo(body: str, message: RabbitMessage) -> str:
        return f"echo:{body}:{message.reply_to.startswith('amq.rabbitmq.reply-to')}"

    async with broker:
        await broker.start()
        for text in ("one", "two"):
            response = await broker.request(text, requests, timeout=TIMEOUT,
                                            correlation_id=f"cid-{text}")
            assert await response.decode() == f"echo:{text}:True"
            assert response.correlation_id == f"cid-{text}"


async def test_topic_exchange_and_publisher_chain(broker_url):
    """A subscriber on a topic exchange binding whose results a @publisher
    decorator forwards to another queue."""
    broker = make_broker(broker_url)
    exchange = RabbitExchange(unique("faststream.topic"), type=ExchangeType.TOPIC,
                              auto_delete=True)
    errors = RabbitQueue(unique("faststream.errors"), auto_delete=True,
                         routing_key="*.error")
    summary = RabbitQueue(unique("faststream.summary"), auto_delete=True)
    done: asyncio.Queue = asyncio.Queue()

    @broker.subscriber(errors, exchange)
    @broker.publisher(summary)
    async def on_error(body: str, message: RabbitMessage) -> str:
        return f"{message.raw_message.routing_key}={body}"

    @broker.subscriber(summary)
    async def on_summary(body: str) -> None:
        await done.put(body)

    async with broker:
        await broker.start()
        for key, body in [("kern.error", "disk"), ("kern.info", "boot"),
                          ("app.error", "crash"), ("app.error.extra", "no")]:
            await broker.publish(body, exchange=exchange, routing_key=key)
        got = [await asyncio.wait_for(done.get(), TIMEOUT) for _ in range(2)]
        await asyncio.sleep(0.3)
        assert done.empty(), f"unexpected: {done.get_nowait()}"
    assert got == ["kern.error=disk", "app.error=crash"]
